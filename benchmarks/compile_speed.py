"""Eager vs ``torch.compile(fullgraph=True)`` for the crop, the mixup, ObjectAwareAugment and ContraCAM, one run.

Usage (the figures of docs/performance.md; ``--device cuda`` on a GPU)::

    .venv/bin/python benchmarks/compile_speed.py --device cpu --batch-size 32 --in-size 128 --out-size 96 --threads 1

On the CPU every call runs inside :func:`objaug.testing.accelerator_paths` (the fixed-shape paths a GPU
takes, which compile whole) in both modes, so eager and compiled run the same code; the CPU's own eager
fast paths are the ``eager, CPU paths`` rows. Each call is compiled with Inductor and ``fullgraph=True``
(a graph break fails the row), its first call timed as the compile time (the mixup compiles once more on
its second call: its first creates the workspace the graph then reads; the warm-up calls take it); then
eager and compiled calls are timed round robin (medians over ``--repeats``), so load drift hits them
alike. ``--quick``: tiny sizes, checks that everything runs (a smoke test, e.g. of
``benchmarks/gpu_suite.sh`` on a CPU; ContraCAM on a two-convolution model, a much smaller graph than a
ResNet-18's, which Inductor takes 5 minutes or more to build on the shared CPU machine).

Rows (input checks off, as on a hot path; boxes given):

* crop: ``ObjectAwareRandomResizedCrop(out)``, B images ``in`` px -> ``out`` px, 4 boxes per image.
* mixup: ``BackgroundMixup()`` on B images of ``out`` px with soft masks.
* augment: ``ObjectAwareAugment`` with two SimCLR views of ``out`` px, background mixup on the first.
* contracam: ``ContraCAM(resnet18 with a MoCo v2 projector, iters=1)`` on B images of ``--cam-size`` px
  (``--cam-arch`` another torchvision ResNet); the compiled maps are compared with the eager ones.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import statistics
import time
from collections.abc import Callable, Iterator

import torch
import torchvision
from torch import nn

from objaug import ContraCAM
from objaug.augment.crop import ObjectAwareRandomResizedCrop
from objaug.augment.mixup import BackgroundMixup
from objaug.augment.pipeline import ObjectAwareAugment
from objaug.augment.views import simclr_views
from objaug.testing import accelerator_paths


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def _inputs(b: int, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(b, 3, size, size, generator=gen)
    wh = torch.rand(b, 4, 2, generator=gen) * 0.6 + 0.15
    xy = torch.rand(b, 4, 2, generator=gen) * (1 - wh)
    boxes = torch.cat([xy, xy + wh], -1)
    valid = torch.rand(b, 4, generator=gen) < 0.75
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    centre = torch.rand(b, 2, 1, 1, generator=gen) - 0.5
    masks = torch.exp(-((yy - centre[:, :1]) ** 2 + (xx - centre[:, 1:]) ** 2) * 6)  # (B, 1, size, size)
    return images.to(device), boxes.to(device), valid.to(device), masks.to(device)


def _cam(arch: str, device: torch.device) -> ContraCAM:
    """ContraCAM(iters=1, no input check) on a torchvision ResNet with a MoCo v2 projector, or on ``"tiny"``:
    two strided convolutions and a linear head, a small graph (``--quick``)."""
    if arch == "tiny":
        encoder = nn.Sequential(nn.Conv2d(3, 16, 3, stride=4, padding=1), nn.ReLU(),
                                nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU())
        head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 16))
        return ContraCAM(encoder=encoder.to(device).eval(), head=head.to(device).eval(), iters=1, check_finite=False)
    model = getattr(torchvision.models, arch)(num_classes=512)
    dim = model.fc.in_features
    model.fc = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 128))  # MoCo v2 projector
    return ContraCAM(model.to(device).eval(), iters=1, check_finite=False)


def _calls(args: argparse.Namespace, device: torch.device) -> dict[str, Callable[[], object]]:
    b = args.batch_size
    images, boxes, valid, masks = _inputs(b, args.in_size, device)
    small, _, _, small_masks = _inputs(b, args.out_size, device)
    crop = ObjectAwareRandomResizedCrop(args.out_size, check_inputs=False)
    mix = BackgroundMixup(check_inputs=False).to(device)
    views = simclr_views(args.out_size)
    aug = ObjectAwareAugment([dataclasses.replace(views[0], mixup=True), views[1]], check_inputs=False).to(device)
    cam = _cam(args.cam_arch, device)
    cam_images = torch.randn(b, 3, args.cam_size, args.cam_size, generator=torch.Generator().manual_seed(1)).to(device)
    calls: dict[str, Callable[[], object]] = {
        "crop": lambda: crop(images, boxes, valid),
        "mixup": lambda: mix(small, small_masks),
        "augment": lambda: aug(images, boxes, valid, masks),
        "contracam": lambda: cam(cam_images),
    }
    return {name: calls[name] for name in args.only}


@contextlib.contextmanager
def _paths(device: torch.device) -> Iterator[None]:
    """The accelerator paths on the CPU; nothing to force on an accelerator."""
    with accelerator_paths() if device.type == "cpu" else contextlib.nullcontext():
        yield


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--in-size", type=int, default=128)
    parser.add_argument("--out-size", type=int, default=96)
    parser.add_argument("--cam-size", type=int, default=128)
    parser.add_argument("--cam-arch", default="resnet18", help="a torchvision ResNet, or 'tiny' (two convolutions)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2, help="calls of each mode before timing (>= 1: the "
                        "mixup's compiled second call recompiles once, after its first created the workspace)")
    parser.add_argument("--only", nargs="+", default=["crop", "mixup", "augment", "contracam"],
                        choices=["crop", "mixup", "augment", "contracam"])
    parser.add_argument("--mode", default=None, help="torch.compile mode (e.g. max-autotune-no-cudagraphs)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: a smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_size, args.in_size, args.out_size, args.cam_size, args.cam_arch = 4, 48, 32, 64, "tiny"
        args.repeats, args.warmup = 1, 1  # one warm-up: the mixup's first call creates its workspace,
        # so its second call compiles once more (a new guard), and only the third runs the cached graph
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    calls = _calls(args, device)

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"batch {args.batch_size}, {args.in_size} -> {args.out_size} px (ContraCAM: {args.cam_arch} at "
          f"{args.cam_size} px), {where}, torch {torch.__version__}, mode={args.mode}")
    print(f"{'call':10s} {'compile s':>10s} {'eager ms':>10s} {'compiled ms':>12s} {'compiled/eager':>15s} "
          f"{'eager, CPU paths ms':>20s} {'max |diff|':>11s}", flush=True)
    for name, call in calls.items():  # one row at a time, printed when measured (compiles are slow on a CPU)
        with _paths(device):
            compiled = torch.compile(call, fullgraph=True, mode=args.mode)
            compile_s = _timed(compiled, device)  # the first call traces and compiles
            diff = float("nan")
            if name == "contracam":  # deterministic: the compiled maps against the eager ones
                diff = float((compiled() - call()).abs().max())  # type: ignore[operator]
            for _ in range(args.warmup):
                call()
                compiled()
            eager_t, compiled_t = [], []
            for _ in range(args.repeats):
                eager_t.append(_timed(call, device))
                compiled_t.append(_timed(compiled, device))
        cpu_paths = statistics.median(_timed(call, device) for _ in range(args.repeats)) if device.type == "cpu" \
            else float("nan")
        eager, compd = statistics.median(eager_t), statistics.median(compiled_t)
        print(f"{name:10s} {compile_s:10.1f} {eager * 1e3:10.1f} {compd * 1e3:12.1f} {compd / eager:15.2f} "
              f"{cpu_paths * 1e3:20.1f} {diff:11.2e}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
