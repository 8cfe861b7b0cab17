"""Tests for the object-aware crop kernels (objaug.functional.crop) and module (objaug.augment.crop)."""

from __future__ import annotations

import math

import kornia.augmentation as K
import pytest
import torch
import torch.nn.functional as F
from kornia.constants import DataKey, Resample
from torchvision.transforms import RandomResizedCrop as TVRandomResizedCrop

from objaug.augment.crop import ObjectAwareRandomResizedCrop
from objaug.functional.crop import (
    apply_crop,
    crop_and_resize,
    crop_matrix,
    full_image_boxes,
    sample_box_index,
    sample_resized_crop_boxes,
)

CUDA = torch.cuda.is_available()


def _random_boxes(b: int, k: int, *, low: float = 0.0, high: float = 1.0, gen: torch.Generator | None = None):
    a = torch.rand(b, k, 2, generator=gen) * (high - low) + low
    c = torch.rand(b, k, 2, generator=gen) * (high - low) + low
    lo, hi = torch.minimum(a, c), torch.maximum(a, c)
    hi = torch.maximum(hi, lo + 0.02).clamp(max=high)
    lo = torch.minimum(lo, hi - 0.02)
    return torch.stack([lo[..., 0], lo[..., 1], hi[..., 0], hi[..., 1]], -1)


