"""One image's objects as objaug's Lightly transforms receive them: boxes, validity and an optional mask.

:func:`parse_objects` accepts the box and mask conventions listed in :mod:`._object_aware` (objaug's
normalised ``(K, 4)`` xyxy tensors, ``tv_tensors.BoundingBoxes``, detection-target mappings; soft,
bool, uint8 or instance masks) and returns them in objaug's convention.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import PIL.Image
import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

__all__ = ["find_objects", "input_size", "normalized_xyxy", "parse_objects"]

_SIZED = (tv_tensors.Image, tv_tensors.Video, tv_tensors.Mask, tv_tensors.BoundingBoxes)


def input_size(flat_inputs: Sequence[Any]) -> tuple[int, int]:
    """The common ``(H, W)`` of a v2 transform's inputs (images, videos, masks, boxes; plain tensors, PIL).

    What torchvision's private ``transforms.v2._utils.query_size`` computes, with the public
    ``transforms.v2.functional.get_size``.

    Raises:
        TypeError: no input with a size.
        ValueError: inputs of different sizes.
    """
    sizes = {tuple(TF.get_size(x)) for x in flat_inputs
             if isinstance(x, PIL.Image.Image) or isinstance(x, _SIZED)
             or (isinstance(x, Tensor) and not isinstance(x, tv_tensors.TVTensor))}
    if not sizes:
        raise TypeError("No image, video, mask or bounding box was found in the sample.")
    if len(sizes) > 1:
        raise ValueError(f"Found multiple HxW dimensions in the sample: {sorted(sizes)}.")
    (h, w), = sizes
    return int(h), int(w)


def normalized_xyxy(boxes: tv_tensors.BoundingBoxes) -> Tensor:
    fmt = boxes.format
    name = fmt.name if hasattr(fmt, "name") else str(fmt)
    if name not in ("XYXY", "XYWH", "CXCYWH"):
        raise ValueError(f"boxes in format {name} are not supported: the object-aware crop needs axis-aligned "
                         "boxes (XYXY, XYWH or CXCYWH).")
    xyxy = TF.convert_bounding_box_format(boxes, new_format=tv_tensors.BoundingBoxFormat.XYXY)
    h, w = boxes.canvas_size
    scale = torch.tensor([w, h, w, h], dtype=torch.float32)
    return (xyxy.as_subclass(Tensor).reshape(-1, 4).float() / scale).clamp(0.0, 1.0)


def _image_size(image: object, name: str = "image") -> tuple[int, int]:
    if isinstance(image, PIL.Image.Image):
        return image.height, image.width
    if isinstance(image, Tensor):
        if image.ndim != 3:
            hint = (" This transform works on one image at a time (Lightly's pipeline); for a batch on the "
                    "device use objaug.integrations.lightly.device_step.ObjectAwareStep."
                    if image.ndim == 4 else "")
            raise ValueError(f"{name} must be a PIL image or a (C, H, W) tensor, got shape "
                             f"{tuple(image.shape)}.{hint}")
        return int(image.shape[-2]), int(image.shape[-1])
    raise TypeError(f"{name} must be a PIL image or a (C, H, W) tensor, got {type(image).__name__}. If the "
                    "dataset yields (image, target) tuples, wrap it with objaug.integrations.lightly.dataset."
                    "ObjectAwareDataset instead of calling the transform on the whole sample.")


def _as_mask(mask: object, size: tuple[int, int]) -> Tensor:
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a tensor (1, H, W) / (H, W) or a tv_tensors.Mask, got "
                        f"{type(mask).__name__}.")
    m = mask.as_subclass(Tensor)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3 or tuple(m.shape[-2:]) != size:
        raise ValueError(f"mask must have shape (1, H, W) (or (N, H, W) instance masks) with (H, W) = {size} "
                         f"(the image's size), got {tuple(mask.shape)}. Resize the mask to the image first.")
    if isinstance(mask, tv_tensors.Mask) and not m.is_floating_point() and m.dtype != torch.bool:
        m = (m > 0).float()  # a torchvision segmentation / label mask: every non-zero label is an object
    elif m.dtype == torch.bool:
        m = m.float()
    elif m.dtype == torch.uint8:
        m = m.float() / (255.0 if bool(m.max() > 1) else 1.0)
    elif m.is_floating_point():
        m = m.float()
        if not bool(((m >= 0) & (m <= 1)).all()):
            raise ValueError("mask values must lie in [0, 1] (a soft object mask, e.g. a ContraCAM map).")
    else:
        m = (m > 0).float()
    return m.amax(0, keepdim=True) if m.shape[0] > 1 else m


def _as_boxes(boxes: object, valid: object, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    if isinstance(boxes, tv_tensors.BoundingBoxes):
        if tuple(boxes.canvas_size) != size:
            raise ValueError(f"boxes.canvas_size is {tuple(boxes.canvas_size)} but the image is {size} (H, W); "
                             "the boxes belong to another resolution.")
        norm = normalized_xyxy(boxes)
    elif isinstance(boxes, Tensor):
        if boxes.ndim != 2 or boxes.shape[-1] != 4:
            hint = (" That looks like a batch (B, K, 4): here boxes are per image; for batches use "
                    "ObjectAwareStep on the device." if boxes.ndim == 3 else
                    " A single box needs shape (1, 4): boxes[None]." if boxes.ndim == 1 else "")
            raise ValueError(f"boxes must have shape (K, 4) (normalised x1, y1, x2, y2 of one image), got "
                             f"{tuple(boxes.shape)}.{hint}")
        if not boxes.is_floating_point():
            raise TypeError(f"boxes must be floating point, normalised to [0, 1], got {boxes.dtype}.")
        norm = boxes.float()
    else:
        raise TypeError(f"boxes must be a (K, 4) tensor of normalised xyxy boxes, a tv_tensors.BoundingBoxes or "
                        f"a mapping with 'boxes', got {type(boxes).__name__}.")
    if valid is None:
        ok = torch.ones(norm.shape[0], dtype=torch.bool)
    else:
        if not isinstance(valid, Tensor) or valid.dtype != torch.bool or tuple(valid.shape) != (norm.shape[0],):
            raise ValueError(f"valid must be a bool tensor of shape (K,) = ({norm.shape[0]},), got "
                             f"{getattr(valid, 'dtype', type(valid).__name__)} "
                             f"{tuple(getattr(valid, 'shape', ()))}.")
        ok = valid.cpu()
    norm = norm.cpu()
    if not isinstance(boxes, tv_tensors.BoundingBoxes) and norm.numel():
        live = norm[ok]
        if live.numel() and (bool(((live < 0) | (live > 1) | live.isnan()).any())):
            raise ValueError("boxes must be normalised (x1, y1, x2, y2) in [0, 1]; got values outside. Divide "
                             "pixel boxes by (W, H, W, H), or pass a tv_tensors.BoundingBoxes with its "
                             "canvas_size.")
        if live.numel() and bool(((live[:, 2] < live[:, 0]) | (live[:, 3] < live[:, 1])).any()):
            raise ValueError("boxes must satisfy x1 <= x2 and y1 <= y2 (xyxy); convert with "
                             "torchvision.ops.box_convert(boxes, in_fmt, 'xyxy').")
    return norm, ok


def find_objects(inputs: Sequence[Any]) -> tuple[Any, Any, Any]:
    """``(image, boxes, mask)`` of a sample passed the way torchvision v2 / Lightly's ``MultiViewTransformV2`` pass it.

    ``inputs`` are the positional arguments of the call: ``(image, boxes, mask)`` (objaug's convention),
    ``(image, target)`` with a target dict, or one structure ``((image, target),)``. When the arguments after
    the image hold ``tv_tensors.BoundingBoxes`` / ``tv_tensors.Mask`` anywhere (nested lists, tuples, dicts, as
    a torchvision detection or segmentation target), those are the boxes and the mask; otherwise the second and
    third arguments are (the plain-tensor or mapping conventions of :func:`parse_objects`).

    Raises:
        ValueError: no arguments, or more than one ``BoundingBoxes`` or ``Mask`` in the sample.
    """
    from torch.utils._pytree import tree_flatten

    args = tuple(inputs)
    if len(args) == 1 and isinstance(args[0], tuple | list):
        args = tuple(args[0])
    if not args:
        raise ValueError("The transform needs an image (and its objects), got no arguments.")
    image, rest = args[0], args[1:]
    flat = tree_flatten(list(rest))[0]
    found = {kind: [x for x in flat if isinstance(x, kind)] for kind in (tv_tensors.BoundingBoxes, tv_tensors.Mask)}
    if not any(found.values()):
        padded = [*rest, None, None]
        return image, padded[0], padded[1]
    for kind, items in found.items():
        if len(items) > 1:
            raise ValueError(f"The sample holds {len(items)} {kind.__name__}; the object-aware crop takes one per "
                             "image (put all boxes in one BoundingBoxes, all instances in one (N, H, W) Mask).")
    boxes, masks = found[tv_tensors.BoundingBoxes], found[tv_tensors.Mask]
    return image, boxes[0] if boxes else None, masks[0] if masks else None


def parse_objects(
    image: object, boxes: object = None, mask: object = None, valid: object = None
) -> tuple[tuple[int, int], Tensor | None, Tensor | None, Tensor | None]:
    """Check one image's objects and bring them to objaug's conventions.

    Args:
        image: PIL image or ``(C, H, W)`` tensor.
        boxes: ``(K, 4)`` normalised xyxy tensor, ``tv_tensors.BoundingBoxes``, a mapping with
            ``"boxes"`` (and optionally ``"masks"``/``"mask"``, ``"valid"``), or ``None``.
        mask: ``(1, H, W)``/``(H, W)`` tensor or ``tv_tensors.Mask``, or ``None``.
        valid: ``(K,)`` bool for tensor boxes, or ``None`` (all valid).

    Returns:
        ``((H, W), boxes (K, 4) float32 normalised or None, valid (K,) bool or None,
        mask (1, H, W) float32 in [0, 1] or None)``, all on the CPU.
    """
    size = _image_size(image)
    if isinstance(boxes, Mapping):
        target = boxes
        if "boxes" not in target and "masks" not in target and "mask" not in target:
            raise ValueError(f"A mapping of objects needs a 'boxes' or 'masks' key, got keys {sorted(target)}.")
        boxes = target.get("boxes")
        if mask is None:
            mask = target.get("masks", target.get("mask"))
        if valid is None:
            valid = target.get("valid")
    norm: Tensor | None = None
    ok: Tensor | None = None
    if boxes is not None:
        norm, ok = _as_boxes(boxes, valid, size)
    elif valid is not None:
        raise ValueError("valid was given without boxes; pass boxes=(K, 4) too.")
    m = _as_mask(mask, size) if mask is not None else None
    return size, norm, ok, m


# ---------------------------------------------------------------------------------------------------- views
