"""ObjectAwareRandomResizedCrop against Kornia's own conventions (the cases of Kornia's TestRandomResizedCrop and
its container tests, written here on whole-frame boxes, where the object-aware crop is a RandomResizedCrop)."""

from __future__ import annotations

import kornia.augmentation as K
import pytest
import torch
from kornia.constants import DataKey, Resample
from kornia.geometry.transform import warp_affine

from objaug.augment.crop import ObjectAwareRandomResizedCrop, ObjectAwareSequential


def _whole(b: int) -> torch.Tensor:
    """``(B, 0, 4)``: no object boxes, every crop a RandomResizedCrop of the whole frame."""
    return torch.zeros(b, 0, 4)


def test_smoke_repr_and_shape() -> None:
    crop = ObjectAwareRandomResizedCrop((8, 10), scale=(0.5, 1.0), resample="BILINEAR", box_p=0.5, p=1.0)
    text = repr(crop)
    assert "box_p=0.5" in text and "p=1.0" in text and "resample='bilinear'" in text
    out = crop(torch.rand(3, 2, 16, 20), _whole(3))
    assert out.shape == (3, 2, 8, 10)


def test_p_is_kornias_gate_and_box_p_the_box_probability() -> None:
    x = torch.rand(4, 3, 16, 20)
    assert torch.equal(ObjectAwareRandomResizedCrop(8, p=0.0)(x, _whole(4)), x)  # Kornia: p=0 returns the input
    torch.manual_seed(0)
    gated = ObjectAwareRandomResizedCrop(8, p=0.5)
    shapes = {tuple(gated(x, _whole(4)).shape) for _ in range(20)}
    assert shapes == {(4, 3, 16, 20), (4, 3, 8, 8)}  # the batch is cropped or returned together
    boxes = torch.tensor([[0.1, 0.1, 0.6, 0.6]]).expand(4, 1, 4)
    never = ObjectAwareRandomResizedCrop(8, box_p=0.0)
    never(x, boxes)
    assert not never._params["object"].any()
    always = ObjectAwareRandomResizedCrop(8)
    always(x, boxes)
    assert always._params["object"].all()


@pytest.mark.parametrize("keepdim", [False, True])
def test_3d_and_2d_input_with_keepdim(keepdim: bool) -> None:
    crop = ObjectAwareRandomResizedCrop((6, 7), keepdim=keepdim)
    chw = torch.rand(3, 16, 20)
    out = crop(chw, torch.zeros(0, 4))  # one image's (K, 4) boxes
    assert out.shape == ((3, 6, 7) if keepdim else (1, 3, 6, 7))
    again = crop(chw, crop._params)
    torch.testing.assert_close(again, out)
    hw = torch.rand(16, 20)
    out = crop(hw, torch.tensor([[0.2, 0.2, 0.8, 0.9]]))
    assert out.shape == ((6, 7) if keepdim else (1, 1, 6, 7))
    assert crop._params["object"].all()
    batched = crop(torch.rand(2, 3, 16, 20), _whole(2))
    assert batched.shape == (2, 3, 6, 7)  # keepdim never drops a real batch dimension


@pytest.mark.parametrize("resample", [Resample.BILINEAR, "BILINEAR", "bilinear", "bicubic", "BICUBIC",
                                      Resample.NEAREST, "nearest", 1])
def test_resample_spellings(resample: object) -> None:
    crop = ObjectAwareRandomResizedCrop(8, resample=resample)  # type: ignore[arg-type]
    x = torch.rand(2, 3, 16, 20)
    out = crop(x, _whole(2))
    mode = Resample.get(resample).name.lower()  # type: ignore[arg-type]
    plain = ObjectAwareRandomResizedCrop(8, resample=mode, antialias=False)
    ref = plain(x, params=crop._params)
    if mode != "bilinear":  # "auto" never prefilters nearest or bicubic
        torch.testing.assert_close(out, ref)
    assert crop.flags["resample"] == Resample.get(mode)


def test_unsupported_resample_and_antialias_are_refused_naming_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"\('nearest', 'bilinear', 'bicubic'\)"):
        ObjectAwareRandomResizedCrop(8, resample="lanczos")
    with pytest.raises(ValueError, match="bilinear area filter"):
        ObjectAwareRandomResizedCrop(8, resample="bicubic", antialias=True)


def test_object_aware_differences_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="area fraction above 1"):
        ObjectAwareRandomResizedCrop(8, scale=(0.5, 1.5))
    with pytest.raises(ValueError, match="boxes is required.*ObjectAwareSequential"):
        ObjectAwareRandomResizedCrop(8)(torch.rand(1, 3, 8, 8))


