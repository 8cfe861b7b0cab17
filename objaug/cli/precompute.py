"""objaug precompute: ContraCAM boxes and soft masks for a whole dataset, into a resumable object store.

Examples:
    objaug precompute --data train/ --arch resnet50 --checkpoint mocov2.ckpt --out boxes_store
    objaug precompute --dataset mydata.py:make_dataset --arch resnet18 --checkpoint byol.ckpt --out store
    torchrun --nproc-per-node 8 -m objaug precompute --data train/ --arch resnet50 --checkpoint c.ckpt --out s

--data DIR reads every image file under DIR (recursive, sorted by relative path). --dataset
MODULE:CALLABLE (or FILE.py:CALLABLE) calls CALLABLE() for a map-style dataset whose items are an
image, an (image, ...) tuple or a dict with "image" (PIL image, CHW tensor uint8 / float in [0, 1],
or HWC uint8 array); it must be deterministic. Images are resized to --image-size squared and
normalised with --mean/--std.

The objects are those the library finds (objaug.objects.find_objects): boxes from every ContraCAM
iteration's own map, the output map (of the first --mask-iters iterations when given) as the soft mask.
The ContraCAM and box flags are the fields of objaug.config.CamConfig and BoxConfig, with their
defaults (the paper uses --iters 10 for boxes).

The store (format: docs/store-format.md) holds per sample up to --max-boxes boxes with validity flags
and a --mask-size soft mask (uint8). Running the same command again resumes an interrupted run: the
finished shards are kept and the others redone; the result is byte-identical to an uninterrupted run.
Unreadable samples are skipped and listed in the manifest. Under torchrun each process computes the
shards s with s % world_size == rank (on cuda:LOCAL_RANK) and rank 0 writes the merged manifest; the
store does not depend on the number of processes.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from objaug.cli import add_threads_argument, fail, out_dir_problem, with_threads
from objaug.cli.options import add_config_arguments, add_model_arguments, configs_from_args, mean_std, to_flags
from objaug.constants import PRECISIONS

HELP = "precompute ContraCAM boxes and masks for a dataset into an object store (resumable, multi-GPU)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Register the ``precompute`` options."""
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", metavar="DIR", help="folder of images (recursive, sorted by relative path)")
    src.add_argument("--dataset", metavar="MODULE:CALLABLE",
                     help="a callable (in a module or a .py file) returning a map-style dataset")
    p.add_argument("--out", required=True, metavar="STORE", help="the store directory (created or resumed)")
    add_model_arguments(p)
    p.add_argument("--mask-size", type=int, default=56, help="side of the stored soft masks (default 56)")
    p.add_argument("--shard-size", type=int, default=1024, help="samples per shard file (default 1024)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="autocast precision of the model (default fp32)")
    p.add_argument("--workers", type=int, default=None,
                   help="DataLoader worker processes decoding images (default min(8, cpus - 1))")
    p.add_argument("--overwrite", action="store_true", help="delete an existing store at --out first")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_threads_argument(p)
    add_config_arguments(p)


def _fail(message: str) -> int:
    return fail("precompute", message)


#: Library wording -> this command's flags, beyond the config fields and the model flags that
#: :func:`objaug.cli.options.to_flags` knows (the library names its parameters, the CLI its options).
_WORDING = ((r"^root: ", "--data: "), (r"\bthe dataset spec\b", "--dataset"), (r"\bout=", "--out "),
            (r"\banother out directory\b", "another --out"), (r"\boverwrite=True\b", "--overwrite"))
_NAMES = {"mask_size": "--mask-size", "shard_size": "--shard-size", "precision": "--precision",
          "num_workers": "--workers", "bank_size": "--bank"}


def _as_flags(message: str) -> str:
    """An error of :mod:`objaug.store.precompute` or the configs in the command's terms (``out=`` -> ``--out``)."""
    return to_flags(message, _NAMES, patterns=_WORDING)


def _checkpoint_identity(path: str) -> dict[str, Any]:
    from objaug.store.format import file_sha256

    return {"bytes": os.path.getsize(path), "name": os.path.basename(path), "sha256": file_sha256(path)}


def _init_distributed(device_arg: str) -> tuple[Any, bool]:
    """Initialise torch.distributed from torchrun's environment (if present); returns (device, initialised).

    Raises:
        ModelSetupError: ``--device`` names a device torch cannot use.
    """
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    from objaug.cli._model import resolve_device

    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_arg)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    started = False
    if world > 1 and dist.is_available() and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=timedelta(hours=6))
        started = True
    return device, started


