"""objaug's input validation, one home for every public entry point: same mistake, same error type and wording.

Every check raises before any work is done, with a message that names the argument,
says what was wrong and how to fix it. Checks only look at metadata (shape, dtype,
device) unless their name says otherwise; the value checks (:func:`check_finite`,
:func:`check_range`, :func:`check_box_values`) synchronise with the device once and are optional
where they are used on hot paths.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "BOX_SAMPLING",
    "check_box_layout",
    "check_box_sampling",
    "check_fallback_mass",
    "check_batch_values",
    "check_box_values",
    "check_boxes",
    "check_finite",
    "check_image_batch",
    "check_indexes",
    "check_int",
    "check_mask_batch",
    "check_model_input",
    "check_pair",
    "check_path",
    "check_positive_float",
    "check_probability",
    "check_range",
    "check_same_batch",
    "check_same_device",
    "check_size",
    "check_threshold",
    "check_views",
]

#: The ways of choosing one of an image's boxes (``box_sampling`` / ``mode``).
BOX_SAMPLING: tuple[str, ...] = ("uniform", "area")


# ---------------------------------------------------------------------- options
def check_probability(p: object, name: str = "p") -> float:
    """A probability option: ``TypeError`` for a non-number (bools included), ``ValueError`` outside [0, 1]."""
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise TypeError(f"{name} must be a float in [0, 1], got {type(p).__name__}.")
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p}.")
    return float(p)


def check_int(value: object, name: str, *, low: int, why: str = "") -> int:
    """An integer option ``>= low`` (bools refused): ``ValueError`` "``name`` must be an int >= low``why``"."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}{why}, got {value!r}.")
    return value


def check_positive_float(value: object, name: str) -> float:
    """A number ``> 0`` (bools refused): ``ValueError`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a float > 0, got {value!r}.")
    return float(value)


def check_threshold(threshold: object, name: str = "threshold") -> float:
    """A mask cut-off: a finite number in (0, 1] (masks are in [0, 1]); ``ValueError`` otherwise."""
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not math.isfinite(threshold):
        raise ValueError(f"{name} must be a number in (0, 1], got {threshold!r}.")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"{name} must be in (0, 1] (masks are in [0, 1]), got {threshold!r}.")
    return float(threshold)


def check_fallback_mass(value: object) -> float | None:
    """Background mixup's ``fallback_mass``: ``None`` or a mass share in (0, 1]; ``ValueError`` otherwise."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1):
        raise ValueError(f"fallback_mass must be None (the paper's rule) or the share of the mask's mass the "
                         f"fallback rectangle keeps, in (0, 1] (e.g. 0.9), got {value!r}.")
    return None if value is None else float(value)


def check_box_sampling(value: object, name: str = "box_sampling") -> str:
    """``"uniform"`` or ``"area"`` (see :data:`BOX_SAMPLING`); ``ValueError`` otherwise."""
    if value not in BOX_SAMPLING:
        raise ValueError(f"{name} must be 'uniform' or 'area', got {value!r}.")
    return str(value)


def check_pair(value: object, name: str, low: float, high: float, *, fix: str) -> tuple[float, float]:
    """A ``(min, max)`` pair of floats with ``low < min <= max <= high``; ``fix`` says how to repair it."""
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise TypeError(f"{name} must be a (min, max) pair of floats, got {value!r}.")
    a, b = float(value[0]), float(value[1])
    if not (low < a <= b <= high) or math.isnan(a) or math.isnan(b):
        raise ValueError(f"{name} must satisfy {low} < min <= max <= {high}, got {value!r}. {fix}")
    return a, b


def check_size(size: object, name: str = "size") -> tuple[int, int]:
    """An output size: an int ``S`` (for ``S x S``) or a positive ``(height, width)`` pair of ints."""
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in size)):
        raise TypeError(f"{name} must be an int or an (height, width) pair of ints, got {size!r}.")
    if size[0] <= 0 or size[1] <= 0:
        raise ValueError(f"{name} must be positive, got {tuple(size)}.")
    return (int(size[0]), int(size[1]))


# ---------------------------------------------------------------------- tensors


