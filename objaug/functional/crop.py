"""Batched object-aware random-resized-crop kernels (pure functions, no state).

Coordinate convention: boxes are normalised ``(x1, y1, x2, y2)`` in ``[0, 1]`` with the pixel-edge
convention: ``(0, 0, 1, 1)`` is the whole image from the left edge of its first pixel to the right edge
of its last one, so a box maps to exactly that region of an image of any resolution (the semantics of
``align_corners=False``). Crop sizes are continuous (sub-pixel), not rounded to whole pixels as
torchvision does.

Everything here is vectorised over the batch and runs on the input's device without host
synchronisation; random draws use torch's global generators (seed with ``torch.manual_seed``), and the
number of draws does not depend on the data, so a seeded call is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from objaug.validation import check_antialias, check_box_sampling, check_choice

__all__ = [
    "AUTO_ANTIALIAS_FACTOR",
    "apply_crop",
    "box_regions",
    "crop_and_resize",
    "crop_matrix",
    "default_valid",
    "effective_valid",
    "full_image_boxes",
    "grow_small_boxes",
    "object_crop_params",
    "sample_box_index",
    "sample_regions",
    "sample_resized_crop_boxes",
]

#: ``antialias="auto"`` uses the area filter when a crop may be shrunk by more than this factor (from the
#: static shapes: a crop is at most the whole image). Below it aliasing is negligible: at 1.14x (256 -> 224)
#: plain bilinear is within 0.008 mean absolute error (2/255) of torchvision's antialiased resize on 1/f-noise
#: images, the area filter within 0.005; at 3x they are at 0.046 and 0.013.
AUTO_ANTIALIAS_FACTOR = 1.25

# A candidate crop may exceed its region by this relative amount (float round-off, e.g. scale=(1, 1)
# with the region's own aspect ratio) and is then clamped to the region.
_FIT_TOLERANCE = 1e-5


def _size2(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    h, w = size
    return (int(h), int(w))


def full_image_boxes(batch: int, *, device: torch.device | str | None = None,
                     dtype: torch.dtype = torch.float32) -> Tensor:
    """Return ``(batch, 4)`` boxes ``(0, 0, 1, 1)`` covering whole images."""
    # Built with fill kernels, no host-to-device copy.
    return torch.cat([torch.zeros(batch, 2, device=device, dtype=dtype),
                      torch.ones(batch, 2, device=device, dtype=dtype)], dim=1)


def grow_small_boxes(boxes: Tensor, *, min_pixels: int, image_size: tuple[int, int]) -> Tensor:
    """Grow boxes narrower or lower than ``min_pixels`` around their centre, so a tiny box is not zoomed into a blur.

    Per axis, a box side shorter than ``min_pixels`` pixels becomes exactly ``min_pixels`` pixels (at most the
    whole side), centred on the box's centre and then shifted to lie inside the image; longer sides are
    unchanged. Batched element-wise ops, no host synchronisation.

    Args:
        boxes: ``(..., 4)`` normalised xyxy boxes (any float dtype, any device).
        min_pixels: smallest box side in pixels (``0``: unchanged).
        image_size: ``(H, W)`` of the images the boxes refer to, in pixels.

    Returns:
        Boxes of the same shape, dtype and device.

    Example:
        On a 100x200 image, ``min_pixels=32`` turns the 10x2-pixel box ``(0.50, 0.50, 0.55, 0.52)`` into
        ``(0.445, 0.35, 0.605, 0.67)`` (32 pixels each way, same centre).
    """
    if min_pixels <= 0:
        return boxes
    h, w = image_size
    out = []
    for lo, hi, side in ((boxes[..., 0], boxes[..., 2], w), (boxes[..., 1], boxes[..., 3], h)):
        least = min(min_pixels / side, 1.0)
        small = (hi - lo) < least
        start = ((lo + hi) * 0.5 - least * 0.5).clamp(0.0, 1.0 - least)
        out.append((torch.where(small, start, lo), torch.where(small, start + least, hi)))
    (x0, x1), (y0, y1) = out
    return torch.stack([x0, y0, x1, y1], dim=-1)


def default_valid(boxes: Tensor, valid: Tensor | None) -> Tensor:
    """The validity of ``boxes``: ``valid`` as given, or every box valid when it is ``None``.

    The one place of objaug's "no ``valid`` means all boxes are real" rule.

    Args:
        boxes: ``(..., K, 4)`` boxes (only the shape and device are read).
        valid: ``(..., K)`` bool, or ``None``.

    Returns:
        ``valid`` itself, or an all-True bool tensor of shape ``boxes.shape[:-1]`` on the boxes' device.
    """
    if valid is not None:
        return valid
    return torch.ones(boxes.shape[:-1], dtype=torch.bool, device=boxes.device)


def effective_valid(boxes: Tensor, valid: Tensor) -> Tensor:
    """Boxes that can be cropped: flagged valid and with positive width and height.

    Args:
        boxes: ``(B, K, 4)`` normalised xyxy.
        valid: ``(B, K)`` bool.

    Returns:
        ``(B, K)`` bool; a valid box of zero width or height (or NaN coordinates) counts as missing.
    """
    return valid & (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])


def sample_box_index(boxes: Tensor, valid: Tensor, *, mode: str = "uniform",
                     same_on_batch: bool = False) -> tuple[Tensor, Tensor]:
    """Choose one usable box per image, uniformly or with probability proportional to its area.

    Args:
        boxes: ``(B, K, 4)`` normalised xyxy boxes (values of unusable boxes are never read, NaN allowed).
        valid: ``(B, K)`` bool; only boxes that are valid and have positive area (see
            :func:`effective_valid`) can be chosen.
        mode: ``"uniform"`` (each usable box equally likely, as in Mo et al.) or ``"area"`` (probability
            proportional to the box area).
        same_on_batch: share the one uniform draw across the batch.

    Returns:
        ``(index, has_box)``: ``(B,)`` long indices into ``K`` (``-1`` where the image has no usable box)
        and ``(B,)`` bool. One uniform draw per image (inverse CDF), no host synchronisation.
    """
    check_box_sampling(mode, "mode")
    b, k = valid.shape
    device = boxes.device
    u = torch.rand(1 if same_on_batch else b, 1, device=device).expand(b, 1)
    if k == 0:
        return torch.full((b,), -1, dtype=torch.long, device=device), torch.zeros(b, dtype=torch.bool,
                                                                                   device=device)
    ok = effective_valid(boxes, valid)
    if mode == "uniform":
        weights = ok.to(torch.float32)
    else:
        area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
        weights = torch.where(ok, area.float(), torch.zeros((), device=device))
    cdf = weights.cumsum(1)
    total = cdf[:, -1:]
    index = torch.searchsorted(cdf, u * total, right=True).squeeze(1)
    # u * total can round up to total: never step past the last usable box.
    last_ok = (k - 1) - ok.flip(1).to(torch.uint8).argmax(1)
    index = torch.minimum(index, last_ok)
    has_box = total.squeeze(1) > 0
    index = torch.where(has_box, index, torch.full_like(index, -1))
    return index, has_box


def sample_regions(boxes: Tensor, valid: Tensor, *, mode: str = "uniform", p: float = 1.0,
                   same_on_batch: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """Choose the region each image's crop is drawn in: one of its boxes, or the whole image.

    :func:`sample_box_index`, then a Bernoulli(``p``) per image: images that draw it and have a usable
    box use that box, the others the whole image ``(0, 0, 1, 1)``.

    Args:
        boxes: ``(B, K, 4)`` normalised xyxy boxes; ``valid``: ``(B, K)`` bool.
        mode: ``"uniform"`` or ``"area"``, see :func:`sample_box_index`.
        p: probability of using a box for an image that has one.
        same_on_batch: share the random draws across the batch.

    Returns:
        ``(regions, box_index, used)``: ``(B, 4)`` float32 regions, ``(B,)`` long index of the box used
        (``-1`` for the whole image), ``(B,)`` bool.
    """
    b = valid.shape[0]
    index, has_box = sample_box_index(boxes, valid, mode=mode, same_on_batch=same_on_batch)
    u = torch.rand(1 if same_on_batch else b, device=boxes.device).expand(b)
    used = has_box & (u < p)
    index = torch.where(used, index, torch.full_like(index, -1))
    return box_regions(boxes, index), index, used


def box_regions(boxes: Tensor, box_index: Tensor) -> Tensor:
    """Each image's region: its box ``box_index`` or, where the index is ``-1``, the whole frame.

    Args:
        boxes: ``(B, K, 4)`` normalised xyxy boxes, any float dtype and device.
        box_index: ``(B,)`` long indices into ``K``, ``-1`` for the whole frame.

    Returns:
        ``(B, 4)`` float32 regions on the boxes' device.
    """
    b, k = boxes.shape[0], boxes.shape[1]
    full = full_image_boxes(b, device=boxes.device)
    if k == 0:
        return full
    chosen = boxes.gather(1, box_index.clamp_min(0).view(b, 1, 1).expand(b, 1, 4)).squeeze(1).float()
    return torch.where((box_index >= 0)[:, None], chosen, full)


def sample_resized_crop_boxes(
    regions: Tensor,
    image_size: tuple[int, int],
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
    attempts: int = 10,
    center_suppressed: bool = False,
    alpha: float = 0.6,
    same_on_batch: bool = False,
) -> tuple[Tensor, Tensor]:
    """Draw one RandomResizedCrop box inside each region, for the whole batch at once.

    torchvision's ``RandomResizedCrop.get_params`` applied to the region as if it were the image: up to
    ``attempts`` candidates (area fraction uniform in ``scale`` relative to the region's area, aspect
    ratio ``w / h`` in pixels log-uniform in ``ratio``); the first candidate that fits inside the
    region wins, placed uniformly inside it; if none fits, the centre crop of the region clipped to
    ``ratio`` (torchvision's fallback). Vectorised: ``(B, attempts)`` candidates are drawn at once
    and the first fit is taken with ``argmax`` on the fit mask.

    Args:
        regions: ``(B, 4)`` normalised xyxy regions of positive area (chosen boxes, or
            ``(0, 0, 1, 1)`` for the whole image).
        image_size: ``(H, W)`` of the images in pixels (aspect ratios are in pixels).
        scale: ``(min, max)`` area fraction of the region, ``0 < min <= max <= 1``.
        ratio: ``(min, max)`` crop width / height in pixels.
        attempts: candidates per image (torchvision: 10).
        center_suppressed: place the crop with ContrastiveCrop's centre-suppressed distribution
            (Peng et al., CVPR 2022): its offset inside the region along each axis is
            ``Beta(alpha, alpha)`` instead of uniform, so with ``alpha < 1`` crop centres cluster
            near the region's borders rather than its middle. The crop still lies inside the region.
        alpha: the Beta parameter (ContrastiveCrop's configs use 0.6; 1.0 is uniform).
        same_on_batch: share the random draws across the batch (the crops are then the same relative
            to each region).

    Returns:
        ``(crop_boxes, fallback)``: ``(B, 4)`` normalised xyxy crops inside their regions (float32 or the
        regions' dtype if float64) and ``(B,)`` bool, True where no candidate fitted and the centre
        fallback was used.
    """
    b = regions.shape[0]
    device = regions.device
    dtype = torch.float64 if regions.dtype == torch.float64 else torch.float32
    regions = regions.to(dtype)
    h_img, w_img = image_size
    nb = 1 if same_on_batch else b

    rx1, ry1, rx2, ry2 = regions.unbind(-1)
    rw = (rx2 - rx1) * w_img  # region size in pixels
    rh = (ry2 - ry1) * h_img
    area = rw * rh

    u = torch.rand(nb, attempts, 2, device=device, dtype=dtype).expand(b, attempts, 2)
    target = area[:, None] * (scale[0] + (scale[1] - scale[0]) * u[..., 0])
    log_r0, log_r1 = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_r0 + (log_r1 - log_r0) * u[..., 1])
    w = torch.sqrt(target * aspect)
    h = torch.sqrt(target / aspect)
    tol = 1.0 + _FIT_TOLERANCE
    fits = (w > 0) & (h > 0) & (w <= rw[:, None] * tol) & (h <= rh[:, None] * tol)
    first = fits.to(torch.uint8).argmax(1, keepdim=True)
    found = fits.any(1)
    w_c = w.gather(1, first).squeeze(1)
    h_c = h.gather(1, first).squeeze(1)

    # torchvision's fallback: the whole region clipped to the ratio range, centred.
    in_ratio = rw / rh
    too_narrow = in_ratio < ratio[0]
    too_wide = in_ratio > ratio[1]
    w_f = torch.where(too_wide, rh * ratio[1], rw)
    h_f = torch.where(too_narrow, rw / ratio[0], rh)
    w_c = torch.where(found, w_c, w_f).minimum(rw)
    h_c = torch.where(found, h_c, h_f).minimum(rh)

    if center_suppressed:
        conc = torch.full((nb, 2), float(alpha), device=device, dtype=dtype)
        t = torch.distributions.Beta(conc, conc, validate_args=False).sample()
    else:
        t = torch.rand(nb, 2, device=device, dtype=dtype)
    t = torch.where(found[:, None], t.expand(b, 2), torch.full((), 0.5, device=device, dtype=dtype))

    x1 = rx1 + t[:, 0] * (rw - w_c) / w_img
    y1 = ry1 + t[:, 1] * (rh - h_c) / h_img
    x2 = torch.minimum(x1 + w_c / w_img, rx2)
    y2 = torch.minimum(y1 + h_c / h_img, ry2)
    crop = torch.stack([torch.maximum(x1, rx1), torch.maximum(y1, ry1), x2, y2], dim=-1)
    return crop, ~found


def object_crop_params(
    boxes: Tensor,
    valid: Tensor | None,
    image_size: tuple[int, int],
    *,
    box_p: float = 1.0,
    box_sampling: str = "uniform",
    box_index: Tensor | None = None,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
    attempts: int = 10,
    center_suppressed: bool = False,
    alpha: float = 0.6,
    min_box_pixels: int = 0,
    flip_prob: float = 0.0,
    same_on_batch: bool = False,
) -> dict[str, Tensor]:
    """The parameters of one object-aware random resized crop per image: the one recipe of every objaug crop.

    :class:`objaug.augment.crop.ObjectAwareRandomResizedCrop`, :func:`objaug.engine.crop_view` (the multi-view
    pipeline, the Lightly step, the solo-learn adapter) and the per-image Lightly transforms
    (:class:`objaug.integrations.lightly.PerImageObjectAwareCrop`, with ``B = 1``) all draw their crops here,
    so identical settings give identical crops for the same seed. In the spirit of torchvision v2's
    ``_get_params``, in this order:

    1. **Region.** One usable box per image (:func:`sample_box_index`: ``"uniform"`` or ``"area"``-weighted
       over the boxes that are valid and of positive area, the boxes as given), used with probability
       ``box_p`` (:func:`sample_regions`); otherwise, or without a usable box, the whole frame
       ``(0, 0, 1, 1)``. With ``box_index`` the choice is not drawn but taken from it (the views of one
       image share their box).
    2. **Small regions grow** (``min_box_pixels``): only the chosen region, after the choice (so the
       ``"area"`` weights are the objects' own areas): a region side shorter than ``min_box_pixels`` pixels
       becomes that many pixels (at most the whole side), centred on the region's centre and shifted into the
       image (:func:`grow_small_boxes`). The whole frame never changes.
    3. **Crop.** A torchvision RandomResizedCrop box inside the region (:func:`sample_resized_crop_boxes`:
       area fraction in ``scale`` of the region's area, pixel aspect ratio in ``ratio``, ``attempts``
       candidates, then the centre fallback; ContrastiveCrop's placement with ``center_suppressed``).
    4. **Flip.** A horizontal flip per image with probability ``flip_prob``.

    Random draws (torch's global generators on the boxes' device; seed with ``torch.manual_seed``) come in
    that order, and their number depends only on the static settings, never on the data: region
    choice ``2 x (B or 1)`` numbers (none with ``box_index``), the crop ``(B or 1) x (2 attempts + 2)``, the
    flip ``B or 1`` (none when ``flip_prob == 0``). Batched, no host synchronisation, no Python loop over
    images.

    Args:
        boxes: ``(B, K, 4)`` float normalised xyxy boxes (pixel-edge convention), any device; values of
            unusable boxes are never read. ``K = 0``: every region is the whole frame.
        valid: ``(B, K)`` bool, or ``None`` for all boxes valid (:func:`default_valid`).
        image_size: ``(H, W)`` of the images in pixels (aspect ratios and ``min_box_pixels`` are in pixels).
        box_p: probability of cropping inside a box, per image that has one (``1``: always, the paper).
        box_sampling: ``"uniform"`` (the paper) or ``"area"`` (probability proportional to box area).
        box_index: ``(B,)`` long, the box of each image (``-1``: the whole frame), e.g. another view's
            ``params["box_index"]``; ``None`` draws the choice (step 1).
        scale: ``(min, max)`` area fraction of the region, ``0 < min <= max <= 1``.
        ratio: ``(min, max)`` crop width / height in pixels.
        attempts: candidates per image (torchvision: 10).
        center_suppressed: ContrastiveCrop's ``Beta(alpha, alpha)`` placement inside the region.
        alpha: that Beta parameter, > 0.
        min_box_pixels: smallest region side in pixels (step 2); ``0``: regions as chosen.
        flip_prob: probability of a horizontal flip per image, in [0, 1].
        same_on_batch: share every random draw across the batch (Kornia's option).

    Returns:
        A dict of tensors on the boxes' device:

        * ``crop_boxes`` ``(B, 4)`` float32: the crop, normalised xyxy inside its region.
        * ``flip`` ``(B,)`` bool: mirror the crop horizontally.
        * ``box_index`` ``(B,)`` long: the box used, ``-1`` for the whole frame.
        * ``object`` ``(B,)`` bool: True where a box was used.
        * ``regions`` ``(B, 4)`` float32: the region the crop was drawn in (after step 2).
        * ``fallback`` ``(B,)`` bool: True where no candidate fitted and the centre crop was used.

    Example:
        >>> params = object_crop_params(boxes, valid, (256, 256), min_box_pixels=32, flip_prob=0.5)
        >>> views = crop_and_resize(images, params["crop_boxes"], 224, flip=params["flip"])
    """
    b = boxes.shape[0]
    device = boxes.device
    if box_index is None:
        regions, box_index, used = sample_regions(boxes, default_valid(boxes, valid), mode=box_sampling, p=box_p,
                                                   same_on_batch=same_on_batch)
    else:
        regions, used = box_regions(boxes, box_index), box_index >= 0
    regions = grow_small_boxes(regions, min_pixels=min_box_pixels, image_size=image_size)
    crop_boxes, fallback = sample_resized_crop_boxes(
        regions, image_size, scale=scale, ratio=ratio, attempts=attempts, center_suppressed=center_suppressed,
        alpha=alpha, same_on_batch=same_on_batch)
    if flip_prob > 0:
        flip = (torch.rand(1 if same_on_batch else b, device=device) < flip_prob).expand(b)
    else:
        flip = torch.zeros(b, dtype=torch.bool, device=device)
    return {
        "crop_boxes": crop_boxes,
        "flip": flip,
        "box_index": box_index,
        "object": used,
        "regions": regions,
        "fallback": fallback,
    }


def crop_and_resize(
    images: Tensor,
    crop_boxes: Tensor,
    size: int | tuple[int, int],
    *,
    mode: str = "bilinear",
    antialias: bool | str = "auto",
    flip: Tensor | None = None,
) -> Tensor:
    """Crop one box per image and resize it to ``size``, the whole batch in one resampling kernel.

    Args:
        images: ``(B, C, H, W)`` floating tensor (any range), any device.
        crop_boxes: ``(B, 4)`` normalised xyxy boxes (pixel-edge convention: the box maps exactly to
            the output frame, ``align_corners=False`` semantics). Boxes may extend past the image;
            outside samples repeat the border.
        size: output ``(h, w)`` or an int for a square.
        mode: ``"bilinear"``, ``"nearest"`` (label masks) or ``"bicubic"`` (``grid_sample``'s cubic
            convolution, ``A = -0.75``; it may overshoot the input's range).
        antialias: bilinear only (``"nearest"`` and ``"bicubic"`` never prefilter). ``True``:
            ``torchvision.ops.roi_align(aligned=True)`` with adaptive sampling: each output pixel averages
            ``ceil(s_y) * ceil(s_x)`` bilinear samples spread over its footprint, ``s`` being that image's
            downscale factor (an area / box filter, close to OpenCV's ``INTER_AREA``), and is exactly bilinear
            where the crop is upscaled. This removes the aliasing (moire, shimmering thin structures) of plain
            bilinear when a large box is shrunk to 224 px; its cost grows with ``ceil(s)**2`` for downscaled
            crops (and torchvision's CPU ``roi_align`` is single-threaded). It is a little softer than
            torchvision/PIL's antialias (a triangle filter of support ``2 s``); the two agree closely on
            natural images. ``False``: one ``grid_sample`` (bilinear, no prefilter, as Kornia's crops at
            ``align_corners=False``), cheapest. ``"auto"`` (default): ``True`` if a crop can be shrunk by more
            than :data:`AUTO_ANTIALIAS_FACTOR` (1.25), judged from the static shapes (``max(H / h, W / w)``),
            else ``False``; e.g. 512 -> 224 antialiases, 256 -> 224 (at most 1.14x, where aliasing is
            negligible) does not.
        flip: optional ``(B,)`` bool, mirror those outputs horizontally (folded into the sampling grid
            on the ``grid_sample`` path).

    Returns:
        ``(B, C, h, w)`` tensor with the images' dtype and device.
    """
    out_h, out_w = _size2(size)
    b, c, h, w = images.shape
    check_choice(mode, "mode", ("bilinear", "nearest", "bicubic"))
    check_antialias(antialias)
    out_dtype = images.dtype
    work = images
    if images.dtype not in (torch.float32, torch.float64) and not (images.is_cuda and
                                                                  images.dtype == torch.float16):
        work = images.float()
    boxes = crop_boxes.to(device=images.device, dtype=work.dtype)

    if antialias == "auto":
        antialias = max(h / out_h, w / out_w) > AUTO_ANTIALIAS_FACTOR
    if mode == "bilinear" and antialias:
        from torchvision.ops import roi_align

        x1, y1, x2, y2 = boxes.unbind(-1)
        idx = torch.arange(b, device=images.device, dtype=work.dtype)
        rois = torch.stack([idx, x1 * w, y1 * h, x2 * w, y2 * h], dim=1)  # pixel-edge coordinates
        out = roi_align(work, rois, (out_h, out_w), spatial_scale=1.0, sampling_ratio=-1, aligned=True)
        if flip is not None:
            out = torch.where(flip.to(images.device).view(b, 1, 1, 1), out.flip(-1), out)
    else:
        x1, y1, x2, y2 = boxes.unbind(-1)
        if flip is not None:
            f = flip.to(images.device)
            x1, x2 = torch.where(f, x2, x1), torch.where(f, x1, x2)
        jx = (torch.arange(out_w, device=images.device, dtype=work.dtype) + 0.5) / out_w
        jy = (torch.arange(out_h, device=images.device, dtype=work.dtype) + 0.5) / out_h
        gx = 2 * (x1[:, None] + jx[None] * (x2 - x1)[:, None]) - 1  # (B, out_w), normalised [-1, 1]
        gy = 2 * (y1[:, None] + jy[None] * (y2 - y1)[:, None]) - 1  # (B, out_h)
        grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)
        out = F.grid_sample(work, grid, mode=mode, padding_mode="border", align_corners=False)
    return out.to(out_dtype)


def crop_matrix(crop_boxes: Tensor, input_size: tuple[int, int] | tuple[Tensor, Tensor],
                size: int | tuple[int, int], *, flip: Tensor | None = None) -> Tensor:
    """The ``(B, 3, 3)`` matrices of :func:`crop_and_resize` in kornia's pixel convention.

    They map input pixel coordinates (pixel centres at integers, ``(0, 0)`` to ``(W - 1, H - 1)``) to
    output pixel coordinates: ``x' = (x + 0.5 - x1 * W) * w_out / ((x2 - x1) * W) - 0.5``, likewise for
    ``y``, then ``x'' = w_out - 1 - x'`` where ``flip``.

    Args:
        crop_boxes: ``(B, 4)`` normalised xyxy crops, any device.
        input_size: ``(H, W)`` of the cropped images, as ints or 0-d tensors (no host read).
        size: the output ``(h, w)`` or an int.
        flip: optional ``(B,)`` bool, mirrored outputs.

    Returns:
        ``(B, 3, 3)`` float32 (float64 for float64 boxes) on the boxes' device.
    """
    out_h, out_w = _size2(size)
    h, w = input_size
    dtype = torch.float64 if crop_boxes.dtype == torch.float64 else torch.float32
    x1, y1, x2, y2 = crop_boxes.to(dtype).unbind(-1)
    sx = out_w / ((x2 - x1) * w)
    sy = out_h / ((y2 - y1) * h)
    tx = (0.5 - x1 * w) * sx - 0.5
    ty = (0.5 - y1 * h) * sy - 0.5
    if flip is not None:
        f = flip.to(crop_boxes.device)
        sx = torch.where(f, -sx, sx)
        tx = torch.where(f, out_w - 1 - tx, tx)
    zero = torch.zeros_like(sx)
    one = torch.ones_like(sx)
    return torch.stack([sx, zero, tx, zero, sy, ty, zero, zero, one], dim=-1).view(-1, 3, 3)


def apply_crop(x: Tensor, params: Mapping[str, Tensor], size: int | tuple[int, int], *,
               mode: str = "bilinear", antialias: bool | str = "auto") -> Tensor:
    """Replay drawn crop parameters on another tensor (a mask, a second image of any resolution).

    Args:
        x: ``(B, C, H, W)`` floating tensor.
        params: a dict with ``"crop_boxes"`` ``(B, 4)`` and optionally ``"flip"`` ``(B,)`` bool, e.g.
            ``ObjectAwareRandomResizedCrop._params`` or one view's params from ``ObjectAwareAugment``.
        size: output size.
        mode, antialias: as in :func:`crop_and_resize`.
    """
    if "crop_boxes" not in params:
        raise ValueError("params must contain 'crop_boxes' (B, 4); pass the dict an objaug crop returned "
                         f"(crop._params), got keys {sorted(params)}.")
    return crop_and_resize(x, params["crop_boxes"], size, mode=mode, antialias=antialias,
                           flip=params.get("flip"))
