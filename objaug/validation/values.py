"""Value checks of a batch: they read the tensors' values, so each costs one device synchronisation.

:func:`check_batch_values` fuses the checks of one batch (images, masks, boxes, indexes) into one
``aminmax`` per tensor and one copy to the host; only a failing check reads more, to write its message.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from objaug.validation.boxes import box_flags, raise_box_values

__all__ = ["check_batch_values", "check_finite", "check_negatives_left", "check_range"]


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


def check_negatives_left(bank_mask: Tensor | None, *, batch: int) -> None:
    """Refuse a batch of one image whose every external negative is a copy of that image (one device sync).

    ContraCAM never contrasts an image with its own copy in ``negatives=`` (a bank embedded from the same
    images); a batch of one image has no in-batch negative, so when every bank row is its copy (``negatives=``
    the image's own embedding) nothing is left to contrast with and the map would be all zero. Decided from
    shapes first: a batch of two or more images always has in-batch negatives and is never read (no
    synchronisation); only a batch of one reads its ``(1, N)`` mask.

    Args:
        bank_mask: ``(B, N)`` bool, which bank entries are negatives of each image (``None``: no bank).
        batch: ``B``, the number of images.

    Raises:
        ValueError: ``batch == 1`` and no bank entry is a negative of the image.
    """
    if batch != 1 or bank_mask is None:
        return
    if not bool(bank_mask.any()):
        raise ValueError(
            f"ContraCAM needs negatives: the batch's one image has no other image to contrast with, and all "
            f"{bank_mask.shape[1]} rows of negatives= are copies of it (cosine similarity ~1, e.g. its own "
            "embedding), which are never its negatives, so its map would be all zero. Pass at least 2 images, or "
            "negatives= embeddings of other images (e.g. cam.embed(other_images)).")


def check_range(x: Tensor, name: str, low: float, high: float) -> None:
    """Raise ValueError if a value of ``x`` lies outside [low, high] or is NaN (one device synchronisation)."""
    if x.numel() == 0:
        return
    lo, hi = _extremes(x).tolist()
    if not (lo >= low and hi <= high):  # False for NaN too
        raise ValueError(_range_text(x, name, low, high, lo, hi))


def _range_text(x: Tensor, name: str, low: float, high: float, lo: float, hi: float) -> str:
    """"``name`` must lie in [low, high]; found ..." for extremes ``lo``/``hi`` (NaN named as such)."""
    if not (math.isnan(lo) or math.isnan(hi)):
        return f"{name} must lie in [{low}, {high}]; found values from {lo:.4g} to {hi:.4g}."
    finite = x[torch.isfinite(x)]
    seen = ""
    if finite.numel():
        seen = f" (the other values from {float(finite.min()):.4g} to {float(finite.max()):.4g})"
    return (f"{name} must lie in [{low}, {high}] but contains NaN{seen}; check the data loading and "
            "normalisation (a division by a zero std, a corrupt file, an overflow in fp16).")


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
        parts.append(box_flags(boxes, valid))
    high = num_samples if num_samples is not None else torch.iinfo(torch.int64).max
    if indexes is not None:
        parts.append(_out_of_range(indexes, high).any().float()[None])
    values = torch.cat(parts).tolist()  # the one synchronisation
    _raise_image_values(name, values[0], values[1], image_range)
    pos = 2
    if masks is not None:
        lo, hi = values[pos], values[pos + 1]
        if not (lo >= 0.0 and hi <= 1.0):  # False for NaN too
            raise ValueError(_range_text(masks, "masks", 0.0, 1.0, lo, hi) + " Masks are soft object maps in "
                             "[0, 1] (ContraCAM's output, or a store's masks).")
        pos += 2
    if boxes is not None and valid is not None:
        raise_box_values(boxes, valid, bool(values[pos]), bool(values[pos + 1]), "boxes")
        pos += 2
    if indexes is not None and values[pos]:
        _raise_index_values(indexes, high, num_samples)


def _raise_image_values(name: str, lo: float, hi: float, image_range: tuple[float, float] | None) -> None:
    """The error of images with extremes ``lo``, ``hi``: not finite, or outside ``image_range``."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} contains NaN or infinite values; check the data loading and normalisation "
                         f"(a division by a zero std, a corrupt file, an fp16 overflow). "
                         f"torch.isfinite({name}).flatten(1).all(1) tells which images.")
    if image_range is None:
        return
    low, high = image_range
    if not (low <= lo and hi <= high):
        raise ValueError(f"{name} must lie in [{low}, {high}] (un-normalised frames); found values from "
                         f"{lo:.4g} to {hi:.4g}.{_image_range_fix(name, lo, hi)}")


def _out_of_range(indexes: Tensor, high: int) -> Tensor:
    """Which of the dataset ``indexes`` lie outside ``[0, high)`` (bool, like ``indexes``)."""
    return (indexes < 0) | (indexes >= high)


def _raise_index_values(indexes: Tensor, high: int, num_samples: int | None) -> None:
    """The error of dataset indexes of which some lie outside ``[0, high)`` (names up to three)."""
    bad = indexes[_out_of_range(indexes, high)][:3].tolist()
    more = "..." if len(bad) == 3 else ""
    end = num_samples if num_samples is not None else "N"
    raise ValueError(f"indexes must be dataset indexes in [0, {end}), got {bad}{more}: pass each sample's "
                     "position in the dataset (ObjectAwareDataset(..., return_index=True) appends it to the "
                     "batch).")
