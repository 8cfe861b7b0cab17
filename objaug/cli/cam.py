"""objaug cam: ContraCAM maps and object boxes for a folder of images, with a trained SSL checkpoint.

Example:
    objaug cam photos/ --arch resnet50 --checkpoint solo_mocov2.ckpt --out cam_out --iters 10

Reads every jpg/jpeg/png/bmp/webp file under the given directories (recursively) and every file given
explicitly; resizes each to --image-size square and normalises with --mean/--std (default ImageNet's);
loads the checkpoint into the backbone (the key prefix is detected, see objaug.tools.checkpoint); runs
ContraCAM in batches and finds the objects as the library does (objaug.objects.find_objects: boxes from
every iteration's own map, the output map of the first --mask-iters iterations as the drawn map); writes

    OUT/overlays/NNNN_<name>.png   the map over the image, with the boxes (at most 1024 px on a side)
    OUT/grid.png                   image | overlay + boxes, for the first 32 images
    OUT/boxes.json                 per image: its path (absolute, and relative to OUT), size, boxes in
                                   pixels and normalised, valid flags, fallback

Models: torchvision ResNets, timm CNNs and timm Vision Transformers (e.g. --arch vit_small_patch16_224:
ContraCAM on the tokens entering the last block, or --map-source attention for the class-token attention);
a model objaug cannot cut into encoder and head is refused with a clear message. ContraCAM contrasts each
image with the others of its batch, so the images are split into batches of near-equal size (never a
batch of one), and at least 2 readable images are required; the map of an image depends on which other
images share its batch. Files that cannot be read are reported, skipped and listed under "skipped" in
boxes.json; the exit status is non-zero only if nothing could be read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from objaug.cli import add_threads_argument, fail, out_dir_problem, with_threads
from objaug.cli.options import (
    CONFIG_FIELDS,
    add_config_arguments,
    add_model_arguments,
    configs_from_args,
    mean_std,
    to_flags,
)
from objaug.constants import IMAGE_EXTENSIONS

HELP = "ContraCAM maps and object boxes for images, with a trained checkpoint"

MAX_OVERLAY_SIDE = 1024
GRID_IMAGES = 32


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Register the ``cam`` options."""
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="image files and/or directories")
    p.add_argument("--out", required=True, help="output directory")
    add_model_arguments(p)
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity of the map (default 0.5)")
    add_threads_argument(p)
    add_config_arguments(p)


def find_images(inputs: Iterable[str]) -> tuple[list[str], list[dict[str, str]]]:
    """Expand files and directories into a sorted list of image paths.

    Directories are walked recursively for files with an image extension (case-insensitive); files
    given explicitly are kept whatever their extension. Missing paths are returned as skipped entries.
    """
    files: list[str] = []
    skipped: list[dict[str, str]] = []
    for item in inputs:
        if os.path.isdir(item):
            found = []
            for root, dirs, names in os.walk(item):
                dirs.sort()
                found += [os.path.join(root, n) for n in sorted(names)
                          if n.lower().endswith(IMAGE_EXTENSIONS)]
            files += found
        elif os.path.isfile(item):
            files.append(item)
        else:
            skipped.append({"file": item, "error": "no such file or directory"})
    seen: set[str] = set()
    unique = []
    for f in files:
        if f not in seen:
            seen.add(f)
            unique.append(f)
    return unique, skipped


def balanced_batches(n: int, batch_size: int) -> list[range]:
    """Split ``range(n)`` into ``ceil(n / batch_size)`` consecutive batches of near-equal size.

    With ``n >= 2`` no batch has a single image (ContraCAM needs at least 2 per batch): the store's
    :func:`objaug.store.precompute.shard_batches` over ``[0, n)``, as ranges.
    """
    if n <= 0:
        return []
    from objaug.store.precompute import shard_batches

    return [range(a, b) for a, b in shard_batches(0, n, max(batch_size, 1))]


def _read_rgb(path: str) -> Any:
    """Open an image with PIL, apply its EXIF orientation, convert to RGB (raises on failure)."""
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im.load()
        return ImageOps.exif_transpose(im).convert("RGB")


def _overlay_name(index: int, path: str) -> str:
    stem = os.path.splitext(os.path.basename(path))[0]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:80] or "image"
    return f"{index:04d}_{safe}.png"


def _fail(message: str) -> int:
    return fail("cam", message)


def run(args: argparse.Namespace) -> int:
    """Run the ``cam`` subcommand (with ``--threads``; ``--out`` must not be an existing file)."""
    problem = out_dir_problem(args.out)
    if problem:
        return _fail(problem)
    return with_threads("cam", args, _run)