def check_image_batch(images: object, name: str = "images", *, channels: int | None = None) -> Tensor:
    """Check that ``images`` is a floating (B, C, H, W) tensor.

    Args:
        images: the object to check.
        name: the argument name used in error messages.
        channels: the required channel count, or ``None`` for any.

    Returns:
        ``images`` itself, typed as a tensor.

    Raises:
        TypeError: not a tensor, or not floating point.
        ValueError: not 4-D, an empty dimension, or the wrong channel count.
    """
    if not isinstance(images, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(images).__name__}.")
    if images.ndim != 4:
        hint = ""
        if images.ndim == 3 and channels == 1:  # (B, H, W) maps or masks: the channel dimension is missing
            hint = f" For (B, H, W) {name}, add the channel dimension with {name}.unsqueeze(1)."
        elif images.ndim == 3:
            hint = f" For one (C, H, W) image, add a batch dimension with {name}.unsqueeze(0)."
        raise ValueError(f"{name} must be 4-D (B, C, H, W), got shape {tuple(images.shape)}.{hint}")
    if not images.is_floating_point():
        raise TypeError(
            f"{name} must be floating point, got {images.dtype}. Convert with "
            f"{name}.float() / 255 (and normalise) before passing them."
        )
    if min(images.shape) == 0:
        raise ValueError(f"{name} has an empty dimension: shape {tuple(images.shape)}.")
    if channels is not None and images.shape[1] != channels:
        raise ValueError(
            f"{name} must have {channels} channels (B, {channels}, H, W), got shape {tuple(images.shape)}."
        )
    return images


def check_mask_batch(masks: object, name: str, *, like: Tensor) -> Tensor:
    """Check that ``masks`` is a floating (B, 1, H, W) tensor matching the images ``like`` (B, C, H, W).

    Raises:
        TypeError: not a floating tensor.
        ValueError: another batch size than the images, or another shape.
    """
    if not isinstance(masks, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, 1, H, W), got {type(masks).__name__}.")
    b, _, h, w = like.shape
    if masks.ndim >= 1:
        check_same_batch("images", like, name, masks)
    if masks.shape != (b, 1, h, w):
        raise ValueError(
            f"{name} must have shape (B, 1, H, W) = {(b, 1, h, w)} to match the images, got "
            f"{tuple(masks.shape)}. Resize masks with objaug.resize_masks(masks, (H, W))."
        )
    if not masks.is_floating_point():
        raise TypeError(f"{name} must be floating point with values in [0, 1], got {masks.dtype}.")
    return masks


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


def _box_flags(boxes: Tensor, valid: Tensor) -> Tensor:
    """(2,) float tensor: [some valid box leaves [0, 1] or is NaN, some valid box is reversed] (no sync)."""
    v = valid[..., None]
    out_of_range = ((boxes < 0) | (boxes > 1) | torch.isnan(boxes)) & v
    x1, y1, x2, y2 = boxes.unbind(-1)
    reversed_ = ((x2 < x1) | (y2 < y1)) & valid
    return torch.stack([out_of_range.any(), reversed_.any()]).float()


