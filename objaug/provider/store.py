"""Objects read from a store: one batch of ``store.get_batch(indexes)``, validated once, on the device."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from objaug.masks import masks_from_uint8
from objaug.objects import Objects

__all__ = ["read_store", "unpack_objects"]


def unpack_objects(result: object, *, name: str = "store.get(index)") -> tuple[Any, Any, Any]:
    """Read ``(boxes, valid, masks)`` from what an object store returned.

    Accepts a tuple/list ``(boxes, valid)`` or ``(boxes, valid, masks)``, a mapping with keys ``boxes``,
    ``valid`` and ``masks``/``mask``, an :class:`objaug.objects.Objects`, or an object with those attributes
    (``masks`` may be missing or ``None``).

    Raises:
        TypeError: none of these shapes.
    """
    if isinstance(result, (tuple, list)):
        if len(result) == 2:
            return result[0], result[1], None
        if len(result) == 3:
            return result[0], result[1], result[2]
    elif isinstance(result, Mapping):
        if "boxes" in result:
            return result["boxes"], result.get("valid"), result.get("masks", result.get("mask"))
    elif hasattr(result, "boxes"):
        masks = getattr(result, "masks", getattr(result, "mask", None))
        return result.boxes, getattr(result, "valid", None), masks  # type: ignore[attr-defined]
    raise TypeError(f"{name} must return (boxes, valid[, masks]), a mapping or an object with boxes/valid/masks, "
                    f"got {type(result).__name__}.")


def _float_masks(masks: Tensor) -> Tensor:
    """uint8 masks as ``q / 255`` (:func:`objaug.masks.masks_from_uint8`), other dtypes as float32."""
    return masks_from_uint8(masks) if masks.dtype == torch.uint8 else masks.float()


def read_store(store: Any, indexes: Tensor, device: torch.device) -> Objects:
    """One batch of a store, checked once and moved to ``device``.

    Args:
        store: anything with ``get_batch(indexes)`` returning ``(boxes, valid[, masks])`` (or a mapping /
            object with those names, see :func:`unpack_objects`), e.g. :class:`objaug.store.ObjectStore`.
        indexes: ``(B,)`` integer dataset indexes (read on the host: one small device-to-host copy).
        device: where the result goes.

    Returns:
        :class:`~objaug.objects.Objects` with ``origin="store"``: ``(B, K, 4)`` float32 normalised xyxy,
        ``(B, K)`` bool (all valid when the store gives none), ``(B, 1, h, w)`` float32 masks in [0, 1] (uint8
        masks unpacked as ``q / 255``) or ``None``.

    Raises:
        TypeError: the store's result has none of the accepted forms.
        ValueError: boxes, valid or masks of the wrong shape.
    """
    name = f"{type(store).__name__}.get_batch(indexes)"
    boxes, valid, masks = unpack_objects(store.get_batch(indexes.detach().to("cpu")), name=name)
    b = indexes.shape[0]
    if not isinstance(boxes, Tensor) or boxes.ndim != 3 or boxes.shape[0] != b or boxes.shape[-1] != 4:
        raise ValueError(f"the store's boxes must be a (B={b}, K, 4) tensor, got "
                         f"{getattr(boxes, 'shape', type(boxes).__name__)}.")
    if valid is not None and (not isinstance(valid, Tensor) or tuple(valid.shape) != tuple(boxes.shape[:2])):
        raise ValueError(f"the store's valid must be a (B, K) = {tuple(boxes.shape[:2])} tensor.")
    if masks is not None:
        if not isinstance(masks, Tensor) or masks.ndim != 4 or masks.shape[:2] != (b, 1):
            raise ValueError(f"the store's masks must be a (B={b}, 1, h, w) tensor or None, got "
                             f"{getattr(masks, 'shape', type(masks).__name__)}.")
        masks = _float_masks(masks.to(device, non_blocking=True))
    objects = Objects.from_parts(boxes, valid, masks, origin="store")
    return objects.to(device, non_blocking=True)