# ----------------------------------------------------------------------------- resampling kernel
@pytest.mark.parametrize("antialias", [True, False])
def test_box_region_is_cropped_exactly(antialias: bool) -> None:
    """scale=(1, 1) and the box's own ratio: the crop is the box region (pixel-aligned box)."""
    torch.manual_seed(0)
    region = torch.rand(2, 3, 16, 24)
    # Replicate-pad so that samples just outside the region equal the region's border, as
    # F.interpolate's border clamping assumes; the region sits at rows 4:20, columns 8:32.
    image = F.pad(region, (8, 16, 4, 12), mode="replicate")  # (2, 3, 32, 48)
    box = torch.tensor([[8 / 48, 4 / 32, 32 / 48, 20 / 32]]).expand(2, 1, 4)
    valid = torch.ones(2, 1, dtype=torch.bool)
    for size in [(16, 24), (32, 48), (8, 12)]:
        crop = ObjectAwareRandomResizedCrop(size, scale=(1.0, 1.0), ratio=(1.5, 1.5), antialias=antialias)
        out = crop(image, box, valid)
        assert torch.allclose(crop._params["crop_boxes"], box[:, 0], atol=1e-6)
        assert not crop._params["fallback"].any()
        if size == (16, 24):
            ref = region
        elif size == (32, 48):
            ref = F.interpolate(region, size=size, mode="bilinear", align_corners=False)
        else:  # downscale by 2: area mean (and bilinear at the 2x2 centre is the same mean)
            ref = F.interpolate(region, size=size, mode="area")
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_antialias_integer_factor_is_area_mean() -> None:
    torch.manual_seed(0)
    image = torch.rand(3, 2, 40, 40)
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.1, 0.2, 0.9, 0.8], [0.5, 0.25, 1.0, 0.75]])
    for i, (x1, y1, x2, y2) in enumerate((boxes * 40).round().long().tolist()):
        out = crop_and_resize(image[i:i + 1], boxes[i:i + 1], ((y2 - y1) // 4, (x2 - x1) // 4))
        ref = F.avg_pool2d(image[i:i + 1, :, y1:y2, x1:x2], 4)
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_antialias_removes_aliasing() -> None:
    """A column pattern of period 4 shrunk 4x: area filter gives its mean, plain bilinear aliases."""
    cols = torch.tensor([1.0, 0.0, 0.0, 0.0]).repeat(32)
    image = cols.view(1, 1, 1, 128).expand(1, 1, 128, 128).contiguous()
    box = full_image_boxes(1)
    smooth = crop_and_resize(image, box, 32, antialias=True)
    aliased = crop_and_resize(image, box, 32, antialias=False)
    torch.testing.assert_close(smooth, torch.full_like(smooth, 0.25), atol=1e-5, rtol=0)
    assert aliased.abs().max() < 1e-6  # every sample falls between two dark columns
    # On a smooth image both are close to torchvision's antialiased resize.
    torch.manual_seed(0)
    img = F.interpolate(torch.rand(1, 3, 16, 16), size=(128, 128), mode="bicubic", align_corners=False)
    ref = F.interpolate(img, size=(40, 40), mode="bilinear", align_corners=False, antialias=True)
    assert (crop_and_resize(img, box, 40) - ref).abs().mean() < 0.01


def test_auto_antialias_follows_the_static_downscale_bound() -> None:
    torch.manual_seed(0)
    boxes = _random_boxes(3, 1, low=0.0, high=1.0)[:, 0]
    small = torch.rand(3, 3, 36, 36)  # -> 32: at most 1.125x, plain bilinear
    torch.testing.assert_close(crop_and_resize(small, boxes, 32), crop_and_resize(small, boxes, 32, antialias=False))
    large = torch.rand(3, 3, 80, 80)  # -> 32: up to 2.5x, area filter
    torch.testing.assert_close(crop_and_resize(large, boxes, 32), crop_and_resize(large, boxes, 32, antialias=True))
    crop = ObjectAwareRandomResizedCrop(32)
    out = crop(large, boxes[:, None])
    torch.testing.assert_close(out, crop_and_resize(large, crop._params["crop_boxes"], 32, antialias=True))


def test_grid_and_roi_paths_agree_when_upscaling() -> None:
    torch.manual_seed(0)
    image = torch.rand(4, 3, 20, 30)
    boxes = _random_boxes(4, 1, low=0.05, high=0.6)[:, 0]
    a = crop_and_resize(image, boxes, (32, 40), antialias=True)
    b = crop_and_resize(image, boxes, (32, 40), antialias=False)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_flip_and_nearest_and_dtypes() -> None:
    torch.manual_seed(0)
    image = torch.rand(3, 2, 24, 24)
    boxes = _random_boxes(3, 1, low=0.1, high=0.9)[:, 0]
    flip = torch.tensor([True, False, True])
    for antialias in (True, False):
        plain = crop_and_resize(image, boxes, 12, antialias=antialias)
        flipped = crop_and_resize(image, boxes, 12, antialias=antialias, flip=flip)
        expected = torch.where(flip.view(3, 1, 1, 1), plain.flip(-1), plain)
        torch.testing.assert_close(flipped, expected, atol=1e-5, rtol=0)
    labels = torch.randint(0, 5, (3, 1, 24, 24)).float()
    near = crop_and_resize(labels, boxes, 17, mode="nearest")
    assert set(near.unique().tolist()) <= set(range(5))
    for dtype in (torch.float64, torch.bfloat16, torch.float16):
        out = crop_and_resize(image.to(dtype), boxes, 12)
        assert out.dtype == dtype
        torch.testing.assert_close(out.float(), crop_and_resize(image, boxes, 12), atol=2e-2, rtol=0)


def test_crop_matrix_matches_pixels() -> None:
    """The matrix maps input pixel centres to the output pixel sampling them (linear image test)."""
    torch.manual_seed(0)
    h, w = 30, 40
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    image = (0.3 * xs + 0.7 * ys)[None, None].expand(5, 1, h, w).contiguous()
    boxes = _random_boxes(5, 1, low=0.1, high=0.9)[:, 0]
    flip = torch.tensor([False, True, False, True, False])
    size = (13, 17)
    mat = crop_matrix(boxes, (h, w), size, flip=flip)
    inv = torch.linalg.inv(mat.double())
    oy, ox = torch.meshgrid(torch.arange(size[0]).double(), torch.arange(size[1]).double(), indexing="ij")
    pts = torch.stack([ox, oy, torch.ones_like(ox)], -1).view(-1, 3)
    src = torch.einsum("bij,nj->bni", inv, pts)
    expected = (0.3 * src[..., 0] + 0.7 * src[..., 1]).view(5, 1, *size).float()
    for antialias in (True, False):
        out = crop_and_resize(image, boxes, size, antialias=antialias, flip=flip)
        torch.testing.assert_close(out, expected, atol=2e-3, rtol=0)
    # Box corners (pixel edges) go to the output's outer edges.
    corner = torch.tensor([boxes[0, 0] * w - 0.5, boxes[0, 1] * h - 0.5, 1.0])
    torch.testing.assert_close(mat[0] @ corner, torch.tensor([-0.5, -0.5, 1.0]), atol=1e-4, rtol=0)


# ----------------------------------------------------------------------------- sampling
def test_box_sampling_picks_only_usable_boxes() -> None:
    torch.manual_seed(0)
    b, k = 4000, 5
    boxes = _random_boxes(b, k)
    valid = torch.rand(b, k) < 0.5
    boxes[:, 2] = torch.tensor([0.3, 0.3, 0.3, 0.6])  # valid but zero-area: never chosen
    valid[:, 2] = True
    boxes[:, 4] = float("nan")  # invalid garbage is never read
    valid[:, 4] = False
    for mode in ("uniform", "area"):
        index, has = sample_box_index(boxes, valid, mode=mode)
        usable = valid.clone()
        usable[:, 2] = False
        assert torch.equal(has, usable.any(1))
        assert (index[~has] == -1).all()
        assert usable[has.nonzero()[:, 0], index[has]].all()


def test_uniform_and_area_frequencies() -> None:
    torch.manual_seed(0)
    b = 30000
    base = torch.tensor([[0.0, 0.0, 0.1, 0.1], [0.2, 0.2, 0.4, 0.4], [0.5, 0.5, 1.0, 1.0], [0, 0, 1, 1.0]])
    boxes = base.expand(b, 4, 4)
    valid = torch.tensor([True, True, True, False]).expand(b, 4)
    index, _ = sample_box_index(boxes, valid, mode="uniform")
    freq = torch.bincount(index, minlength=4).float() / b
    torch.testing.assert_close(freq, torch.tensor([1 / 3, 1 / 3, 1 / 3, 0.0]), atol=0.015, rtol=0)
    index, _ = sample_box_index(boxes, valid, mode="area")
    freq = torch.bincount(index, minlength=4).float() / b
    area = torch.tensor([0.01, 0.04, 0.25, 0.0])
    torch.testing.assert_close(freq, area / area.sum(), atol=0.015, rtol=0)


def test_crops_lie_inside_their_box_and_follow_scale_ratio() -> None:
    torch.manual_seed(0)
    b, k, h, w = 2000, 3, 60, 80
    boxes = _random_boxes(b, k)
    valid = torch.rand(b, k) < 0.7
    crop = ObjectAwareRandomResizedCrop(16, scale=(0.2, 0.9), ratio=(0.5, 2.0))
    params = crop.forward_parameters((b, 3, h, w), boxes, valid)
    cb, regions, idx, obj = params["crop_boxes"], params["regions"], params["box_index"], params["object"]
    assert torch.equal(obj, valid.any(1))
    chosen = boxes[torch.arange(b), idx.clamp_min(0)]
    torch.testing.assert_close(regions[obj], chosen[obj])
    assert torch.equal(regions[~obj], full_image_boxes(int((~obj).sum())))
    eps = 1e-6
    assert (cb[:, :2] >= regions[:, :2] - eps).all() and (cb[:, 2:] <= regions[:, 2:] + eps).all()
    assert (cb[:, 2:] > cb[:, :2]).all()
    ok = ~params["fallback"]
    frac = ((cb[:, 2] - cb[:, 0]) * (cb[:, 3] - cb[:, 1])) / ((regions[:, 2] - regions[:, 0])
                                                              * (regions[:, 3] - regions[:, 1]))
    aspect = (cb[:, 2] - cb[:, 0]) * w / ((cb[:, 3] - cb[:, 1]) * h)
    assert (frac[ok] >= 0.2 - 1e-4).all() and (frac[ok] <= 0.9 + 1e-4).all()
    assert (aspect[ok] >= 0.5 - 1e-4).all() and (aspect[ok] <= 2.0 + 1e-4).all()


def test_no_box_or_p0_is_whole_image_rrc_like_torchvision() -> None:
    """Compare the crop distribution with torchvision's per-image get_params (independent reference)."""
    torch.manual_seed(0)
    n, h, w = 4000, 90, 160
    boxes = _random_boxes(n, 2)
    for boxes_, valid, p in [(boxes, torch.ones(n, 2, dtype=torch.bool), 0.0),
                             (boxes, torch.zeros(n, 2, dtype=torch.bool), 1.0),
                             (torch.zeros(n, 0, 4), torch.zeros(n, 0, dtype=torch.bool), 1.0)]:
        crop = ObjectAwareRandomResizedCrop(32, box_p=p)
        params = crop.forward_parameters((n, 3, h, w), boxes_, valid)
        assert not params["object"].any() and (params["box_index"] == -1).all()
        assert torch.equal(params["regions"], full_image_boxes(n))
        cb = params["crop_boxes"]
        ours_area = (cb[:, 2] - cb[:, 0]) * (cb[:, 3] - cb[:, 1])
        ours_logr = torch.log((cb[:, 2] - cb[:, 0]) * w / ((cb[:, 3] - cb[:, 1]) * h))
        ours_cx = (cb[:, 0] + cb[:, 2]) / 2
    img = torch.empty(1, h, w)
    ref = torch.tensor([TVRandomResizedCrop.get_params(img, [0.08, 1.0], [3 / 4, 4 / 3]) for _ in range(n)],
                       dtype=torch.float32)  # (i, j, h, w)
    ref_area = ref[:, 2] * ref[:, 3] / (h * w)
    ref_logr = torch.log(ref[:, 3] / ref[:, 2])
    ref_cx = (ref[:, 1] + ref[:, 3] / 2) / w
    q = torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9])
    for ours, theirs, tol in [(ours_area, ref_area, 0.03), (ours_logr, ref_logr, 0.03), (ours_cx, ref_cx, 0.03)]:
        torch.testing.assert_close(torch.quantile(ours, q), torch.quantile(theirs, q), atol=tol, rtol=0)


