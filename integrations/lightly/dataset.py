"""Attach each image's object boxes and masks, by index, to any Lightly or torchvision dataset."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from objaug.provider import unpack_objects
from objaug.validation import check_bool, check_box_layout

__all__ = ["ObjectAwareDataset", "unpack_objects"]


def _size_of(image: object) -> tuple[int, int] | None:
    if isinstance(image, Tensor) and image.ndim >= 2:
        return int(image.shape[-2]), int(image.shape[-1])
    if hasattr(image, "height") and hasattr(image, "width"):  # PIL
        return int(image.height), int(image.width)  # type: ignore[attr-defined]
    return None


def _fit_mask(mask: Tensor, size: tuple[int, int] | None) -> Tensor:
    """A (1, h, w) / (h, w) mask resized (bilinear) to the image's (H, W) when they differ.

    Stores keep masks at a reduced resolution; the transforms need them at the image's size.
    """
    if size is None or mask.ndim not in (2, 3) or tuple(mask.shape[-2:]) == size:
        return mask
    m = mask.float() if mask.dtype == torch.bool else mask.float() / 255.0 if mask.dtype == torch.uint8 else mask
    m = m.reshape(-1, 1, *m.shape[-2:])
    return F.interpolate(m.float(), size=size, mode="bilinear", align_corners=False).clamp_(0.0, 1.0)[:, 0]


class ObjectAwareDataset(Dataset):
    """Wrap a dataset so that each image comes with its object boxes (and masks), looked up by index.

    Works with any map-style dataset whose items are ``(image, target, ...)`` tuples (torchvision:
    ``(image, target)``, ``lightly.data.LightlyDataset``: ``(image, target, filename)``) or bare images.
    Create the wrapped dataset **without** its own transform (it must yield the raw PIL image or
    ``(C, H, W)`` tensor) and give the transform here.

    Objects come from either

    * ``objects``: a store with ``get(index)`` returning ``(boxes, valid, masks)`` for one image
      (e.g. :class:`objaug.store.ObjectStore`; any object with that method works), or
    * in-memory tensors: ``boxes`` ``(N, K, 4)`` normalised xyxy (objaug's convention), ``valid``
      ``(N, K)`` bool (default: all valid), ``masks`` ``(N, 1, h, w)`` soft masks in [0, 1] (optional).

    Masks of another resolution than the image (a store keeps them small) are resized bilinearly to
    the image's size before the transform.

    Items:

    * with an object-aware ``transform`` (objaug's ``ObjectAware*Transform``, or any callable with an
      ``accepts_objects = True`` attribute): ``(transform(image, boxes, mask, valid=valid), target, ...)``
      -- the views replace the image, the rest of the item is kept, so Lightly's training loops
      (``views = batch[0]``) run unchanged;
    * otherwise (``transform`` a plain image transform such as ``T.ToTensor()``, or ``None``):
      ``(image, target, ..., objects)`` where ``objects`` is a dict with ``"boxes"`` ``(K, 4)``,
      ``"valid"`` ``(K,)`` and, if there are masks, ``"masks"`` ``(1, H, W)``; the default collate
      turns these into ``(B, K, 4)`` / ``(B, K)`` / ``(B, 1, H, W)`` for
      :class:`objaug.integrations.lightly.device_step.ObjectAwareStep`.

    With ``return_index=True`` the item's dataset index is appended last (for
    ``ObjectAwareStep(..., indexes=...)`` caching or store reads on the device).

    Args:
        dataset: the map-style dataset (``len`` and ``__getitem__``).
        objects: a store with ``get(index)``; exclusive with ``boxes``/``masks``.
        boxes: ``(N, K, 4)`` float tensor, N = ``len(dataset)``.
        valid: ``(N, K)`` bool tensor.
        masks: ``(N, 1, H, W)`` float tensor in [0, 1] (or bool).
        transform: see above.
        return_index: append the index to every item.
        check_store: check that ``objects`` belongs to ``dataset`` before any item is read: an
            :class:`objaug.store.ObjectStore` checks the length and the fingerprint
            (:meth:`~objaug.store.ObjectStore.check_dataset`; the same folder fingerprints alike whether
            torchvision's ``ImageFolder``, ``LightlyDataset`` or ``objaug precompute --data`` reads it),
            any other store with ``__len__`` the length. ``False`` skips it.

    Raises:
        StoreMismatchError: ``objects`` is a store made from another dataset (see ``check_store``).
        TypeError / ValueError: no source of objects, both sources, shapes that do not match
            ``len(dataset)``, items that are not images (e.g. a dataset that already applies a
            multi-view transform).
    """

    def __init__(
        self,
        dataset: Any,
        objects: Any = None,
        *,
        boxes: Tensor | None = None,
        valid: Tensor | None = None,
        masks: Tensor | None = None,
        transform: Callable[..., Any] | None = None,
        return_index: bool = False,
        check_store: bool = True,
    ) -> None:
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise TypeError(f"dataset must be a map-style dataset (with __len__ and __getitem__), got "
                            f"{type(dataset).__name__}.")
        n = len(dataset)
        check_bool(return_index, "return_index")
        check_bool(check_store, "check_store")
        if objects is not None and (boxes is not None or masks is not None or valid is not None):
            raise ValueError("Pass either objects= (a store) or boxes=/valid=/masks= tensors, not both.")
        if objects is None and boxes is None and masks is None:
            raise ValueError("ObjectAwareDataset needs the objects of each image: objects=ObjectStore(path) (or any "
                             "object with get(index)), or boxes=(N, K, 4) [valid=(N, K)] [masks=(N, 1, H, W)].")
        if objects is not None and not callable(getattr(objects, "get", None)):
            raise TypeError(f"objects must have a get(index) method returning (boxes, valid, masks), got "
                            f"{type(objects).__name__}.")
        if objects is not None and check_store:
            if callable(getattr(objects, "check_dataset", None)):
                try:
                    objects.check_dataset(dataset)  # length and fingerprint (ObjectStore): StoreMismatchError
                except ValueError as err:
                    raise type(err)(f"{err} If both hold the same images in the same order, only decoded "
                                    "differently (PIL images vs tensors), pass ObjectAwareDataset(..., "
                                    "check_store=False).") from None
            elif hasattr(objects, "__len__") and len(objects) != n:
                raise ValueError(f"objects holds {len(objects)} samples but the dataset has {n}: pair the dataset "
                                 "with the objects computed for it, in the same index order.")
        if boxes is not None:
            boxes = check_box_layout(boxes, "boxes", rows="N")
            if boxes.shape[0] != n:
                raise ValueError(f"boxes holds {boxes.shape[0]} images but the dataset has {n}.")
            if valid is None:
                valid = torch.ones(boxes.shape[:2], dtype=torch.bool)
            if not isinstance(valid, Tensor) or valid.dtype != torch.bool or valid.shape != boxes.shape[:2]:
                raise ValueError(f"valid must be a bool tensor of shape (N, K) = {tuple(boxes.shape[:2])}, got "
                                 f"{getattr(valid, 'dtype', type(valid).__name__)} "
                                 f"{tuple(getattr(valid, 'shape', ()))}.")
        elif valid is not None:
            raise ValueError("valid was given without boxes; pass boxes=(N, K, 4) too.")
        if masks is not None:
            if not isinstance(masks, Tensor) or masks.ndim != 4 or masks.shape[1] != 1:
                raise ValueError(f"masks must be a (N, 1, H, W) tensor, got "
                                 f"{getattr(masks, 'shape', type(masks).__name__)}.")
            if masks.shape[0] != n:
                raise ValueError(f"masks holds {masks.shape[0]} images but the dataset has {n}.")
        self.dataset = dataset
        self.objects = objects
        self.boxes = None if boxes is None else boxes.detach().cpu()
        self.valid = None if valid is None else valid.detach().cpu()
        self.masks = None if masks is None else masks.detach().cpu()
        self.transform = transform
        self.return_index = bool(return_index)

    def __len__(self) -> int:
        return len(self.dataset)

    def objaug_fingerprint(self) -> str:
        """The wrapped dataset's fingerprint (:func:`objaug.store.dataset_fingerprint`): a store made from it
        pairs with this wrapper too."""
        from objaug.store.datasets import dataset_fingerprint

        return dataset_fingerprint(self.dataset)

    def objects_of(self, index: int) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        """``(boxes (K, 4), valid (K,), mask (1, H, W))`` of one image (any may be ``None``), on the CPU."""
        if self.objects is not None:
            boxes, valid, masks = unpack_objects(self.objects.get(index))
            if isinstance(masks, Tensor) and masks.ndim == 4 and masks.shape[0] == 1:
                masks = masks[0]
            return boxes, valid, masks
        return (None if self.boxes is None else self.boxes[index],
                None if self.valid is None else self.valid[index],
                None if self.masks is None else self.masks[index])

    def __getitem__(self, index: int) -> Any:
        item = self.dataset[index]
        if isinstance(item, Mapping):
            raise TypeError(
                f"dataset[{index}] is a {type(item).__name__} (keys {sorted(item)[:6]}); ObjectAwareDataset wraps "
                "datasets whose items are (image, target, ...) tuples or bare images, like torchvision's and "
                "Lightly's. Adapt the dataset to return (image, target)."
            )
        if isinstance(item, tuple | list):
            if not item:
                raise ValueError(f"dataset[{index}] is empty.")
            image, rest = item[0], list(item[1:])
        else:
            image, rest = item, []
        if isinstance(image, list | tuple | Mapping):
            raise TypeError(
                f"dataset[{index}][0] is a {type(image).__name__}, not an image: the wrapped dataset seems to apply "
                "a (multi-view) transform already. Create it with transform=None and pass the transform to "
                "ObjectAwareDataset(..., transform=...)."
            )
        boxes, valid, mask = self.objects_of(index)
        out: list[Any]
        if getattr(self.transform, "accepts_objects", False):
            assert self.transform is not None
            if isinstance(mask, Tensor):
                mask = _fit_mask(mask, _size_of(image))
            out = [self.transform(image, boxes, mask, valid=valid), *rest]
        else:
            if self.transform is not None:
                image = self.transform(image)
            if isinstance(mask, Tensor):
                mask = _fit_mask(mask, _size_of(image))
            objects: dict[str, Tensor] = {}
            if boxes is not None:
                objects["boxes"] = boxes
                objects["valid"] = valid if valid is not None else torch.ones(boxes.shape[0], dtype=torch.bool)
            if mask is not None:
                objects["masks"] = mask if mask.is_floating_point() else mask.float()
            out = [image, *rest, objects]
        if self.return_index:
            out.append(index)
        return tuple(out)

    def __repr__(self) -> str:
        source = type(self.objects).__name__ if self.objects is not None else "tensors"
        return (f"{type(self).__name__}({type(self.dataset).__name__}, objects={source}, "
                f"transform={type(self.transform).__name__ if self.transform is not None else None}, "
                f"return_index={self.return_index})")

