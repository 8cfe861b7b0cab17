"""Mask helpers: resize, binarise and store the soft object masks that ContraCAM produces.

All masks in objaug are (B, 1, H, W) floating tensors with values in [0, 1] (1 = object),
on any device; every function here works on the whole batch on the input's device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from objaug.validation import check_bool, check_choice, check_image_batch, check_int, check_size, check_threshold

__all__ = ["masks_from_uint8", "masks_to_uint8", "otsu_thresholds", "resize_masks", "soft_masks", "threshold_masks"]

_MODES = ("bilinear", "area", "nearest", "bicubic")


_check_threshold = check_threshold  # the shared check (objaug.validation)


def resize_masks(
    masks: Tensor,
    size: int | tuple[int, int],
    *,
    mode: str = "bilinear",
    antialias: bool = False,
) -> Tensor:
    """Resize a batch of soft masks, keeping values in [0, 1].

    Args:
        masks: (B, 1, h, w) floating tensor, values in [0, 1], any device. Half precision and
            float64 are computed in float32.
        size: the output size, ``S`` for S x S or ``(H, W)``.
        mode: ``"bilinear"`` (default; ``align_corners=False``), ``"area"`` (box averaging,
            the right choice for downsampling), ``"nearest"`` (PyTorch's ``"nearest-exact"``:
            the pixel whose centre is nearest, no half-pixel shift), or ``"bicubic"``
            (``align_corners=False``, as the reference upsamples its CAMs; bicubic overshoots,
            so the output is clamped).
        antialias: passed to ``F.interpolate`` for ``"bilinear"`` and ``"bicubic"`` (smoother
            downsampling); the other modes have no anti-aliasing, so ``True`` with them is refused.

    Returns:
        (B, 1, H, W) float32 tensor on ``masks``' device, clamped to [0, 1]. A new tensor even
        when the size is unchanged.

    Raises:
        TypeError: ``masks`` not a floating tensor, ``antialias`` not a bool.
        ValueError: ``masks`` not (B, 1, h, w), bad ``size`` or ``mode``, ``antialias=True`` with a mode
            that does not use it.
    """
    check_image_batch(masks, "masks", channels=1)
    out_size = check_size(size)
    check_choice(mode, "mode", _MODES)
    if check_bool(antialias, "antialias") and mode not in ("bilinear", "bicubic"):
        raise ValueError(f"antialias=True has no effect with mode={mode!r} (only 'bilinear' and 'bicubic' "
                         "anti-alias): drop antialias, or use mode='bilinear'.")
    x = masks.to(torch.float32)
    if tuple(x.shape[-2:]) != out_size:
        if mode == "nearest":
            x = F.interpolate(x, size=out_size, mode="nearest-exact")
        elif mode == "area":
            x = F.interpolate(x, size=out_size, mode="area")
        else:
            x = F.interpolate(x, size=out_size, mode=mode, align_corners=False, antialias=antialias)
    return x.clamp(0.0, 1.0)


def soft_masks(maps: Tensor, *, size: int | tuple[int, int] | None = None, mode: str = "bilinear") -> Tensor:
    """The soft masks themselves: ``maps`` resized (if ``size`` is given) and clamped to [0, 1].

    This is the background-mixup mask of the paper (the soft T=1 ContraCAM map is the mixing
    ratio; no threshold).

    Args:
        maps: (B, 1, h, w) floating tensor (CAM maps, nominally in [0, 1]), any device.
        size: output size ``S`` or ``(H, W)``; ``None`` keeps ``(h, w)``.
        mode: resize mode, see :func:`resize_masks`.

    Returns:
        (B, 1, H, W) float32 tensor in [0, 1] on ``maps``' device (a new tensor).

    Raises:
        TypeError, ValueError: as :func:`resize_masks`.
    """
    check_image_batch(maps, "maps", channels=1)
    out_size = (maps.shape[-2], maps.shape[-1]) if size is None else size
    return resize_masks(maps, out_size, mode=mode)


def threshold_masks(
    maps: Tensor,
    threshold: float = 0.5,
    *,
    size: int | tuple[int, int] | None = None,
    mode: str = "bilinear",
) -> Tensor:
    """Binary masks ``maps >= threshold``, after resizing the soft maps to ``size`` if given.

    Resizing the soft map first and thresholding after gives smooth object outlines at the
    output resolution (thresholding first and resizing a binary mask gives blocky ones).

    Args:
        maps: (B, 1, h, w) floating tensor (CAM maps in [0, 1]), any device.
        threshold: in (0, 1]; a pixel is 1 if its (resized) value is ``>= threshold``.
        size: output size ``S`` or ``(H, W)``; ``None`` keeps ``(h, w)``.
        mode: resize mode, see :func:`resize_masks`.

    Returns:
        (B, 1, H, W) float32 tensor with values in {0, 1} on ``maps``' device.

    Raises:
        TypeError, ValueError: as :func:`resize_masks`, or ``threshold`` outside (0, 1].
    """
    t = _check_threshold(threshold)
    soft = soft_masks(maps, size=size, mode=mode)
    return (soft >= t).to(torch.float32)


def otsu_thresholds(maps: Tensor, *, bins: int = 64) -> Tensor:
    """Per-image Otsu threshold of soft maps: the cut that best separates object from background values.

    A fixed cut (0.2) on min-max normalised maps fails when a map is high almost everywhere: on real
    photos with a weakly trained encoder, ``maps >= 0.2`` covered the whole frame for every image, so
    background mixup never mixed. Otsu's cut adapts to each map's histogram: with ``bins`` equal bins
    over [0, 1] it maximises the between-class variance ``w0 * w1 * (mu0 - mu1) ** 2`` over the
    ``bins - 1`` inner bin edges (ties: the lowest edge). Batched (a ``scatter_add`` histogram and
    cumulative sums), no host synchronisation.

    Args:
        maps: (B, 1, H, W) floating maps in [0, 1] (values outside are clamped), any device.
        bins: histogram bins, an int >= 2.

    Returns:
        (B,) float32 thresholds on ``maps``' device, in ``[1 / bins, 1 - 1 / bins]``; a pixel is object
        iff ``map >= threshold``. A constant map gets ``1 / bins``.

    Raises:
        TypeError: ``maps`` not a floating tensor.
        ValueError: ``maps`` not (B, 1, H, W), bad ``bins``.
    """
    check_image_batch(maps, "maps", channels=1)
    check_int(bins, "bins", low=2)
    b = maps.shape[0]
    flat = maps.detach().to(torch.float32).flatten(1).nan_to_num(0.0).clamp(0.0, 1.0)
    idx = (flat * bins).to(torch.int64).clamp_max(bins - 1)
    hist = torch.zeros(b, bins, device=maps.device, dtype=torch.float32).scatter_add_(1, idx, torch.ones_like(flat))
    prob = hist / hist.sum(dim=1, keepdim=True)
    centres = (torch.arange(bins, device=maps.device, dtype=torch.float32) + 0.5) / bins
    w0 = prob.cumsum(dim=1)[:, :-1]  # class 0 = bins [0, k), for the cut at edge k = 1 .. bins - 1
    m0 = (prob * centres).cumsum(dim=1)[:, :-1]
    total = (prob * centres).sum(dim=1, keepdim=True)
    w1 = 1.0 - w0
    between = (m0 * w1 - (total - m0) * w0).square() / (w0 * w1).clamp_min(1e-12)
    between = torch.where((w0 > 0) & (w1 > 0), between, -1.0)
    k = between.argmax(dim=1) + 1
    return k.to(torch.float32) / bins


def masks_to_uint8(masks: Tensor) -> Tensor:
    """Pack soft masks in [0, 1] into uint8 0..255 for compact storage.

    ``q = round(clamp(m, 0, 1) * 255)`` with round-half-to-even (``torch.round``); so
    ``masks_from_uint8(masks_to_uint8(m))`` is within ``0.5 / 255`` of ``clamp(m, 0, 1)``,
    and 0 and 1 are exact.

    Args:
        masks: floating tensor of any shape (usually (B, 1, H, W)), any device.

    Returns:
        uint8 tensor of the same shape on the same device.

    Raises:
        TypeError: ``masks`` not a floating tensor.
    """
    if not isinstance(masks, Tensor) or not masks.is_floating_point():
        got = masks.dtype if isinstance(masks, Tensor) else type(masks).__name__
        raise TypeError(f"masks must be a floating torch.Tensor with values in [0, 1], got {got}.")
    return (masks.to(torch.float32).clamp(0.0, 1.0) * 255.0).round_().to(torch.uint8)


def masks_from_uint8(masks: Tensor) -> Tensor:
    """Unpack uint8 masks (0..255) into float32 masks ``q / 255`` in [0, 1].

    Args:
        masks: uint8 tensor of any shape, any device (as written by :func:`masks_to_uint8`).

    Returns:
        float32 tensor of the same shape on the same device.

    Raises:
        TypeError: ``masks`` not a uint8 tensor.
    """
    if not isinstance(masks, Tensor) or masks.dtype != torch.uint8:
        got = masks.dtype if isinstance(masks, Tensor) else type(masks).__name__
        raise TypeError(f"masks must be a uint8 torch.Tensor (0..255), got {got}. Use masks_to_uint8 first.")
    return masks.to(torch.float32) / 255.0
