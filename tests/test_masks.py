"""Tests for objaug.masks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from objaug.masks import masks_from_uint8, masks_to_uint8, resize_masks, soft_masks, threshold_masks


def soft(b: int = 3, h: int = 7, w: int = 9, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 1, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("mode", ["bilinear", "area", "nearest", "bicubic"])
@pytest.mark.parametrize("size", [(14, 18), (4, 5), 11])
def test_resize_shapes_dtype_and_range(mode: str, size: int | tuple[int, int]) -> None:
    masks = soft()
    out = resize_masks(masks, size, mode=mode)
    expected = (size, size) if isinstance(size, int) else size
    assert out.shape == (3, 1, *expected) and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_resize_modes_match_interpolate() -> None:
    masks = soft()
    torch.testing.assert_close(
        resize_masks(masks, (14, 18)), F.interpolate(masks, (14, 18), mode="bilinear", align_corners=False)
    )
    torch.testing.assert_close(resize_masks(masks, (3, 3), mode="area"), F.adaptive_avg_pool2d(masks, (3, 3)))
    torch.testing.assert_close(
        resize_masks(masks, (14, 18), mode="nearest"), F.interpolate(masks, (14, 18), mode="nearest-exact")
    )
    bicubic = F.interpolate(masks, (21, 27), mode="bicubic", align_corners=False)
    assert float(bicubic.max()) > 1.0 or float(bicubic.min()) < 0.0  # overshoot happens ...
    torch.testing.assert_close(resize_masks(masks, (21, 27), mode="bicubic"), bicubic.clamp(0, 1))  # ... clamped


def test_nearest_upsampling_by_two_repeats_pixels() -> None:
    masks = soft(1, 3, 4)
    out = resize_masks(masks, (6, 8), mode="nearest")
    torch.testing.assert_close(out, masks.repeat_interleave(2, 2).repeat_interleave(2, 3))


def test_resize_same_size_returns_a_new_float32_tensor() -> None:
    masks = soft().double()
    out = resize_masks(masks, (7, 9))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, masks.float())
    m32 = soft()
    out = resize_masks(m32, (7, 9))
    out.fill_(0.5)
    assert not torch.equal(m32, out)  # the input was not aliased


def test_half_precision_input() -> None:
    out = resize_masks(soft().half(), (14, 18))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, resize_masks(soft().half().float(), (14, 18)))


def test_antialias_changes_downsampling_only_for_interpolating_modes() -> None:
    masks = soft(1, 32, 32)
    plain = resize_masks(masks, (8, 8))
    smooth = resize_masks(masks, (8, 8), antialias=True)
    assert not torch.allclose(plain, smooth)
    torch.testing.assert_close(smooth, F.interpolate(masks, (8, 8), mode="bilinear", antialias=True))


def test_soft_masks() -> None:
    maps = soft() * 1.2 - 0.1  # slightly out of range
    out = soft_masks(maps)
    torch.testing.assert_close(out, maps.clamp(0, 1))
    out = soft_masks(maps, size=14)
    assert out.shape == (3, 1, 14, 14) and float(out.min()) >= 0 and float(out.max()) <= 1


def test_threshold_masks() -> None:
    maps = torch.tensor([[[[0.1, 0.5, 0.49], [0.9, 1.0, 0.0]]]])
    out = threshold_masks(maps)
    assert out.dtype == torch.float32
    assert out.tolist() == [[[[0.0, 1.0, 0.0], [1.0, 1.0, 0.0]]]]
    assert threshold_masks(maps, 0.2).tolist() == [[[[0.0, 1.0, 1.0], [1.0, 1.0, 0.0]]]]
    # Resize first, threshold after.
    maps = soft(2, 5, 6)
    out = threshold_masks(maps, 0.3, size=(10, 12))
    expected = (F.interpolate(maps, (10, 12), mode="bilinear", align_corners=False) >= 0.3).float()
    assert torch.equal(out, expected)
    assert set(out.unique().tolist()) <= {0.0, 1.0}


def test_uint8_round_trip() -> None:
    masks = torch.cat([soft().flatten(), torch.tensor([0.0, 1.0, -0.2, 1.3, 0.5 / 255, 1.5 / 255])])
    packed = masks_to_uint8(masks)
    assert packed.dtype == torch.uint8 and packed.shape == masks.shape
    assert packed[-6:].tolist() == [0, 255, 0, 255, 0, 2]  # round half to even: 0.5 -> 0, 1.5 -> 2
    back = masks_from_uint8(packed)
    assert back.dtype == torch.float32
    assert float((back - masks.clamp(0, 1)).abs().max()) <= 0.5 / 255 + 1e-7
    assert torch.equal(masks_to_uint8(back), packed)  # idempotent after one round trip
    assert masks_from_uint8(torch.tensor([0, 255], dtype=torch.uint8)).tolist() == [0.0, 1.0]


def test_validation() -> None:
    masks = soft()
    with pytest.raises(ValueError, match="mode"):
        resize_masks(masks, 8, mode="lanczos")
    with pytest.raises(TypeError, match="size"):
        resize_masks(masks, (8,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="size"):
        resize_masks(masks, (0, 8))
    with pytest.raises(TypeError, match="size"):
        resize_masks(masks, 8.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="channels"):
        resize_masks(torch.rand(2, 3, 4, 4), 8)
    with pytest.raises(ValueError, match="4-D"):
        soft_masks(torch.rand(1, 4, 4))
    with pytest.raises(TypeError, match="floating"):
        threshold_masks(torch.ones(1, 1, 4, 4, dtype=torch.bool))
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="threshold"):
            threshold_masks(masks, bad)
    with pytest.raises(TypeError, match="threshold"):
        threshold_masks(masks, True)
    with pytest.raises(TypeError, match="floating"):
        masks_to_uint8(torch.zeros(3, dtype=torch.uint8))
    with pytest.raises(TypeError, match="uint8"):
        masks_from_uint8(torch.zeros(3))