def test_rejection_fallback_is_centre_crop_of_box() -> None:
    torch.manual_seed(0)
    regions = torch.tensor([[0.0, 0.4, 1.0, 0.5]]).expand(64, 4)  # 100 x 10 px in a 100 x 100 image
    cb, fallback = sample_resized_crop_boxes(regions, (100, 100), scale=(0.9, 1.0))
    assert fallback.all()
    expected = torch.tensor([0.5 - 10 * 4 / 3 / 200, 0.4, 0.5 + 10 * 4 / 3 / 200, 0.5])
    torch.testing.assert_close(cb, expected.expand(64, 4), atol=1e-6, rtol=0)


def test_center_suppressed_is_beta_placement() -> None:
    torch.manual_seed(0)
    n = 20000
    regions = torch.tensor([[0.1, 0.2, 0.9, 0.8]]).expand(n, 4)
    for suppressed, var in [(False, 1 / 12), (True, 1 / (4 * (2 * 0.6 + 1)))]:
        cb, fb = sample_resized_crop_boxes(regions, (100, 100), scale=(0.1, 0.3),
                                           center_suppressed=suppressed, alpha=0.6)
        assert not fb.any()
        t = (cb[:, 0] - 0.1) / (0.8 - (cb[:, 2] - cb[:, 0]))
        assert abs(float(t.mean()) - 0.5) < 0.01
        assert abs(float(t.var()) - var) < 0.005


