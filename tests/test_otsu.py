"""Adaptive mask thresholds: objaug.masks.otsu_thresholds and BackgroundMixup(threshold="otsu")."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _mixup_cases import halo_batch  # tests/_mixup_cases.py

from objaug.augment.mixup import BackgroundMixup
from objaug.masks import otsu_thresholds


def _otsu_reference(values: np.ndarray, bins: int) -> float:
    """Brute force: every inner bin edge, between-class variance from the pixel values' bin centres."""
    idx = np.minimum((values * bins).astype(np.int64), bins - 1)
    centres = (idx + 0.5) / bins
    best, best_k = -1.0, 1
    for k in range(1, bins):
        lo, hi = centres[idx < k], centres[idx >= k]
        if len(lo) == 0 or len(hi) == 0:
            continue
        w0, w1 = len(lo) / len(centres), len(hi) / len(centres)
        var = w0 * w1 * (lo.mean() - hi.mean()) ** 2
        if var > best + 1e-12:
            best, best_k = var, k
    return best_k / bins


def test_otsu_equals_a_brute_force_reference():
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(4, 1, 12, 12, generator=g) ** torch.tensor([0.5, 1.0, 2.0, 4.0]).view(4, 1, 1, 1)
    got = otsu_thresholds(maps, bins=32)
    for i in range(4):
        assert float(got[i]) == pytest.approx(_otsu_reference(maps[i].flatten().numpy(), 32))


def test_otsu_separates_a_bimodal_map():
    maps = torch.full((1, 1, 20, 20), 0.35)  # a diffuse, high background (>= 0.2 everywhere)
    maps[..., 5:10, 5:10] = 0.95              # and a peak
    t = float(otsu_thresholds(maps)[0])
    assert 0.35 < t <= 0.95
    flat = torch.zeros(2, 1, 8, 8)
    assert torch.equal(otsu_thresholds(flat), torch.full((2,), 1 / 64))


@pytest.mark.usefixtures("mixup_path")  # both kernels (tests/conftest.py)
def test_otsu_makes_mixup_act_on_diffuse_masks():
    images, masks = halo_batch(16, 32, 0.3, seed=1)
    fixed = BackgroundMixup(p=1.0, threshold=0.2, fallback_mass=None, queue_size=0)  # the paper's rule
    _, mixed_fixed = fixed(images, masks, generator=torch.Generator().manual_seed(0))
    adaptive = BackgroundMixup(p=1.0, threshold="otsu", queue_size=0)
    out, mixed_otsu = adaptive(images, masks, generator=torch.Generator().manual_seed(0))
    assert not mixed_fixed.any(), "at 0.2 the object rectangle is the whole frame: nothing can be mixed"
    assert mixed_otsu.all()
    # outside the rectangle the views now carry the partner's background, blended at the mask's ratio
    assert not torch.allclose(out[:, :, :5], images[:, :, :5])


@pytest.mark.usefixtures("mixup_path")  # both kernels (tests/conftest.py)
def test_a_per_image_threshold_tensor_equals_the_number():
    from objaug.functional.mixup_kernel import mixup_kernel

    g = torch.Generator().manual_seed(2)
    images = torch.rand(6, 3, 16, 16, generator=g)
    masks = torch.rand(6, 1, 16, 16, generator=g) ** 3
    apply = torch.tensor([True, True, False, True, True, True])
    perm = torch.tensor([1, 0, 3, 2, 5, 4])
    for source in ("tiled-strip", "batch"):
        a = mixup_kernel(images, masks, apply, perm, 0.3, source, None, None, None)[0]
        b = mixup_kernel(images, masks, apply, perm, torch.full((6,), 0.3), source, None, None, None)[0]
        assert torch.equal(a.images, b.images) and torch.equal(a.mixed, b.mixed)


def test_bad_threshold_names_are_refused():
    with pytest.raises((TypeError, ValueError), match="threshold"):
        BackgroundMixup(threshold="mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bins"):
        otsu_thresholds(torch.zeros(1, 1, 4, 4), bins=1)
