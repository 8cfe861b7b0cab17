"""The presets' ``scale_to_size`` option: blur sigmas and minimum crop scale scaled for small images."""

from __future__ import annotations

import math

import pytest

from objaug.augment.views import byol_views, moco_v2_views, scaled_to_size, simclr_views


def test_default_presets_unchanged() -> None:
    v = simclr_views(64)[0]
    assert v.sigmas == (0.1, 2.0) and v.min_scale == 0.08


@pytest.mark.parametrize("size", [32, 64, 96])
def test_simclr_scaled_by_hand(size: int) -> None:
    f = size / 224
    for v in simclr_views(size, scale_to_size=True):
        assert v.sigmas == pytest.approx((0.1 * f, 2.0 * f))
        assert v.min_scale == pytest.approx(min(0.5, 0.08 / math.sqrt(f)))


def test_values_at_64_px() -> None:
    got = scaled_to_size({"sigmas": (0.1, 2.0), "min_scale": 0.08}, 64)
    assert got["sigmas"] == pytest.approx((0.1 * 64 / 224, 2.0 * 64 / 224))  # 2 px -> 0.57 px
    assert got["min_scale"] == pytest.approx(0.08 * math.sqrt(3.5))  # 0.150


def test_large_images_unchanged_and_cap() -> None:
    assert scaled_to_size({"sigmas": (0.1, 2.0), "min_scale": 0.08}, 224) == {"sigmas": (0.1, 2.0), "min_scale": 0.08}
    assert scaled_to_size({"sigmas": (0.1, 2.0), "min_scale": 0.08}, 512)["sigmas"] == (0.1, 2.0)
    assert moco_v2_views(16, scale_to_size=True)[0].min_scale == 0.5  # 0.2 / sqrt(16/224) = 0.75, capped
    assert scaled_to_size({"sigmas": (0.1, 2.0), "min_scale": 0.6}, 32)["min_scale"] == 0.6  # never lowered


def test_rectangular_uses_shorter_side_and_overrides_win() -> None:
    v = simclr_views((48, 96), scale_to_size=True)[0]
    assert v.sigmas == pytest.approx((0.1 * 48 / 224, 2.0 * 48 / 224))
    assert simclr_views(64, scale_to_size=True, min_scale=0.3)[0].min_scale == 0.3


def test_byol_both_views_scaled() -> None:
    v1, v2 = byol_views(64, scale_to_size=True)
    assert v1.sigmas == v2.sigmas == pytest.approx((0.1 * 64 / 224, 2.0 * 64 / 224))
    assert v1.gaussian_blur == 1.0 and v2.solarization_prob == 0.2
