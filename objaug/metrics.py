"""Localisation metrics: per-image mask IoU, map contrast, CorLoc and best-box IoU, and centre-box baselines.

Everything is batched and stays on the inputs' device; results are per image so that callers
can average, filter or bootstrap them. Boxes are normalised ``(x1, y1, x2, y2)`` in [0, 1]
(the format of :func:`objaug.boxes.boxes_from_cam`), given as (B, K, 4) floating tensors with
a (B, K) bool ``valid`` mask.

Conventions versus the reference evaluation (alinlab/object-aware-contrastive,
``utils/box_utils.py``): mask IoU is per image with "both empty" scored 1.0, as there; the
prediction is binarised with ``>= threshold`` (the reference uses ``> 0.5``; objaug uses ``>=``
everywhere, so ``mask_iou(cam, gt)`` equals ``mask_iou(threshold_masks(cam), gt)``; the two
differ only on pixels exactly at the threshold). :func:`best_box_iou` is the reference's box
mIoU per image (best predicted box per ground-truth box, averaged over the ground-truth boxes).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from objaug.validation import (
    check_bool,
    check_boxes,
    check_float,
    check_image_batch,
    check_int,
    check_same_device,
    check_size,
)

__all__ = [
    "best_box_iou",
    "box_corloc",
    "center_box_prior",
    "center_boxes",
    "map_contrast",
    "mask_iou",
    "pairwise_box_iou",
]


def _foreground(target: Tensor) -> Tensor:
    """A checked ground-truth mask as bool: itself if bool, else ``target >= 0.5``."""
    return target if target.dtype == torch.bool else target >= 0.5


def _check_against_target(pred: Tensor, target: Tensor, name: str) -> None:
    """Check a (B, 1, H, W) floating ``pred`` (called ``name``) against its ground-truth ``target``: bool, or
    floating with foreground ``>= 0.5``, of the same shape and device."""
    check_image_batch(pred, name, channels=1)
    if not isinstance(target, Tensor):
        raise TypeError(f"target must be a torch.Tensor of shape (B, 1, H, W), got {type(target).__name__}.")
    if target.dtype != torch.bool and not target.is_floating_point():
        raise TypeError(f"target must be bool or floating (foreground >= 0.5), got {target.dtype}.")
    if target.shape != pred.shape:
        raise ValueError(
            f"{name} and target must have the same shape (B, 1, H, W), got {tuple(pred.shape)} and "
            f"{tuple(target.shape)}. Resize {name} with objaug.masks.resize_masks({name}, target.shape[-2:])."
        )
    check_same_device([(name, pred), ("target", target)])


def mask_iou(pred: Tensor, target: Tensor, *, threshold: float = 0.5) -> Tensor:
    """Per-image intersection over union of predicted and ground-truth masks.

    Args:
        pred: (B, 1, H, W) floating tensor, soft or binary predicted masks (e.g. ContraCAM
            maps in [0, 1]); a pixel is predicted foreground if ``pred >= threshold``.
        target: (B, 1, H, W) ground-truth masks on the same device: bool, or floating with
            foreground ``target >= 0.5``. Resize predictions to the target's size first
            (:func:`objaug.masks.resize_masks`).
        threshold: binarisation threshold for ``pred``, in (0, 1].

    Returns:
        (B,) float32 tensor on the inputs' device, values in [0, 1]: ``|P & T| / |P | T|``,
        and 1.0 where both masks are empty (the paper's evaluation convention). The paper's
        localisation score is the mean of this over a dataset.

    Raises:
        TypeError: ``pred`` not floating, ``target`` neither bool nor floating.
        ValueError: shapes differ, devices differ, or ``threshold`` outside (0, 1].
    """
    _check_against_target(pred, target, "pred")
    t = check_float(threshold, "threshold", low=0.0, high=1.0, low_open=True)
    p = pred >= t
    g = _foreground(target)
    inter = (p & g).sum(dim=(1, 2, 3)).to(torch.float32)
    union = (p | g).sum(dim=(1, 2, 3)).to(torch.float32)
    return torch.where(union > 0, inter / union.clamp(min=1), 1.0)


def map_contrast(maps: Tensor, target: Tensor) -> Tensor:
    """Per-image contrast of a map between the objects and the background (threshold-free).

    ``mean(maps on object pixels) - mean(maps on background pixels)``: positive when the maps favour the
    objects, negative when they favour the background, 0 for a constant map. A quick check of whether a
    CAM (and so the boxes and masks made from it) points at objects at all: an encoder that has learned
    backgrounds (a barely trained or background-biased one) gives maps near or below 0 here even when
    its IoU looks no worse than a centre box's.

    Args:
        maps: (B, 1, H, W) floating maps in [0, 1] (e.g. ContraCAM's), same size as ``target``.
        target: (B, 1, H, W) ground-truth object masks on the same device: bool, or floating with
            foreground ``target >= 0.5``.

    Returns:
        (B,) float32 tensor on the inputs' device, in [-1, 1] for maps in [0, 1]; NaN for an image whose
        mask is all object or all background (the contrast is undefined there; average with
        ``nanmean``).

    Raises:
        TypeError: ``maps`` not floating, ``target`` neither bool nor floating.
        ValueError: shapes or devices differ.
    """
    _check_against_target(maps, target, "maps")
    m = maps.float()
    fg = _foreground(target).float()
    n_fg = fg.sum(dim=(1, 2, 3))
    n_bg = fg[0].numel() - n_fg
    on_sum = (m * fg).sum(dim=(1, 2, 3))
    on = on_sum / n_fg
    off = (m.sum(dim=(1, 2, 3)) - on_sum) / n_bg
    return torch.where((n_fg > 0) & (n_bg > 0), on - off, torch.nan)


def pairwise_box_iou(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """IoU of every box of ``boxes_a`` with every box of ``boxes_b``, image by image.

    The batched form of ``torchvision.ops.box_iou``.

    Args:
        boxes_a: (B, K, 4) floating ``(x1, y1, x2, y2)`` boxes (any consistent units).
        boxes_b: (B, G, 4) floating boxes on the same device.

    Returns:
        (B, K, G) float32 tensor in [0, 1]. Boxes with ``x2 < x1`` or ``y2 < y1`` count as
        empty; two empty boxes have IoU 0 (torchvision gives NaN there).

    Raises:
        TypeError, ValueError: not floating (B, *, 4) tensors with one batch size and device.
    """
    for name, x in (("boxes_a", boxes_a), ("boxes_b", boxes_b)):
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise TypeError(f"{name} must be a floating torch.Tensor of shape (B, K, 4).")
        if x.ndim != 3 or x.shape[-1] != 4:
            raise ValueError(f"{name} must have shape (B, K, 4), got {tuple(x.shape)}.")
    if boxes_a.shape[0] != boxes_b.shape[0]:
        raise ValueError(f"boxes_a and boxes_b must have the same batch size, got {boxes_a.shape[0]} "
                         f"and {boxes_b.shape[0]}.")
    check_same_device([("boxes_a", boxes_a), ("boxes_b", boxes_b)])
    return _pairwise_iou(boxes_a, boxes_b)


def _pairwise_iou(a: Tensor, b: Tensor) -> Tensor:
    dtype = torch.promote_types(torch.promote_types(a.dtype, b.dtype), torch.float32)
    a, b = a.to(dtype), b.to(dtype)
    area_a = (a[..., 2] - a[..., 0]).clamp(min=0) * (a[..., 3] - a[..., 1]).clamp(min=0)  # (B, K)
    area_b = (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)  # (B, G)
    lt = torch.maximum(a[:, :, None, :2], b[:, None, :, :2])
    rb = torch.minimum(a[:, :, None, 2:], b[:, None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, :, None] + area_b[:, None, :] - inter
    iou = torch.where(union > 0, inter / torch.where(union > 0, union, 1.0), 0.0)
    return iou.to(torch.float32)


def _check_pred_gt(pred_boxes: Tensor, pred_valid: Tensor, gt_boxes: Tensor, gt_valid: Tensor) -> None:
    if not isinstance(pred_boxes, Tensor):
        raise TypeError(f"pred_boxes must be a torch.Tensor of shape (B, K, 4), got {type(pred_boxes).__name__}.")
    batch = pred_boxes.shape[0] if pred_boxes.ndim else 0
    check_boxes(pred_boxes, pred_valid, batch=batch, name="pred_boxes")
    check_boxes(gt_boxes, gt_valid, batch=batch, name="gt_boxes")
    check_same_device(
        [("pred_boxes", pred_boxes), ("pred_valid", pred_valid), ("gt_boxes", gt_boxes), ("gt_valid", gt_valid)]
    )


def box_corloc(
    pred_boxes: Tensor,
    pred_valid: Tensor,
    gt_boxes: Tensor,
    gt_valid: Tensor,
    *,
    iou: float = 0.5,
    use_fallback: bool = True,
) -> Tensor:
    """Correct localisation (CorLoc) per image: does the top predicted box hit an object?

    An image counts as localised if its slot-0 predicted box (the top-scoring one; the
    largest component for :func:`objaug.boxes.boxes_from_cam`) has IoU ``>= iou`` with at
    least one valid ground-truth box. CorLoc is the mean of this over a dataset.

    Args:
        pred_boxes: (B, K, 4) floating normalised boxes, slot 0 the top-scoring one.
        pred_valid: (B, K) bool.
        gt_boxes: (B, G, 4) floating normalised ground-truth boxes (same device).
        gt_valid: (B, G) bool; padding slots False.
        iou: the IoU needed, in (0, 1]; 0.5 is the usual CorLoc criterion.
        use_fallback: if True (default), slot 0 is scored even where ``pred_valid[:, 0]`` is
            False, i.e. the whole-image fallback box of ``boxes_from_cam`` is the prediction
            for an image where nothing was found (CorLoc scores one box per image). If False,
            such images count as not localised.

    Returns:
        (B,) bool tensor on the inputs' device. Images without a valid ground-truth box are
        False (mask them out with ``gt_valid.any(1)`` before averaging).

    Raises:
        TypeError, ValueError: bad shapes, dtypes, batch sizes or devices, or ``iou`` outside
            (0, 1].
    """
    _check_pred_gt(pred_boxes, pred_valid, gt_boxes, gt_valid)
    t = check_float(iou, "iou", low=0.0, high=1.0, low_open=True)
    check_bool(use_fallback, "use_fallback")
    if pred_boxes.shape[1] == 0:
        return torch.zeros(pred_boxes.shape[0], dtype=torch.bool, device=pred_boxes.device)
    ious = _pairwise_iou(pred_boxes[:, :1], gt_boxes)[:, 0]  # (B, G)
    hit = ((ious >= t) & gt_valid).any(dim=1)
    return hit if use_fallback else hit & pred_valid[:, 0]


def best_box_iou(
    pred_boxes: Tensor,
    pred_valid: Tensor,
    gt_boxes: Tensor,
    gt_valid: Tensor,
    *,
    use_fallback: bool = False,
) -> Tensor:
    """Per image, the mean over ground-truth boxes of the best IoU with any predicted box.

    This is the reference code's box mIoU (``_compute_box_iou``) per image: every valid
    ground-truth box is matched with its best valid predicted box (several may match the
    same one), and the IoUs are averaged over the ground-truth boxes.

    Args:
        pred_boxes: (B, K, 4) floating normalised boxes.
        pred_valid: (B, K) bool.
        gt_boxes: (B, G, 4) floating normalised ground-truth boxes (same device).
        gt_valid: (B, G) bool.
        use_fallback: if True, an image with no valid predicted box is scored with its slot-0
            box (the whole-image fallback of ``boxes_from_cam``). Default False: such an image
            scores 0, as in the reference.

    Returns:
        (B,) float32 tensor on the inputs' device, values in [0, 1]; NaN for images with no
        valid ground-truth box (the reference skips them: average with ``nanmean``).

    Raises:
        TypeError, ValueError: bad shapes, dtypes, batch sizes or devices.
    """
    _check_pred_gt(pred_boxes, pred_valid, gt_boxes, gt_valid)
    check_bool(use_fallback, "use_fallback")
    b, k = pred_valid.shape
    usable = pred_valid
    if use_fallback and k > 0:
        usable = pred_valid.clone()
        usable[:, 0] |= ~pred_valid.any(dim=1)
    if k == 0:
        best = gt_boxes.new_zeros(gt_valid.shape, dtype=torch.float32)
    else:
        ious = _pairwise_iou(pred_boxes, gt_boxes).masked_fill(~usable[:, :, None], 0.0)  # (B, K, G)
        best = ious.amax(dim=1)  # (B, G)
    n_gt = gt_valid.sum(dim=1)
    total = (best * gt_valid).sum(dim=1)
    return torch.where(n_gt > 0, total / n_gt.clamp(min=1), torch.nan).to(torch.float32)


def center_boxes(
    batch: int, *, fraction: float = 0.5, device: torch.device | str | None = None
) -> tuple[Tensor, Tensor]:
    """The centre-box baseline as boxes: one centred box covering ``fraction`` of the image.

    The box has the image's aspect ratio, side ``sqrt(fraction)`` of the image's width and
    height: ``[(1 - s) / 2, (1 - s) / 2, (1 + s) / 2, (1 + s) / 2]`` with ``s = sqrt(fraction)``.
    See :func:`center_box_prior` for the choice of the default.

    Args:
        batch: B, the number of images (>= 0).
        fraction: the box's share of the image area, in (0, 1].
        device: where to create the tensors.

    Returns:
        ``(boxes, valid)``: (B, 1, 4) float32 normalised boxes and (B, 1) bool (all True), in
        the format of :func:`objaug.boxes.boxes_from_cam`.
    """
    check_int(batch, "batch", low=0)
    s = math.sqrt(check_float(fraction, "fraction", low=0.0, high=1.0, low_open=True))
    lo, hi = (1.0 - s) / 2, (1.0 + s) / 2
    box = torch.tensor([lo, lo, hi, hi], dtype=torch.float32, device=device)
    return box.expand(batch, 1, 4).clone(), torch.ones(batch, 1, dtype=torch.bool, device=device)


def center_box_prior(
    batch: int,
    size: int | tuple[int, int],
    *,
    fraction: float = 0.5,
    device: torch.device | str | None = None,
) -> Tensor:
    """The centre-box baseline mask: 1 inside a centred box covering ``fraction`` of the image.

    The box has the image's aspect ratio: ``round(sqrt(fraction) * H)`` rows by
    ``round(sqrt(fraction) * W)`` columns, centred (when the leftover is odd, the extra
    background row/column goes to the bottom/right). Score it with :func:`mask_iou` to get the
    "centre prior" baseline that a CAM should beat.

    Default ``fraction=0.5`` (sides ``1/sqrt(2)``, about 71 % of the image's): for a centred
    object of area ``o`` the IoU of a centred box of area ``a`` is ``min(a, o) / max(a, o)``,
    and over the object sizes typical of object-centric benchmarks (CUB, Flowers, ImageNet-9:
    roughly 25 % to 100 % of the image) the worst case of that ratio is best at the geometric
    mean ``a = sqrt(0.25 * 1) = 0.5``.

    Args:
        batch: B, the number of images (>= 0).
        size: ``S`` for S x S or ``(H, W)``.
        fraction: the box's share of the image area, in (0, 1].
        device: where to create the mask.

    Returns:
        (B, 1, H, W) float32 tensor with values in {0, 1} (the same mask for every image).

    Raises:
        ValueError: bad ``batch``, ``size`` or ``fraction``.
    """
    check_int(batch, "batch", low=0)
    h, w = check_size(size)
    s = math.sqrt(check_float(fraction, "fraction", low=0.0, high=1.0, low_open=True))
    rows, cols = round(s * h), round(s * w)
    top, left = (h - rows) // 2, (w - cols) // 2
    mask = torch.zeros(1, 1, h, w, dtype=torch.float32, device=device)
    mask[..., top : top + rows, left : left + cols] = 1.0
    return mask.expand(batch, 1, h, w).clone()