def _raise_box_values(boxes: Tensor, valid: Tensor, bad_range: bool, bad_order: bool, name: str) -> None:
    """The error of :func:`check_box_values` for flags read from :func:`_box_flags` (syncs only to fail)."""
    if bad_range:
        v = valid[..., None].expand_as(boxes)
        vals = torch.where(v, boxes, torch.zeros((), device=boxes.device, dtype=boxes.dtype)).nan_to_num()
        hi = float(vals.max())
        units = (" They look like pixel coordinates. Divide pixel boxes by (W, H, W, H)" if hi > 1.5 else
                 " Clamp them to [0, 1] (torchvision.ops.clip_boxes_to_image before normalising)")
        raise ValueError(
            f"{name} must be normalised (x1, y1, x2, y2) in [0, 1]; valid boxes hold values from "
            f"{float(vals.min()):.4g} to {hi:.4g}{' and NaN' if bool(torch.isnan(boxes).any()) else ''}.{units}; "
            f"mark padding slots invalid (valid=False) instead of filling them with -1 or NaN."
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
    bad_range, bad_order = _box_flags(boxes, valid).tolist()
    _raise_box_values(boxes, valid, bool(bad_range), bool(bad_order), name)


def check_indexes(indexes: object, batch: int, device: torch.device | None = None,
                  name: str = "indexes") -> Tensor:
    """Dataset indexes of a batch: a ``(B,)`` integer tensor (or a sequence of ints), as int64 on ``device``.

    Raises:
        TypeError: not a tensor or a sequence of ints.
        ValueError: wrong shape, or a floating / bool tensor.
    """
    if not isinstance(indexes, Tensor):
        if isinstance(indexes, Sequence) and all(isinstance(i, int) for i in indexes):
            indexes = torch.tensor(list(indexes), dtype=torch.long)
        else:
            raise TypeError(f"{name} must be a (B,) integer tensor of dataset indexes, got {type(indexes).__name__}.")
    assert isinstance(indexes, Tensor)
    if indexes.shape != (batch,) or indexes.is_floating_point() or indexes.dtype == torch.bool:
        raise ValueError(f"{name} must be a (B,) = ({batch},) integer tensor, got {indexes.dtype} "
                         f"{tuple(indexes.shape)}.")
    return indexes.to(device, dtype=torch.long, non_blocking=True)


def check_same_batch(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    """Raise ValueError if ``a`` and ``b`` differ in their first dimension."""
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{name_a} and {name_b} must have the same batch size, got {a.shape[0]} and {b.shape[0]}.")


def check_same_device(tensors: Sequence[tuple[str, Tensor]]) -> None:
    """Raise ValueError if the named tensors are not all on one device."""
    devices = {t.device for _, t in tensors}
    if len(devices) > 1:
        where = ", ".join(f"{n} on {t.device}" for n, t in tensors)
        raise ValueError(f"All inputs must be on the same device: {where}. Move them with .to(device).")


def _extremes(x: Tensor) -> Tensor:
    """(2,) tensor ``[min, max]`` of a non-empty ``x`` in one pass; NaN if ``x`` holds a NaN (documented
    for ``torch.aminmax``), so range and finiteness checks read two numbers, not a bool copy of ``x``."""
    lo, hi = torch.aminmax(x.detach())
    return torch.stack([lo, hi])


def check_finite(x: Tensor, name: str) -> None:
    """Raise ValueError if ``x`` holds NaN or infinity (one device synchronisation)."""
    if x.numel() == 0:
        return
    if not bool(torch.isfinite(_extremes(x)).all()):
        raise ValueError(f"{name} contains NaN or infinite values; check the data loading and normalisation.")


def check_range(x: Tensor, name: str, low: float, high: float) -> None:
    """Raise ValueError if a value of ``x`` lies outside [low, high] or is NaN (one device synchronisation)."""
    if x.numel() == 0:
        return
    lo, hi = _extremes(x).tolist()
    if not (lo >= low and hi <= high):  # False for NaN too
        raise ValueError(_range_text(x, name, low, high, lo, hi))


def _range_text(x: Tensor, name: str, low: float, high: float, lo: float, hi: float) -> str:
    """"``name`` must lie in [low, high]; found ..." for extremes ``lo``/``hi`` (NaN named as such)."""
    if math.isnan(lo) or math.isnan(hi):
        finite = x[torch.isfinite(x)]
        seen = (f" (the other values from {float(finite.min()):.4g} to {float(finite.max()):.4g})"
                if finite.numel() else "")
        return (f"{name} must lie in [{low}, {high}] but contains NaN{seen}; check the data loading and "
                "normalisation (a division by a zero std, a corrupt file, an overflow in fp16).")
    return f"{name} must lie in [{low}, {high}]; found values from {lo:.4g} to {hi:.4g}."


def _image_range_fix(name: str, lo: float, hi: float) -> str:
    """The likely cause and fix of images outside [0, 1] with extremes ``lo``, ``hi`` (finite)."""
    if lo < 0:
        return (" They look normalised already (mean/std: values below 0), e.g. Normalize left in the "
                "DataLoader transform. Remove Normalize from the dataset's transform (keep T.ToTensor()): "
                "objaug normalises each view itself (ViewConfig.normalize).")
    if hi <= 255.5:
        return f" They look like [0, 255] pixel values: divide by 255 ({name}.float() / 255, or T.ToTensor())."
    return f" Rescale {name} to [0, 1]."


def check_batch_values(
    images: Tensor,
    *,
    image_range: tuple[float, float] | None = (0.0, 1.0),
    masks: Tensor | None = None,
    boxes: Tensor | None = None,
    valid: Tensor | None = None,
    indexes: Tensor | None = None,
    num_samples: int | None = None,
    name: str = "images",
) -> None:
    """The value checks of one batch in one fused pass and **one** device synchronisation.

    Reads the extremes of ``images`` (one ``torch.aminmax``) and of ``masks``, two flags of the
    boxes and one of the indexes, stacks them into one small tensor and copies it to the host once;
    only a failing check reads more (to write its message). Shapes are not checked here: call the
    metadata checks (:func:`check_image_batch`, :func:`check_boxes`, ...) first.

    Args:
        images: (B, C, H, W) floating images, any device.
        image_range: the range the images must lie in (``(0, 1)``: un-normalised frames), or ``None`` to
            require only finite values (normalised views).
        masks: (B, 1, H, W) soft masks, which must lie in [0, 1].
        boxes, valid: (B, K, 4) normalised xyxy boxes and their (B, K) bool validity (see
            :func:`check_box_values`).
        indexes: (B,) integer dataset indexes, which must lie in ``[0, num_samples)`` (``num_samples``
            ``None``: only ``>= 0``).
        name: the images' argument name in messages.

    Raises:
        ValueError: NaN or infinite images, images outside ``image_range`` (the message tells
            double-normalised images from [0, 255] ones and names the fix), masks outside [0, 1] or NaN,
            boxes outside [0, 1] (pixel units named) or reversed, indexes out of range.
    """
    parts = [_extremes(images).float()]
    if masks is not None:
        parts.append(_extremes(masks).float())
    if boxes is not None and valid is not None:
        parts.append(_box_flags(boxes, valid))
    if indexes is not None:
        high = num_samples if num_samples is not None else torch.iinfo(torch.int64).max
        parts.append(((indexes < 0) | (indexes >= high)).any().float()[None])
    vals = torch.cat(parts).tolist()  # the one synchronisation
    lo, hi = vals[0], vals[1]
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} contains NaN or infinite values; check the data loading and normalisation "
                         f"(a division by a zero std, a corrupt file, an fp16 overflow). "
                         f"torch.isfinite({name}).flatten(1).all(1) tells which images.")
    if image_range is not None and not (image_range[0] <= lo and hi <= image_range[1]):
        raise ValueError(f"{name} must lie in [{image_range[0]}, {image_range[1]}] (un-normalised frames); found "
                         f"values from {lo:.4g} to {hi:.4g}.{_image_range_fix(name, lo, hi)}")
    pos = 2
    if masks is not None:
        if not (vals[pos] >= 0.0 and vals[pos + 1] <= 1.0):
            raise ValueError(_range_text(masks, "masks", 0.0, 1.0, vals[pos], vals[pos + 1]) +
                             " Masks are soft object maps in [0, 1] (ContraCAM's output, or a store's masks).")
        pos += 2
    if boxes is not None and valid is not None:
        _raise_box_values(boxes, valid, bool(vals[pos]), bool(vals[pos + 1]), "boxes")
        pos += 2
    if indexes is not None and vals[pos]:
        bad = indexes[(indexes < 0) | (indexes >= high)][:3].tolist()
        raise ValueError(f"indexes must be dataset indexes in [0, {num_samples if num_samples is not None else 'N'})"
                         f", got {bad}{'...' if len(bad) == 3 else ''}: pass each sample's position in the "
                         f"dataset (ObjectAwareDataset(..., return_index=True) appends it to the batch).")