def _run(args: argparse.Namespace) -> int:  # noqa: C901 - a linear script
    import torch
    import torch.nn.functional as F
    from PIL import Image
    from tqdm import tqdm

    from objaug.boxes import frame_only
    from objaug.cli._model import ModelSetupError, build_model, resolve_device
    from objaug.objects import find_objects
    from objaug.store.loading import check_input_options, spread_indexes
    from objaug.tools.viz import draw_boxes, make_grid, overlay_cam, save_png, to_uint8

    if args.checkpoint is None and not args.random_init:
        return _fail("--checkpoint is required (or --random-init for a smoke test with random weights).")
    mean_values, std_values = mean_std(args)
    try:  # every setting is checked by the library before any image is read or any model built
        cam_config, box_config = configs_from_args(args)
        check_input_options(batch_size=args.batch_size, image_size=args.image_size, mean=mean_values,
                            std=std_values)
        device = resolve_device(args.device)
    except (TypeError, ValueError) as e:
        return _fail(to_flags(str(e)))

    files, skipped = find_images(args.inputs)
    for s in skipped:
        print(f"objaug cam: skipping {s['file']}: {s['error']}", file=sys.stderr)

    # read images (PIL); unreadable files are skipped with a message
    size = args.image_size
    mean = torch.tensor(mean_values).view(3, 1, 1)
    std = torch.tensor(std_values).view(3, 1, 1)
    records: list[dict[str, Any]] = []
    tensors: list[torch.Tensor] = []
    for path in files:
        try:
            rgb = _read_rgb(path)
        except Exception as e:  # noqa: BLE001 - PIL raises many types for bad files
            msg = f"{type(e).__name__}: {e}"
            print(f"objaug cam: skipping {path}: cannot read it as an image ({msg})", file=sys.stderr)
            skipped.append({"file": path, "error": msg})
            continue
        w, h = rgb.size
        small = rgb.resize((size, size), Image.Resampling.BILINEAR)
        t = torch.frombuffer(bytearray(small.tobytes()), dtype=torch.uint8).view(size, size, 3)
        tensors.append(t.permute(2, 0, 1).contiguous())
        records.append({"file": path, "width": w, "height": h})
    if not records:
        print("objaug cam: error: no image could be read.", file=sys.stderr)
        _write_json(args, [], skipped)
        return 1
    if len(records) < 2:
        return _fail(
            f"only one readable image ({records[0]['file']}). ContraCAM contrasts each image with the other "
            "images of its batch and has nothing to contrast a single image with: pass at least 2 images "
            "(ideally a few dozen similar ones)."
        )

    # model (seeded: --random-init gives the same weights on every run)
    torch.manual_seed(args.seed)
    try:
        backbone, projector = build_model(args, probe_size=size, device=device, command="cam", what="maps")
        cam = cam_config.build(backbone, projector=projector)
    except ModelSetupError as e:
        return _fail(str(e))
    except (TypeError, ValueError) as e:
        return _fail(to_flags(str(e)))
    images_u8 = torch.stack(tensors)  # (N, 3, S, S) uint8
    n = images_u8.shape[0]
    batches = balanced_batches(n, args.batch_size)

    def net_input(idx: Sequence[int]) -> torch.Tensor:  # some of the inputs, normalised, on the device
        return ((images_u8[list(idx)].float() / 255.0 - mean) / std).to(device)

    bank = None
    if cam_config.bank:  # the embeddings of --bank inputs spread over them (an image's copy is never its negative)
        spread = spread_indexes(n, cam_config.bank)
        chunks = [spread[i:i + args.batch_size] for i in range(0, len(spread), args.batch_size)]
        try:
            bank = torch.cat([cam.embed(net_input(c)) for c in tqdm(chunks, desc="bank", unit="batch",
                                                                     file=sys.stderr)])
        except (TypeError, ValueError) as e:
            return _fail(f"ContraCAM cannot run on this model: {to_flags(str(e))}")
    maps = torch.empty(n, 1, size, size)
    boxes = torch.empty(n, box_config.max_boxes, 4)
    valid = torch.empty(n, box_config.max_boxes, dtype=torch.bool)
    with tqdm(total=n, desc="ContraCAM", unit="img", file=sys.stderr) as bar:
        for idx in batches:
            sl = slice(idx.start, idx.stop)
            try:  # the library's objects: boxes of every iteration's own map, the output map
                found = find_objects(cam, net_input(idx), box_config, negatives=bank,
                                     mask_iters=cam_config.mask_iters)
            except (TypeError, ValueError) as e:  # e.g. a model without a spatial stage (ViT tokens)
                bar.close()
                return _fail(f"ContraCAM cannot run on this model: {to_flags(str(e))}")
            assert found.masks is not None  # a ContraCAM's objects have masks
            maps[sl] = found.masks.float().cpu()
            boxes[sl] = found.boxes.float().cpu()
            valid[sl] = found.valid.cpu()
            bar.update(len(idx))

    # outputs
    os.makedirs(os.path.join(args.out, "overlays"), exist_ok=True)
    frame_all = frame_only(boxes, valid)  # found, but every box is (nearly) the whole frame
    net_images = images_u8.float() / 255.0
    for i, rec in enumerate(records):
        w, h = rec["width"], rec["height"]
        try:
            rgb = _read_rgb(rec["file"])
        except Exception as e:  # noqa: BLE001 - the file changed since it was read
            print(f"objaug cam: could not re-read {rec['file']} for its overlay: {e}", file=sys.stderr)
            rgb = Image.fromarray(to_uint8(net_images[i]).permute(1, 2, 0).numpy()).resize((w, h))
        scale = min(1.0, MAX_OVERLAY_SIDE / max(w, h))
        ow, oh = max(1, round(w * scale)), max(1, round(h * scale))
        if scale < 1.0:
            rgb = rgb.resize((ow, oh), Image.Resampling.BILINEAR)
        img = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).view(oh, ow, 3).permute(2, 0, 1)
        m = F.interpolate(maps[i : i + 1], size=(oh, ow), mode="bilinear", align_corners=False)
        over = overlay_cam(img.unsqueeze(0), m, alpha=args.alpha)
        width = max(1, round(max(ow, oh) / 200))
        over = draw_boxes(over, boxes[i : i + 1], valid[i : i + 1], width=width)
        name = os.path.join("overlays", _overlay_name(i, rec["file"]))
        save_png(over[0], os.path.join(args.out, name))
        scale_px = torch.tensor([w, h, w, h], dtype=torch.float32)
        rec.update({
            "overlay": name,
            "boxes": [[round(float(c), 2) for c in bx] for bx in (boxes[i] * scale_px)],
            "boxes_norm": [[round(float(c), 6) for c in bx] for bx in boxes[i]],
            "valid": [bool(v) for v in valid[i]],
            "fallback": not bool(valid[i].any()),
            "whole_frame": bool(frame_all[i]),
        })
    k = min(n, GRID_IMAGES)
    over_small = draw_boxes(overlay_cam(net_images[:k], maps[:k], alpha=args.alpha), boxes[:k], valid[:k])
    pairs = torch.stack([to_uint8(net_images[:k]), over_small], dim=1).flatten(0, 1)
    save_png(make_grid(pairs, nrow=8), os.path.join(args.out, "grid.png"))
    _write_json(args, records, skipped)
    objects = sum(1 for r in records if not r["fallback"] and not r["whole_frame"])
    frames = sum(1 for r in records if not r["fallback"] and r["whole_frame"])
    fallbacks = sum(1 for r in records if r["fallback"])
    print(f"objaug cam: {n} images: {objects} with an object box, {frames} whose box is the whole frame, "
          f"{fallbacks} with nothing found (whole-frame fallback); {len(skipped)} skipped -> {args.out}",
          file=sys.stderr)
    if n and objects < 0.5 * n:
        print("objaug cam: most maps found no object smaller than the frame: the encoder may not have learnt "
              "the objects (check a trained checkpoint), or try --threshold higher", file=sys.stderr)
    return 0


