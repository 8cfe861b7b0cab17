"""The one crop recipe (objaug.functional.crop.object_crop_params) and the three crops that use it."""

from __future__ import annotations

import random

import pytest
import torch
from torchvision import tv_tensors

from objaug.augment.crop import ObjectAwareRandomResizedCrop
from objaug.engine import crop_view
from objaug.functional.crop import default_valid, object_crop_params, sample_regions

H, W = 96, 160
SETTINGS = {"scale": (0.2, 0.9), "ratio": (0.5, 2.0), "attempts": 10, "center_suppressed": True, "alpha": 0.6,
            "min_box_pixels": 40}


def _boxes() -> tuple[torch.Tensor, torch.Tensor]:
    boxes = torch.tensor([[[0.10, 0.20, 0.50, 0.70], [0.60, 0.10, 0.62, 0.15], [0.0, 0.0, 0.3, 0.3]],
                          [[0.30, 0.30, 0.90, 0.95], [0.40, 0.40, 0.41, 0.42], [0.0, 0.0, 0.0, 0.0]],
                          [[0.05, 0.50, 0.25, 0.60], [0.50, 0.50, 0.90, 0.90], [0.2, 0.2, 0.4, 0.4]]])
    valid = torch.tensor([[True, True, False], [True, True, True], [True, True, True]])
    return boxes, valid


# ----------------------------------------------------------------------------- one recipe, three crops
def test_same_seed_same_crop_boxes_through_the_crop_module_and_the_engine() -> None:
    boxes, valid = _boxes()
    images = torch.rand(3, 3, H, W)
    for box_sampling in ("uniform", "area"):
        torch.manual_seed(5)
        crop = ObjectAwareRandomResizedCrop(32, box_sampling=box_sampling, box_p=0.7, **SETTINGS)
        crop(images, boxes, valid)
        module = crop._params

        torch.manual_seed(5)
        recipe = object_crop_params(boxes, valid, (H, W), box_sampling=box_sampling, box_p=0.7, **SETTINGS)

        # The engine path (ObjectAwareAugment, the Lightly step, solo-learn): the region once, then crop_view.
        torch.manual_seed(5)
        regions, box_index, _ = sample_regions(boxes, valid, mode=box_sampling, p=0.7)
        cut = crop_view(images, regions, (32, 32), flip_prob=0.0, **SETTINGS)

        for key in ("crop_boxes", "box_index", "object", "regions", "fallback"):
            torch.testing.assert_close(module[key], recipe[key], rtol=0, atol=0)
        torch.testing.assert_close(box_index, recipe["box_index"])
        torch.testing.assert_close(cut.crop_boxes, recipe["crop_boxes"], rtol=0, atol=0)
        torch.testing.assert_close(cut.fallback, recipe["fallback"])


def test_same_seed_same_crop_boxes_through_the_lightly_per_image_crop() -> None:
    pytest.importorskip("lightly")
    from objaug.integrations.lightly._object_aware import PerImageObjectAwareCrop, _crop_pixels

    boxes, valid = _boxes()
    per_image = PerImageObjectAwareCrop(32, scale=SETTINGS["scale"], ratio=SETTINGS["ratio"], center_suppressed=True,
                                        alpha=0.6, min_box_pixels=40)
    image = tv_tensors.Image(torch.rand(3, H, W))
    for i in range(3):
        # The multi-view transform chooses the image's region (B = 1) and hands it to each view's crop.
        torch.manual_seed(11 + i)
        regions, _, used = sample_regions(boxes[i:i + 1], valid[i:i + 1], mode="uniform", p=0.7)
        pixel_region = tv_tensors.BoundingBoxes(regions * torch.tensor([W, H, W, H]), format="XYXY",
                                                canvas_size=(H, W))
        got = per_image.make_params([image, pixel_region] if bool(used[0]) else [image])

        torch.manual_seed(11 + i)
        recipe = object_crop_params(boxes[i:i + 1], valid[i:i + 1], (H, W), box_p=0.7, **SETTINGS)
        want = _crop_pixels(recipe["crop_boxes"][0].tolist(), recipe["regions"][0].tolist(), H, W)
        assert got == want


