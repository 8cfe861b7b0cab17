"""Cost of ``ObjectAwareStep``'s input checks (``check_inputs=True``, the default) against the step itself.

Usage (the numbers in docs/performance.md)::

    .venv/bin/python benchmarks/check_cost.py --device cpu --batch-size 64 --in-size 256 --out-size 224 --threads 1

Times, medians over ``--repeats`` runs after ``--warmup`` (CUDA synchronised): the fused value check alone
(:func:`objaug.validation.check_batch_values` on images, boxes and indexes: one pass, one sync), and the
whole step with precomputed boxes (no CAM: the cheapest step, so the largest share) with the checks on
and off, timed round-robin.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from objaug.augment.views import simclr_views
from objaug.integrations.lightly.device_step import ObjectAwareStep
from objaug.validation import check_batch_values


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - t) * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--in-size", type=int, default=256)
    p.add_argument("--out-size", type=int, default=224)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    b = args.batch_size
    images = torch.rand(b, 3, args.in_size, args.in_size, device=device)
    xy = torch.rand(b, 4, 2, device=device) * 0.5
    boxes = torch.cat([xy, xy + 0.4], dim=-1)
    valid = torch.rand(b, 4, device=device) < 0.75
    indexes = torch.arange(b, device=device)
    steps = {flag: ObjectAwareStep(simclr_views(args.out_size), check_inputs=flag, num_samples=10 * b).to(device)
             for flag in (True, False)}
    rows: dict[str, Callable[[], object]] = {
        "check alone": lambda: check_batch_values(images, boxes=boxes, valid=valid, indexes=indexes,
                                                  num_samples=10 * b),
        "step, check_inputs=True": lambda: steps[True](images, boxes=boxes, valid=valid, indexes=indexes),
        "step, check_inputs=False": lambda: steps[False](images, boxes=boxes, valid=valid, indexes=indexes),
    }
    times: dict[str, list[float]] = {k: [] for k in rows}
    for i in range(args.warmup + args.repeats):
        for name, fn in rows.items():
            ms = _timed(fn, device)
            if i >= args.warmup:
                times[name].append(ms)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"device={device} B={b} {args.in_size}->{args.out_size} threads={torch.get_num_threads()}")
    for name, ms in med.items():
        print(f"{name:28s} {ms:9.2f} ms")
    print(f"check / step: {100 * med['check alone'] / med['step, check_inputs=False']:.2f} %")


if __name__ == "__main__":
    main()
