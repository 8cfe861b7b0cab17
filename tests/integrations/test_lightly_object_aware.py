"""The per-image object-aware crop and the shared view / multi-view logic (integrations/lightly/_object_aware.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("lightly")

import PIL.Image  # noqa: E402
from lightly.transforms.multi_view_transform import MultiViewTransform  # noqa: E402
from lightly.transforms.multi_view_transform_v2 import MultiViewTransformV2  # noqa: E402
from lightly.utils.debug import generate_grid_of_augmented_images  # noqa: E402
from torchvision import tv_tensors  # noqa: E402
from torchvision.transforms import v2  # noqa: E402

from objaug.config import BoxConfig  # noqa: E402
from objaug.integrations.lightly._object_aware import (  # noqa: E402
    ObjectAwareMultiViewTransform,
    PerImageObjectAwareCrop,
    parse_objects,
)
from objaug.integrations.lightly.simclr_transform import (  # noqa: E402
    ObjectAwareSimCLRTransform,
    ObjectAwareSimCLRViewTransform,
)

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
PLAIN = dict(cj_prob=0.0, random_gray_scale=0.0, gaussian_blur=0.0, normalize=None)  # geometry only


def scene(h: int = 60, w: int = 80, boxes_px=((10, 15, 50, 45),), colours=(RED,), bg=BLUE) -> PIL.Image.Image:
    """An image of colour ``bg`` with each pixel box (x1, y1, x2, y2) filled with its colour."""
    a = np.empty((h, w, 3), np.uint8)
    a[...] = bg
    for (x1, y1, x2, y2), c in zip(boxes_px, colours, strict=True):
        a[y1:y2, x1:x2] = c
    return PIL.Image.fromarray(a)


def norm_boxes(boxes_px, h: int = 60, w: int = 80) -> torch.Tensor:
    return torch.tensor(boxes_px, dtype=torch.float32) / torch.tensor([w, h, w, h])


def colours_of(view: torch.Tensor) -> set[tuple[int, int, int]]:
    px = (view.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).reshape(-1, 3)
    return {tuple(int(c) for c in p) for p in px.unique(dim=0)}


# ------------------------------------------------------------------------------------------ the crop
@pytest.mark.parametrize("as_tensor", [False, True])
def test_crop_stays_inside_the_box(as_tensor):
    torch.manual_seed(0)
    img = scene()
    box = tv_tensors.BoundingBoxes([[10, 15, 50, 45]], format="XYXY", canvas_size=(60, 80))
    crop = PerImageObjectAwareCrop(24)
    x = v2.functional.to_image(img) if as_tensor else img
    for _ in range(60):
        out, _ = crop(x, box)
        out = v2.functional.to_dtype(v2.functional.to_image(out), torch.float32, scale=True)
        assert out.shape == (3, 24, 24)
        assert colours_of(out) == {RED}


def test_crop_rounds_subpixel_boxes_inwards():
    """A box whose edges fall inside pixels: only whole pixels of the box are used."""
    torch.manual_seed(1)
    img = scene(boxes_px=((10, 15, 50, 45),))
    # The box spans 9.6 .. 50.4 horizontally: pixel columns 9 and 50 are blue but partly inside the box.
    region = torch.tensor([[9.6 / 80, 14.7 / 60, 50.4 / 80, 45.3 / 60]])
    view = ObjectAwareSimCLRViewTransform(input_size=16, **PLAIN)
    for _ in range(40):
        assert colours_of(view(img, region)) == {RED}


def test_crop_area_fraction_follows_scale_relative_to_the_box():
    """Area fraction of the crop relative to the box: within scale (up to rounding), like torchvision's RRC."""
    torch.manual_seed(2)
    crop = PerImageObjectAwareCrop(8, scale=(0.2, 0.6))
    img = torch.zeros(3, 200, 300)
    box = tv_tensors.BoundingBoxes([[50, 40, 250, 160]], format="XYXY", canvas_size=(200, 300))
    fracs = []
    for _ in range(300):
        p = crop.make_params([img, box])
        assert 50 <= p["left"] and p["left"] + p["width"] <= 250 and 40 <= p["top"] and p["top"] + p["height"] <= 160
        fracs.append(p["width"] * p["height"] / (200 * 120))
    f = np.array(fracs)
    assert f.min() > 0.2 - 0.02 and f.max() < 0.6 + 0.02
    assert abs(f.mean() - 0.4) < 0.03  # uniform in scale (every candidate fits this box)


def test_whole_image_crop_matches_torchvision_statistics():
    """Without boxes the crop is torchvision's RandomResizedCrop: compare the area/ratio statistics."""
    torch.manual_seed(3)
    ours, ref = PerImageObjectAwareCrop(8), v2.RandomResizedCrop(8)
    img = torch.zeros(3, 120, 200)
    a = np.array([[p["width"] * p["height"] / 24000, p["width"] / p["height"]]
                  for p in (ours.make_params([img]) for _ in range(1500))])
    b = np.array([[p["width"] * p["height"] / 24000, p["width"] / p["height"]]
                  for p in (ref.make_params([img]) for _ in range(1500))])
    assert abs(a[:, 0].mean() - b[:, 0].mean()) < 0.03
    assert abs(np.log(a[:, 1]).mean() - np.log(b[:, 1]).mean()) < 0.05
    assert a[:, 0].max() <= 1.0 and a[:, 0].min() > 0.07


