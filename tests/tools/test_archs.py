"""Model builders: timm Vision Transformers are built for any image size."""

from __future__ import annotations

import pytest
import torch

from objaug.tools.archs import build_backbone


def test_timm_vit_takes_any_patch_multiple_and_other_timm_models_still_build():
    pytest.importorskip("timm")
    vit = build_backbone("vit_tiny_patch16_224", depth=2).eval()
    assert vit(torch.randn(2, 3, 64, 96)).shape == (2, 192)
    assert build_backbone("timm:resnet10t")(torch.randn(2, 3, 32, 32)).shape == (2, 512)
