"""Background building blocks of background mixup: object rectangles, strips and background images.

Pure, batched kernels (no Python loop over samples, no host synchronisation); the conventions (inclusive
``(y0, y1, x0, x1)`` rectangles, :data:`STRIP_ORDER`) are those of :mod:`objaug.functional.mixup`, which
re-exports the public names.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, get_args

import torch
from torch import Tensor

from objaug.functional.rectangles import (
    _bounding_boxes,
    mask_bounding_boxes,
    mass_rectangles,
    object_rectangles,
)
from objaug.validation import (
    check_choice,
    check_image_batch,
    check_mask_batch,
    check_same_device,
    check_threshold,
)

__all__ = [
    "STRIP_ORDER",
    "mask_bounding_boxes",  # re-exported from objaug.functional.rectangles
    "mass_rectangles",
    "object_rectangles",
    "BackgroundMixupOutput",
    "MixupSource",
    "largest_strip",
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


def check_source(source: object) -> MixupSource:
    """Background mixup's ``source`` (see :data:`MixupSource`): ``TypeError`` for a non-string,
    ``ValueError`` for another string."""
    return check_choice(source, "source", get_args(MixupSource))  # type: ignore[return-value]


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


def needs_grad(*tensors: Tensor) -> bool:
    """Whether autograd records an operation on any of ``tensors`` (grad mode on, one requires grad)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _fill_with_background_mean(bg: Tensor, masks: Tensor, threshold: float | Tensor, active: Tensor | None,
                               inplace: bool) -> Tensor:
    """Replace object pixels (``masks >= threshold``) of ``bg`` by its per-channel background mean.

    ``bg`` (R, C, H, W) contiguous, ``masks`` (R, 1, H, W); rows with ``active`` False are kept.
    The mean is a batched matrix product (no (R, C, H, W) temporary); an empty background gives 0.
    """
    n, c, h, w = bg.shape
    if isinstance(threshold, Tensor):  # per-image cut-offs (R,)
        threshold = threshold.view(n, 1, 1, 1)
    keep = (masks < threshold).to(bg.dtype)  # (R, 1, H, W)
    total = torch.bmm(bg.view(n, c, h * w), keep.view(n, h * w, 1))  # (R, C, 1)
    mean = (total / keep.sum(dim=(2, 3)).clamp_min(1)[:, :, None]).view(n, c, 1, 1)
    fill = keep == 0
    if active is not None:
        fill = fill & active.view(n, 1, 1, 1)
    if inplace:
        return torch.where(fill, mean, bg, out=bg)
    return torch.where(fill, mean, bg)


def _backgrounds(images: Tensor, masks: Tensor | None, boxes: Tensor, active: Tensor, threshold: float | Tensor,
                 source: MixupSource, out: Tensor | None = None, tmp: Tensor | None = None) -> Tensor:
    """Background-only versions of all images of the batch (own rectangles / masks), (B, C, H, W).

    ``images`` contiguous. Rows with ``active`` False are the image itself. ``out`` / ``tmp``:
    optional contiguous buffers (see :func:`_tiled_into`); ignored when autograd records.
    """
    if needs_grad(images):
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
    check_mask_batch(masks, "masks", like=images)
    check_same_device([("images", images), ("masks", masks)])
    return _all_backgrounds(images, masks, _bounding_boxes(masks, threshold), threshold, "batch")
