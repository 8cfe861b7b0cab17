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
  An empty hard mask gives the whole image ``(0, H - 1, 0, W - 1)``.
* The four strips outside R are numbered in :data:`STRIP_ORDER`: 0 top (rows ``[0, y0)``, full
  width), 1 left (columns ``[0, x0)``, full height), 2 right (columns ``(x1, W)``), 3 bottom (rows
  ``(y1, H)``). Their areas are ``y0 * W``, ``x0 * H``, ``(W - 1 - x1) * H``, ``(H - 1 - y1) * W``;
  the largest wins and ties go to the first in that order (as in the paper's reference code).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import Tensor

from objaug.validation import (
    check_image_batch,
    check_mask_batch,
    check_same_batch,
    check_same_device,
    check_threshold,
)

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


_check_threshold = check_threshold  # former private name (objaug.augment.mixup imported it)


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
    threshold = check_threshold(threshold)
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


def _source_rows_cols(boxes: Tensor, strip: Tensor, active: Tensor, height: int, width: int
                      ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Separable source coordinates of the tiled frame (integer arithmetic only).

    Returns ``(src_y, src_x, in_y, in_x)``: (R, H) and (R, W) int64 source row / column of every output
    row / column, and the (R, H), (R, W) bool row / column ranges of the rectangles. A top/bottom strip
    moves rows only (``src_x`` is the identity), a left/right strip columns only; both are the identity
    outside the rectangle's rows (columns) and in inactive rows. The tiling is phase-aligned with the
    strip, e.g. top strip of height y0: ``src_y = y mod y0``; bottom strip starting at row
    ``s = y1 + 1``: ``src_y = s + (y - s) mod (H - s)``; left/right strips likewise on x.
    """
    dev = boxes.device
    y0, y1, x0, x1 = (t[:, None] for t in boxes.unbind(dim=1))  # (R, 1) each
    strip = strip[:, None]
    act = active[:, None]
    ys = torch.arange(height, device=dev)[None]  # (1, H)
    xs = torch.arange(width, device=dev)[None]  # (1, W)
    b_start = y1 + 1
    r_start = x1 + 1
    in_y = (ys >= y0) & (ys <= y1)
    in_x = (xs >= x0) & (xs <= x1)
    # clamp_min(1) only guards the modulo of strips that are not used.
    ty = torch.where(
        strip == 0,
        torch.remainder(ys, y0.clamp_min(1)),
        torch.where(strip == 3, b_start + torch.remainder(ys - b_start, (height - b_start).clamp_min(1)), ys),
    )
    tx = torch.where(
        strip == 1,
        torch.remainder(xs, x0.clamp_min(1)),
        torch.where(strip == 2, r_start + torch.remainder(xs - r_start, (width - r_start).clamp_min(1)), xs),
    )
    src_y = torch.where(act & in_y, ty, ys)
    src_x = torch.where(act & in_x, tx, xs)
    return src_y, src_x, in_y, in_x


def _flat_rows(src_y: Tensor, channels: int, height: int) -> Tensor:
    """Flat index into an (R * C * H, W) view of pixel rows, channel by channel, from (R, H) source rows."""
    r = src_y.shape[0]
    base = (torch.arange(r * channels, device=src_y.device) * height).view(r, channels, 1)
    return (base + src_y[:, None, :]).view(-1)


def _rectangle_weight(in_y: Tensor, in_x: Tensor, dtype: torch.dtype, out: Tensor | None = None) -> Tensor:
    """(R, 1, H, W) blend weight, 1 inside each rectangle and 0 outside: the outer product of its (R, H)
    row and (R, W) column ranges. ``out``: optional contiguous (R, 1, H, W) buffer of ``dtype``."""
    r, h, w = in_y.shape[0], in_y.shape[1], in_x.shape[1]
    rows, cols = in_y.to(dtype).view(r, 1, h, 1), in_x.to(dtype).view(r, 1, 1, w)
    return torch.mul(rows, cols) if out is None else torch.mul(rows, cols, out=out)


def _tiled_into(images: Tensor, boxes: Tensor, active: Tensor, out: Tensor | None = None,
                tmp: Tensor | None = None) -> Tensor:
    """Tiled-strip backgrounds of every image of the batch, with its own rectangle (three batched passes).

    1. one ``index_select`` of whole pixel rows (``src_y``: top/bottom strips tiled over the full width);
    2. one ``gather`` of columns with a per-image (R, 1, 1, W) index broadcast over channels and rows
       (``src_x``: left/right strips tiled over the full height);
    3. one ``lerp`` from the image to the tiled frame with weight 1 inside the rectangle and 0 outside
       (both exact for finite values).

    Rows with ``active`` False, or whose rectangle covers the frame, come back as the image itself.
    ``images`` must be contiguous; ``out`` and ``tmp`` are optional contiguous (R, C, H, W) buffers of
    the images' dtype and device (``out`` is returned). With autograd recording, pass neither.
    """
    b, c, h, w = images.shape
    strip, area = largest_strip(boxes, h, w)
    act = active & (area > 0)
    src_y, src_x, in_y, in_x = _source_rows_cols(boxes, strip, act, h, w)
    rows = _flat_rows(src_y, c, h)
    flat = images.view(b * c * h, w)
    if tmp is None:
        tiled_rows = flat.index_select(0, rows).view(b, c, h, w)
    else:
        tiled_rows = torch.index_select(flat, 0, rows, out=tmp.view(b * c * h, w)).view(b, c, h, w)
    index = src_x.view(b, 1, 1, w).expand(b, c, h, w)
    tiled = torch.gather(tiled_rows, 3, index) if out is None else torch.gather(tiled_rows, 3, index, out=out)
    inside = _rectangle_weight(in_y & act[:, None], in_x, images.dtype)  # 0 for inactive rows
    if out is None:
        return torch.lerp(images, tiled, inside)
    return torch.lerp(images, tiled, inside, out=tiled)  # elementwise, so writing over `end` is safe


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


def _backgrounds(images: Tensor, masks: Tensor | None, boxes: Tensor, active: Tensor, threshold: float,
                 source: MixupSource, out: Tensor | None = None, tmp: Tensor | None = None) -> Tensor:
    """Background-only versions of all images of the batch (own rectangles / masks), (B, C, H, W).

    ``images`` contiguous. Rows with ``active`` False are the image itself. ``out`` / ``tmp``:
    optional contiguous buffers (see :func:`_tiled_into`); ignored when autograd records.
    """
    if _needs_grad(images):
        out = tmp = None
    if source == "tiled-strip":
        return _tiled_into(images, boxes, active, out, tmp)
    assert masks is not None, "source='batch' needs the masks"
    if out is None:
        return _fill_with_background_mean(images, masks, threshold, active, False)
    out.copy_(images)
    return _fill_with_background_mean(out, masks, threshold, active, True)


def _all_backgrounds(images: Tensor, masks: Tensor | None, boxes: Tensor, threshold: float,
                     source: MixupSource) -> Tensor:
    """Background-only versions of all images of the batch: (B, C, H, W), a new tensor."""
    x = images.contiguous()
    active = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    return _backgrounds(x, masks, boxes, active, threshold, source)


def tiled_strip_backgrounds(images: Tensor, boxes: Tensor) -> Tensor:
    """Background-only images: the largest strip outside R, tiled, pasted inside R (method.md §4).

    For each image the largest of the four strips outside its rectangle R (see :func:`largest_strip`)
    is tiled along its thin axis to fill the frame (top/bottom strips repeat vertically, left/right
    ones horizontally); inside R the tiled frame replaces the image, outside R the image is kept.
    Source coordinates are computed with integer arithmetic, e.g. for a top strip of height ``y0``:
    ``src_y = y mod y0``, ``src_x = x``; for a bottom strip starting at row ``s = y1 + 1`` of height
    ``h_b = H - s``: ``src_y = s + (y - s) mod h_b`` (phase-aligned, so the tiling restricted to the
    strip is the strip itself; the paper's reference code starts the tile at row 0 instead). A strip
    moves one coordinate only, so the whole batch is built with one gather of pixel rows, one gather of
    columns and one blend.

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
    threshold = check_threshold(threshold)
    check_image_batch(images)
    if isinstance(masks, Tensor):
        check_same_batch("images", images, "masks", masks)
    check_mask_batch(masks, "masks", like=images)
    check_same_device([("images", images), ("masks", masks)])
    return _all_backgrounds(images, masks, _bounding_boxes(masks, threshold), threshold, "batch")


#: Device types on which :func:`_mixup` compacts the batch to the images that build a background.
#: Reading how many there are (``nonzero``) synchronises nothing on the CPU, where the tensors already
#: live on the host; on an accelerator it would stall the stream, so there the shapes stay fixed.
_COMPACT_DEVICE_TYPES: frozenset[str] = frozenset({"cpu"})


def _compacts(t: Tensor) -> bool:
    """Whether :func:`_mixup` takes its compacting path for tensors like ``t`` (see above)."""
    return t.device.type in _COMPACT_DEVICE_TYPES


class _Workspace(NamedTuple):
    """Buffers of one :func:`_mixup` call without autograd (all contiguous, the images' dtype/device).

    ``storage`` (Q + B, C, H, W): rows [0, Q) are the background queue, rows [Q, Q + B) receive the
    batch's backgrounds, so one ``index_select`` reads a partner's background or a queued one.
    ``scratch`` (>= B, C, H, W; >= 2B on compacting devices): temporary rows (the built images, the
    tiling, and the mixing source). ``maps`` (>= 2B, 1, H, W on compacting devices, else empty):
    mask-sized rows (the built images' masks and blend weights). Fresh buffers of this size cost more
    in page faults on the CPU than the kernels that fill them.
    """

    storage: Tensor
    queue_rows: int
    scratch: Tensor
    maps: Tensor


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
    *,
    workspace: _Workspace | None = None,
    inplace: bool = False,
) -> tuple[BackgroundMixupOutput, Tensor, Tensor | None]:
    """Unchecked kernel of :func:`background_mixup`; also returns the backgrounds and how they are laid out.

    Returns ``(output, backgrounds, ranks)``: with ``ranks`` None, ``backgrounds`` is (B, C, H, W), row
    i the background of image i (the image itself where none was built); otherwise it is (k, C, H, W),
    only the k built backgrounds (the CPU path, see below), and ``ranks`` (k,) int64 gives each row's
    rank among them in batch order.

    The per-image decisions (rectangles, strips, who is mixed with what) are computed once for the
    batch from small tensors. The backgrounds of all images are built in three batched passes
    (:func:`_backgrounds`); then one ``index_select`` over [queue; backgrounds] picks each image's
    source (the partner's background, a queued one, or, for unmixed images, any row: their blend
    weight keeps the image exactly), and one ``lerp`` with the soft mask as weight blends the image
    back in (``lerp(bg, x, 1) == x`` for finite x). ``workspace`` (from the module) holds the queue
    and reusable buffers, so no large temporary is allocated; ``inplace`` writes the result into
    ``images`` (contiguous, no autograd). Without a workspace, or with autograd recording, everything
    runs out of place (same values).

    On CPU tensors without autograd (:data:`_COMPACT_DEVICE_TYPES`) the same values are computed for
    the built images only (:func:`_mixup_compact`): there, counting them costs no synchronisation, and
    the other images need no work at all.
    """
    b, _, h, w = images.shape
    dev = images.device
    grad = _needs_grad(images, masks)
    x = images.contiguous()
    boxes = _bounding_boxes(masks, threshold)
    strip, area = largest_strip(boxes, h, w)
    built = apply & (area > 0)
    partner_built = built[perm]
    from_partner = built & partner_built
    q = queue.shape[0] if queue is not None else 0
    from_queue: Tensor | None = None
    if q > 0 and queue_slot is not None and queue_len is not None:
        from_queue = built & ~partner_built & (queue_len > 0)
        mixed = from_partner | from_queue
    else:
        mixed = from_partner
    if not grad and _compacts(x):
        return _mixup_compact(images, x, masks, boxes, strip, built, mixed, from_partner, from_queue, perm,
                              threshold, source, queue, queue_slot, workspace, inplace)
    ar = torch.arange(b, device=dev)
    weight = torch.where(mixed.view(-1, 1, 1, 1), masks.to(x.dtype), 1.0)
    if grad or workspace is None:  # out of place: autograd, or no reusable buffers (the functional API)
        bg = _backgrounds(x, masks, boxes, built, threshold, source)
        src = bg.index_select(0, torch.where(from_partner, perm, ar))
        if from_queue is not None:
            assert queue is not None and queue_slot is not None
            src = torch.where(from_queue.view(-1, 1, 1, 1), queue.index_select(0, queue_slot), src)
        return BackgroundMixupOutput(torch.lerp(src, x, weight), mixed, built, boxes), bg.detach(), None
    storage, q = workspace.storage, workspace.queue_rows
    bg = _backgrounds(x, masks, boxes, built, threshold, source, out=storage[q:q + b],
                      tmp=workspace.scratch[:b])
    index = q + torch.where(from_partner, perm, ar)
    if from_queue is not None:
        assert queue_slot is not None
        index = torch.where(from_queue, queue_slot, index)
    if inplace and x is images:
        src = torch.index_select(storage, 0, index, out=workspace.scratch[:b])
        out = torch.lerp(src, images, weight, out=images)  # elementwise, so writing over `end` is safe
    else:
        out = storage.index_select(0, index).lerp_(x, weight)
    return BackgroundMixupOutput(out, mixed, built, boxes), bg, None


def _mixup_compact(
    images: Tensor,
    x: Tensor,
    masks: Tensor,
    boxes: Tensor,
    strip: Tensor,
    built: Tensor,
    mixed: Tensor,
    from_partner: Tensor,
    from_queue: Tensor | None,
    perm: Tensor,
    threshold: float,
    source: MixupSource,
    queue: Tensor | None,
    queue_slot: Tensor | None,
    workspace: _Workspace | None,
    inplace: bool,
) -> tuple[BackgroundMixupOutput, Tensor, Tensor]:
    """The CPU path of :func:`_mixup` (no autograd): the same values, computed for the built images only.

    Only an image that builds a background can be mixed (method.md §4), so the k built images (about
    ``p`` of the batch) are gathered once, those with a top/bottom strip first, then those with a
    left/right one: each group then needs a single tiling pass (rows, or columns). Their backgrounds
    are built, each is blended with its partner's or a queued background, and the results are
    scattered back; the other images are not touched (in place) or copied once. ``x`` is
    ``images.contiguous()``, ``strip`` the (B,) :func:`largest_strip` index. Returns the output, the
    (k, C, H, W) backgrounds in that grouped order, and their (k,) int64 ranks in batch order (the order
    a queue receives them).
    """
    b, _, h, w = x.shape
    dev = x.device
    by_rows = (strip == 0) | (strip == 3)
    # On the CPU, nonzero reads host memory: no device synchronisation.
    tile_rows = (built & by_rows).nonzero().squeeze(1)
    rows = torch.cat([tile_rows, (built & ~by_rows).nonzero().squeeze(1)])
    k, n_rows = rows.numel(), tile_rows.numel()
    fresh = x is not images  # .contiguous() already made a copy
    out = x if inplace or fresh else x.clone()
    output = BackgroundMixupOutput(out, mixed, built, boxes)
    ranks = (built.cumsum(0) - 1).index_select(0, rows)  # batch-order rank of each background row
    if k == 0:
        return output, x.new_empty((0, *x.shape[1:])), ranks
    pos = torch.zeros(b, dtype=torch.int64, device=dev).index_copy_(0, rows, torch.arange(k, device=dev))
    if workspace is not None:
        q = workspace.queue_rows
        xs = torch.index_select(x, 0, rows, out=workspace.scratch[:k])
        tmp: Tensor | None = workspace.scratch[k:2 * k]
        bg_out: Tensor | None = workspace.storage[q:q + k]
    else:
        q = 0
        xs, tmp, bg_out = x.index_select(0, rows), None, None
    flat_masks = masks.reshape(b, h * w)
    ins_out: Tensor | None = None
    if workspace is not None and workspace.maps.shape[0] >= 2 * k and masks.dtype == x.dtype:
        mk = torch.index_select(flat_masks, 0, rows, out=workspace.maps[:k].view(k, h * w)).view(k, 1, h, w)
        ins_out = workspace.maps[k:2 * k]
    else:
        mk = flat_masks.index_select(0, rows).view(k, 1, h, w)  # a copy: filled below
    bk = boxes.index_select(0, rows)
    if source == "tiled-strip":
        bg = _tiled_grouped(xs, bk, strip.index_select(0, rows), n_rows, bg_out, tmp, ins_out)
    else:
        bg = _backgrounds(xs, mk, bk, torch.ones(k, dtype=torch.bool, device=dev), threshold, source,
                          out=bg_out, tmp=tmp)
    own = torch.arange(k, device=dev)
    part = pos[perm].index_select(0, rows)  # the partner's background row (valid where it was built)
    partner = torch.where(from_partner.index_select(0, rows), part, own)
    weight = mk.to(x.dtype)  # the soft mask; 1 (keep the image exactly) for built but unmixed images
    weight.index_fill_(0, (~mixed.index_select(0, rows)).nonzero().squeeze(1), 1.0)
    if workspace is not None:
        index = q + partner
        if from_queue is not None:
            assert queue_slot is not None
            index = torch.where(from_queue.index_select(0, rows), queue_slot.index_select(0, rows), index)
        src = torch.index_select(workspace.storage, 0, index, out=tmp)
    else:
        src = bg.index_select(0, partner)
        if from_queue is not None:
            assert queue is not None and queue_slot is not None
            fq = from_queue.index_select(0, rows)
            src = torch.where(fq.view(-1, 1, 1, 1), queue.index_select(0, queue_slot.index_select(0, rows)), src)
    res = torch.lerp(src, xs, weight, out=src)  # elementwise, so writing over `input` is safe
    out.index_copy_(0, rows, res)
    return output, bg, ranks


def _tiled_grouped(xs: Tensor, boxes: Tensor, strip: Tensor, n_rows: int, out: Tensor | None,
                   tmp: Tensor | None, inside_out: Tensor | None = None) -> Tensor:
    """:func:`_tiled_into` for images whose rectangles do not cover the frame, sorted by strip axis.

    The first ``n_rows`` images tile a top/bottom strip (one ``index_select`` of pixel rows), the
    others a left/right strip (one ``gather`` of columns); one ``lerp`` restricts the tiling to the
    rectangles. ``xs`` (k, C, H, W) contiguous; ``out`` / ``tmp`` optional contiguous buffers like
    ``xs``, ``inside_out`` an optional contiguous (k, 1, H, W) buffer of its dtype.
    """
    k, c, h, w = xs.shape
    dev = xs.device
    act = torch.ones(k, dtype=torch.bool, device=dev)
    src_y, src_x, in_y, in_x = _source_rows_cols(boxes, strip, act, h, w)
    tiled = torch.empty_like(xs) if tmp is None else tmp
    if n_rows > 0:
        torch.index_select(xs[:n_rows].view(n_rows * c * h, w), 0, _flat_rows(src_y[:n_rows], c, h),
                           out=tiled[:n_rows].view(n_rows * c * h, w))
    if n_rows < k:
        n_cols = k - n_rows
        index = src_x[n_rows:].view(n_cols, 1, 1, w).expand(n_cols, c, h, w)
        torch.gather(xs[n_rows:], 3, index, out=tiled[n_rows:])
    inside = _rectangle_weight(in_y, in_x, xs.dtype, out=inside_out)
    if out is None:
        return torch.lerp(xs, tiled, inside)
    return torch.lerp(xs, tiled, inside, out=out)


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
    threshold = check_threshold(threshold)
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
    return _mixup(images, masks, apply, perm, threshold, source, queue, queue_slot, queue_len)[0]


def _check_draw(t: object, name: str, batch: int, dtype: torch.dtype) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape ({batch},), got {type(t).__name__}.")
    if t.shape != (batch,) or t.dtype != dtype:
        raise ValueError(f"{name} must be a {dtype} tensor of shape ({batch},) (one entry per image), got "
                         f"{t.dtype} {tuple(t.shape)}.")
