"""The README's Python quick starts run as written (on CPU, with a tiny model and generated data)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _python_blocks_under(heading: str) -> str:
    section = README.split(heading, 1)[1].split("\n### ", 1)[0]
    return "\n".join(re.findall(r"```python\n(.*?)```", section, flags=re.S))


@pytest.fixture
def namespace():
    torch.manual_seed(0)
    model = torchvision.models.resnet.ResNet(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1])
    model.fc = nn.Identity()
    images = torch.rand(4, 3, 64, 64)
    boxes = torch.tensor([[0.1, 0.1, 0.6, 0.6], [0.2, 0.3, 0.9, 0.8]]).expand(4, 2, 4).clone()
    valid = torch.tensor([[True, False], [True, True], [False, False], [True, True]])
    masks = torch.zeros(4, 1, 64, 64)
    masks[:, :, 16:40, 20:44] = 1.0
    import objaug

    return {"objaug": objaug, "model": model.eval(), "images": images, "boxes": boxes, "valid": valid, "masks": masks}


def test_contracam_quick_start(namespace):
    code = _python_blocks_under("### ContraCAM on any batch")
    exec(code, namespace)
    assert namespace["maps"].shape == (4, 1, 64, 64)
    objects = namespace["objects"]
    assert objects.boxes.shape == (4, 4, 4) and objects.valid.shape == (4, 4)
    assert objects.masks.shape == (4, 1, 64, 64) and torch.equal(objects.masks, namespace["maps"])


def test_augmentation_quick_start(namespace):
    code = _python_blocks_under("### Batched object-aware augmentation on the device").replace('"cuda"', '"cpu"')
    code = code.replace("simclr_views(224)", "simclr_views(32)").replace("RandomResizedCrop(224)",
                                                                         "RandomResizedCrop(32)")
    exec(code, namespace)
    assert namespace["x0"].shape == (4, 3, 32, 32)
    assert namespace["mixed"].shape == (4, 3, 32, 32) and namespace["was_mixed"].dtype == torch.bool
