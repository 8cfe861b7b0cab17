"""The per-view crop at training time: each image's region and the RandomResizedCrop + flip inside it.

* :func:`choose_regions`: the per-image region (one of its boxes, or the whole frame);
* :func:`crop_view`: one view's RandomResizedCrop + flip inside the regions, for the whole batch.

Used by :class:`objaug.augment.pipeline.ObjectAwareAugment` and the solo-learn adapter. Where the objects come
from is :mod:`objaug.provider`'s business. Nothing here syncs with the host or loops over samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from objaug.functional.crop import (
    crop_and_resize,
    full_image_boxes,
    object_crop_params,
    sample_regions,
)

__all__ = ["CroppedView", "choose_regions", "crop_view"]


# ---------------------------------------------------------------------- regions and views
def choose_regions(boxes: Tensor | None, valid: Tensor | None, batch: int, device: torch.device, *,
                   p: float = 1.0, mode: str = "uniform") -> tuple[Tensor, Tensor]:
    """Each image's crop region: one of its boxes with probability ``p``, else the whole frame.

    :func:`objaug.functional.crop.sample_regions`; without boxes (``None`` or ``K = 0``) no random number
    is drawn and every region is the whole frame.

    Returns:
        ``(regions, used)``: ``(B, 4)`` float32 normalised xyxy, ``(B,)`` bool (cropped in a box).
    """
    if boxes is None or valid is None or boxes.shape[1] == 0:
        return full_image_boxes(batch, device=device), torch.zeros(batch, dtype=torch.bool, device=device)
    regions, _, used = sample_regions(boxes, valid, mode=mode, p=p)
    return regions, used


@dataclass
class CroppedView:
    """One view cut by :func:`crop_view`: ``image`` (B, C, h, w), ``masks`` (B, 1, h, w) or None,
    ``crop_boxes`` (B, 4) normalised xyxy, ``fallback`` (B,) bool, ``flip`` (B,) bool."""

    image: Tensor
    masks: Tensor | None
    crop_boxes: Tensor
    fallback: Tensor
    flip: Tensor


def crop_view(images: Tensor, regions: Tensor, size: tuple[int, int], *, scale: tuple[float, float],
              ratio: tuple[float, float], flip_prob: float, masks: Tensor | None = None, attempts: int = 10,
              center_suppressed: bool = False, alpha: float = 0.6, antialias: bool | str = "auto",
              min_box_pixels: int = 0) -> CroppedView:
    """A RandomResizedCrop inside each image's region, plus a horizontal flip, for the whole batch.

    :func:`objaug.functional.crop.object_crop_params` with the regions as each image's chosen box (steps 2-4:
    ``min_box_pixels`` growth, the crop, the flip), then :func:`objaug.functional.crop.crop_and_resize`.

    Args:
        images: ``(B, C, H, W)`` frames; ``regions``: ``(B, 4)`` normalised xyxy (e.g. from :func:`choose_regions`).
        size: the view's ``(h, w)``.
        scale, ratio, attempts, center_suppressed, alpha, min_box_pixels, flip_prob: see
            :func:`objaug.functional.crop.object_crop_params` (``scale`` relative to the region).
        masks: ``(B, 1, H', W')`` soft masks of the frames, cropped and flipped with the images.
        antialias: see :func:`objaug.functional.crop.crop_and_resize`.

    Returns:
        The :class:`CroppedView`.
    """
    b = images.shape[0]
    hw = (int(images.shape[-2]), int(images.shape[-1]))
    params = object_crop_params(regions[:, None], None, hw, box_index=regions.new_zeros(b, dtype=torch.long),
                                scale=scale, ratio=ratio, attempts=attempts, center_suppressed=center_suppressed,
                                alpha=alpha, min_box_pixels=min_box_pixels, flip_prob=flip_prob)
    crop_boxes, flip = params["crop_boxes"], params["flip"]
    out = crop_and_resize(images, crop_boxes, size, antialias=antialias, flip=flip)
    view_masks = None
    if masks is not None:
        view_masks = crop_and_resize(masks, crop_boxes, size, antialias=antialias, flip=flip)
    return CroppedView(out, view_masks, crop_boxes, params["fallback"], flip)
