"""Pure kernels of ContraCAM (method.md §1): the contrastive score and the Grad-CAM map.

Each function works on a whole batch, on any device, without host synchronisation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["contrastive_score", "gradcam_map", "minmax_normalize", "upsample_maps", "fill_masked"]


def contrastive_score(
    z: Tensor,
    keys: Tensor,
    in_batch: Sequence[Tensor],
    *,
    bank: Tensor | None = None,
    temperature: float = 1.0,
) -> Tensor:
    """Per-sample contrastive score S_i of ContraCAM.

    ``S_i = z_i . k_i / t - logsumexp_{s, j != i}(z_i . z_j^s / t  [, z_i . n_m / t])``

    Args:
        z: (B, D) unit-norm embeddings of the current images (the ones differentiated).
        keys: (B, D) unit-norm positives (the original images' embeddings), no gradient.
        in_batch: the in-batch negatives, one (B, D) unit-norm tensor per refinement iteration so far
            (original and masked images), no gradient. Entry j of each is a negative for every i != j.
        bank: optional external negatives (N, D), unit norm (a MoCo queue, a lightly memory bank).
        temperature: the softmax temperature t > 0.

    Returns:
        (B,) float tensor, the score of each sample; S.sum() differentiates each z_i independently.
    """
    b = z.shape[0]
    pos = (z * keys).sum(dim=1) / temperature
    logits = []
    if len(in_batch):
        stacked = torch.cat(list(in_batch), dim=0)  # (T*B, D)
        neg = z @ stacked.T / temperature  # (B, T*B)
        self_mask = torch.eye(b, dtype=torch.bool, device=z.device).repeat(1, len(in_batch))
        logits.append(neg.masked_fill(self_mask, float("-inf")))
    if bank is not None:
        logits.append(z @ bank.T / temperature)
    if not logits:
        raise ValueError("contrastive_score needs negatives: in-batch embeddings or a bank.")
    return pos - torch.logsumexp(torch.cat(logits, dim=1), dim=1)


def gradcam_map(features: Tensor, grads: Tensor) -> Tensor:
    """Grad-CAM with non-negative channel weights: ``ReLU(sum_k max(0, mean_hw dS/dA_k) A_k)``.

    Args:
        features: (B, C, h, w) feature map A.
        grads: (B, C, h, w) gradient dS/dA.

    Returns:
        (B, 1, h, w) map in float32 (float64 for float64 input), non-negative, not normalised.
    """
    dtype = torch.promote_types(features.dtype, torch.float32)
    a = features.to(dtype)
    weights = grads.to(dtype).mean(dim=(2, 3), keepdim=True).clamp_min(0)
    return (weights * a).sum(dim=1, keepdim=True).relu()


def upsample_maps(maps: Tensor, size: tuple[int, int], *, mode: str = "bicubic") -> Tensor:
    """Resize (B, 1, h, w) maps to ``size`` = (H, W) (``align_corners=False`` like the reference)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    if mode in ("nearest", "area"):
        return F.interpolate(maps, size=size, mode=mode)
    return F.interpolate(maps, size=size, mode=mode, align_corners=False)


def minmax_normalize(maps: Tensor, *, eps: float = 1e-20) -> Tensor:
    """Per-image min-max normalisation of (B, 1, H, W) maps to [0, 1] (a constant map becomes 0)."""
    flat = maps.flatten(1)
    low = flat.amin(dim=1).view(-1, 1, 1, 1)
    shifted = maps - low
    high = shifted.flatten(1).amax(dim=1).view(-1, 1, 1, 1)
    return shifted / (high + eps)


def fill_masked(images: Tensor, masks: Tensor, fill: Tensor) -> Tensor:
    """``images * (1 - masks) + fill * masks``: paint the found regions with a colour.

    Args:
        images: (B, C, H, W) floating images.
        masks: (B, 1, H, W) maps in [0, 1].
        fill: a tensor broadcastable to (B, C, H, W), e.g. the (1, C, 1, 1) mean colour.
    """
    m = masks.to(images.dtype)
    return images * (1 - m) + fill.to(images.dtype) * m