def test_same_on_batch() -> None:
    x = torch.rand(1, 3, 16, 20).expand(4, 3, 16, 20)
    crop = ObjectAwareRandomResizedCrop(8, same_on_batch=True)
    out = crop(x, _whole(4))
    assert (crop._params["crop_boxes"] == crop._params["crop_boxes"][0]).all()
    torch.testing.assert_close(out, out[:1].expand_as(out))
    different = ObjectAwareRandomResizedCrop(8, same_on_batch=False)
    different(torch.rand(16, 3, 16, 20), _whole(16))
    assert not (different._params["crop_boxes"] == different._params["crop_boxes"][0]).all()


def test_params_replay_positional_and_onto_a_mask_at_another_resolution() -> None:
    crop = ObjectAwareRandomResizedCrop(8, antialias=False)
    x = torch.rand(2, 3, 16, 20)
    out = crop(x, _whole(2))
    assert torch.equal(crop(x, crop._params), out)  # Kornia's aug(x, params)
    assert torch.equal(crop(x, params=crop._params), out)
    # A mask at twice the resolution: the normalised crop boxes cut the same region of it.
    big = torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")
    torch.testing.assert_close(crop(big[:, :1], crop._params, resample="nearest"),
                               crop(x[:, :1], crop._params, resample="nearest"), atol=0.35, rtol=0)
    with pytest.raises(ValueError, match="params once"):
        crop(x, crop._params, params=crop._params)


def test_transform_matrix_is_the_images_warp() -> None:
    crop = ObjectAwareRandomResizedCrop((8, 10), antialias=False)
    x = torch.rand(3, 2, 16, 20, dtype=torch.float64)
    out = crop(x, _whole(3))
    matrix = crop.transform_matrix
    assert matrix is not None and matrix.shape == (3, 3, 3) and matrix.dtype == torch.float64
    warped = warp_affine(x, matrix[:, :2], (8, 10), mode="bilinear", padding_mode="border", align_corners=False)
    torch.testing.assert_close(warped, out, atol=1e-5, rtol=0)  # the crop boxes are float32


def test_inverse_puts_the_crop_back_on_the_canvas() -> None:
    x = torch.rand(2, 3, 16, 20)
    crop = ObjectAwareRandomResizedCrop(8, antialias=False)
    # A pixel-aligned crop of 8 x 8 pixels (columns 4-11, rows 2-9), not resized: the inverse is exact.
    params = crop.forward_parameters(x.shape, _whole(2))
    params["crop_boxes"] = torch.tensor([[4 / 20, 2 / 16, 12 / 20, 10 / 16]]).expand(2, 4)
    out = crop(x, params)
    torch.testing.assert_close(out, x[:, :, 2:10, 4:12])
    back = crop.inverse(out)
    expected = torch.zeros_like(x)
    expected[:, :, 2:10, 4:12] = x[:, :, 2:10, 4:12]
    torch.testing.assert_close(back, expected)
    # Random crops: shape and the crop region come back (resampled twice).
    crop(x, _whole(2))
    assert crop.inverse(crop(x, crop._params)).shape == x.shape


def test_inverse_through_augmentation_sequential() -> None:
    crop = ObjectAwareRandomResizedCrop(8, scale=(1.0, 1.0), ratio=(1.25, 1.25), antialias=False)
    seq = K.AugmentationSequential(crop, K.ColorJitter(0.0, p=1.0), data_keys=["input", "mask"])
    x = torch.rand(2, 3, 16, 20)
    mask = (torch.rand(2, 1, 16, 20) > 0.5).float()
    with crop.using_boxes(_whole(2)):
        views, view_masks = seq(x, mask)
    assert views.shape == (2, 3, 8, 8) and view_masks.shape == (2, 1, 8, 8)
    back, back_mask = seq.inverse(views, view_masks)
    assert back.shape == x.shape and back_mask.shape == mask.shape
    torch.testing.assert_close(back, crop.inverse(views, params=crop._params))  # ColorJitter(0) changes nothing
    # scale 1 at the frame's own ratio: the crop is the whole frame, so the round trip is a resize and back
    # (zero padding darkens the outermost pixels, as Kornia's inverse does).
    torch.testing.assert_close(back[..., 2:-2, 2:-2].mean(), x[..., 2:-2, 2:-2].mean(), atol=0.02, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtype(dtype: torch.dtype) -> None:
    x = torch.rand(2, 3, 16, 20).to(dtype)
    crop = ObjectAwareRandomResizedCrop(8)
    out = crop(x, _whole(2))
    assert out.dtype == dtype
    assert crop.transform_matrix is not None and crop.transform_matrix.dtype == dtype
    with pytest.raises(TypeError, match="floating point"):
        crop((x * 255).to(torch.uint8), _whole(2))


@pytest.mark.parametrize("antialias", [False, True])
def test_gradcheck(antialias: bool) -> None:
    crop = ObjectAwareRandomResizedCrop((3, 4), antialias=antialias)
    x = torch.rand(1, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    crop(x, _whole(1))
    params = crop._params
    assert torch.autograd.gradcheck(lambda t: crop(t, params), (x,), raise_exception=True)


def test_whole_frame_area_and_aspect_quantiles_match_kornia() -> None:
    n, h, w = 20000, 512, 640
    torch.manual_seed(0)
    ours = ObjectAwareRandomResizedCrop(224).forward_parameters((n, 3, h, w), _whole(n))["crop_boxes"]
    ours_w = (ours[:, 2] - ours[:, 0]) * w
    ours_h = (ours[:, 3] - ours[:, 1]) * h
    theirs = K.RandomResizedCrop((224, 224)).forward_parameters((n, 3, h, w))["src"].float()
    theirs_w = theirs[:, 1, 0] - theirs[:, 0, 0] + 1
    theirs_h = theirs[:, 2, 1] - theirs[:, 1, 1] + 1
    q = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95])
    for mine, kornia_ in ((ours_w * ours_h / (h * w), theirs_w * theirs_h / (h * w)),
                          (ours_w / ours_h, theirs_w / theirs_h)):
        torch.testing.assert_close(torch.quantile(mine, q), torch.quantile(kornia_, q), atol=0.01, rtol=0)


