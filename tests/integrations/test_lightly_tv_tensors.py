"""objaug's per-image Lightly transforms on torchvision v2 samples (tv_tensors.BoundingBoxes / Mask), the way
Lightly's MultiViewTransformV2 passes them: the boxes travel with the sample, no objaug dataset needed."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("lightly")

from lightly.transforms.multi_view_transform_v2 import MultiViewTransformV2  # noqa: E402
from test_lightly_object_aware import GREEN, PLAIN, RED, colours_of, scene  # noqa: E402
from torchvision import tv_tensors  # noqa: E402
from torchvision.transforms.v2 import functional as TF  # noqa: E402

from objaug.integrations.lightly.byol_transform import ObjectAwareBYOLView1Transform  # noqa: E402
from objaug.integrations.lightly.objects import find_objects, parse_objects  # noqa: E402
from objaug.integrations.lightly.simclr_transform import (  # noqa: E402
    ObjectAwareSimCLRTransform,
    ObjectAwareSimCLRViewTransform,
)

H, W = 60, 80
XYXY = [[10.0, 15.0, 50.0, 45.0]]  # the red box of scene()


def boxes_in(fmt: str) -> tv_tensors.BoundingBoxes:
    xyxy = tv_tensors.BoundingBoxes(XYXY, format="XYXY", canvas_size=(H, W))
    return TF.convert_bounding_box_format(xyxy, new_format=getattr(tv_tensors.BoundingBoxFormat, fmt))


def label_mask() -> tv_tensors.Mask:
    """A torchvision label mask: 2 on the red box, 0 elsewhere (uint8, as segmentation datasets give it)."""
    m = torch.zeros(1, H, W, dtype=torch.uint8)
    m[:, 15:45, 10:50] = 2
    return tv_tensors.Mask(m)


@pytest.mark.parametrize("fmt", ["XYXY", "XYWH", "CXCYWH"])
def test_any_box_format_gives_objaugs_normalised_xyxy(fmt):
    _, norm, ok, _ = parse_objects(scene(), boxes_in(fmt))
    assert torch.allclose(norm, torch.tensor(XYXY) / torch.tensor([W, H, W, H]), atol=1e-6) and ok.tolist() == [True]


def test_view_inside_multi_view_transform_v2_keeps_the_target_structure():
    torch.manual_seed(0)
    view = ObjectAwareSimCLRViewTransform(input_size=16, **PLAIN)
    labels = torch.tensor([7])
    target = {"boxes": boxes_in("CXCYWH"), "masks": label_mask(), "labels": labels}
    for _ in range(10):
        out = MultiViewTransformV2([view, view])(scene(), target)
        assert len(out) == 2
        for v, t in out:
            assert colours_of(v) == {RED}  # the crop lies inside the box
            assert set(t) == {"boxes", "masks", "labels"} and t["labels"] is labels
            assert isinstance(t["masks"], tv_tensors.Mask) and t["masks"].dtype == torch.uint8
            assert t["masks"].unique().tolist() == [2]  # labels stay labels; the whole view is the box
            assert isinstance(t["boxes"], tv_tensors.BoundingBoxes) and t["boxes"].canvas_size == (16, 16)


def test_view_flips_boxes_and_mask_with_the_image():
    torch.manual_seed(1)
    left = torch.zeros(1, H, W, dtype=torch.int64)
    left[:, 15:45, 10:30] = 1  # the left half of the box
    view = ObjectAwareSimCLRViewTransform(input_size=16, min_scale=1.0, hf_prob=1.0, **PLAIN)
    image = scene(boxes_px=((10, 15, 30, 45), (30, 15, 50, 45)), colours=(RED, GREEN))
    box = tv_tensors.BoundingBoxes(XYXY, format="XYXY", canvas_size=(H, W))
    v, b, m = view(image, box, tv_tensors.Mask(left))
    px = (v.clamp(0, 1) * 255).round().to(torch.uint8)
    # flipped (the crop is the whole box): the mask's object, the red left half, is now the right half
    assert m.dtype == torch.int64 and m[0, :, :8].eq(0).all() and m[0, :, 8:].eq(1).all()
    assert px[:, :, 12].T.unique(dim=0).tolist() == [list(RED)] and px[:, :, 3].T.unique(dim=0).tolist() == [
        list(GREEN)]
    assert torch.allclose(b.as_subclass(torch.Tensor), torch.tensor([[0.0, 0.0, 16.0, 16.0]]))


def test_multi_view_transform_takes_a_v2_sample():
    torch.manual_seed(2)
    t = ObjectAwareSimCLRTransform(input_size=8, return_masks=True, **PLAIN)
    target = {"boxes": boxes_in("XYWH"), "masks": label_mask(), "labels": torch.tensor([1])}
    for call in (lambda: t(scene(), target), lambda: t((scene(), target)), lambda: t(scene(), boxes_in("XYXY"),
                                                                                     label_mask())):
        views, masks = call()
        assert [colours_of(v) for v in views] == [{RED}, {RED}]
        assert all(m.dtype == torch.float32 and m.min() > 0.999 for m in masks)  # label 2 -> object, not 2/255


def test_v2_dataset_without_objaug_dataset():
    """A torchvision-style dataset applying a joint transform to (image, target) carries the boxes itself."""

    class Detection(torch.utils.data.Dataset):
        def __init__(self, transforms):
            self.transforms = transforms

        def __len__(self):
            return 4

        def __getitem__(self, i):
            return self.transforms(scene(), {"boxes": boxes_in("XYXY"), "labels": torch.tensor([i])})

    torch.manual_seed(3)
    views = next(iter(torch.utils.data.DataLoader(Detection(ObjectAwareSimCLRTransform(input_size=8, **PLAIN)),
                                                  batch_size=4)))
    assert len(views) == 2 and views[0].shape == (4, 3, 8, 8)
    assert all(colours_of(v) == {RED} for x in views for v in x)
    pairs = next(iter(torch.utils.data.DataLoader(Detection(MultiViewTransformV2(
        [ObjectAwareSimCLRViewTransform(input_size=8, **PLAIN), ObjectAwareBYOLView1Transform(input_size=8, **PLAIN)])),
        batch_size=4)))
    (x0, t0), (x1, t1) = pairs
    assert x0.shape == x1.shape == (4, 3, 8, 8) and t0["labels"].tolist() == [[0], [1], [2], [3]]


def test_find_objects_rules():
    image, mask = scene(), label_mask()
    assert find_objects((image,)) == (image, None, None)
    plain = torch.zeros(1, 4)
    assert find_objects((image, plain))[1] is plain  # objaug's plain convention passes through
    got = find_objects(((image, [{"masks": mask}]),))
    assert got[0] is image and got[1] is None and got[2] is mask
    with pytest.raises(ValueError, match="2 BoundingBoxes"):
        find_objects((image, boxes_in("XYXY"), {"more": boxes_in("XYWH")}))
