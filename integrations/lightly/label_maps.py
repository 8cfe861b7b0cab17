"""Objects as an integer label map: the segmentation DetCon pools over.

DetCon (Hénaff et al., 2021; Lightly's ``DetConSLoss`` / ``DetConBLoss``) pools the feature map over the
regions of an integer mask that is shared by both views. :func:`object_label_map` turns objaug's objects
(boxes in its normalised xyxy convention, optionally with a soft mask such as a ContraCAM map) into such a
mask. The rule, for every pixel (its centre ``((j + 0.5) / W, (i + 0.5) / H)``):

* it belongs to box ``k`` when its centre lies in ``[x1, x2) x [y1, y2)`` and slot ``k`` is valid; with a
  soft mask, additionally when the mask is ``>= threshold`` there (the box's object, not its corners);
* it gets label ``k + 1`` of the **smallest** box it belongs to (so an object inside a larger box keeps its
  own region; equal areas: the lower slot wins), and label ``0`` (background) if it belongs to none.

So labels are ``0 .. K`` (``K`` box slots; pass ``num_labels = K + 1`` to Lightly's ``pool_masked``), the
same slot gives the same label in every view, and invalid slots get no pixel.
"""

from __future__ import annotations

import torch
from torch import Tensor

from objaug.validation import check_box_layout, check_threshold

__all__ = ["object_label_map"]


def object_label_map(
    boxes: Tensor,
    valid: Tensor | None,
    size: tuple[int, int],
    *,
    masks: Tensor | None = None,
    threshold: float = 0.5,
) -> Tensor:
    """Per-object integer labels (background 0, the object of slot ``k`` labelled ``k + 1``).

    Args:
        boxes: ``(B, K, 4)`` (or one image's ``(K, 4)``) float boxes, normalised ``(x1, y1, x2, y2)`` in
            ``[0, 1]``.
        valid: ``(B, K)`` (or ``(K,)``) bool, or ``None`` (all slots valid).
        size: ``(H, W)`` of the label map in pixels.
        masks: optional ``(B, 1, H, W)`` (or ``(1, H, W)``) soft masks in ``[0, 1]`` at ``size`` (e.g.
            ContraCAM maps or a store's masks resized to the image): a box's region is its pixels whose
            mask value is ``>= threshold``.
        threshold: mask threshold in ``(0, 1]``; ignored without ``masks``.

    Returns:
        ``(B, 1, H, W)`` (or ``(1, H, W)`` for one image) ``int64`` labels in ``[0, K]``, on ``boxes``'
        device.

    Raises:
        ValueError: boxes, valid or masks of the wrong shape, or a threshold outside ``(0, 1]``.
    """
    single = isinstance(boxes, Tensor) and boxes.ndim == 2
    if single:
        boxes = boxes[None]
        valid = None if valid is None else valid[None]
        masks = None if masks is None else masks[None]
    boxes = check_box_layout(boxes, "boxes", rows="B")
    b, k = boxes.shape[:2]
    if valid is None:
        valid = torch.ones(b, k, dtype=torch.bool, device=boxes.device)
    if valid.dtype != torch.bool or tuple(valid.shape) != (b, k):
        raise ValueError(f"valid must be a bool tensor of shape {(b, k)} (one flag per box), got "
                         f"{valid.dtype} {tuple(valid.shape)}.")
    if len(size) != 2 or min(int(size[0]), int(size[1])) < 1:
        raise ValueError(f"size must be (H, W) with positive sides, got {size!r}.")
    h, w = int(size[0]), int(size[1])
    threshold = check_threshold(threshold)
    ys = (torch.arange(h, device=boxes.device, dtype=torch.float32) + 0.5) / h
    xs = (torch.arange(w, device=boxes.device, dtype=torch.float32) + 0.5) / w
    x1, y1, x2, y2 = (boxes.float()[..., i, None, None] for i in range(4))  # (B, K, 1, 1)
    inside = (xs >= x1) & (xs < x2) & (ys[:, None] >= y1) & (ys[:, None] < y2)  # (B, K, H, W)
    inside &= valid[..., None, None].to(boxes.device)
    if masks is not None:
        if masks.ndim != 4 or masks.shape[0] != b or masks.shape[1] != 1 or tuple(masks.shape[-2:]) != (h, w):
            raise ValueError(f"masks must have shape {(b, 1, h, w)} (one soft mask per image at the label map's "
                             f"size), got {tuple(masks.shape)}. Resize the masks to the image first.")
        inside &= masks.to(boxes.device) >= threshold
    area = ((x2 - x1) * (y2 - y1)).expand(b, k, h, w)
    ranked = torch.where(inside, area, torch.full_like(area, float("inf")))
    smallest = ranked.argmin(dim=1, keepdim=True)  # (B, 1, H, W): the lowest slot among equal areas
    labels = torch.where(inside.any(dim=1, keepdim=True), smallest + 1, torch.zeros_like(smallest))
    return labels[0] if single else labels
