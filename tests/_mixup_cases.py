"""Inputs shared by the background-mixup tests."""

from __future__ import annotations

import torch


def halo_batch(n: int, size: int, halo: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random images and masks that are ``halo`` everywhere with a 1.0 peak in a central square (about a
    third of the side): a diffuse map whose rectangle at a low threshold (0.2) is the whole frame."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, size, size, generator=g)
    masks = torch.full((n, 1, size, size), halo)
    a, b = size // 3, size // 3 + max(2, size // 3)
    masks[..., a:b, a:b] = 1.0
    return images, masks
