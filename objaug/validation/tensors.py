"""Checks of tensor arguments by metadata only (type, shape, dtype, device): no device synchronisation.

Images and masks, a batch's dataset indexes, and the agreement of several tensors (one batch size, one
device).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["check_device", "check_image_batch", "check_indexes", "check_mask_batch", "check_same_batch",
           "check_same_device"]


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


def check_device(tensor: Tensor, name: str, device: torch.device, *, also_cpu: bool = False,
                 like: str = "images") -> None:
    """Refuse a tensor that is not on ``device`` (metadata only), naming where to move it.

    Args:
        tensor: the tensor to check.
        name: its argument name.
        device: the device it must be on (the images').
        also_cpu: also accept the CPU (inputs that are small and copied on purpose, e.g. a DataLoader's
            dataset indexes).
        like: what sets ``device``, for the message.

    Raises:
        ValueError: ``tensor`` is on another device.
    """
    if tensor.device == device or (also_cpu and tensor.device.type == "cpu"):
        return
    where = f"{device} (or the CPU)" if also_cpu and device.type != "cpu" else str(device)
    raise ValueError(f"{name} is on {tensor.device} but {like} are on {device}: move it to {where} with "
                     f"{name}.to({like}.device).")


def check_indexes(indexes: object, batch: int, device: torch.device | None = None,
                  name: str = "indexes") -> Tensor:
    """Dataset indexes of a batch: a ``(B,)`` integer tensor (or a sequence of ints), as int64 on ``device``.

    A tensor may be on ``device`` or on the CPU (a DataLoader's indexes; copied to ``device``).

    Raises:
        TypeError: not a tensor or a sequence of ints.
        ValueError: wrong shape, a floating / bool tensor, or a tensor on another device than ``device``
            and the CPU.
    """
    if not isinstance(indexes, Tensor):
        if isinstance(indexes, Sequence) and all(isinstance(i, int) for i in indexes):
            indexes = torch.tensor(list(indexes), dtype=torch.long)
        else:
            raise TypeError(f"{name} must be a (B,) integer tensor of dataset indexes, got {type(indexes).__name__}.")
    assert isinstance(indexes, Tensor)
    if device is not None:
        check_device(indexes, name, torch.device(device), also_cpu=True)
    if indexes.shape != (batch,) or indexes.is_floating_point() or indexes.dtype == torch.bool:
        raise ValueError(f"{name} must be a (B,) = ({batch},) integer tensor, got {indexes.dtype} "
                         f"{tuple(indexes.shape)}.")
    return indexes.to(device, dtype=torch.long, non_blocking=True)


def check_same_batch(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    """Raise ValueError if ``a`` and ``b`` differ in their first dimension."""
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{name_a} and {name_b} must have the same batch size, got {a.shape[0]} and {b.shape[0]}.")


def check_same_device(tensors: Sequence[tuple[str, Tensor]]) -> None:
    """Raise ValueError if the named tensors are not all on the first one's device (the images', usually).

    The message names each tensor that is elsewhere and the device to move it to.
    """
    if not tensors:
        return
    first, ref = tensors[0]
    away = [(n, t) for n, t in tensors[1:] if t.device != ref.device]
    if away:
        names = ", ".join(f"{n} on {t.device}" for n, t in away)
        moves = ", ".join(f"{n}.to({first}.device)" for n, _ in away)
        raise ValueError(f"All inputs must be on the same device as {first} ({ref.device}), got {names}: move them to "
                         f"{ref.device} with {moves}.")
