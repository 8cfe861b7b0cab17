"""Augmentation speed: object-aware crop, background mixup and the full pipeline against anchors, one run.

Usage (CPU target setting: B=64, 256 -> 224)::

    .venv/bin/python benchmarks/aug_speed.py --device cpu --batch-size 64 --in-size 256 --out-size 224

On a shared machine whose cores are busy with other processes, add ``--threads 1``: with more intra-op
threads than free cores, every small parallel op waits for descheduled threads and the timings measure
the contention (seen here: lightly's per-image loop 57 s instead of 2 s per batch at load 8 on 2 cores).

All rows use the same batch on the same device in this process; times are medians over ``--repeats``
runs after ``--warmup`` runs (CUDA synchronised); the rows of a section are timed round-robin so that a
changing machine load hits them alike. Ratios are row time / anchor time (below 1: faster).

Sections and anchors:

* crop (anchor: kornia ``RandomResizedCrop`` in its default ``cropping_mode="slice"``): kornia
  ``"resample"`` mode; a per-image torchvision v2 ``RandomResizedCrop`` loop on tensors (lightly's CPU
  path, antialiased); objaug's ``ObjectAwareRandomResizedCrop`` with its defaults (``antialias="auto"``,
  i.e. the area filter only if a crop can shrink by more than 1.25x, so off at 256 -> 224; one box-value
  check = one sync), with ``antialias=True`` (area filter, torchvision's single-threaded CPU ``roi_align``)
  and on the hot path (``antialias=False, check_inputs=False``). Kornia crops whole images; objaug also
  picks a box per image (K=4 boxes, 75 % valid).
* mixup (anchor: ``benchmarks/_mixup_loop.py::mixup_loop``, a per-sample Python loop like the reference
  code): objaug's ``BackgroundMixup`` on the same views and soft masks. Skipped if either is missing.
* pipeline (anchor: lightly's ``SimCLRTransform`` applied per image to tensors, two views, if lightly is
  installed): ``ObjectAwareAugment(simclr_views())`` with boxes, and with masks + mixup on view 1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import kornia.augmentation as K
import torch

from objaug.augment.crop import ObjectAwareRandomResizedCrop
from objaug.augment.pipeline import ObjectAwareAugment
from objaug.augment.views import simclr_views
from objaug.functional.crop import AUTO_ANTIALIAS_FACTOR


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_section(fns: list[Callable[[], object]], device: torch.device, repeats: int,
                  warmup: int) -> list[float]:
    """Median seconds per call of each function, timed interleaved (round-robin) so that a drifting
    machine load affects every row of a section alike."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    _sync(device)
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[i].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def _boxes(b: int, k: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    wh = torch.rand(b, k, 2) * 0.6 + 0.15
    xy = torch.rand(b, k, 2) * (1 - wh)
    boxes = torch.cat([xy, xy + wh], -1).clamp(0, 1)
    valid = torch.rand(b, k) < 0.75
    return boxes.to(device), valid.to(device)


def _soft_masks(b: int, size: int, device: torch.device) -> torch.Tensor:
    """Blob-like soft masks in [0, 1], as CAMs look (one Gaussian bump per image)."""
    c = torch.rand(b, 2) * 0.5 + 0.25
    s = torch.rand(b, 2) * 0.15 + 0.1
    g = (torch.arange(size) + 0.5) / size
    my = torch.exp(-((g[None] - c[:, 1:]) ** 2) / (2 * s[:, 1:] ** 2))
    mx = torch.exp(-((g[None] - c[:, :1]) ** 2) / (2 * s[:, :1] ** 2))
    return (my[:, :, None] * mx[:, None, :])[:, None].to(device)


def _mixup_loop() -> Callable[..., object] | None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        from _mixup_loop import mixup_loop  # type: ignore[import-not-found]
    except ImportError:
        return None
    finally:
        sys.path.pop(0)
    return mixup_loop  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--in-size", type=int, default=256)
    ap.add_argument("--out-size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--skip-lightly", action="store_true", help="skip the (slow) lightly per-image anchor")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    b, n, s = args.batch_size, args.in_size, args.out_size
    images = torch.rand(b, 3, n, n, device=device)
    boxes, valid = _boxes(b, 4, device)
    masks = _soft_masks(b, n, device)
    rows: list[tuple[str, str, float | None]] = []  # (section, name, seconds or None if skipped)
    pending: list[tuple[str, str, Callable[[], object]]] = []

    def run(section: str, name: str, fn: Callable[[], object]) -> None:
        pending.append((section, name, fn))

    def flush(repeats: int | None = None) -> None:
        times = _time_section([fn for _, _, fn in pending], device, repeats or args.repeats, args.warmup)
        for (section, name, _), t in zip(pending, times, strict=True):
            rows.append((section, name, t))
            print(f"  {section:8s} {name:66s} {t * 1e3:9.2f} ms", file=sys.stderr, flush=True)
        pending.clear()

    # ---------------------------------------------------------------- crop
    kr_slice = K.RandomResizedCrop((s, s), cropping_mode="slice")
    kr_resample = K.RandomResizedCrop((s, s), cropping_mode="resample")
    run("crop", "kornia RandomResizedCrop slice (anchor)", lambda: kr_slice(images))
    run("crop", "kornia RandomResizedCrop resample", lambda: kr_resample(images))
    from torchvision.transforms import v2

    tv = v2.RandomResizedCrop(s, antialias=True)
    run("crop", "torchvision v2 RandomResizedCrop, per-image loop", lambda: torch.stack([tv(im) for im in images]))
    oa = ObjectAwareRandomResizedCrop(s)
    aa_auto = "on" if max(n / s, 1.0) > AUTO_ANTIALIAS_FACTOR else "off"
    run("crop", f"objaug ObjectAwareRandomResizedCrop (defaults: antialias auto={aa_auto})",
        lambda: oa(images, boxes, valid))
    oa_aa = ObjectAwareRandomResizedCrop(s, antialias=True)
    run("crop", "objaug ObjectAwareRandomResizedCrop (antialias=True)", lambda: oa_aa(images, boxes, valid))
    oa_fast = ObjectAwareRandomResizedCrop(s, antialias=False, check_inputs=False)
    run("crop", "objaug ObjectAwareRandomResizedCrop (antialias=False, no check)",
        lambda: oa_fast(images, boxes, valid))
    flush()

    # ---------------------------------------------------------------- mixup
    views = torch.rand(b, 3, s, s, device=device)
    view_masks = _soft_masks(b, s, device)
    loop = _mixup_loop()
    try:
        from objaug.augment.mixup import BackgroundMixup
    except ImportError:
        BackgroundMixup = None  # type: ignore[assignment,misc]  # noqa: N806
    if loop is not None and BackgroundMixup is not None:
        queue: deque[torch.Tensor] = deque(maxlen=50)
        run("mixup", "per-sample loop mixup_loop, as the reference (anchor)",
            lambda: loop(views, view_masks, p=0.4, threshold=0.2, queue=queue))
        mix = BackgroundMixup(p=0.4, threshold=0.2, queue_size=50).to(device)
        run("mixup", "objaug BackgroundMixup", lambda: mix(views, view_masks))
        mix_fast = BackgroundMixup(p=0.4, threshold=0.2, queue_size=50, check_inputs=False).to(device)
        run("mixup", "objaug BackgroundMixup (check_inputs=False)", lambda: mix_fast(views, view_masks))
        mix_own = BackgroundMixup(p=0.4, threshold=0.2, queue_size=50, check_inputs=False, inplace=True).to(device)
        own = views.clone()  # mixed in place over and over, as ObjectAwareAugment does with its own views
        run("mixup", "objaug BackgroundMixup (check_inputs=False, inplace=True)", lambda: mix_own(own, view_masks))
        flush()
    else:
        rows.append(("mixup", "skipped: BackgroundMixup or benchmarks/_mixup_loop.py missing", None))

    # ---------------------------------------------------------------- pipeline
    if not args.skip_lightly:
        try:
            from lightly.transforms import SimCLRTransform
        except ImportError:
            SimCLRTransform = None  # type: ignore[assignment,misc]  # noqa: N806
        if SimCLRTransform is not None:
            lt = SimCLRTransform(input_size=s)
            cpu_images = images.cpu()
            run("pipeline", "lightly SimCLRTransform per image, 2 views (anchor)",
                lambda: [lt(im) for im in cpu_images])
        else:
            rows.append(("pipeline", "skipped: lightly not installed (anchor)", None))
    aug = ObjectAwareAugment(simclr_views(s)).to(device)
    run("pipeline", "objaug ObjectAwareAugment simclr_views, boxes", lambda: aug(images, boxes, valid))
    aug_fast = ObjectAwareAugment(simclr_views(s), check_inputs=False).to(device)
    run("pipeline", "objaug ObjectAwareAugment simclr_views, boxes, no checks",
        lambda: aug_fast(images, boxes, valid))
    try:
        aug_mix = ObjectAwareAugment(simclr_views(s, mixup=True), check_inputs=False).to(device)
    except ImportError:
        rows.append(("pipeline", "skipped: BackgroundMixup missing", None))
    else:
        run("pipeline", "objaug ObjectAwareAugment simclr_views + mixup view 1, no checks",
            lambda: aug_mix(images, boxes, valid, masks=masks))
    flush(max(3, args.repeats // 2))

    # ---------------------------------------------------------------- table
    print(f"\naug_speed: device={device} ({torch.get_num_threads()} threads), batch {b}, {n} -> {s}, "
          f"median of {args.repeats} (pipeline: {max(3, args.repeats // 2)}), rows of a section interleaved, "
          f"torch {torch.__version__}")
    print(f"{'section':9s} {'row':66s} {'ms/batch':>10s} {'images/s':>10s} {'x anchor':>9s}")
    anchors: dict[str, float] = {}
    for section, name, t in rows:
        if t is None:
            print(f"{section:9s} {name:66s} {'-':>10s} {'-':>10s} {'-':>9s}")
            continue
        if "(anchor)" in name:
            anchors[section] = t
        ratio = f"{t / anchors[section]:.2f}" if section in anchors else "-"
        print(f"{section:9s} {name:66s} {t * 1e3:10.2f} {b / t:10.0f} {ratio:>9s}")


if __name__ == "__main__":
    main()
