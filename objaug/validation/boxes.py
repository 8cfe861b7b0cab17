"""Checks of boxes: the ``(B, K, 4)`` normalised xyxy layout with its ``(B, K)`` validity, and their values.

:func:`box_flags` and :func:`raise_box_values` split the value check into its device part (two flags,
no synchronisation) and its host part (the message), so that :func:`objaug.validation.values.check_batch_values`
reads them in its one synchronisation.
"""

from __future__ import annotations

import torch
from torch import Tensor

from objaug.validation.scalars import check_bool, check_choice, check_float, check_int

__all__ = ["box_flags", "check_box_layout", "check_box_settings", "check_box_values", "check_boxes",
           "raise_box_values"]


def check_box_settings(
    *,
    threshold: object,
    min_area: object,
    margin: object,
    max_boxes: object,
    connectivity: object = 4,
    relative: object = False,
    check_inputs: object = True,
) -> None:
    """The options of :func:`objaug.boxes.boxes_from_cam` (and of every entry point that passes them on).

    Raises:
        TypeError: an option of the wrong type (see :mod:`objaug.validation.scalars`).
        ValueError: ``threshold`` outside (0, 1], ``min_area`` outside [0, 1), ``margin < 0``,
            ``max_boxes < 1``, ``connectivity`` not 4 or 8.
    """
    check_float(threshold, "threshold", low=0.0, high=1.0, low_open=True,
                why=" (maps are min-max normalised to [0, 1])")
    check_float(min_area, "min_area", low=0.0, high=1.0, high_open=True,
                why=" (a fraction of the image area; the paper uses 0.01)")
    check_float(margin, "margin", low=0.0, why=" (a fraction of the box size)")
    check_int(max_boxes, "max_boxes", low=1)
    check_choice(connectivity, "connectivity", (4, 8))
    check_bool(relative, "relative")
    check_bool(check_inputs, "check_inputs")


def check_box_layout(boxes: object, name: str = "boxes", *, rows: str = "B") -> Tensor:
    """Check that ``boxes`` is a floating ``(rows, K, 4)`` tensor of normalised xyxy boxes.

    Raises:
        TypeError: not a tensor, or not floating point.
        ValueError: not of shape ``(rows, K, 4)``.
    """
    if not isinstance(boxes, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape ({rows}, K, 4), got {type(boxes).__name__}.")
    if boxes.ndim != 3 or boxes.shape[-1] != 4:
        raise ValueError(f"{name} must have shape ({rows}, K, 4) (normalised x1, y1, x2, y2), got "
                         f"{tuple(boxes.shape)}.")
    if not boxes.is_floating_point():
        raise TypeError(f"{name} must be floating point in [0, 1], got {boxes.dtype}.")
    return boxes


def check_boxes(boxes: object, valid: object, *, batch: int, name: str = "boxes") -> tuple[Tensor, Tensor]:
    """Check a (B, K, 4) box tensor and its (B, K) bool validity mask (shapes and dtypes only).

    Raises:
        TypeError: not tensors, boxes not floating, valid not bool.
        ValueError: wrong shapes or batch size.
    """
    if not isinstance(boxes, Tensor) or not isinstance(valid, Tensor):
        raise TypeError(f"{name} and valid must be torch.Tensors, got {type(boxes).__name__}, "
                        f"{type(valid).__name__}.")
    check_box_layout(boxes, name)
    if boxes.shape[0] != batch:
        raise ValueError(f"{name} has batch size {boxes.shape[0]} but the images have {batch}.")
    if valid.dtype != torch.bool or tuple(valid.shape) != tuple(boxes.shape[:2]):
        raise ValueError(f"valid must be a bool tensor of shape (B, K) = {tuple(boxes.shape[:2])}, got "
                         f"{valid.dtype} {tuple(valid.shape)}.")
    return boxes, valid


def box_flags(boxes: Tensor, valid: Tensor) -> Tensor:
    """(2,) float tensor: [some valid box leaves [0, 1] or is NaN, some valid box is reversed] (no sync)."""
    v = valid[..., None]
    out_of_range = ((boxes < 0) | (boxes > 1) | torch.isnan(boxes)) & v
    x1, y1, x2, y2 = boxes.unbind(-1)
    reversed_ = ((x2 < x1) | (y2 < y1)) & valid
    return torch.stack([out_of_range.any(), reversed_.any()]).float()


def raise_box_values(boxes: Tensor, valid: Tensor, bad_range: bool, bad_order: bool, name: str) -> None:
    """The error of :func:`check_box_values` for flags read from :func:`box_flags` (syncs only to fail).

    Args:
        boxes: (B, K, 4) boxes; valid: their (B, K) bool validity.
        bad_range: some valid box leaves [0, 1] or is NaN (the first flag of :func:`box_flags`).
        bad_order: some valid box is reversed (the second flag).
        name: the boxes' argument name in messages.

    Raises:
        ValueError: when a flag is set; the message names the likely cause (pixel units, padding
            written as -1 or NaN, xywh boxes) and the fix.
    """
    if bad_range:
        zero = torch.zeros((), device=boxes.device, dtype=boxes.dtype)
        values = torch.where(valid[..., None].expand_as(boxes), boxes, zero).nan_to_num()
        lo, hi = float(values.min()), float(values.max())
        nan = " and NaN" if bool(torch.isnan(boxes).any()) else ""
        if hi > 1.5:
            fix = " They look like pixel coordinates. Divide pixel boxes by (W, H, W, H)"
        else:
            fix = " Clamp them to [0, 1] (torchvision.ops.clip_boxes_to_image before normalising)"
        raise ValueError(
            f"{name} must be normalised (x1, y1, x2, y2) in [0, 1]; valid boxes hold values from "
            f"{lo:.4g} to {hi:.4g}{nan}.{fix}; mark padding slots invalid (valid=False) instead of filling "
            "them with -1 or NaN."
        )
    if bad_order:
        raise ValueError(
            f"{name} must satisfy x1 <= x2 and y1 <= y2 (xyxy format); some valid boxes are reversed. "
            f"Convert xywh/cxcywh boxes with torchvision.ops.box_convert(boxes, in_fmt, 'xyxy')."
        )


def check_box_values(boxes: Tensor, valid: Tensor, name: str = "boxes") -> None:
    """Raise ValueError if a valid box leaves [0, 1] or has x2 < x1 / y2 < y1 (one device sync).

    Invalid (padding) entries are ignored, whatever they hold.
    """
    bad_range, bad_order = box_flags(boxes, valid).tolist()
    raise_box_values(boxes, valid, bool(bad_range), bool(bad_order), name)
