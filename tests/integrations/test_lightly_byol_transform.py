"""ObjectAwareBYOLTransform and its two views against Lightly's BYOL transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("lightly")

import PIL.Image  # noqa: E402
from lightly.transforms.byol_transform import BYOLTransform, BYOLView1Transform, BYOLView2Transform  # noqa: E402
from lightly_support import describe, positional  # noqa: E402

from objaug.integrations.lightly._object_aware import PerImageObjectAwareCrop  # noqa: E402
from objaug.integrations.lightly.byol_transform import (  # noqa: E402
    ObjectAwareBYOLTransform,
    ObjectAwareBYOLView1Transform,
    ObjectAwareBYOLView2Transform,
)


@pytest.mark.parametrize(("ours", "ref"), [(ObjectAwareBYOLView1Transform, BYOLView1Transform),
                                           (ObjectAwareBYOLView2Transform, BYOLView2Transform)])
def test_views_match_lightly_except_the_crop(ours, ref):
    assert positional(ours) == positional(ref)
    a, b = ours(input_size=48).transform.transforms, ref(input_size=48).transform.transforms
    assert isinstance(a[0], PerImageObjectAwareCrop) and a[0].scale == b[0].scale
    assert [describe(o) for o in a[1:]] == [describe(o) for o in b[1:]]
    assert isinstance(ours(), ref)


def test_transform_defaults_and_asymmetric_views():
    assert positional(ObjectAwareBYOLTransform).keys() == positional(BYOLTransform).keys()
    t = ObjectAwareBYOLTransform()
    assert isinstance(t, BYOLTransform)
    assert isinstance(t.transforms[0], ObjectAwareBYOLView1Transform)
    assert isinstance(t.transforms[1], ObjectAwareBYOLView2Transform)


def test_views_run_with_boxes_and_masks():
    torch.manual_seed(0)
    t = ObjectAwareBYOLTransform(
        view_1_transform=ObjectAwareBYOLView1Transform(input_size=24),
        view_2_transform=ObjectAwareBYOLView2Transform(input_size=24, solarization_prob=1.0),
        return_masks=True,
    )
    img = PIL.Image.fromarray((np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8))
    for _ in range(3):
        views, masks = t(img, torch.tensor([[0.1, 0.2, 0.9, 0.8]]), torch.rand(1, 40, 40))
        assert [v.shape for v in views] == [(3, 24, 24)] * 2 and [m.shape for m in masks] == [(1, 24, 24)] * 2
        assert all(v.dtype == torch.float32 for v in views)


def test_lightlys_own_views_are_refused():
    with pytest.raises(TypeError, match="ObjectAwareBYOLView1Transform"):
        ObjectAwareBYOLTransform(view_1_transform=BYOLView1Transform())  # type: ignore[arg-type]