def test_crop_picks_among_several_boxes():
    torch.manual_seed(4)
    img = scene(boxes_px=((0, 0, 30, 30), (50, 30, 80, 60)), colours=(RED, GREEN))
    boxes = norm_boxes([[0, 0, 30, 30], [50, 30, 80, 60]])
    view = ObjectAwareSimCLRViewTransform(input_size=8, **PLAIN)
    seen = [frozenset(colours_of(view(img, boxes))) for _ in range(40)]
    assert set(seen) == {frozenset({RED}), frozenset({GREEN})}


def test_rejects_bad_crop_arguments():
    with pytest.raises(ValueError, match="scale"):
        PerImageObjectAwareCrop(8, scale=(0.5, 1.5))
    with pytest.raises(ValueError, match="box_sampling"):
        PerImageObjectAwareCrop(8, box_sampling="random")


# ------------------------------------------------------------------------------------------ views and masks
def test_mask_follows_the_image_through_crop_and_flip():
    """Image red where the mask is 1: the cropped/flipped mask equals the view's red channel."""
    torch.manual_seed(5)
    a = np.zeros((64, 64, 3), np.uint8)
    a[10:40, 5:30, 0] = 255  # an asymmetric object, so a missed flip would show
    a[40:60, 30:60, 0] = 255
    mask = torch.from_numpy(a[..., 0] > 0)[None].float()
    view = ObjectAwareSimCLRViewTransform(input_size=32, **PLAIN)
    boxes = torch.zeros(0, 4)  # no object: whole-image crops, varied
    for _ in range(20):
        out, out_mask = view(PIL.Image.fromarray(a), boxes, mask)
        assert out_mask.shape == (1, 32, 32) and out_mask.dtype == torch.float32
        assert 0 <= out_mask.min() and out_mask.max() <= 1
        assert torch.allclose(out[0], out_mask[0], atol=2 / 255)


def test_view_alone_is_lightlys_pipeline_and_plot_grid_works():
    """view(image) runs self.transform (whole image); Lightly's plotting helper uses it."""
    torch.manual_seed(6)
    t = ObjectAwareSimCLRTransform(input_size=16)
    assert isinstance(t, MultiViewTransform)
    assert isinstance(t.transforms[0].transform, v2.Compose)
    assert isinstance(t.transforms[0].transform.transforms[0], PerImageObjectAwareCrop)
    assert isinstance(t.transforms[0].transform.transforms[0], v2.RandomResizedCrop)
    assert t.transforms[0](scene()).shape == (3, 16, 16)
    grid = generate_grid_of_augmented_images([scene(), scene()], t)
    assert len(grid) == 2 and all(isinstance(im, PIL.Image.Image) and im.size == (16, 16) for im in grid[0])


def test_multi_view_transform_v2_with_tv_tensors():
    torch.manual_seed(7)
    view = ObjectAwareSimCLRViewTransform(input_size=16, **PLAIN)
    mv = MultiViewTransformV2([view, view])
    boxes = tv_tensors.BoundingBoxes([[10, 15, 40, 30]], format="XYWH", canvas_size=(60, 80))  # xyxy (10,15,50,45)
    mask = tv_tensors.Mask(torch.zeros(1, 60, 80, dtype=torch.uint8))
    out = mv(scene(), boxes, mask)
    assert len(out) == 2
    for v, b, m in out:  # torchvision v2's contract: the sample's structure, transformed (test_lightly_tv_tensors.py)
        assert colours_of(v) == {RED} and m.shape == (1, 16, 16) and b.canvas_size == (16, 16)


# ------------------------------------------------------------------------------------------ multi-view
def test_all_views_share_the_chosen_box():
    torch.manual_seed(8)
    img = scene(boxes_px=((0, 0, 30, 30), (50, 30, 80, 60)), colours=(RED, GREEN))
    boxes = norm_boxes([[0, 0, 30, 30], [50, 30, 80, 60]])
    t = ObjectAwareSimCLRTransform(input_size=8, **PLAIN)
    firsts = []
    for _ in range(30):
        v0, v1 = t(img, boxes)
        assert colours_of(v0) == colours_of(v1) and len(colours_of(v0)) == 1
        firsts.append(next(iter(colours_of(v0))))
    assert set(firsts) == {RED, GREEN}


def test_valid_flags_and_p_zero():
    torch.manual_seed(9)
    img = scene(boxes_px=((0, 0, 30, 30), (50, 30, 80, 60)), colours=(RED, GREEN))
    boxes = norm_boxes([[0, 0, 30, 30], [50, 30, 80, 60]])
    t = ObjectAwareSimCLRTransform(input_size=8, **PLAIN)
    for _ in range(15):
        assert all(colours_of(v) == {GREEN} for v in t(img, boxes, valid=torch.tensor([False, True])))
    whole = ObjectAwareSimCLRTransform(input_size=8, box_p=0.0, min_scale=1.0, **PLAIN)
    assert any(BLUE in colours_of(v) for _ in range(5) for v in whole(img, boxes))