def test_lightly_multi_view_transform_uses_min_box_pixels() -> None:
    pytest.importorskip("lightly")
    from objaug.integrations.lightly.simclr_transform import ObjectAwareSimCLRTransform

    common = {"input_size": 16, "min_scale": 1.0, "cj_prob": 0.0, "random_gray_scale": 0.0, "gaussian_blur": 0.0,
              "hf_prob": 0.0, "normalize": None}
    image = torch.rand(3, 100, 200)
    tiny = torch.tensor([[0.50, 0.50, 0.55, 0.52]])  # 10 x 2 pixels
    grown = ObjectAwareSimCLRTransform(**common, min_box_pixels=32)
    plain = ObjectAwareSimCLRTransform(**common)
    assert grown.transforms[0].crop.min_box_pixels == 32
    assert plain.transforms[0].crop.min_box_pixels == 0
    params = grown.transforms[0].crop.make_params(
        [tv_tensors.Image(image), tv_tensors.BoundingBoxes(tiny * torch.tensor([200, 100, 200, 100]), format="XYXY",
                                                           canvas_size=(100, 200))])
    # the 32 x 32-pixel grown box (0.445, 0.35, 0.605, 0.67) in whole pixels, scale 1 at its own ratio
    assert params["width"] >= 30 and params["height"] >= 30
    views = grown(image, tiny)
    assert [tuple(v.shape) for v in views] == [(3, 16, 16)] * 2


# ----------------------------------------------------------------------------- min_box_pixels
def test_min_box_pixels_grows_the_chosen_region_hand_computed() -> None:
    # A 10 x 2-pixel box on a 100 x 200 (H x W) image, grown to 32 x 32 pixels around its centre (0.525, 0.51):
    # 32 / 200 = 0.16 wide, 32 / 100 = 0.32 high -> (0.445, 0.35, 0.605, 0.67). scale 1 at ratio 1: the crop is it.
    boxes = torch.tensor([[[0.50, 0.50, 0.55, 0.52]]])
    params = object_crop_params(boxes, None, (100, 200), scale=(1.0, 1.0), ratio=(1.0, 1.0), min_box_pixels=32)
    expected = torch.tensor([[0.445, 0.35, 0.605, 0.67]])
    torch.testing.assert_close(params["regions"], expected)
    torch.testing.assert_close(params["crop_boxes"], expected, atol=1e-5, rtol=0)
    assert params["object"].all() and not params["fallback"].any()
    # In the bottom-left corner the grown box is shifted back inside the image.
    corner = object_crop_params(torch.tensor([[[0.00, 0.95, 0.05, 1.00]]]), None, (100, 200), min_box_pixels=32)
    torch.testing.assert_close(corner["regions"], torch.tensor([[0.00, 0.68, 0.16, 1.00]]))
    # The whole frame never changes.
    whole = object_crop_params(boxes, None, (100, 200), box_p=0.0, min_box_pixels=500)
    torch.testing.assert_close(whole["regions"], torch.tensor([[0.0, 0.0, 1.0, 1.0]]))


def test_min_box_pixels_does_not_change_the_area_weights() -> None:
    # A 1 x 1-pixel box next to a 50 x 50-pixel one: area sampling picks the tiny one with probability 1/2501,
    # also when min_box_pixels grows it to 50 x 50 pixels afterwards.
    n = 4000
    boxes = torch.tensor([[0.0, 0.0, 0.01, 0.01], [0.5, 0.5, 1.0, 1.0]]).expand(n, 2, 4)
    torch.manual_seed(0)
    params = object_crop_params(boxes, None, (100, 100), box_sampling="area", min_box_pixels=50)
    assert (params["box_index"] == 0).float().mean() < 0.005
    big = params["regions"][params["box_index"] == 1]
    torch.testing.assert_close(big, boxes[0, 1].expand_as(big))


