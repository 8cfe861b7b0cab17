"""objaug.tools.viz.plot_object_aware_views with the per-image Lightly transforms people train with."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("lightly")

from objaug.integrations.lightly.byol_transform import ObjectAwareBYOLTransform  # noqa: E402
from objaug.integrations.lightly.simclr_transform import (  # noqa: E402
    ObjectAwareSimCLRTransform,
    ObjectAwareSimCLRViewTransform,
)
from objaug.tools.viz import BOX_COLORS, plot_object_aware_views  # noqa: E402

PLAIN = dict(cj_prob=0.0, random_gray_scale=0.0, gaussian_blur=0.0)  # geometry + ImageNet normalisation


def images_with_a_box():
    """Blue frames of 64 px with a red square at (16..48, 16..48) px; its normalised box."""
    x = torch.zeros(2, 3, 64, 64)
    x[:, 2] = 1.0
    x[:, :, 16:48, 16:48] = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    return x, torch.tensor([[[0.25, 0.25, 0.75, 0.75]]] * 2)


@pytest.mark.parametrize("make", [lambda: ObjectAwareSimCLRTransform(input_size=32, **PLAIN),
                                  lambda: ObjectAwareBYOLTransform(),
                                  lambda: ObjectAwareSimCLRViewTransform(input_size=32, **PLAIN)])
def test_per_image_lightly_transforms(tmp_path, make):
    torch.manual_seed(0)
    augment = make()
    images, boxes = images_with_a_box()
    grid = plot_object_aware_views(images, augment, boxes, path=tmp_path / "views.png")
    n_views = 1 if isinstance(augment, ObjectAwareSimCLRViewTransform) else 2
    size = 32 if n_views == 1 or isinstance(augment, ObjectAwareSimCLRTransform) else 224
    band = grid.shape[1] - (2 * size + 3 * 2)
    assert band in (14, 25) and grid.shape[2] == (1 + n_views) * (size + 2) + 2 and (tmp_path / "views.png").exists()
    first_row = grid[:, band + 2: band + 2 + size]
    first = first_row[:, :, 2:2 + size].reshape(3, -1)
    assert (first == torch.tensor(BOX_COLORS[0], dtype=torch.uint8).view(3, 1)).all(0).any()  # the box drawn
    if isinstance(augment, ObjectAwareBYOLTransform):
        return  # BYOL's colour jitter, blur and solarisation change the colours
    for j in range(1, 1 + n_views):  # crops inside the red box, un-normalised back to red
        view = first_row[:, :, 2 + j * (size + 2): 2 + j * (size + 2) + size].float()
        assert (view - torch.tensor([255.0, 0.0, 0.0]).view(3, 1, 1)).abs().max() <= 2


def test_per_image_transform_needs_boxes_or_masks():
    with pytest.raises(TypeError, match="pass boxes"):
        plot_object_aware_views(torch.rand(2, 3, 16, 16), ObjectAwareSimCLRTransform(input_size=8))
