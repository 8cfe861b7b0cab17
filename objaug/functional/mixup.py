"""Pure, batched kernels for object-aware background mixup (Mo et al., NeurIPS 2021, method.md §4).

Everything here works on a whole batch at once with tensor ops on the input's device: no per-sample
Python loop, no ``.item()`` / ``.tolist()``, no host synchronisation. A strip moves one coordinate only,
so backgrounds are built with whole-row and whole-column gathers rather than a per-pixel index.

Two paths compute the same values. On an accelerator the shapes are fixed: every image of the batch
goes through every kernel, and no ``nonzero()`` stalls the stream. On the CPU (no autograd) the batch is
compacted to the images that build a background, about ``p`` of them, since only those can be mixed;
there ``nonzero()`` reads host memory and synchronises nothing. The tests run both paths on the CPU.

The stateful part (the FIFO queue of recent backgrounds, random draws) lives in
:class:`objaug.augment.mixup.BackgroundMixup`.

Conventions shared by all kernels:

* ``images``: floating (B, C, H, W), any value range (normalised or [0, 1]); nothing is clamped.
* ``masks``: floating (B, 1, H, W) soft object masks in [0, 1], aligned with ``images``.
* The hard mask is ``masks >= threshold``; its tight bounding rectangle R is given as a (B, 4) int64
  tensor ``(y0, y1, x0, x1)`` with **inclusive** bounds (row ``y1`` and column ``x1`` are inside R).
  An empty hard mask gives the whole image ``(0, H - 1, 0, W - 1)``. With ``fallback_mass`` a rectangle
  covering the whole frame is replaced by the soft mask's :func:`mass_rectangles`
  (:func:`object_rectangles`; :mod:`objaug.functional.rectangles`).
* The four strips outside R are numbered in :data:`STRIP_ORDER`: 0 top (rows ``[0, y0)``, full
  width), 1 left (columns ``[0, x0)``, full height), 2 right (columns ``(x1, W)``), 3 bottom (rows
  ``(y1, H)``). Their areas are ``y0 * W``, ``x0 * H``, ``(W - 1 - x1) * H``, ``(H - 1 - y1) * W``;
  the largest wins and ties go to the first in that order (as in the paper's reference code).
"""

from __future__ import annotations

import torch
from torch import Tensor

from objaug.functional import backgrounds
from objaug.functional.backgrounds import *  # noqa: F403 - the building blocks, re-exported
from objaug.functional.backgrounds import BackgroundMixupOutput, MixupSource, check_source
from objaug.functional.mixup_kernel import mixup_kernel
from objaug.validation import (
    check_fallback_mass,
    check_image_batch,
    check_mask_batch,
    check_same_device,
    check_threshold,
)

__all__ = [*backgrounds.__all__, "background_mixup"]


def background_mixup(
    images: Tensor,
    masks: Tensor,
    apply: Tensor,
    perm: Tensor,
    *,
    threshold: float = 0.2,
    source: MixupSource = "tiled-strip",
    queue: Tensor | None = None,
    queue_slot: Tensor | None = None,
    queue_len: Tensor | None = None,
    fallback_mass: float | None = None,
) -> BackgroundMixupOutput:
    """Object-aware background mixup of a batch with given random draws (method.md §4).

    Per image i: R_i is the bounding rectangle of ``masks_i >= threshold`` (whole image if empty);
    with ``fallback_mass``, where that rectangle covers the whole frame but the hard mask is not empty,
    R_i is instead the :func:`mass_rectangles` of the soft mask (the rectangle holding that share of
    its mass along each axis), so diffuse maps with stray activations near the border still leave a
    strip. A background bg_i is *built* iff ``apply[i]`` and R_i does not cover the whole image; it is the
    tiled largest strip pasted inside R_i (``source="tiled-strip"``, :func:`tiled_strip_backgrounds`)
    or the image with its object pixels filled by its background mean colour (``source="batch"``,
    :func:`mean_fill_backgrounds`). Image i is mixed iff bg_i was built and a background is
    available for it: the partner's bg_{perm[i]} if that was built, else ``queue[queue_slot[i]]`` if
    ``queue_len > 0``. Mixed images are ``m_i * x_i + (1 - m_i) * bg`` with the soft mask m_i as the
    per-pixel ratio; the others are returned unchanged (exactly, for finite values). The queue is
    only read here; backgrounds are materialised only for the images that need them.

    Args:
        images: floating (B, C, H, W), any range (normalised or [0, 1]), any device.
        masks: floating (B, 1, H, W) soft masks in [0, 1], same device.
        apply: (B,) bool Bernoulli(p) draws, same device.
        perm: (B,) int64 partner index per image in [0, B) (normally a permutation), same device.
        threshold: object cut-off in (0, 1].
        source: ``"tiled-strip"`` or ``"batch"``, how backgrounds are built.
        queue: optional (Q, C, H, W) stored backgrounds, dtype of ``images``, same device.
        queue_slot: (B,) int64 row of ``queue`` to use for image i when its partner has no
            background; required with ``queue``; values in [0, Q).
        queue_len: 0-d int64 tensor, the number of valid rows in ``queue`` (the fallback is only
            used when it is > 0); required with ``queue``.
        fallback_mass: ``None`` (the paper's rule: such images stay unmixed) or the mass share in
            (0, 1] of the fallback rectangle (:class:`~objaug.augment.mixup.BackgroundMixup`: 0.9).

    Returns:
        :class:`BackgroundMixupOutput` ``(images, mixed, built, boxes)``.

    Raises:
        TypeError, ValueError: bad shapes, dtypes, devices or options (metadata only, no sync).
    """
    threshold = check_threshold(threshold)
    fallback_mass = check_fallback_mass(fallback_mass)
    source = check_source(source)
    check_image_batch(images)
    check_mask_batch(masks, "masks", like=images)
    b = images.shape[0]
    _check_draw(apply, "apply", b, torch.bool)
    _check_draw(perm, "perm", b, torch.int64)
    named = [("images", images), ("masks", masks), ("apply", apply), ("perm", perm)]
    if queue is not None:
        if queue_slot is None or queue_len is None:
            raise ValueError("queue_slot and queue_len are required when a queue is given.")
        if not isinstance(queue, Tensor) or queue.ndim != 4 or queue.shape[1:] != images.shape[1:]:
            got = tuple(queue.shape) if isinstance(queue, Tensor) else type(queue).__name__
            raise ValueError(f"queue must have shape (Q, {', '.join(map(str, images.shape[1:]))}), got {got}.")
        if queue.dtype != images.dtype:
            raise TypeError(f"queue dtype {queue.dtype} differs from the images' {images.dtype}.")
        _check_draw(queue_slot, "queue_slot", b, torch.int64)
        if not isinstance(queue_len, Tensor) or queue_len.ndim != 0 or queue_len.dtype != torch.int64:
            raise ValueError("queue_len must be a 0-d int64 tensor.")
        named += [("queue", queue), ("queue_slot", queue_slot), ("queue_len", queue_len)]
    check_same_device(named)
    return mixup_kernel(images, masks, apply, perm, threshold, source, queue, queue_slot, queue_len,
                  fallback_mass=fallback_mass)[0]


def _check_draw(t: object, name: str, batch: int, dtype: torch.dtype) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape ({batch},), got {type(t).__name__}.")
    if t.shape != (batch,) or t.dtype != dtype:
        raise ValueError(f"{name} must be a {dtype} tensor of shape ({batch},) (one entry per image), got "
                         f"{t.dtype} {tuple(t.shape)}.")