def test_same_on_batch() -> None:
    torch.manual_seed(0)
    crop = ObjectAwareRandomResizedCrop(8, same_on_batch=True)
    params = crop.forward_parameters((6, 3, 20, 20), torch.zeros(6, 0, 4))
    assert (params["crop_boxes"] == params["crop_boxes"][:1]).all()


# ----------------------------------------------------------------------------- module behaviour
def test_replay_and_mask_follow_and_seed() -> None:
    torch.manual_seed(0)
    images = torch.rand(5, 3, 40, 50)
    masks = images[:, :1].clone()
    boxes = _random_boxes(5, 3)
    valid = torch.rand(5, 3) < 0.6
    crop = ObjectAwareRandomResizedCrop((24, 20))
    out = crop(images, boxes, valid)
    params = crop._params
    again = crop(images, params=params)
    assert torch.equal(out, again)
    view_masks = crop(masks, params=params)
    torch.testing.assert_close(view_masks, out[:, :1])
    torch.testing.assert_close(apply_crop(masks, params, (24, 20)), out[:, :1])
    # A mask at another resolution follows the same normalised crop.
    half = F.interpolate(masks, scale_factor=0.5, mode="area")
    assert crop(half, params=params).shape == (5, 1, 24, 20)
    torch.manual_seed(123)
    a = crop(images, boxes, valid)
    pa = {k: v.clone() for k, v in crop._params.items()}
    torch.manual_seed(123)
    b = crop(images, boxes, valid)
    assert torch.equal(a, b) and torch.equal(pa["crop_boxes"], crop._params["crop_boxes"])


