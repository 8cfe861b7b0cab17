"""ObjectAwareMoCoV2Transform against Lightly's MoCoV2Transform."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

pytest.importorskip("lightly")

import PIL.Image  # noqa: E402
from lightly.transforms.moco_transform import MoCoV2Transform  # noqa: E402

from objaug.integrations.lightly._object_aware import PerImageObjectAwareCrop  # noqa: E402
from objaug.integrations.lightly.moco_transform import ObjectAwareMoCoV2Transform  # noqa: E402


def describe(op) -> str:
    """repr, or type + attributes for Lightly's ops that have the default object repr."""
    r = repr(op)
    if " object at 0x" not in r:
        return r
    return f"{type(op).__name__}({', '.join(f'{k}={describe(v)}' for k, v in sorted(vars(op).items()))})"


def test_same_arguments_defaults_and_pipeline_as_lightly():
    sig = {k: p.default for k, p in inspect.signature(ObjectAwareMoCoV2Transform.__init__).parameters.items()
           if k != "self" and p.kind is not p.KEYWORD_ONLY}
    ref_sig = {k: p.default for k, p in inspect.signature(MoCoV2Transform.__init__).parameters.items() if k != "self"}
    assert sig == ref_sig
    ours, ref = ObjectAwareMoCoV2Transform(input_size=64), MoCoV2Transform(input_size=64)
    assert isinstance(ours, MoCoV2Transform) and len(ours.transforms) == len(ref.transforms) == 2
    for view, ref_view in zip(ours.transforms, ref.transforms, strict=True):
        ops, ref_ops = view.transform.transforms, ref_view.transform.transforms
        assert isinstance(ops[0], PerImageObjectAwareCrop) and ops[0].scale == ref_ops[0].scale == (0.2, 1.0)
        assert [describe(o) for o in ops[1:]] == [describe(o) for o in ref_ops[1:]]


def test_query_and_key_views_inside_the_box():
    torch.manual_seed(0)
    a = np.zeros((50, 50, 3), np.uint8)
    a[...] = (0, 0, 255)
    a[5:25, 20:45] = (255, 0, 0)
    t = ObjectAwareMoCoV2Transform(input_size=16, cj_prob=0.0, random_gray_scale=0.0, gaussian_blur=0.0,
                                   normalize=None, return_masks=True)
    mask = torch.zeros(1, 50, 50)
    mask[:, 5:25, 20:45] = 0.7
    for _ in range(10):
        (q, k), (mq, mk) = t(PIL.Image.fromarray(a), torch.tensor([[0.4, 0.1, 0.9, 0.5]]), mask)
        for v, m in ((q, mq), (k, mk)):
            assert v.shape == (3, 16, 16) and torch.allclose(v, torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1))
            assert torch.allclose(m, torch.full((1, 16, 16), 0.7))
