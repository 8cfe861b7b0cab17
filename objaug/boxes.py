"""From CAM maps to object boxes, for the whole batch on the maps' device.

:func:`boxes_from_cam` turns ContraCAM maps into up to ``max_boxes`` boxes per image: binarise,
label the connected components (several objects per image), measure each component (pixel
count, tight bounding box), drop the small ones, keep the largest, pad by a margin and clip.
Everything is batched tensor work with no per-image loop and no host synchronisation except the
connected-components convergence checks (see :mod:`objaug.functional.components`).

Differences from the reference code (alinlab/object-aware-contrastive, ``utils/box_utils.py``),
on purpose: the threshold is applied to the map itself (no 8-bit image round trip that turns it
into ``p >= 1/255``), no component is dropped as "background", boxes come from the components
(pixel sets), never from hole contours, and the minimum area is the component's pixel count,
not its bounding-box area.

Box format used across objaug: ``(x1, y1, x2, y2)`` normalised to ``[0, 1]`` by the image width
and height, with the pixel-edge convention: pixel column ``c`` spans ``[c / W, (c + 1) / W]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from objaug.functional.components import connected_components
from objaug.validation import (
    check_bool,
    check_box_settings,
    check_finite,
    check_float,
    check_image_batch,
    check_range,
    check_size,
)

__all__ = ["boxes_from_cam", "boxes_from_steps", "boxes_to_pixels", "frame_boxes", "frame_only"]


def boxes_from_cam(
    maps: Tensor,
    *,
    threshold: float = 0.5,
    min_area: float = 0.01,
    margin: float = 0.2,
    max_boxes: int = 4,
    connectivity: int = 4,
    relative: bool = False,
    check_inputs: bool = True,
) -> tuple[Tensor, Tensor]:
    """Extract up to ``max_boxes`` object boxes per image from CAM maps.

    Steps, for all images at once on ``maps``' device: foreground = ``maps >= threshold``
    (or ``maps >= threshold * max(map)`` and ``maps > 0`` with ``relative=True``); connected
    components (:func:`objaug.functional.components.connected_components`); per component its
    pixel count (a ``scatter_add``) and its tight bounding box; components with fewer than
    ``min_area * H * W`` pixels are dropped; the ``max_boxes`` largest are kept, largest first
    (ties: the component whose first pixel in row-major order comes first); each box is padded
    by ``margin`` times its own width (left and right) and height (top and bottom) and clipped
    to the image.

    Args:
        maps: (B, 1, H, W) floating tensor on any device, values in [0, 1] (ContraCAM output,
            min-max normalised per image). Checked (in [0, 1], no NaN: one synchronisation) with
            ``check_inputs``; without it NaN counts as background.
        threshold: binarisation threshold in (0, 1]; a pixel is foreground if its value is
            ``>= threshold``. Default 0.5 (the paper's).
        min_area: the smallest component kept, as a fraction of the image area (pixel count
            ``>= min_area * H * W``, the product rounded to 6 decimals first so that e.g.
            0.07 of 100 pixels is 7), in [0, 1). Default 0.01 (the paper's 1 %). With 0,
            every component counts, down to single pixels.
        margin: padding on every side as a fraction of the box's own width/height, ``>= 0``.
            Default 0.2 (the paper's 20 %).
        max_boxes: K, the number of box slots per image, ``>= 1``.
        connectivity: 4 (the paper's) or 8.
        relative: if True, ``threshold`` is a fraction of each image's maximum (for maps that
            are not min-max normalised); an all-zero map then has no foreground.
        check_inputs: refuse NaN maps and maps outside [0, 1] (finite maps with ``relative``): one device
            synchronisation; objaug's own callers, whose maps come from ContraCAM, pass False.

    Returns:
        ``(boxes, valid)`` on ``maps``' device:

        - boxes: (B, K, 4) float32, normalised ``(x1, y1, x2, y2)`` in [0, 1] with the
          pixel-edge convention (a component spanning pixel columns ``c0..c1`` has
          ``x1 = c0 / W`` and ``x2 = (c1 + 1) / W`` before the margin), sorted by component
          area, largest first. Unused slots are all zeros.
        - valid: (B, K) bool, True for the slots that hold a component's box.

        Fallback: an image with no qualifying component gets the whole-image box
        ``[0, 0, 1, 1]`` in slot 0 while its ``valid`` row stays all False. So
        ``~valid.any(1)`` flags "nothing found, slot 0 is the whole-image fallback", and
        ``boxes[:, 0]`` is always a usable box (the largest object, or the whole image).

    Raises:
        TypeError: ``maps`` not a floating tensor, ``relative`` not a bool.
        ValueError: ``maps`` not (B, 1, H, W) or empty, or an argument out of range.
    """
    check_image_batch(maps, "maps", channels=1)
    check_box_settings(threshold=threshold, min_area=min_area, margin=margin, max_boxes=max_boxes,
                       connectivity=connectivity, relative=relative, check_inputs=check_inputs)
    if check_inputs and relative:
        check_finite(maps, "maps")
    elif check_inputs:
        try:
            check_range(maps, "maps", 0.0, 1.0)
        except ValueError as err:
            raise ValueError(f"{err} boxes_from_cam reads maps in [0, 1] (a ContraCAM's output): min-max normalise "
                             "each map first (objaug.functional.cam.minmax_normalize), or pass relative=True to "
                             "threshold at a fraction of each map's maximum.") from None
    b, _, h, w = maps.shape
    n = h * w
    device = maps.device

    if relative:
        peak = maps.amax(dim=(2, 3), keepdim=True)
        binary = (maps >= threshold * peak) & (maps > 0)
    else:
        binary = maps >= threshold
    labels = connected_components(binary, connectivity=connectivity).view(b, n)  # 0 = background

    # Rank the components by pixel count, ties by label (smaller label = earlier first pixel), in
    # one int64 key per label slot: key = count * (n + 1) + (n - label), built as a descending
    # ramp plus a scatter_add of (n + 1) per pixel; slot 0 (background) is zeroed. The tie term
    # is < n + 1, so "count >= c_min" is "key >= c_min * (n + 1)". Max key < (n + 1) ** 2.
    key = torch.arange(n, -1, -1, device=device, dtype=torch.int64).repeat(b, 1)  # (B, n + 1)
    key.scatter_add_(1, labels, torch.full((1, 1), n + 1, device=device, dtype=torch.int64).expand(b, n))
    key[:, 0] = 0
    c_min = max(1, math.ceil(round(min_area * n, 6)))
    k_top = min(max_boxes, n + 1)
    top_key, top_label = torch.topk(key, k_top, dim=1)  # (B, k_top), sorted, largest first
    valid = top_key >= c_min * (n + 1)

    # Tight boxes of the selected components: membership masks (B, k, H, W), then the first and
    # last row/column that contain a member (argmax returns the first maximal index). Slots that
    # are not valid get garbage here and are zeroed below.
    member = (labels.view(b, 1, h, w) == top_label.view(b, k_top, 1, 1)).view(torch.uint8)
    rows = member.amax(dim=3)  # (B, k, H)
    cols = member.amax(dim=2)  # (B, k, W)
    y0 = rows.argmax(dim=2)
    y1 = h - rows.flip(2).argmax(dim=2)  # exclusive end: last row + 1
    x0 = cols.argmax(dim=2)
    x1 = w - cols.flip(2).argmax(dim=2)
    # Margin and normalisation with scalar arithmetic only (no small host-made tensors, which
    # would be a host-to-device copy on a GPU).
    bw = (x1 - x0).to(torch.float32) * margin
    bh = (y1 - y0).to(torch.float32) * margin
    boxes = torch.stack(
        ((x0 - bw) / w, (y0 - bh) / h, (x1 + bw) / w, (y1 + bh) / h), dim=2
    ).clamp_(0.0, 1.0)  # (B, k, 4) float32
    boxes = boxes * valid.unsqueeze(2)

    if k_top < max_boxes:  # tiny images: fewer possible components than slots
        boxes = torch.cat([boxes, boxes.new_zeros((b, max_boxes - k_top, 4))], dim=1)
        valid = torch.cat([valid, valid.new_zeros((b, max_boxes - k_top))], dim=1)
    # Fallback: the whole image [0, 0, 1, 1] in slot 0 where nothing qualified (valid stays False).
    found = valid.any(dim=1, keepdim=True)  # (B, 1)
    boxes[:, 0, :2] = torch.where(found, boxes[:, 0, :2], 0.0)
    boxes[:, 0, 2:] = torch.where(found, boxes[:, 0, 2:], 1.0)
    return boxes, valid


def boxes_from_steps(
    steps: Sequence[Tensor],
    *,
    overlap: float = 0.3,
    threshold: float = 0.5, min_area: float = 0.01, margin: float = 0.2,  # as boxes_from_cam
    max_boxes: int = 4, connectivity: int = 4, relative: bool = False, check_inputs: bool = True,
) -> tuple[Tensor, Tensor]:
    """Boxes of a refined ContraCAM: each iteration's own objects, the first iteration's first.

    Iterative refinement paints the found regions out and asks the model again, so each iteration's
    map (``ContraCAM(..., return_steps=True)``) shows further objects. Taking components of the
    *union* of the maps instead merges neighbouring objects into one box and adds the later, weaker
    iterations' diffuse regions to every object (measured on the demo: box recall fell from 0.37 at
    T=1 to 0.18 at T=5; with this function it rose to 0.42, see docs/how-it-works.md). Here every
    iteration's map gets its own :func:`boxes_from_cam` boxes (one batched call for all iterations);
    a box of a later iteration is dropped when it overlaps a kept box of an earlier iteration by more
    than ``overlap`` (intersection over the smaller box's area, so a box inside another counts); the
    first ``max_boxes`` survivors are kept, in iteration order and, within an iteration, largest first.
    With one step this equals :func:`boxes_from_cam`.

    Args:
        steps: the T per-iteration maps, each (B, 1, H, W) floating in [0, 1], same shape and device.
        threshold, min_area, margin, max_boxes, connectivity, relative: as :func:`boxes_from_cam`,
            applied to each iteration's map.
        overlap: in [0, 1]; the largest intersection-over-smaller-area a later box may have with an
            earlier iteration's box and still be kept.

    Returns:
        ``(boxes, valid)`` as :func:`boxes_from_cam`: (B, K, 4) float32 normalised xyxy and (B, K)
        bool, with the whole-image fallback in slot 0 where nothing was found.

    Raises:
        TypeError, ValueError: as :func:`boxes_from_cam`; ``steps`` empty or of mixed shapes;
            ``overlap`` outside [0, 1].
    """
    if isinstance(steps, Tensor) or not isinstance(steps, Sequence) or len(steps) == 0:
        raise TypeError("steps must be a non-empty list of (B, 1, H, W) maps, as returned by "
                        "ContraCAM(..., return_steps=True)[1].")
    first = check_image_batch(steps[0], "steps[0]", channels=1)
    for t, s in enumerate(steps):
        check_image_batch(s, f"steps[{t}]", channels=1)
        if s.shape != first.shape or s.device != first.device:
            raise ValueError(f"steps[{t}] has shape {tuple(s.shape)} on {s.device}, but steps[0] has "
                             f"{tuple(first.shape)} on {first.device}; all steps must match.")
    check_float(overlap, "overlap", low=0.0, high=1.0)
    check_box_settings(threshold=threshold, min_area=min_area, margin=margin, max_boxes=max_boxes,
                       connectivity=connectivity, relative=relative, check_inputs=check_inputs)
    b, n_steps, k = first.shape[0], len(steps), max_boxes
    boxes, valid = boxes_from_cam(torch.cat(list(steps), dim=0), threshold=threshold, min_area=min_area,
                                  margin=margin, max_boxes=max_boxes, connectivity=connectivity, relative=relative,
                                  check_inputs=check_inputs)
    if n_steps == 1:
        return boxes, valid
    boxes = boxes.view(n_steps, b, k, 4).transpose(0, 1).reshape(b, n_steps * k, 4)
    valid = valid.view(n_steps, b, k).transpose(0, 1).reshape(b, n_steps * k)
    step = torch.arange(n_steps, device=boxes.device).repeat_interleave(k)  # (T*K,) iteration of each slot
    lo = torch.maximum(boxes[:, :, None, :2], boxes[:, None, :, :2])
    hi = torch.minimum(boxes[:, :, None, 2:], boxes[:, None, :, 2:])
    inter = (hi - lo).clamp_min(0).prod(dim=3)  # (B, N, N)
    area = (boxes[..., 2:] - boxes[..., :2]).prod(dim=2)
    smaller = torch.minimum(area[:, :, None], area[:, None, :]).clamp_min(1e-12)
    earlier = step[:, None] < step[None, :]  # [i, j]: slot i comes from an earlier iteration than slot j
    # a later box is dropped if it overlaps any valid earlier box (one pass: boxes of step 0 are never
    # dropped, and a dropped box of step 1 may still drop a box of step 2, erring towards fewer boxes)
    dropped = ((inter / smaller > overlap) & earlier & valid[:, :, None]).any(dim=1)
    keep = valid & ~dropped
    order = torch.argsort((~keep).to(torch.int64), dim=1, stable=True)[:, :k]  # kept first, in rank order
    boxes = boxes.gather(1, order.unsqueeze(2).expand(b, k, 4))
    valid = keep.gather(1, order)
    boxes = boxes * valid.unsqueeze(2)
    found = valid.any(dim=1, keepdim=True)
    boxes[:, 0, :2] = torch.where(found, boxes[:, 0, :2], 0.0)
    boxes[:, 0, 2:] = torch.where(found, boxes[:, 0, 2:], 1.0)
    return boxes, valid


def frame_boxes(boxes: Tensor, valid: Tensor, *, coverage: float = 0.9) -> Tensor:
    """Which valid boxes cover (nearly) the whole frame: found, but no better than no box at all.

    A map that is high almost everywhere (an encoder that has not learnt the objects, a diffuse later
    iteration) gives one component as large as the image; its box, after the margin, is the whole
    frame. Such boxes are valid components, yet a crop "inside" them is an ordinary random crop; count
    them apart from found objects (``objaug cam`` and ``objaug inspect`` do).

    Args:
        boxes: (B, K, 4) normalised xyxy boxes (floating), any device.
        valid: (B, K) bool.
        coverage: area fraction in (0, 1] from which a box counts as the whole frame.

    Returns:
        (B, K) bool on ``boxes``' device: valid and area >= ``coverage``.
    """
    if not isinstance(boxes, Tensor) or not boxes.is_floating_point() or boxes.ndim != 3 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be a floating (B, K, 4) tensor, got "
                         f"{getattr(boxes, 'shape', type(boxes).__name__)}.")
    if not isinstance(valid, Tensor) or valid.dtype != torch.bool or valid.shape != boxes.shape[:2]:
        raise ValueError(f"valid must be a (B, K) bool tensor matching boxes {tuple(boxes.shape[:2])}, got "
                         f"{getattr(valid, 'shape', type(valid).__name__)}.")
    check_float(coverage, "coverage", low=0.0, high=1.0, low_open=True, why=" (an area fraction)")
    area = (boxes[..., 2:] - boxes[..., :2]).clamp_min(0).prod(dim=2)
    return valid & (area >= coverage - 1e-6)


def frame_only(boxes: Tensor, valid: Tensor, *, coverage: float = 0.9) -> Tensor:
    """Which images have boxes, but only whole-frame ones (:func:`frame_boxes`): found, nothing localised.

    Args:
        boxes, valid, coverage: as :func:`frame_boxes`.

    Returns:
        (B,) bool on ``boxes``' device: some valid box, and every valid box covers >= ``coverage``.
    """
    frame = frame_boxes(boxes, valid, coverage=coverage)
    return valid.any(dim=1) & ~(valid & ~frame).any(dim=1)


def boxes_to_pixels(boxes: Tensor, size: int | tuple[int, int], *, integer: bool = False) -> Tensor:
    """Convert normalised ``(x1, y1, x2, y2)`` boxes to pixel-edge coordinates of an image.

    Args:
        boxes: (..., 4) floating tensor of normalised boxes (any leading shape, any device).
        size: the image size, ``S`` for S x S or ``(H, W)``.
        integer: if True, round every coordinate to the nearest pixel edge and return int64
            (so a box from :func:`boxes_from_cam` with ``margin=0`` gives back exactly the
            component's pixel extent: columns ``x1 .. x2 - 1``). Otherwise return float32
            coordinates in pixel units.

    Returns:
        (..., 4) tensor ``(x1 * W, y1 * H, x2 * W, y2 * H)``, float32 or int64, on ``boxes``'
        device; values in ``[0, W]`` / ``[0, H]`` for boxes in [0, 1].

    Raises:
        TypeError: ``boxes`` not a floating tensor.
        ValueError: last dimension not 4, or a bad ``size``.
    """
    if not isinstance(boxes, Tensor) or not boxes.is_floating_point():
        raise TypeError("boxes must be a floating torch.Tensor of normalised (x1, y1, x2, y2) boxes.")
    if boxes.ndim == 0 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must have shape (..., 4), got {tuple(boxes.shape)}.")
    h, w = check_size(size)
    check_bool(integer, "integer")
    scale = torch.tensor([w, h, w, h], dtype=torch.float32, device=boxes.device)
    out = boxes.to(torch.float32) * scale
    return out.round().to(torch.int64) if integer else out