def test_boxes_from_mask_only_and_target_dict():
    torch.manual_seed(10)
    img = scene()
    mask = torch.zeros(1, 60, 80)
    mask[:, 15:45, 10:50] = 1.0
    t = ObjectAwareSimCLRTransform(input_size=8, box_config=BoxConfig(margin=0.0), return_masks=True, **PLAIN)
    for _ in range(10):
        views, masks = t(img, None, mask)
        assert all(colours_of(v) == {RED} for v in views)
        assert all(torch.allclose(m, torch.ones(1, 8, 8)) for m in masks)
    views, masks = t(img, {"boxes": norm_boxes([[10, 15, 50, 45]]), "masks": mask.bool()})
    assert len(views) == len(masks) == 2


def test_parse_objects_conventions():
    img = scene()
    size, b, v, m = parse_objects(img, tv_tensors.BoundingBoxes([[8, 6, 40, 30]], format="XYXY", canvas_size=(60, 80)))
    assert size == (60, 80) and torch.allclose(b, torch.tensor([[0.1, 0.1, 0.5, 0.5]])) and v.tolist() == [True]
    _, _, _, m = parse_objects(img, None, torch.full((60, 80), 255, dtype=torch.uint8))
    assert m.shape == (1, 60, 80) and m.max() == 1.0
    inst = torch.zeros(3, 60, 80)
    inst[1, :5] = 1
    _, _, _, m = parse_objects(img, None, inst)  # instance masks merge
    assert m.shape == (1, 60, 80) and m.sum() == 5 * 80


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((), {}, ValueError, "ObjectAwareDataset"),
        ((torch.rand(2, 3, 4),), {}, ValueError, "batch"),
        ((torch.tensor([0.1, 0.1, 0.5, 0.5]),), {}, ValueError, r"\(1, 4\)"),
        ((torch.tensor([[8.0, 6.0, 40.0, 30.0]]),), {}, ValueError, "normalised"),
        ((torch.tensor([[0.5, 0.1, 0.2, 0.5]]),), {}, ValueError, "x1 <= x2"),
        ((torch.tensor([[0, 0, 1, 1]]),), {}, TypeError, "floating"),
        ((tv_tensors.BoundingBoxes([[1, 1, 5, 5]], format="XYXY", canvas_size=(30, 40)),), {}, ValueError,
         "canvas_size"),
        ((torch.zeros(0, 4), torch.zeros(1, 30, 40)), {}, ValueError, "image's size"),
        ((torch.zeros(1, 4),), {"valid": torch.ones(2, dtype=torch.bool)}, ValueError, "valid"),
        (("boxes",), {}, TypeError, "boxes must be"),
    ],
)
def test_bad_input_gives_clear_errors(args, kwargs, error, match):
    t = ObjectAwareSimCLRTransform(input_size=8)
    with pytest.raises(error, match=match):
        t(scene(), *args, **kwargs)


def test_bad_image_and_construction_errors():
    t = ObjectAwareSimCLRTransform(input_size=8)
    with pytest.raises(ValueError, match="one image at a time"):
        t(torch.rand(2, 3, 8, 8), torch.zeros(0, 4))
    with pytest.raises(TypeError, match="ObjectAwareDataset"):
        t((scene(), 0), torch.zeros(0, 4))
    with pytest.raises(ValueError, match="return_masks"):
        ObjectAwareSimCLRTransform(input_size=8, return_masks=True)(scene(), torch.zeros(0, 4))
    from lightly.transforms.simclr_transform import SimCLRViewTransform

    with pytest.raises(TypeError, match="object-aware view"):
        ObjectAwareMultiViewTransform([SimCLRViewTransform()])
    with pytest.raises(ValueError, match="probability"):
        ObjectAwareSimCLRTransform(box_p=1.5)
    assert math.isclose(ObjectAwareSimCLRTransform(box_p=0.25).box_p, 0.25)


def test_input_size_matches_torchvision_query_size():
    """objects.input_size (public torchvision API) computes what torchvision's private query_size does."""
    from torchvision import tv_tensors
    from torchvision.transforms.v2._utils import query_size

    from objaug.integrations.lightly.objects import input_size

    image = tv_tensors.Image(torch.rand(3, 12, 20))
    boxes = tv_tensors.BoundingBoxes(torch.tensor([[1.0, 2.0, 5.0, 6.0]]), format="XYXY", canvas_size=(12, 20))
    mask = tv_tensors.Mask(torch.zeros(1, 12, 20))
    for flat in ([image], [image, boxes, mask], [torch.rand(3, 12, 20), 3, "x"], [PIL.Image.new("RGB", (20, 12))]):
        assert input_size(flat) == tuple(query_size(flat))
    with pytest.raises(ValueError, match="multiple"):
        input_size([image, tv_tensors.Mask(torch.zeros(1, 5, 5))])
    with pytest.raises(TypeError, match="No image"):
        input_size([3])
