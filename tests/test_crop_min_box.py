"""The minimum box size of the object-aware crop (``min_box_pixels``): small boxes grow around their centre."""

from __future__ import annotations

import pytest
import torch

from objaug.augment.crop import ObjectAwareRandomResizedCrop
from objaug.functional.crop import grow_small_boxes


def test_grow_small_boxes_hand_computed():
    boxes = torch.tensor([[[0.50, 0.50, 0.55, 0.52],    # 10 x 2 pixels on a 100 x 200 (H x W) image
                           [0.00, 0.95, 0.05, 1.00],    # 10 x 5 pixels in the bottom-left corner
                           [0.10, 0.10, 0.60, 0.90]]])  # 100 x 80 pixels: unchanged
    out = grow_small_boxes(boxes, min_pixels=32, image_size=(100, 200))
    expected = torch.tensor([[[0.445, 0.35, 0.605, 0.67],  # 32 / 200 = 0.16 wide, 32 / 100 = 0.32 high, same centre
                              [0.00, 0.68, 0.16, 1.00],    # grown, then shifted back inside the image
                              [0.10, 0.10, 0.60, 0.90]]])
    torch.testing.assert_close(out, expected)
    assert grow_small_boxes(boxes, min_pixels=0, image_size=(100, 200)) is boxes
    whole = grow_small_boxes(boxes, min_pixels=500, image_size=(100, 200))  # larger than the image: whole side
    torch.testing.assert_close(whole[0, 0], torch.tensor([0.0, 0.0, 1.0, 1.0]))


def test_crop_draws_inside_the_grown_box():
    images = torch.rand(4, 3, 100, 200)
    boxes = torch.tensor([[0.50, 0.50, 0.55, 0.52]]).expand(4, 1, 4)
    crop = ObjectAwareRandomResizedCrop(16, scale=(1.0, 1.0), ratio=(1.0, 1.0), min_box_pixels=32)
    crop(images, boxes)
    cb = crop._params["crop_boxes"]  # (B, 4) normalised xyxy of the crops in the input
    assert crop._params["object"].all()
    torch.testing.assert_close(cb, torch.tensor([[0.445, 0.35, 0.605, 0.67]]).expand(4, 4), atol=2e-3, rtol=0)
    plain = ObjectAwareRandomResizedCrop(16, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    plain(images, boxes)
    width_px = (plain._params["crop_boxes"][:, 2] - plain._params["crop_boxes"][:, 0]) * 200
    assert (width_px < 11).all()  # without the option: the 10 x 2 box itself (2 x 2 pixels at ratio 1)


@pytest.mark.parametrize(("bad", "error"), [(-1, ValueError), (1.5, TypeError), (True, TypeError)])
def test_min_box_pixels_is_checked(bad, error):
    with pytest.raises(error, match="min_box_pixels must be an int >= 0"):
        ObjectAwareRandomResizedCrop(16, min_box_pixels=bad)


def _plain_view(**extra):
    from objaug.augment.views import ViewConfig

    return ViewConfig(input_size=16, min_scale=1.0, max_scale=1.0, ratio=(1.0, 1.0), cj_prob=0.0,
                      random_gray_scale=0.0, gaussian_blur=0.0, hf_prob=0.0, normalize=None, **extra)


def test_view_config_min_box_pixels_grows_a_tiny_box_end_to_end():
    from objaug.augment.pipeline import ObjectAwareAugment
    from objaug.functional.crop import crop_and_resize

    images = torch.rand(4, 3, 100, 200)
    boxes = torch.tensor([[0.50, 0.50, 0.55, 0.52]]).expand(4, 1, 4)  # 10 x 2 pixels
    aug = ObjectAwareAugment([_plain_view(min_box_pixels=32), _plain_view(), _plain_view(min_box_pixels=32,
                                                                                         object_crop=False)])
    (grown, plain, whole), params = aug(images, boxes, return_params=True)
    # 32 / 200 = 0.16 wide, 32 / 100 = 0.32 high around the box's centre (0.525, 0.51); ratio 1, scale 1:
    # the crop is the whole 32 x 32-pixel grown box
    expected = torch.tensor([[0.445, 0.35, 0.605, 0.67]]).expand(4, 4)
    assert params[0]["object"].all()
    torch.testing.assert_close(params[0]["crop_boxes"], expected, atol=2e-3, rtol=0)
    torch.testing.assert_close(grown, crop_and_resize(images, params[0]["crop_boxes"], (16, 16)))
    width_px = (params[1]["crop_boxes"][:, 2] - params[1]["crop_boxes"][:, 0]) * 200
    assert (width_px < 11).all()  # the default (0) crops the tiny box itself
    whole_wh = params[2]["crop_boxes"][:, 2:] - params[2]["crop_boxes"][:, :2]  # object_crop=False: not grown
    torch.testing.assert_close(whole_wh, torch.tensor([[0.5, 1.0]]).expand(4, 2))  # 100 x 100 of 100 x 200


@pytest.mark.parametrize(("bad", "error"), [(-1, ValueError), (2.0, TypeError), (True, TypeError)])
def test_view_config_min_box_pixels_is_checked(bad, error):
    with pytest.raises(error, match="min_box_pixels must be an int >= 0"):
        _plain_view(min_box_pixels=bad)