def test_inside_kornia_augmentation_sequential() -> None:
    torch.manual_seed(0)
    images = torch.rand(6, 3, 32, 48)
    masks = images[:, :1].clone()
    boxes = _random_boxes(6, 2)
    valid = torch.ones(6, 2, dtype=torch.bool)
    crop = ObjectAwareRandomResizedCrop(16)
    seq = K.AugmentationSequential(
        crop, K.RandomHorizontalFlip(p=0.5), K.ColorJitter(0.2, p=1.0),
        data_keys=["input", "mask", "keypoints"],
        extra_args={DataKey.MASK: {"resample": Resample.BILINEAR, "align_corners": None}},
    )
    # Keypoints at the crop-box corners land on the output corners (through the crop matrix).
    with crop.using_boxes(boxes, valid):
        seq_params = seq.forward_parameters(images.shape)
    cb = seq_params[0].data["crop_boxes"]
    kp = torch.stack([cb[:, 0] * 48 - 0.5, cb[:, 1] * 32 - 0.5], -1)[:, None]
    out, view_masks, kp_out = seq(images, masks, kp, params=seq_params)
    assert out.shape == (6, 3, 16, 16) and view_masks.shape == (6, 1, 16, 16)
    flipped = seq_params[1].data["batch_prob"].bool()
    expected_x = torch.where(flipped, torch.tensor(16 - 1 + 0.5), torch.tensor(-0.5))
    torch.testing.assert_close(kp_out[:, 0, 0], expected_x, atol=1e-3, rtol=0)
    torch.testing.assert_close(kp_out[:, 0, 1], torch.full((6,), -0.5), atol=1e-3, rtol=0)
    # The mask followed the crop and the flip (the image before colour jitter).
    ref = crop_and_resize(masks, cb, 16, flip=flipped)
    torch.testing.assert_close(view_masks, ref, atol=1e-5, rtol=0)
    # Parameters drawn inside the container with using_boxes; without boxes it explains what to do.
    with crop.using_boxes(boxes, valid):
        out2 = seq(images, masks, kp)
    assert out2[0].shape == (6, 3, 16, 16)
    with pytest.raises(ValueError, match="using_boxes"):
        seq(images, masks, kp)


def test_plain_module_matrix_and_repr() -> None:
    torch.manual_seed(0)
    crop = ObjectAwareRandomResizedCrop(8)
    images = torch.rand(2, 3, 16, 16)
    crop(images, _random_boxes(2, 1))
    mat = crop.transform_matrix
    assert mat is not None and mat.shape == (2, 3, 3)
    torch.testing.assert_close(mat, crop_matrix(crop._params["crop_boxes"], (16, 16), 8))
    assert "ObjectAwareRandomResizedCrop(size=(8, 8)" in repr(crop)


