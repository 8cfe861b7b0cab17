"""The encoder/head split: each recognised model family, equality with the model's own forward."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from objaug.encoder_head import EncoderHead
from objaug.model_state import preserve_model_state
from objaug.split import split_model


def _resnet(fc: nn.Module | None = None) -> nn.Module:
    torch.manual_seed(0)
    m = torchvision.models.resnet.ResNet(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1])
    m.fc = fc if fc is not None else nn.Identity()
    return m.eval()


@pytest.mark.parametrize("fc", [None, nn.Linear(512, 8)])
def test_torchvision_resnet(fc):
    model = _resnet(fc)
    split = split_model(model)
    x = torch.randn(2, 3, 64, 64)
    feats = split.forward_features(x)
    assert feats.shape == (2, 512, 2, 2)
    torch.testing.assert_close(split.forward_head(feats), model(x))
    assert split.encoder[-1] is model.layer4  # shared, not copied
    convs = split.last_stage_convs(x)
    assert convs == [model.layer4[0].conv1, model.layer4[0].downsample[0]]


def test_lightly_style_sequential_backbone_with_projector():
    resnet = _resnet()
    backbone = nn.Sequential(*list(resnet.children())[:-1])  # ends with AdaptiveAvgPool2d
    projector = nn.Sequential(nn.Linear(512, 32), nn.ReLU(), nn.Linear(32, 8))
    split = split_model(backbone, projector=projector)
    x = torch.randn(2, 3, 64, 64)
    assert split.forward_features(x).shape == (2, 512, 2, 2)
    torch.testing.assert_close(split(x), projector(backbone(x).flatten(1)))


def test_object_with_backbone_and_projector_attributes():
    class Method(nn.Module):  # solo-learn's attribute contract
        def __init__(self):
            super().__init__()
            self.backbone = _resnet()
            self.projector = nn.Linear(512, 16)

    method = Method().eval()
    split = split_model(method)
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(split(x), method.projector(method.backbone(x)))


def test_lightly_model_classes():
    heads = pytest.importorskip("lightly.models.modules.heads")

    class SimCLR(nn.Module):  # as in lightly's examples/pytorch/simclr.py
        def __init__(self, backbone):
            super().__init__()
            self.backbone = backbone
            self.projection_head = heads.SimCLRProjectionHead(512, 64, 16)

        def forward(self, x):
            return self.projection_head(self.backbone(x).flatten(start_dim=1))

    model = SimCLR(nn.Sequential(*list(_resnet().children())[:-1])).eval()
    x = torch.randn(3, 3, 64, 64)
    torch.testing.assert_close(split_model(model)(x), model(x))


def test_timm_model():
    timm = pytest.importorskip("timm")
    model = timm.create_model("resnet10t", num_classes=0).eval()
    split = split_model(model)
    x = torch.randn(2, 3, 64, 64)
    assert split.forward_features(x).ndim == 4
    torch.testing.assert_close(split(x), model(x))


def test_explicit_split_and_projector_append():
    enc = nn.Conv2d(3, 4, 3)
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
    proj = nn.Linear(4, 2)
    split = split_model(EncoderHead(enc, head), projector=proj)
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(split(x), proj(head(enc(x))))


def test_unrecognised_model_says_how_to_split():
    with pytest.raises(TypeError, match=r"encoder=\.\.\., head=\.\.\."):
        split_model(nn.Linear(4, 4))
    with pytest.raises(TypeError, match="nn.Module"):
        split_model("resnet18")  # type: ignore[arg-type]


def test_preserve_model_state_restores_modes_and_flags_on_error():
    model = _resnet().train()
    model.layer1.eval()
    model.fc = nn.Linear(512, 2)
    model.fc.weight.requires_grad_(False)
    modes = {n: m.training for n, m in model.named_modules()}
    with pytest.raises(RuntimeError), preserve_model_state(model):
        assert not any(m.training for m in model.modules())
        model.conv1.weight.requires_grad_(False)
        raise RuntimeError
    assert modes == {n: m.training for n, m in model.named_modules()}
    assert model.conv1.weight.requires_grad and not model.fc.weight.requires_grad
