"""A small NT-Xent (SimCLR) loss in pure torch, for the demo and tests (no lightly dependency)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["nt_xent"]


def nt_xent(z1: Tensor, z2: Tensor, *, temperature: float = 0.2) -> Tensor:
    """Normalised temperature-scaled cross entropy (SimCLR) of two batches of embeddings.

    For 2B embeddings (both views), each one's positive is its other view and its negatives are the
    2B - 2 other embeddings; the loss is the mean cross entropy over all 2B anchors.

    Args:
        z1: (B, D) embeddings of the first views (un-normalised; L2-normalised here), B >= 2.
        z2: (B, D) embeddings of the second views, same device and dtype.
        temperature: softmax temperature (> 0).

    Returns:
        A scalar tensor (float32 or the embeddings' dtype if wider).

    Raises:
        ValueError: shapes differ, are not 2-D, B < 2, or temperature <= 0.
    """
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must both be (B, D) with the same shape, got {tuple(z1.shape)} and "
                         f"{tuple(z2.shape)}.")
    if z1.shape[0] < 2:
        raise ValueError(f"nt_xent needs a batch of at least 2 pairs for negatives, got B={z1.shape[0]}.")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}.")
    b = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2], dim=0).float(), dim=1)
    logits = z @ z.t() / temperature
    logits = logits.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(logits, target)
