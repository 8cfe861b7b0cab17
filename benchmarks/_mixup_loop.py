"""Per-sample Python-loop background mixup: the speed anchor for ``benchmarks/aug_speed.py``.

It follows the structure of the paper's reference code (a Python loop over the images, ``nonzero``
to find each rectangle, Python-side random draws and branching, i.e. several host synchronisations
per image, a list queue pushed inside the loop) with objaug's geometric conventions (inclusive
rectangle, strip ties top > left > right > bottom, phase-aligned tiling), so that it does the same
amount of work as :class:`objaug.augment.mixup.BackgroundMixup` (``source="tiled-strip"``).

Like the reference's ``generate_bg_mixed_img`` it also returns ``torch.stack`` of the per-image
backgrounds (the built ones, else the image itself), which the reference's training step receives and
ignores; ``stack_backgrounds=False`` drops that cost (both are timed by the script).

Semantic differences to the vectorised module, on purpose (they are the reference's): the queue is
pushed inside the mixing loop, so a later image may draw a background built earlier in the same
batch; the random numbers are drawn per image in loop order. Outputs are therefore not comparable
draw-for-draw with ``BackgroundMixup``; use it for timing only.

Usage::

    from collections import deque
    from benchmarks._mixup_loop import mixup_loop

    queue = deque(maxlen=50)          # kept across calls, FIFO, like the module's queue
    out, mixed = mixup_loop(images, masks, p=0.4, threshold=0.2, queue=queue)

Run as a script it times ``BackgroundMixup`` against this loop (one process, interleaved repetitions,
medians of wall-clock and of process CPU time)::

    .venv/bin/python benchmarks/_mixup_loop.py --threads 1 --repeats 15
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import deque

import torch
from torch import Tensor

__all__ = ["mixup_loop"]


def _rectangle(hard: Tensor) -> tuple[int, int, int, int]:
    """Inclusive (y0, y1, x0, x1) of a (H, W) 0/1 mask; the whole image if empty (host syncs)."""
    h, w = hard.shape
    idx = (hard > 0.5).nonzero()
    if idx.shape[0] == 0:
        return 0, h - 1, 0, w - 1
    return (int(idx[:, 0].min().item()), int(idx[:, 0].max().item()),
            int(idx[:, 1].min().item()), int(idx[:, 1].max().item()))


def _tile(strip: Tensor, dim: int, length: int, phase: int) -> Tensor:
    """Repeat ``strip`` along ``dim`` to ``length``, starting ``phase`` entries into the period."""
    period = strip.shape[dim]
    reps = [1] * strip.dim()
    reps[dim] = length // period + 2
    return torch.tile(strip, tuple(reps)).narrow(dim, phase, length)


def _background(img: Tensor, hard: Tensor, y0: int, y1: int, x0: int, x1: int) -> Tensor:
    """Tiled largest strip pasted inside the rectangle, for one (C, H, W) image (reference style)."""
    _, h, w = img.shape
    areas = [y0 * w, x0 * h, (w - 1 - x1) * h, (h - 1 - y1) * w]
    k = areas.index(max(areas))
    bg = torch.zeros_like(img)
    if k == 0:
        bg[:] = _tile(img[:, :y0, :], 1, h, 0)
    elif k == 1:
        bg[:] = _tile(img[:, :, :x0], 2, w, 0)
    elif k == 2:
        s = x1 + 1
        bg[:] = _tile(img[:, :, s:], 2, w, (-s) % (w - s))
    else:
        s = y1 + 1
        bg[:] = _tile(img[:, s:, :], 1, h, (-s) % (h - s))
    rect = torch.zeros_like(hard)
    rect[y0:y1 + 1, x0:x1 + 1] = 1
    return torch.where(rect > 0, bg, img)


def mixup_loop(
    images: Tensor,
    masks: Tensor,
    *,
    p: float = 0.4,
    threshold: float = 0.2,
    queue: deque[Tensor] | list[Tensor],
    queue_size: int = 50,
    generator: torch.Generator | None = None,
    stack_backgrounds: bool = True,
) -> tuple[Tensor, Tensor]:
    """Background mixup with a per-image Python loop (slow anchor; same signature style as the module).

    Per image, as the reference does: ``nonzero`` on the hard mask and ``.item()`` for the rectangle,
    a Python-side Bernoulli draw, a zero-initialised background filled by tiling, a rectangle mask
    and ``where`` for the paste; then a second loop mixes each image with its partner's background
    or a queue draw and pushes its own background.

    Args:
        images: floating (B, C, H, W), any range, any device.
        masks: floating (B, 1, H, W) soft masks in [0, 1], same device.
        p: probability that an eligible image builds a background.
        threshold: hard-mask cut-off.
        queue: a ``collections.deque`` (give it ``maxlen``) or list of (C, H, W) backgrounds, kept by
            the caller across calls and mutated in place (FIFO; a list is trimmed to ``queue_size``).
        queue_size: capacity used to trim a list queue.
        generator: optional CPU ``torch.Generator`` for the random draws.
        stack_backgrounds: also stack the per-image backgrounds into a (B, C, H, W) tensor, as the
            reference does (its caller ignores them); the stack is computed and dropped.

    Returns:
        ``(mixed_images (B, C, H, W), mixed (B,) bool)`` on the images' device.
    """
    b, _, h, w = images.shape
    hard = torch.zeros_like(masks)
    hard[masks >= threshold] = 1.0
    perm = torch.randperm(b, generator=generator).tolist()
    backgrounds: list[Tensor | None] = []
    for i in range(b):  # build backgrounds, one image at a time
        y0, y1, x0, x1 = _rectangle(hard[i, 0])
        if (y0, y1, x0, x1) == (0, h - 1, 0, w - 1) or torch.rand((), generator=generator).item() >= p:
            backgrounds.append(None)
        else:
            backgrounds.append(_background(images[i], hard[i, 0], y0, y1, x0, x1))
    outs: list[Tensor] = []
    mixed: list[bool] = []
    for i in range(b):  # mix, pushing into the queue as we go (reference ordering)
        bg_i = backgrounds[i]
        partner = backgrounds[perm[i]]
        target: Tensor | None = None
        if bg_i is not None:
            if partner is not None:
                target = partner
            elif len(queue) > 0:
                pick = int(torch.randint(len(queue), (), generator=generator).item())
                target = queue[pick]
        if target is None:
            outs.append(images[i])
            mixed.append(False)
        else:
            outs.append(masks[i] * images[i] + (1.0 - masks[i]) * target)
            mixed.append(True)
        if bg_i is not None:
            queue.append(bg_i)
            if isinstance(queue, list) and len(queue) > queue_size:
                del queue[0]
    if stack_backgrounds:  # the reference returns this stack too (its training step ignores it)
        torch.stack([images[i] if bg is None else bg for i, bg in enumerate(backgrounds)])
    return torch.stack(outs), torch.tensor(mixed, device=images.device)


def _blob_masks(b: int, size: int, gen: torch.Generator) -> Tensor:
    """One soft Gaussian blob per image, (B, 1, size, size) in [0, 1]: CAM-like object masks."""
    g = torch.arange(size, dtype=torch.float32)
    cy, cx = (size * (0.2 + 0.6 * torch.rand(2, b, 1, generator=gen))).unbind(0)
    sy, sx = (size * (0.07 + 0.13 * torch.rand(2, b, 1, generator=gen))).unbind(0)
    my = torch.exp(-((g[None] - cy) ** 2) / (2 * sy**2))
    mx = torch.exp(-((g[None] - cx) ** 2) / (2 * sx**2))
    return (my[:, :, None] * mx[:, None, :])[:, None].contiguous()


def main(argv: list[str] | None = None) -> None:
    """Time objaug's BackgroundMixup against :func:`mixup_loop` on CPU or CUDA; print medians and ratios."""
    from objaug.augment.mixup import BackgroundMixup

    ap = argparse.ArgumentParser(description="BackgroundMixup vs the per-sample loop anchor")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--p", type=float, default=0.4)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--check-inputs", action="store_true", help="keep the module's one-sync mask check")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    b, s = args.batch_size, args.size
    images = torch.randn(b, 3, s, s, generator=gen).to(dev)
    masks = _blob_masks(b, s, gen).to(dev)
    mix = BackgroundMixup(p=args.p, threshold=0.2, queue_size=50, check_inputs=args.check_inputs).to(dev)
    mix_inplace = BackgroundMixup(p=args.p, threshold=0.2, queue_size=50, check_inputs=args.check_inputs,
                                  inplace=True).to(dev)
    own = images.clone()  # the in-place module mixes this batch over and over (its values stay finite)
    queue: deque[Tensor] = deque(maxlen=50)
    queue2: deque[Tensor] = deque(maxlen=50)
    fns = {
        "loop (anchor)": lambda: mixup_loop(images, masks, p=args.p, threshold=0.2, queue=queue),
        "loop, no bg stack": lambda: mixup_loop(images, masks, p=args.p, threshold=0.2, queue=queue2,
                                                stack_backgrounds=False),
        "BackgroundMixup": lambda: mix(images, masks),
        "inplace=True": lambda: mix_inplace(own, masks),
    }

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    for fn in fns.values():
        for _ in range(args.warmup):
            fn()
    sync()
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(args.repeats):  # round-robin, so a drifting machine load hits both alike
        for name, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            sync()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    med = {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in fns}
    print(f"device={dev} threads={torch.get_num_threads()} B={b} size={s} p={args.p} "
          f"check_inputs={args.check_inputs} repeats={args.repeats}")
    anchor = med["loop (anchor)"]
    for name, (w, c) in med.items():
        print(f"  {name:18s} wall {w * 1e3:8.1f} ms  cpu {c * 1e3:8.1f} ms   "
              f"speed-up vs loop: wall {anchor[0] / w:5.2f}x  cpu {anchor[1] / c:5.2f}x")


if __name__ == "__main__":
    main()