# ----------------------------------------------------------------------------- boxes in a container
def test_bbox_xyxy_places_the_crops_in_object_aware_sequential() -> None:
    crop = ObjectAwareRandomResizedCrop(8, scale=(1.0, 1.0), ratio=(0.5, 2.0), check_inputs=True)
    seq = ObjectAwareSequential(crop, K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=1.0),
                                data_keys=["input", "mask", "bbox_xyxy"])
    x = torch.rand(2, 3, 16, 20)
    mask = (torch.rand(2, 1, 16, 20) > 0.5).float()
    # Kornia's bbox_xyxy: inclusive pixel extent; columns 2-9, rows 3-12 of the first image.
    boxes = torch.tensor([[[2.0, 3.0, 9.0, 12.0]], [[10.0, 0.0, 19.0, 7.0]]])
    views, view_masks, view_boxes = seq(x, mask, boxes)
    assert views.shape == (2, 3, 8, 8) and view_masks.shape == (2, 1, 8, 8)
    # scale 1 at a ratio in range: each crop is its box, in normalised pixel-edge coordinates.
    torch.testing.assert_close(crop._params["crop_boxes"],
                               torch.tensor([[2 / 20, 3 / 16, 10 / 20, 13 / 16], [10 / 20, 0.0, 1.0, 8 / 16]]))
    assert crop._params["object"].all()
    # The boxes follow the crop like any annotation (Kornia maps the inclusive pixel centres): the first box's
    # 8 columns become the 8 of the view (0..7), the second's 10 columns are shrunk 0.8x to -0.1..7.1.
    torch.testing.assert_close(view_boxes[..., [0, 2]], torch.tensor([[[0.0, 7.0]], [[-0.1, 7.1]]]))
    # Replay with Kornia's params= draws nothing and reuses the placement.
    again = seq(x, mask, boxes, params=seq._params)
    torch.testing.assert_close(again[1], view_masks)


def test_stock_container_routes() -> None:
    crop = ObjectAwareRandomResizedCrop(8)
    seq = K.AugmentationSequential(crop, K.ColorJitter(0.1, p=1.0), data_keys=["input", "bbox_xyxy"])
    x = torch.rand(2, 3, 16, 20)
    boxes = torch.tensor([[[2.0, 3.0, 9.0, 12.0]], [[10.0, 0.0, 19.0, 7.0]]])
    with pytest.raises(ValueError, match="ObjectAwareSequential"):  # the stock container cannot see the boxes
        seq(x, boxes)
    normalised = torch.tensor([[[2 / 20, 3 / 16, 10 / 20, 13 / 16]], [[10 / 20, 0.0, 1.0, 8 / 16]]])
    with crop.using_boxes(normalised):
        views, _ = seq(x, boxes)
    assert views.shape == (2, 3, 8, 8) and crop._params["object"].all()
    with pytest.raises(ValueError, match="before every other geometric"):
        ObjectAwareSequential(K.RandomHorizontalFlip(), crop, data_keys=["input", "bbox_xyxy"])
    assert DataKey.get("bbox_xyxy") == DataKey.BBOX_XYXY
