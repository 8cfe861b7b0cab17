"""Attach each image's objects as a ``tv_tensors.Mask`` of per-object labels (for Lightly's DetCon).

Lightly's ``DetConSTransform`` (and any ``MultiViewTransformV2``) takes the image together with an integer
segmentation mask and crops both alike, so the two views share the regions DetCon's loss pools over.
:class:`ObjectMaskDataset` supplies that mask from objaug's objects: an :class:`objaug.store.ObjectStore`,
``objaug cam``'s boxes (:func:`objaug.store.load_cam_boxes`) or tensors, turned into labels by
:func:`objaug.integrations.lightly.label_maps.object_label_map` (background 0, the object of box slot ``k``
labelled ``k + 1``; with soft masks only the box's pixels whose mask is ``>= mask_threshold``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor
from torchvision import tv_tensors

from objaug.validation import check_threshold

from .dataset import ObjectAwareDataset, _fit_mask, _size_of
from .label_maps import object_label_map

__all__ = ["ObjectMaskDataset"]


class ObjectMaskDataset(ObjectAwareDataset):
    """A dataset whose images come with a ``tv_tensors.Mask`` of per-object integer labels.

    Wraps any map-style dataset yielding ``(image, target, ...)`` or bare images (create it without its own
    transform) and looks up image ``i``'s objects exactly as
    :class:`~objaug.integrations.lightly.dataset.ObjectAwareDataset` does (same arguments and checks: a store
    with ``get(index)``, or ``boxes``/``valid``/``masks`` tensors, e.g. from ``objaug cam``'s boxes.json via
    ``objaug.store.load_cam_boxes(path, order=files)``).

    The label map (rule in :mod:`objaug.integrations.lightly.label_maps`): ``(1, H, W)`` ``int64`` at the
    image's size, background 0, the object of box slot ``k`` labelled ``k + 1`` (so at most ``K + 1``
    labels: pass ``num_labels`` to Lightly's ``pool_masked``), overlapping boxes resolved in favour of the
    smaller one. With ``use_masks=True`` and a soft mask for the image (a store with masks, or ``masks=``),
    a box's region is only its pixels where the mask (resized bilinearly to the image) is
    ``>= mask_threshold``; an image without any valid box is background only.

    Items: ``(transform(image, mask), target, ...)`` with a ``transform`` (e.g. Lightly's
    ``DetConSTransform()``: then ``batch[0]`` is ``[(x0, m0), (x1, m1)]``), else ``((image, mask), target,
    ...)``; ``return_index=True`` appends the index.

    Args:
        dataset, objects: as for ``ObjectAwareDataset``.
        transform: a torchvision v2 / Lightly ``MultiViewTransformV2``-style transform called as
            ``transform(image, mask)``; ``None`` returns the pair.
        use_masks: restrict each box to its mask's pixels when a soft mask is available.
        mask_threshold: that mask threshold, in ``(0, 1]``.
        boxes, valid, masks, return_index, check_store: as for ``ObjectAwareDataset``.

    Raises:
        TypeError / ValueError: as ``ObjectAwareDataset``; a ``mask_threshold`` outside ``(0, 1]``; an image
            whose objects have no boxes (only a mask: derive boxes with ``objaug.boxes.boxes_from_cam`` or
            use a store with boxes).
    """

    def __init__(
        self,
        dataset: Any,
        objects: Any = None,
        *,
        transform: Callable[..., Any] | None = None,
        use_masks: bool = True,
        mask_threshold: float = 0.5,
        boxes: Tensor | None = None,
        valid: Tensor | None = None,
        masks: Tensor | None = None,
        return_index: bool = False,
        check_store: bool = True,
    ) -> None:
        if objects is None and boxes is None:
            raise ValueError("ObjectMaskDataset needs each image's boxes: objects=ObjectStore(path) or boxes=(N, K, 4) "
                             "(e.g. objaug.store.load_cam_boxes(path, order=files).boxes).")
        mask_threshold = check_threshold(mask_threshold, "mask_threshold")
        super().__init__(dataset, objects, boxes=boxes, valid=valid, masks=masks, transform=None,
                         return_index=return_index, check_store=check_store)
        self.mask_transform = transform
        self.use_masks = bool(use_masks)
        self.mask_threshold = float(mask_threshold)

    def label_map(self, index: int, size: tuple[int, int]) -> tv_tensors.Mask:
        """Image ``index``'s ``(1, H, W)`` int64 label map at ``size = (H, W)``, as a ``tv_tensors.Mask``."""
        boxes, valid, mask = self.objects_of(index)
        if boxes is None:
            raise ValueError(f"The objects of image {index} have no boxes; ObjectMaskDataset labels boxes.")
        soft = None
        if self.use_masks and isinstance(mask, Tensor):
            soft = _fit_mask(mask, size).reshape(1, 1, *size)
            soft = soft.float() / 255.0 if soft.dtype == torch.uint8 else soft.float()
        labels = object_label_map(boxes.float()[None], None if valid is None else valid.bool()[None], size,
                                  masks=soft, threshold=self.mask_threshold)
        return tv_tensors.Mask(labels[0])

    def __getitem__(self, index: int) -> Any:
        item = self.dataset[index]
        if isinstance(item, Mapping):
            raise TypeError(f"dataset[{index}] is a {type(item).__name__}; ObjectMaskDataset wraps datasets whose "
                            "items are (image, target, ...) tuples or bare images.")
        image, rest = (item[0], list(item[1:])) if isinstance(item, tuple | list) else (item, [])
        size = _size_of(image)
        if size is None or isinstance(image, list | tuple | Mapping):
            raise TypeError(f"dataset[{index}][0] is a {type(image).__name__}, not an image (PIL or (C, H, W) "
                            "tensor): create the wrapped dataset without its own transform.")
        mask = self.label_map(index, size)
        out: list[Any] = [self.mask_transform(image, mask) if self.mask_transform is not None else (image, mask),
                          *rest]
        if self.return_index:
            out.append(index)
        return tuple(out)