# ----------------------------------------------------------------------------- region choice vs a reference
def _reference_choice(boxes: list[list[float]], valid: list[bool], mode: str, box_p: float,
                      rng: random.Random) -> int:
    """One image, in plain Python: the usable boxes, one chosen (uniform or by area), used with prob. box_p."""
    usable = [k for k, (x1, y1, x2, y2) in enumerate(boxes) if valid[k] and x2 > x1 and y2 > y1]
    if not usable:
        return -1
    weights = [1.0 if mode == "uniform" else (boxes[k][2] - boxes[k][0]) * (boxes[k][3] - boxes[k][1])
               for k in usable]
    k = rng.choices(usable, weights=weights)[0]
    return k if rng.random() < box_p else -1


@pytest.mark.parametrize("mode", ["uniform", "area"])
def test_region_choice_distribution_matches_a_per_sample_reference(mode: str) -> None:
    boxes, valid = _boxes()
    n = 6000
    rng = random.Random(0)
    torch.manual_seed(0)
    params = object_crop_params(boxes.repeat(n, 1, 1), valid.repeat(n, 1), (H, W), box_sampling=mode, box_p=0.8)
    index = params["box_index"].view(n, 3)
    for i in range(3):
        image_boxes, image_valid = boxes[i].tolist(), valid[i].tolist()
        ref = [_reference_choice(image_boxes, image_valid, mode, 0.8, rng) for _ in range(n)]
        for k in (-1, 0, 1, 2):
            got = (index[:, i] == k).float().mean().item()
            want = sum(r == k for r in ref) / n
            assert abs(got - want) < 0.03, (mode, i, k, got, want)
    # Never an unusable box: invalid (image 0, box 2) or zero-area (image 1, box 2).
    assert not (index[:, 0] == 2).any() and not (index[:, 1] == 2).any()
    assert torch.equal(params["object"], params["box_index"] >= 0)


# ----------------------------------------------------------------------------- the rest of the contract
def test_box_index_reuses_a_choice_without_drawing_it() -> None:
    boxes, valid = _boxes()
    torch.manual_seed(3)
    first = object_crop_params(boxes, valid, (H, W), box_p=0.5)
    state = torch.get_rng_state()
    second = object_crop_params(boxes, valid, (H, W), box_index=first["box_index"])
    torch.testing.assert_close(second["regions"], first["regions"])
    torch.testing.assert_close(second["object"], first["object"])
    torch.set_rng_state(state)  # the second call's draws are the crop's only: same as drawing it alone
    from objaug.functional.crop import sample_resized_crop_boxes

    crop_only, _ = sample_resized_crop_boxes(first["regions"], (H, W))
    torch.testing.assert_close(second["crop_boxes"], crop_only)


def test_flip_and_draw_counts() -> None:
    boxes, valid = _boxes()
    torch.manual_seed(0)
    no_flip = object_crop_params(boxes, valid, (H, W))
    after_no_flip = torch.rand(())
    torch.manual_seed(0)
    always = object_crop_params(boxes, valid, (H, W), flip_prob=1.0)
    after_flip = torch.rand(())
    assert not no_flip["flip"].any() and always["flip"].all()
    torch.testing.assert_close(no_flip["crop_boxes"], always["crop_boxes"])  # the flip is drawn last
    assert after_no_flip != after_flip  # flip_prob > 0 draws B numbers, flip_prob = 0 none
    shared = object_crop_params(boxes[1:2, :2].expand(6, 2, 4), None, (H, W), flip_prob=0.5, same_on_batch=True)
    assert shared["flip"].all() or not shared["flip"].any()
    assert (shared["box_index"] == shared["box_index"][0]).all()


def test_no_boxes_and_default_valid() -> None:
    params = object_crop_params(torch.zeros(4, 0, 4), None, (H, W))
    torch.testing.assert_close(params["regions"], torch.tensor([[0.0, 0.0, 1.0, 1.0]]).expand(4, 4))
    assert (params["box_index"] == -1).all() and not params["object"].any()
    boxes, valid = _boxes()
    assert default_valid(boxes, valid) is valid
    assert default_valid(boxes, None).dtype == torch.bool and default_valid(boxes, None).all()
    assert default_valid(boxes[0], None).shape == (3,)
