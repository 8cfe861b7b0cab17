"""Pure, batched kernels for object-aware background mixup (Mo et al., NeurIPS 2021, method.md §4).

Everything here works on a whole batch at once with tensor ops on the input's device: no per-sample
Python loop, no ``.item()`` / ``.tolist()`` / ``nonzero()``, no host synchronisation (on CPU the
per-pixel work runs over a few fixed-size chunks of the batch to keep temporaries small). The stateful
part (the FIFO queue of recent backgrounds, random draws) lives in
:class:`objaug.augment.mixup.BackgroundMixup`.

Conventions shared by all kernels:

* ``images``: floating (B, C, H, W), any value range (normalised or [0, 1]); nothing is clamped.
* ``masks``: floating (B, 1, H, W) soft object masks in [0, 1], aligned with ``images``.
* The hard mask is ``masks >= threshold``; its tight bounding rectangle R is given as a (B, 4) int64
  tensor ``(y0, y1, x0, x1)`` with **inclusive** bounds (row ``y1`` and column ``x1`` are inside R).
  An empty hard mask gives the whole image ``(0, H - 1, 0, W - 1)``.
* The four strips outside R are numbered in :data:`STRIP_ORDER`: 0 top (rows ``[0, y0)``, full
  width), 1 left (columns ``[0, x0)``, full height), 2 right (columns ``(x1, W)``), 3 bottom (rows
  ``(y1, H)``). Their areas are ``y0 * W``, ``x0 * H``, ``(W - 1 - x1) * H``, ``(H - 1 - y1) * W``;
  the largest wins and ties go to the first in that order (as in the paper's reference code).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from objaug._checks import check_image_batch, check_mask_batch, check_same_batch, check_same_device

__all__ = [
    "STRIP_ORDER",
    "BackgroundMixupOutput",
    "MixupSource",
    "background_mixup",
    "largest_strip",
    "mask_bounding_boxes",
    "mean_fill_backgrounds",
    "tiled_strip_backgrounds",
]

MixupSource = Literal["tiled-strip", "batch"]

#: Order of the four strips outside the object rectangle; ties between equal areas go to the first.
STRIP_ORDER: tuple[str, str, str, str] = ("top", "left", "right", "bottom")


class BackgroundMixupOutput(NamedTuple):
    """Result of :func:`background_mixup`.

    Attributes:
        images: (B, C, H, W) mixed images, same dtype and device as the input, contiguous;
            unmixed rows equal the input rows (bit for bit for finite values).
        mixed: (B,) bool, which images were mixed.
        built: (B,) bool, which images had a background built (these are the ones a queue receives).
        boxes: (B, 4) int64 inclusive ``(y0, y1, x0, x1)`` object rectangles (from the hard masks).
    """

    images: Tensor
    mixed: Tensor
    built: Tensor
    boxes: Tensor


def _check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise TypeError(f"threshold must be a float in (0, 1], got {type(threshold).__name__}.")
    if not 0.0 < float(threshold) <= 1.0:
        raise ValueError(f"threshold must lie in (0, 1] (a mask value cut-off), got {threshold}.")
    return float(threshold)


def _check_source(source: object) -> MixupSource:
    if source not in ("tiled-strip", "batch"):
        raise ValueError(f"source must be 'tiled-strip' or 'batch', got {source!r}.")
    return source  # type: ignore[return-value]


def _bounding_boxes(masks: Tensor, threshold: float) -> Tensor:
    """Unchecked kernel of :func:`mask_bounding_boxes`."""
    b, _, h, w = masks.shape
    dev = masks.device
    # A row (column) meets the hard mask iff its maximum reaches the threshold: two reductions of the
    # soft mask, no (B, 1, H, W) bool temporary.
    rows = masks.amax(dim=3).view(b, h) >= threshold
    cols = masks.amax(dim=2).view(b, w) >= threshold
    ys = torch.arange(h, device=dev)
    xs = torch.arange(w, device=dev)
    y0 = torch.where(rows, ys, h).amin(dim=1)
    y1 = torch.where(rows, ys, -1).amax(dim=1)
    x0 = torch.where(cols, xs, w).amin(dim=1)
    x1 = torch.where(cols, xs, -1).amax(dim=1)
    empty = y1 < 0  # no row reaches the threshold: the rectangle is the whole image
    y0 = torch.where(empty, 0, y0)
    y1 = torch.where(empty, h - 1, y1)
    x0 = torch.where(empty, 0, x0)
    x1 = torch.where(empty, w - 1, x1)
    return torch.stack([y0, y1, x0, x1], dim=1)


def mask_bounding_boxes(masks: Tensor, threshold: float = 0.2) -> Tensor:
    """Tight bounding rectangle of the hard masks ``masks >= threshold``, per image.

    Args:
        masks: floating (B, 1, H, W) soft masks in [0, 1], any device.
        threshold: cut-off in (0, 1]; a pixel is object iff ``mask >= threshold``.

    Returns:
        (B, 4) int64 ``(y0, y1, x0, x1)`` with inclusive bounds, on ``masks.device``; the whole image
        ``(0, H - 1, 0, W - 1)`` where no pixel reaches the threshold.

    Raises:
        TypeError: ``masks`` not a floating tensor, ``threshold`` not a number.
        ValueError: ``masks`` not (B, 1, H, W), ``threshold`` outside (0, 1].
    """
    threshold = _check_threshold(threshold)
    if not isinstance(masks, Tensor) or masks.ndim != 4 or masks.shape[1] != 1:
        shape = tuple(masks.shape) if isinstance(masks, Tensor) else type(masks).__name__
        raise ValueError(f"masks must be a (B, 1, H, W) tensor, got {shape}.")
    if not masks.is_floating_point():
        raise TypeError(f"masks must be floating point with values in [0, 1], got {masks.dtype}.")
    return _bounding_boxes(masks, threshold)


def largest_strip(boxes: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """The largest of the four strips outside each rectangle.

    Args:
        boxes: (B, 4) int64 ``(y0, y1, x0, x1)`` inclusive rectangles inside an ``height x width``
            frame (as from :func:`mask_bounding_boxes`).
        height: frame height H.
        width: frame width W.

    Returns:
        ``(strip, area)``: (B,) int64 index into :data:`STRIP_ORDER` (ties: first in that order) and
        (B,) int64 area in pixels of that strip. ``area == 0`` exactly when the rectangle covers the
        whole frame (then there is no background and ``strip`` is 0).
    """
    y0, y1, x0, x1 = boxes.unbind(dim=1)
    areas = torch.stack(
        [y0 * width, x0 * height, (width - 1 - x1) * height, (height - 1 - y1) * width], dim=1
    )
    # torch.argmax documents that ties return the index of the first maximal value.
    strip = areas.argmax(dim=1)
    area = areas.gather(1, strip[:, None]).squeeze(1)
    return strip, area


class _Tiling(NamedTuple):
    """Per-row factors of the flat source offsets of :func:`_gather_rows` (see :func:`_tiling`)."""

    start: Tensor  # (R, H, 1) int64: rows[r] * C*H*W + y * W
    u: Tensor  # (R, H) int64
    v: Tensor  # (R, W) int64


def _tiling(boxes: Tensor, strip: Tensor, active: Tensor, rows: Tensor, channels: int, height: int,
            width: int) -> _Tiling:
    """Source pixel of every output pixel, as small per-row factors (integer arithmetic only).

    Output row r, pixel (y, x) reads batch image ``rows[r]`` at ``(src_y, src_x)``: inside the
    rectangle ``boxes[r]`` of an ``active`` row, the tiled largest strip ``strip[r]``; elsewhere (and
    in inactive rows) the pixel itself. The tiling is phase-aligned with the strip (restricted to the
    strip it is the strip), e.g. top strip of height y0: ``src_y = y mod y0``; bottom strip starting
    at row ``s = y1 + 1``: ``src_y = s + (y - s) mod (H - s)``; left/right strips likewise on x.

    The flat offset is ``start[r, y] + x + u[r, y] * v[r, x]``: a strip moves one coordinate only,
    so the shift inside the rectangle is one outer product (u = row shift * W, v = [x in R] for
    top/bottom strips; u = [y in R], v = column shift for left/right strips; u = 0 when inactive).
    """
    dev = boxes.device
    y0, y1, x0, x1 = (t[:, None] for t in boxes.unbind(dim=1))  # (R, 1) each
    strip = strip[:, None]
    ys = torch.arange(height, device=dev)[None]  # (1, H)
    xs = torch.arange(width, device=dev)[None]  # (1, W)
    b_start = y1 + 1
    r_start = x1 + 1
    # clamp_min(1) only guards the modulo of strips that are not used.
    ty = torch.where(
        strip == 0,
        torch.remainder(ys, y0.clamp_min(1)),
        torch.where(strip == 3, b_start + torch.remainder(ys - b_start, (height - b_start).clamp_min(1)), ys),
    )  # (R, H)
    tx = torch.where(
        strip == 1,
        torch.remainder(xs, x0.clamp_min(1)),
        torch.where(strip == 2, r_start + torch.remainder(xs - r_start, (width - r_start).clamp_min(1)), xs),
    )  # (R, W)
    in_y = (ys >= y0) & (ys <= y1) & active[:, None]  # (R, H)
    in_x = (xs >= x0) & (xs <= x1)  # (R, W)
    vertical = (strip == 0) | (strip == 3)
    u = torch.where(vertical, (ty - ys) * width * in_y, in_y.to(torch.int64))
    v = torch.where(vertical, in_x.to(torch.int64), (tx - xs) * in_x)
    start = (rows * (channels * height * width))[:, None, None] + (ys * width)[:, :, None]
    return _Tiling(start, u, v)


def _offsets(t: _Tiling, sl: slice, width: int) -> Tensor:
    """(n, 1, H*W) int64 flat source offsets of rows ``sl`` of a :class:`_Tiling` (two passes)."""
    start = t.start[sl]
    n, height = start.shape[0], start.shape[1]
    off = start + torch.arange(width, device=start.device)[None, None]  # (n, H, W) base offsets
    off.addcmul_(t.u[sl, :, None], t.v[sl, None, :])  # + shift inside the rectangle
    return off.view(n, 1, height * width)


def _gather_rows(images: Tensor, offsets: Tensor, out: Tensor | None = None) -> Tensor:
    """``out[r, c, p] = images[j, c, q]`` for the flat offset ``j*C*H*W + q = offsets[r, 0, p]``.

    One ``torch.gather`` over the whole batch: ``images`` (contiguous) is seen through a read-only
    strided view (R, C, L) whose channel rows start ``H*W`` apart, so a single index along the last
    dimension reaches every image; the index is broadcast over channels (stride 0).
    """
    b, c, h, w = images.shape
    hw = h * w
    n = offsets.shape[0]
    span = (b - 1) * c * hw + hw
    view = images.as_strided((n, c, span), (0, hw, 1), images.storage_offset())
    index = offsets.expand(n, c, hw)
    if out is None:
        return torch.gather(view, 2, index).view(n, c, h, w)
    torch.gather(view, 2, index, out=out.view(n, c, hw))
    return out


#: On CPU the per-pixel work runs over fixed-size chunks of the batch (about this many bytes of
#: image data each) so that every temporary stays small: cache-resident and recycled by the
#: allocator rather than page-faulted in afresh. Elsewhere (CUDA) the whole batch is one chunk.
_CPU_CHUNK_BYTES = 4 << 20


def _chunk_rows(images: Tensor, grad: bool = False) -> int:
    """Rows per chunk: the whole batch off-CPU or with autograd, about ``_CPU_CHUNK_BYTES`` on CPU."""
    b, c, h, w = images.shape
    if images.device.type != "cpu" or grad:
        return b
    return max(1, _CPU_CHUNK_BYTES // max(1, c * h * w * images.element_size()))


def _needs_grad(*tensors: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _fill_with_background_mean(bg: Tensor, masks: Tensor, threshold: float, active: Tensor | None,
                               inplace: bool) -> Tensor:
    """Replace object pixels (``masks >= threshold``) of ``bg`` by its per-channel background mean.

    ``bg`` (R, C, H, W) contiguous, ``masks`` (R, 1, H, W); rows with ``active`` False are kept.
    The mean is a batched matrix product (no (R, C, H, W) temporary); an empty background gives 0.
    """
    n, c, h, w = bg.shape
    keep = (masks < threshold).to(bg.dtype)  # (R, 1, H, W)
    total = torch.bmm(bg.view(n, c, h * w), keep.view(n, h * w, 1))  # (R, C, 1)
    mean = (total / keep.sum(dim=(2, 3)).clamp_min(1)[:, :, None]).view(n, c, 1, 1)
    fill = keep == 0
    if active is not None:
        fill = fill & active.view(n, 1, 1, 1)
    if inplace:
        return torch.where(fill, mean, bg, out=bg)
    return torch.where(fill, mean, bg)


def _iter_backgrounds(images: Tensor, masks: Tensor | None, boxes: Tensor, rows: Tensor, threshold: float,
                      source: MixupSource, out: Tensor | None = None) -> Iterator[tuple[slice, Tensor]]:
    """Background-only images of batch images ``rows``, chunk by chunk: yields ``(slice, bg)``.

    ``images`` must be contiguous and ``boxes`` are those of the whole batch. ``bg`` is a new
    (n, C, H, W) tensor per chunk, or ``out[slice]`` when ``out`` (R, C, H, W) is given. For
    ``"tiled-strip"`` a row whose rectangle covers the whole image comes back unchanged.
    """
    _, c, h, w = images.shape
    grad = _needs_grad(images)
    step = _chunk_rows(images, grad)
    r = rows.shape[0]
    if source == "tiled-strip":
        rb = boxes[rows]
        strip, area = largest_strip(rb, h, w)
        tiling = _tiling(rb, strip, area > 0, rows, c, h, w)
        for s in range(0, r, step):  # fixed-size chunks of the batch (one chunk off-CPU), not per sample
            sl = slice(s, min(r, s + step))
            yield sl, _gather_rows(images, _offsets(tiling, sl, w), out=None if out is None else out[sl])
    else:
        assert masks is not None, "source='batch' needs the masks"
        for s in range(0, r, step):
            sl = slice(s, min(r, s + step))
            bg = images.index_select(0, rows[sl]) if out is None or grad else \
                torch.index_select(images, 0, rows[sl], out=out[sl])
            yield sl, _fill_with_background_mean(bg, masks.index_select(0, rows[sl]), threshold, None, not grad)


def _all_backgrounds(images: Tensor, masks: Tensor | None, boxes: Tensor, threshold: float,
                     source: MixupSource) -> Tensor:
    """Background-only versions of all images of the batch: (B, C, H, W), a new tensor."""
    x = images.contiguous()
    rows = torch.arange(x.shape[0], device=x.device)
    if _needs_grad(x):
        return torch.cat([bg for _, bg in _iter_backgrounds(x, masks, boxes, rows, threshold, source)])
    out = torch.empty_like(x)
    for _ in _iter_backgrounds(x, masks, boxes, rows, threshold, source, out=out):
        pass
    return out


def tiled_strip_backgrounds(images: Tensor, boxes: Tensor) -> Tensor:
    """Background-only images: the largest strip outside R, tiled, pasted inside R (method.md §4).

    For each image the largest of the four strips outside its rectangle R (see :func:`largest_strip`)
    is tiled along its thin axis to fill the frame (top/bottom strips repeat vertically, left/right
    ones horizontally); inside R the tiled frame replaces the image, outside R the image is kept.
    Source coordinates are computed with integer arithmetic for every pixel, e.g. for a top strip of
    height ``y0``: ``src_y = y mod y0``, ``src_x = x``; for a bottom strip starting at row
    ``s = y1 + 1`` of height ``h_b = H - s``: ``src_y = s + (y - s) mod h_b`` (phase-aligned, so the
    tiling restricted to the strip is the strip itself; the paper's reference code starts the tile
    at row 0 instead). The whole batch is then gathered at once.

    Images whose R covers the whole frame have no background; they are returned unchanged.

    Args:
        images: floating (B, C, H, W), any range, any device.
        boxes: (B, 4) int64 inclusive ``(y0, y1, x0, x1)`` on ``images.device``, e.g. from
            :func:`mask_bounding_boxes`.

    Returns:
        (B, C, H, W) tensor, same dtype and device as ``images`` (a new contiguous tensor).

    Raises:
        TypeError: ``images`` not floating, ``boxes`` not an int64 tensor.
        ValueError: wrong shapes or devices.
    """
    check_image_batch(images)
    if not isinstance(boxes, Tensor) or boxes.shape != (images.shape[0], 4):
        got = tuple(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
        raise ValueError(f"boxes must be a (B, 4) = {(images.shape[0], 4)} tensor, got {got}.")
    if boxes.dtype != torch.int64:
        raise TypeError(f"boxes must be int64 (y0, y1, x0, x1) pixel indices, got {boxes.dtype}.")
    check_same_device([("images", images), ("boxes", boxes)])
    return _all_backgrounds(images, None, boxes, 1.0, "tiled-strip")


def mean_fill_backgrounds(images: Tensor, masks: Tensor, threshold: float = 0.2) -> Tensor:
    """Background-only images with the objects filled by the per-channel background mean.

    Every object pixel (``masks >= threshold``) is replaced by the mean colour, per channel, of the
    same image's background pixels (``masks < threshold``); background pixels are kept. An image
    without any background pixel (all object) becomes all zeros (the empty mean is taken as 0);
    :func:`background_mixup` never builds a background for such an image. This is the background
    of ``source="batch"``.

    Args:
        images: floating (B, C, H, W), any range, any device.
        masks: floating (B, 1, H, W) soft masks in [0, 1] on the same device.
        threshold: object cut-off in (0, 1].

    Returns:
        (B, C, H, W), same dtype and device as ``images`` (a new contiguous tensor).

    Raises:
        TypeError, ValueError: bad shapes, dtypes, devices or threshold.
    """
    threshold = _check_threshold(threshold)
    check_image_batch(images)
    if isinstance(masks, Tensor):
        check_same_batch("images", images, "masks", masks)
    check_mask_batch(masks, "masks", like=images)
    check_same_device([("images", images), ("masks", masks)])
    return _all_backgrounds(images, masks, _bounding_boxes(masks, threshold), threshold, "batch")


def _mixup(
    images: Tensor,
    masks: Tensor,
    apply: Tensor,
    perm: Tensor,
    threshold: float,
    source: MixupSource,
    queue: Tensor | None,
    queue_slot: Tensor | None,
    queue_len: Tensor | None,
) -> BackgroundMixupOutput:
    """Unchecked kernel of :func:`background_mixup`.

    The per-image decisions (rectangles, strips, who is mixed with what) are computed once for the
    batch from small tensors. Then, with a single (B, C, H, W) allocation (the output), the
    background source of every image is gathered straight into the output (the partner's tiled
    strip for images mixed with their partner, the image itself, identity, for the others), queue
    draws are written over it where needed, and one in-place ``lerp`` with the soft mask as weight
    (weight 1 for unmixed images) blends the image back in, so unmixed images come back exactly
    (``lerp(x, x, 1) == x`` for finite x). On CPU this runs over fixed-size chunks of the batch
    (not per sample); when autograd needs the graph it runs out of place on the whole batch.
    """
    b, c, h, w = images.shape
    x = images.contiguous()
    dev = x.device
    boxes = _bounding_boxes(masks, threshold)
    strip, area = largest_strip(boxes, h, w)
    built = apply & (area > 0)
    partner_built = built[perm]
    from_partner = built & partner_built
    from_queue: Tensor | None = None
    if queue is not None and queue_slot is not None and queue_len is not None and queue.shape[0] > 0:
        from_queue = built & ~partner_built & (queue_len > 0)
        mixed = from_partner | from_queue
    else:
        mixed = from_partner
    rows = torch.where(from_partner, perm, torch.arange(b, device=dev))
    tiled = source == "tiled-strip"
    # Identity offsets (inactive rows) for "batch": the partner itself, filled below.
    tiling = _tiling(boxes[rows], strip[rows], from_partner if tiled else torch.zeros_like(built), rows,
                     c, h, w)
    grad = _needs_grad(x, masks)
    step = _chunk_rows(x, grad)
    out = None if grad else torch.empty_like(x)
    part = x
    for s in range(0, b, step):  # fixed-size chunks of the batch (one chunk off-CPU), not per sample
        sl = slice(s, min(b, s + step))
        part = _gather_rows(x, _offsets(tiling, sl, w), out=None if out is None else out[sl])
        if not tiled:
            part = _fill_with_background_mean(part, masks[rows[sl]], threshold, from_partner[sl], not grad)
        if from_queue is not None:
            assert queue is not None and queue_slot is not None
            drawn = queue.index_select(0, queue_slot[sl])
            fq = from_queue[sl].view(-1, 1, 1, 1)
            part = torch.where(fq, drawn, part) if grad else torch.where(fq, drawn, part, out=part)
        # m * x + (1 - m) * bg = lerp(bg, x, m); weight 1 keeps x (the source is x itself there).
        weight = torch.where(mixed[sl].view(-1, 1, 1, 1), masks[sl].to(x.dtype), 1.0)
        part = torch.lerp(part, x[sl], weight) if grad else part.lerp_(x[sl], weight)
    return BackgroundMixupOutput(part if out is None else out, mixed, built, boxes)


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
) -> BackgroundMixupOutput:
    """Object-aware background mixup of a batch with given random draws (method.md §4).

    Per image i: R_i is the bounding rectangle of ``masks_i >= threshold`` (whole image if empty).
    A background bg_i is *built* iff ``apply[i]`` and R_i does not cover the whole image; it is the
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

    Returns:
        :class:`BackgroundMixupOutput` ``(images, mixed, built, boxes)``.

    Raises:
        TypeError, ValueError: bad shapes, dtypes, devices or options (metadata only, no sync).
    """
    threshold = _check_threshold(threshold)
    source = _check_source(source)
    check_image_batch(images)
    if isinstance(masks, Tensor):
        check_same_batch("images", images, "masks", masks)
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
    return _mixup(images, masks, apply, perm, threshold, source, queue, queue_slot, queue_len)


def _check_draw(t: object, name: str, batch: int, dtype: torch.dtype) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape ({batch},), got {type(t).__name__}.")
    if t.shape != (batch,) or t.dtype != dtype:
        raise ValueError(f"{name} must be a {dtype} tensor of shape ({batch},) (one entry per image), got "
                         f"{t.dtype} {tuple(t.shape)}.")