# ----------------------------------------------------------------------------- bad inputs
def test_bad_constructor_arguments() -> None:
    with pytest.raises(TypeError, match="size"):
        ObjectAwareRandomResizedCrop((224, 224.0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="size"):
        ObjectAwareRandomResizedCrop(0)
    with pytest.raises(ValueError, match="scale"):
        ObjectAwareRandomResizedCrop(8, scale=(0.5, 1.5))
    with pytest.raises(ValueError, match="scale"):
        ObjectAwareRandomResizedCrop(8, scale=(0.9, 0.1))
    with pytest.raises(TypeError, match="scale"):
        ObjectAwareRandomResizedCrop(8, scale=0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ratio"):
        ObjectAwareRandomResizedCrop(8, ratio=(0.0, 1.0))
    with pytest.raises(ValueError, match="box_sampling"):
        ObjectAwareRandomResizedCrop(8, box_sampling="largest")
    with pytest.raises(ValueError, match="p must"):
        ObjectAwareRandomResizedCrop(8, p=1.5)
    with pytest.raises(ValueError, match="box_p must"):
        ObjectAwareRandomResizedCrop(8, box_p=1.5)
    with pytest.raises(ValueError, match="alpha"):
        ObjectAwareRandomResizedCrop(8, alpha=0.0)
    with pytest.raises(ValueError, match="resample"):
        ObjectAwareRandomResizedCrop(8, resample="area")  # Kornia's modes: nearest, bilinear, bicubic
    with pytest.raises(ValueError, match="attempts"):
        ObjectAwareRandomResizedCrop(8, attempts=0)
    with pytest.raises(ValueError, match="antialias"):
        ObjectAwareRandomResizedCrop(8, antialias="yes")
    with pytest.raises(ValueError, match="antialias"):
        crop_and_resize(torch.rand(1, 1, 8, 8), full_image_boxes(1), 4, antialias="yes")


def test_bad_call_inputs() -> None:
    crop = ObjectAwareRandomResizedCrop(8)
    images = torch.rand(2, 3, 16, 16)
    boxes = torch.tensor([[[0.1, 0.1, 0.5, 0.5]], [[0.2, 0.2, 0.6, 0.9]]])
    valid = torch.ones(2, 1, dtype=torch.bool)
    with pytest.raises(TypeError, match="floating point"):
        crop((images * 255).to(torch.uint8), boxes, valid)
    with pytest.raises(ValueError, match="batch size"):
        crop(images, boxes[:1], valid[:1])
    with pytest.raises(ValueError, match=r"valid must be a bool tensor"):
        crop(images, boxes, valid.float())
    with pytest.raises(ValueError, match=r"\[0, 1\].*Divide pixel boxes"):
        crop(images, boxes * 16, valid)
    with pytest.raises(ValueError, match="x1 <= x2"):
        crop(images, boxes[..., [2, 1, 0, 3]], valid)
    with pytest.raises(ValueError, match="batch size"):  # one (C, H, W) image is a batch of 1 (Kornia's rule)
        crop(images[0], boxes, valid)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\), \(C, H, W\) or \(H, W\)"):
        crop(images[None], boxes, valid)
    with pytest.raises(ValueError, match="boxes is required"):
        crop(images)
    with pytest.raises(ValueError, match="crop_boxes"):
        crop(images, params={"box_index": torch.zeros(2)})
    with pytest.raises(ValueError, match="either boxes"):
        crop(images, boxes, valid, params={"crop_boxes": torch.zeros(2, 4)})
    with pytest.raises(ValueError, match="crop_boxes"):
        apply_crop(images, {}, 8)
    # Invalid (padding) boxes are not checked; check_inputs=False skips the value check entirely.
    padded = torch.cat([boxes, torch.full((2, 1, 4), -1.0)], 1)
    crop(images, padded, torch.tensor([[True, False], [True, False]]))
    ObjectAwareRandomResizedCrop(8, check_inputs=False)(images, boxes * 0.5, valid)


# ----------------------------------------------------------------------------- CUDA
@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_cuda_no_host_sync_and_matches_cpu() -> None:
    torch.manual_seed(0)
    images = torch.rand(8, 3, 64, 64)
    boxes = _random_boxes(8, 3)
    valid = torch.rand(8, 3) < 0.7
    crop = ObjectAwareRandomResizedCrop(32, check_inputs=False)
    dev_images, dev_boxes, dev_valid = images.cuda(), boxes.cuda(), valid.cuda()
    crop(dev_images, dev_boxes, dev_valid)  # warm-up
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = crop(dev_images, dev_boxes, dev_valid)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    ref = crop_and_resize(images, crop._params["crop_boxes"].cpu(), 32)
    torch.testing.assert_close(out.cpu(), ref, atol=1e-4, rtol=0)
    assert math.isfinite(float(out.sum()))
