"""Background mixup's fallback rectangle (issue 14): mass rectangles against a per-image loop, the fallback rule
on hand-built masks, and the module on both kernel paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _mixup_cases import halo_batch  # tests/_mixup_cases.py

from objaug.augment.mixup import BackgroundMixup
from objaug.functional.mixup import (
    background_mixup,
    largest_strip,
    mask_bounding_boxes,
    mass_rectangles,
    object_rectangles,
)
from objaug.masks import otsu_thresholds


def _mass_span_reference(profile: np.ndarray, coverage: float) -> tuple[int, int]:
    """First and last kept index of a 1-D mass profile, by walking in from each end (float64 loop)."""
    total = float(profile.sum())
    if total <= 0:
        return 0, len(profile) - 1
    cut = (1 - coverage) / 2 * total * (1 + 1e-9)
    lo, acc = 0, 0.0
    while lo < len(profile) - 1 and acc + profile[lo] <= cut:
        acc += profile[lo]
        lo += 1
    hi, acc = len(profile) - 1, 0.0
    while hi > 0 and acc + profile[hi] <= cut:
        acc += profile[hi]
        hi -= 1
    return lo, max(hi, lo)


@pytest.mark.parametrize("coverage", [1.0, 0.9, 0.6, 0.05])
def test_mass_rectangles_equal_a_per_image_loop(coverage):
    g = torch.Generator().manual_seed(3)
    masks = torch.rand(12, 1, 17, 23, generator=g) ** 4  # peaky soft masks
    masks[3] = 0.0  # an empty mask: the whole image
    masks[5, :, :, :] = 0.0
    masks[5, 0, 4, 7] = 0.5  # one pixel
    got = mass_rectangles(masks, coverage)
    for i in range(masks.shape[0]):
        m = masks[i, 0].double().numpy()
        y0, y1 = _mass_span_reference(m.sum(axis=1), coverage)
        x0, x1 = _mass_span_reference(m.sum(axis=0), coverage)
        assert got[i].tolist() == [y0, y1, x0, x1], i
    assert got[3].tolist() == [0, 16, 0, 22]
    assert got[5].tolist() == [4, 4, 7, 7]


def test_mass_rectangle_ignores_stray_pixels_that_stretch_the_tight_one():
    m = torch.zeros(1, 1, 10, 10)
    m[0, 0, 2:6, 3:9] = 1.0   # the object: 24 px of mass 1
    m[0, 0, 9, 0] = 0.2       # a stray activation in the corner
    assert mask_bounding_boxes(m, 0.1).tolist() == [[2, 9, 0, 8]]
    assert mass_rectangles(m, 0.9).tolist() == [[2, 5, 3, 8]]
    # coverage 1 keeps every pixel with mass: the tight rectangle of m > 0
    assert mass_rectangles(m, 1.0).tolist() == [[2, 9, 0, 8]]


def test_object_rectangles_fall_back_only_where_the_tight_rectangle_covers_the_frame():
    masks = torch.zeros(4, 1, 40, 40)
    masks[0, 0, 10:20, 12:30] = 1.0                  # a clean object: the tight rectangle already leaves strips
    masks[1] = 0.3                                   # a diffuse halo >= 0.2 everywhere ...
    masks[1, 0, 12:24, 8:20] = 1.0                   # ... around a peak: the tight rectangle is the frame
    masks[2] = 0.1                                   # nothing reaches the threshold: the hard mask is empty
    masks[3] = 1.0                                   # the whole frame is object
    frame = [0, 39, 0, 39]
    paper = object_rectangles(masks, 0.2)
    assert paper[0].tolist() == [10, 19, 12, 29] and paper[1].tolist() == frame and paper[2].tolist() == frame
    got = object_rectangles(masks, 0.2, 0.9)
    assert got[0].tolist() == [10, 19, 12, 29]                            # unchanged
    fallback = mass_rectangles(masks[1:2], 0.9)[0].tolist()
    assert got[1].tolist() == fallback and fallback != frame
    assert got[2].tolist() == frame                                       # empty hard mask: no object to keep
    assert got[3].tolist() == mass_rectangles(masks[3:4], 0.9)[0].tolist() == [2, 37, 2, 37]  # 5 % per side
    # per-image thresholds (a (B,) tensor) give the same as the scalar
    assert torch.equal(object_rectangles(masks, torch.full((4,), 0.2), 0.9), got)
    _, area = largest_strip(got, 40, 40)
    assert (area > 0).tolist() == [True, True, False, True]


@pytest.mark.usefixtures("mixup_path")  # both kernels (tests/conftest.py)
def test_the_module_mixes_diffuse_masks_with_the_fallback_and_not_without():
    images, masks = halo_batch(8, 24, 0.25, seed=4)
    paper = BackgroundMixup(p=1.0, threshold=0.2, fallback_mass=None, queue_size=0)
    _, mixed_paper = paper(images, masks, generator=torch.Generator().manual_seed(0))
    assert not mixed_paper.any()
    mix = BackgroundMixup(p=1.0, threshold=0.2, fallback_mass=0.9, queue_size=0)
    out, mixed = mix(images, masks, generator=torch.Generator().manual_seed(0))
    assert mixed.all()
    # the functional kernel with the same draws gives the same images and reports the fallback rectangles
    ref = background_mixup(images, masks, mix._params["apply"], mix._params["perm"], threshold=0.2,
                           fallback_mass=0.9)
    assert torch.equal(ref.images, out)
    assert torch.equal(ref.boxes, object_rectangles(masks, 0.2, 0.9))
    # the module's own rule, as it reports it: the kernel's rectangles; with Otsu, each mask's own cut
    assert torch.equal(mix.object_rectangles(masks), ref.boxes)
    otsu = BackgroundMixup()
    assert torch.equal(otsu.object_rectangles(masks), object_rectangles(masks, otsu_thresholds(masks), 0.9))
    assert torch.equal(paper.object_rectangles(masks), torch.tensor([[0, 23, 0, 23]] * 8))
    # outside the rectangle the view carries a partner's background blended at the mask's ratio (0.25)
    y0, y1, x0, x1 = ref.boxes[0].tolist()
    partner = int(mix._params["perm"][0])
    assert y0 > 0 and torch.allclose(out[0, :, 0], 0.25 * images[0, :, 0] + 0.75 * images[partner, :, 0])


@pytest.mark.parametrize(("bad", "error"), [(0.0, ValueError), (1.5, ValueError), (-0.1, ValueError),
                                            ("0.9", TypeError), (True, TypeError), (float("nan"), ValueError)])
def test_bad_fallback_mass_is_refused_with_its_name(bad, error):
    with pytest.raises(error, match="fallback_mass must be None"):
        BackgroundMixup(fallback_mass=bad)
    with pytest.raises(error, match="fallback_mass must be None"):
        object_rectangles(torch.zeros(1, 1, 4, 4), 0.2, bad)


def test_the_default_and_the_repr():
    mix = BackgroundMixup()
    assert mix.fallback_mass == 0.9 and mix.threshold == "otsu"
    assert "fallback_mass=0.9" in repr(mix)