def check_model_input(images: Tensor, model: nn.Module, name: str = "images") -> None:
    """Refuse images that a model cannot take, by metadata only (no device synchronisation).

    Checks the dtype against the model's first floating parameter (unless autocast is on for the
    images' device, which casts both) and the channel count against its first ``nn.Conv2d``.

    Raises:
        TypeError: a dtype mismatch (float64 model with float32 images, fp16 images on an fp32 model
            outside autocast, ...).
        ValueError: a channel count the first convolution does not take (grey or RGBA images).
    """
    param = next((p for p in model.parameters() if p.is_floating_point()), None)
    if (param is not None and images.dtype != param.dtype
            and not torch.is_autocast_enabled(images.device.type)):
        raise TypeError(
            f"{name} are {images.dtype} but the model's weights are {param.dtype}: convert one to the other "
            f"({name}.to({param.dtype}) or model.to({images.dtype})), or run under "
            f"torch.autocast({images.device.type!r}) for mixed precision."
        )
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is not None and images.shape[1] != conv.in_channels:
        raise ValueError(
            f"{name} have {images.shape[1]} channels but the model's first convolution takes {conv.in_channels}: "
            f"convert grey images with {name}.expand(-1, 3, -1, -1) and RGBA ones with {name}[:, :3] "
            f"(or PIL's .convert('RGB') when loading)."
        )


def check_views(views: object, name: str = "views") -> object:
    """Refuse a view-preset *function* passed uncalled (``views=simclr_views``); returns ``views``.

    Raises:
        TypeError: ``views`` is callable and not a sequence.
    """
    if callable(views) and not isinstance(views, Sequence) and not isinstance(views, nn.Module):
        fn = getattr(views, "__name__", type(views).__name__)
        raise TypeError(f"{name} must be a list of ViewConfig, got the function {fn}: call it, e.g. "
                        f"{name}={fn}(224) (the argument is the view size).")
    return views


def check_path(path: object, name: str = "path") -> str | os.PathLike[str]:
    """A filesystem path: a ``str`` or ``os.PathLike``; ``TypeError`` otherwise."""
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"{name} must be a directory path (str or pathlib.Path), got {type(path).__name__} "
                        f"{path!r}.")
    return path
