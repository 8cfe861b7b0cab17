"""ObjectAwareSimCLRTransform / ObjectAwareSimCLRViewTransform against Lightly's SimCLRTransform."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("lightly")

import PIL.Image  # noqa: E402
from lightly.transforms.simclr_transform import SimCLRTransform, SimCLRViewTransform  # noqa: E402
from lightly.transforms.utils import IMAGENET_NORMALIZE  # noqa: E402
from lightly_support import describe  # noqa: E402
from lightly_support import positional as lightly_params  # noqa: E402

from objaug.integrations.lightly._object_aware import PerImageObjectAwareCrop  # noqa: E402
from objaug.integrations.lightly.simclr_transform import (  # noqa: E402
    ObjectAwareSimCLRTransform,
    ObjectAwareSimCLRViewTransform,
)


def test_same_arguments_and_defaults_as_lightly():
    assert lightly_params(ObjectAwareSimCLRTransform) == lightly_params(SimCLRTransform)
    assert lightly_params(ObjectAwareSimCLRViewTransform) == lightly_params(SimCLRViewTransform)
    assert isinstance(ObjectAwareSimCLRTransform(), SimCLRTransform)
    assert isinstance(ObjectAwareSimCLRViewTransform(), SimCLRViewTransform)


@pytest.mark.parametrize("kwargs", [{}, {"input_size": 96, "min_scale": 0.3, "cj_strength": 0.5, "hf_prob": 0.0,
                                         "vf_prob": 0.5, "rr_prob": 0.5, "normalize": None}])
def test_pipeline_equals_lightlys_except_the_crop(kwargs):
    ours = ObjectAwareSimCLRViewTransform(**kwargs).transform.transforms
    ref = SimCLRViewTransform(**kwargs).transform.transforms
    assert len(ours) == len(ref)
    assert isinstance(ours[0], PerImageObjectAwareCrop)
    assert (ours[0].size, ours[0].scale, ours[0].ratio) == (ref[0].size, ref[0].scale, ref[0].ratio)
    for a, b in zip(ours[1:], ref[1:], strict=True):
        assert type(a) is type(b) and describe(a) == describe(b)


def test_outputs_shape_dtype_and_normalisation():
    torch.manual_seed(0)
    colour = np.array([200, 100, 50], np.uint8)
    img = PIL.Image.fromarray(np.broadcast_to(colour, (40, 50, 3)).copy())
    t = ObjectAwareSimCLRTransform(input_size=24, cj_prob=0.0, random_gray_scale=0.0, gaussian_blur=0.0)
    views = t(img, torch.tensor([[0.1, 0.1, 0.6, 0.9]]))
    assert isinstance(views, list) and len(views) == 2
    expected = (torch.tensor(colour / 255.0) - torch.tensor(IMAGENET_NORMALIZE["mean"])) / torch.tensor(
        IMAGENET_NORMALIZE["std"])
    for v in views:
        assert v.shape == (3, 24, 24) and v.dtype == torch.float32
        assert torch.allclose(v.mean(dim=(1, 2)), expected.float(), atol=1e-4)


@pytest.mark.filterwarnings("ignore:The function `to_tensor")  # Lightly's GaussianBlur on tensors
def test_default_augmentations_run_on_pil_and_tensor_images():
    torch.manual_seed(1)
    t = ObjectAwareSimCLRTransform(input_size=32)
    boxes = torch.tensor([[0.2, 0.2, 0.8, 0.7], [0.0, 0.0, 0.3, 0.3]])
    pil = PIL.Image.fromarray((np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8))
    for image in (pil, torch.rand(3, 48, 64)):
        for _ in range(3):
            views = t(image, boxes)
            assert [v.shape for v in views] == [(3, 32, 32)] * 2
            assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in views)
