"""The objects of a batch, as one value passed between layers, and how the library finds them.

:class:`Objects` holds a batch's boxes ``(B, K, 4)`` (normalised xyxy), their validity ``(B, K)``, optional soft
masks ``(B, 1, h, w)`` and where they came from. Augmentations take it; providers return it.

:func:`find_objects` is the library's definition of "the objects ContraCAM finds", used by every entry point
(``ObjectAwareAugment(cam=...)``, ``objaug cam``, ``objaug precompute``, the Lightly step, the solo-learn
adapter):

* boxes: :func:`objaug.boxes.boxes_from_steps` of ContraCAM's per-iteration maps (each iteration's own objects;
  boxes of the merged map would join neighbouring objects), or :func:`~objaug.boxes.boxes_from_cam` of a single
  map;
* masks: ContraCAM's output map; with ``mask_iters=k``, the output ContraCAM(iters=k) gives (the first k
  iterations of the same call).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from objaug.boxes import boxes_from_cam, boxes_from_steps
from objaug.config import BoxConfig
from objaug.functional.crop import default_valid

__all__ = ["Objects", "ObjectOrigin", "boxes_of_maps", "find_objects"]

ObjectOrigin = Literal["given", "store", "cam", "cache", "none"]


@dataclass(frozen=True)
class Objects:
    """The objects of a batch of B images.

    Attributes:
        boxes: ``(B, K, 4)`` float32 normalised ``(x1, y1, x2, y2)`` in [0, 1] (``K`` may be 0).
        valid: ``(B, K)`` bool, True for the slots that hold an object.
        masks: ``(B, 1, h, w)`` float soft masks in [0, 1] of the full frames (any ``h, w``), or ``None``.
        origin: where they came from: ``"given"`` (passed with the batch), ``"store"``, ``"cam"`` (computed
            for this batch), ``"cache"`` (a CAM of an earlier batch, by dataset index) or ``"none"`` (no objects:
            whole-frame crops).
    """

    boxes: Tensor
    valid: Tensor
    masks: Tensor | None = None
    origin: ObjectOrigin = "given"

    @classmethod
    def from_parts(cls, boxes: Tensor, valid: Tensor | None = None, masks: Tensor | None = None, *,
                   origin: ObjectOrigin = "given") -> Objects:
        """Objects from loose tensors; ``valid=None`` means every box is valid
        (:func:`objaug.functional.crop.default_valid`)."""
        return cls(boxes, default_valid(boxes, valid), masks, origin)

    @classmethod
    def none(cls, batch: int, device: torch.device | str | None = None, *, masks: Tensor | None = None) -> Objects:
        """No boxes (``K = 0``): every crop is a whole-frame crop; ``masks`` may still be given (for mixup)."""
        boxes = torch.zeros(batch, 0, 4, device=device)
        valid = torch.zeros(batch, 0, dtype=torch.bool, device=device)
        return cls(boxes, valid, masks, "none")

    @property
    def batch_size(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def max_boxes(self) -> int:
        return int(self.boxes.shape[1])

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> Objects:
        """The same objects on ``device`` (boxes float32, valid bool, masks in their dtype)."""
        masks = None if self.masks is None else self.masks.to(device, non_blocking=non_blocking)
        return replace(self, boxes=self.boxes.to(device, torch.float32, non_blocking=non_blocking),
                       valid=self.valid.to(device, non_blocking=non_blocking).bool(), masks=masks)

    def with_masks(self, masks: Tensor | None) -> Objects:
        return replace(self, masks=masks)

    def masks_at(self, size: tuple[int, int], dtype: torch.dtype = torch.float32) -> Tensor | None:
        """The masks resized (bilinear) to ``size`` and cast to ``dtype``, clamped to [0, 1]; ``None`` without masks."""
        if self.masks is None:
            return None
        m = self.masks.to(dtype)
        if tuple(m.shape[-2:]) != tuple(size):
            m = F.interpolate(m.float(), size=size, mode="bilinear", align_corners=False).clamp_(0.0, 1.0).to(dtype)
        return m


def boxes_of_maps(maps: Tensor | Sequence[Tensor], config: BoxConfig | None = None) -> tuple[Tensor, Tensor]:
    """Boxes of CAM maps: :func:`~objaug.boxes.boxes_from_cam` of one map, or per iteration of a refined CAM.

    Args:
        maps: ``(B, 1, h, w)`` maps in [0, 1], or the list of a refined ContraCAM's per-iteration maps
            (``return_steps=True``): then :func:`~objaug.boxes.boxes_from_steps`.
        config: the box settings (default :class:`~objaug.config.BoxConfig`); its ``map_size`` searches the
            boxes on an area-downsampled copy of larger maps.

    Returns:
        ``(boxes, valid)``: ``(B, K, 4)`` float32 normalised xyxy, ``(B, K)`` bool.
    """
    config = config if config is not None else BoxConfig()
    steps = [maps] if isinstance(maps, Tensor) else list(maps)
    small = []
    for m in steps:
        m = m.float()
        if config.map_size is not None and max(m.shape[-2:]) > config.map_size:
            m = F.interpolate(m, size=(config.map_size, config.map_size), mode="area")
        small.append(m)
    if len(small) == 1:  # with one map boxes_from_steps equals boxes_from_cam
        return boxes_from_cam(small[0], check_inputs=False, **config.cam_kwargs())
    return boxes_from_steps(small, check_inputs=False, **config.steps_kwargs())


def find_objects(cam: Callable[..., Any], images: Tensor, boxes: BoxConfig | None = None, *,
                 negatives: Tensor | None = None, mask_iters: int | None = None) -> Objects:
    """The objects ContraCAM finds in a batch: the library's definition, shared by every entry point.

    Args:
        cam: a :class:`objaug.contracam.ContraCAM`, or any ``cam(images, negatives=None) -> (B, 1, h, w)`` maps
            in [0, 1] (then boxes and masks both come from its one map).
        images: ``(B, C, H, W)`` images normalised as the CAM's model expects, on its device.
        boxes: the box settings (default :class:`~objaug.config.BoxConfig`).
        negatives: extra ``(N, D)`` CAM negatives.
        mask_iters: masks from the first ``mask_iters`` iterations (ContraCAM only; ``None``: all of them).

    Returns:
        :class:`Objects` with ``origin="cam"``: boxes of every iteration's own map, masks ``(B, 1, H, W)`` float32
        in [0, 1] (the output map).
    """
    from objaug.contracam import ContraCAM

    if not isinstance(cam, ContraCAM):
        if mask_iters is not None:
            raise ValueError("mask_iters needs an objaug.ContraCAM (its per-iteration maps); got "
                             f"{type(cam).__name__}. Drop mask_iters.")
        maps = cam(images, negatives=negatives).float()
        found, valid = boxes_of_maps(maps, boxes)
        return Objects(found, valid, maps, "cam")
    maps, steps = cam(images, negatives, return_steps=True)
    found, valid = boxes_of_maps(steps, boxes)
    if mask_iters is not None and mask_iters < len(steps):
        maps = cam.output_of_steps(steps[:mask_iters], images)
    return Objects(found, valid, maps, "cam")