def run(args: argparse.Namespace) -> int:
    """Run the ``precompute`` subcommand (with ``--threads``; ``--out`` must not be an existing file)."""
    problem = out_dir_problem(args.out)
    if problem:
        return _fail(problem)
    return with_threads("precompute", args, _run)


def _say_resuming(args: argparse.Namespace, *, rank: int) -> None:
    """On rank 0, before the run: how much of an existing store at ``--out`` is kept ("resuming: k of n ...")."""
    from objaug.store.resume import store_progress

    if rank != 0 or args.overwrite:
        return
    progress = store_progress(args.out)
    if progress is None:
        return
    if progress.complete:
        print(f"objaug precompute: {args.out} is complete ({progress.describe()}); checking it matches this run",
              file=sys.stderr)
    else:
        print(f"objaug precompute: resuming: {progress.shards_done} of {progress.num_shards} shards kept "
              f"({progress.images_done} of {progress.length} images) in {args.out}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    import torch
    import torch.distributed as dist

    from objaug.cli._model import ModelSetupError, build_model
    from objaug.store.format import StoreError
    from objaug.store.precompute import ImageFolderFiles, check_options, load_dataset, precompute

    if args.checkpoint is None and not args.random_init:
        return _fail("--checkpoint is required (or --random-init for a smoke test with random weights).")
    mean, std = mean_std(args)
    try:  # every setting is checked by the library before any image is read or any model built
        cam_config, box_config = configs_from_args(args)
        check_options(batch_size=args.batch_size, image_size=args.image_size, mean=mean, std=std,
                      mask_size=args.mask_size, shard_size=args.shard_size, precision=args.precision,
                      num_workers=args.workers)
    except (TypeError, ValueError) as e:
        return _fail(_as_flags(str(e)))
    try:
        device, started = _init_distributed(args.device)
    except ModelSetupError as e:
        return _fail(str(e))
    try:
        # dataset
        try:
            if args.data is not None:
                dataset: Any = ImageFolderFiles(args.data)
                dataset_info = {"kind": "folder", "source": os.path.normpath(args.data)}
            else:
                dataset = load_dataset(args.dataset)
                dataset_info = {"kind": "callable", "source": args.dataset}
        except (FileNotFoundError, ValueError, ImportError, AttributeError) as e:
            return _fail(_as_flags(str(e)))
        if len(dataset) < 2:
            return _fail(f"only {len(dataset)} image(s) in {args.data or args.dataset}. ContraCAM contrasts each "
                         "image with the other images of its batch and has nothing to contrast a single image "
                         "with: pass at least 2 images (ideally a few dozen similar ones).")
        # model (seeded: with --random-init every process must build the same weights)
        torch.manual_seed(args.seed)
        try:
            backbone, projector = build_model(args, probe_size=min(args.image_size, 64), device=device,
                                              command="precompute", what="boxes")
        except ModelSetupError as e:
            return _fail(str(e))
        model_info: dict[str, Any] = {
            "arch": args.arch,
            "projector": args.projector,
            "checkpoint": None if args.checkpoint is None else _checkpoint_identity(args.checkpoint),
        }
        try:
            _say_resuming(args, rank=dist.get_rank() if dist.is_initialized() else 0)
            result = precompute(
                dataset, backbone, args.out, projector=projector, cam_config=cam_config, box_config=box_config,
                batch_size=args.batch_size, image_size=args.image_size, mean=mean, std=std,
                mask_size=args.mask_size, shard_size=args.shard_size, precision=args.precision,
                num_workers=args.workers,
                model_info=model_info, dataset_info=dataset_info, overwrite=args.overwrite,
                progress=not args.no_progress)
        except (StoreError, ValueError, TypeError) as e:
            return _fail(_as_flags(str(e)))
        if result.rank == 0:
            s = result.manifest["summary"]
            print(f"objaug precompute: {s['count']} samples, {s['skipped']} skipped, coverage {s['coverage']:.3f} "
                  f"({s['with_box']} with a box); this run: {result.shards_written} shard(s), {result.images} "
                  f"images, {result.images_per_second:.1f} img/s -> {args.out}", file=sys.stderr)
            for entry in result.manifest["skipped"][:10]:
                print(f"  skipped {entry['index']}: {entry['error']}", file=sys.stderr)
        return 0
    finally:
        if started and dist.is_initialized():
            dist.destroy_process_group()