def _portable(entry: dict[str, Any], root: str) -> dict[str, Any]:
    """``entry`` with its ``file`` made absolute and, where possible, ``relative`` to ``root`` (the JSON's folder)."""
    path = os.path.abspath(entry["file"])
    out = {**entry, "file": path}
    try:
        out["relative"] = os.path.relpath(path, root).replace(os.sep, "/")
    except ValueError:  # another drive (Windows): only the absolute path
        pass
    return out


def _write_json(args: argparse.Namespace, records: Sequence[dict[str, Any]], skipped: Sequence[dict[str, str]]) -> None:
    os.makedirs(args.out, exist_ok=True)
    root = os.path.abspath(args.out)
    doc = {
        "version": 2,
        "box_format": "xyxy; 'boxes' in pixels of the original image, 'boxes_norm' in [0, 1]",
        "paths": "'file': absolute; 'relative': relative to the folder of this file ('root' when written)",
        "root": root,
        "settings": {k: getattr(args, k) for k in ("arch", "checkpoint", "key_prefix", "projector", "image_size",
                                                   "batch_size", *CONFIG_FIELDS)},
        "images": [_portable(r, root) for r in records],
        "skipped": [_portable(r, root) for r in skipped],
    }
    with open(os.path.join(args.out, "boxes.json"), "w") as f:
        json.dump(doc, f, indent=1)
