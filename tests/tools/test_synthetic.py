"""Tests of objaug.tools.synthetic: determinism, value ranges, mask/box/label consistency."""

from __future__ import annotations

import pytest
import torch

from objaug.tools.synthetic import SHAPES, SyntheticScenes, background_family, boxes_from_masks, make_scenes


def _box_of(mask: torch.Tensor) -> list[float]:
    """Slow reference: tight pixel-edge box of a 2-D bool mask, normalised."""
    h, w = mask.shape
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return [xs.min().item() / w, ys.min().item() / h, (xs.max().item() + 1) / w, (ys.max().item() + 1) / h]


@pytest.fixture(scope="module")
def scenes():
    return make_scenes(24, size=48, max_objects=3, seed=7)


def test_shapes_dtypes_ranges(scenes):
    n, m, s = 24, 3, 48
    assert scenes.images.shape == (n, 3, s, s) and scenes.images.dtype == torch.float32
    assert scenes.masks.shape == (n, 1, s, s) and scenes.masks.dtype == torch.bool
    assert scenes.object_masks.shape == (n, m, s, s) and scenes.object_masks.dtype == torch.bool
    assert scenes.boxes.shape == (n, m, 4) and scenes.boxes.dtype == torch.float32
    assert scenes.valid.shape == (n, m) and scenes.valid.dtype == torch.bool
    assert scenes.labels.shape == (n, m) and scenes.labels.dtype == torch.int64
    assert scenes.images.min() >= 0 and scenes.images.max() <= 1
    assert ((scenes.boxes >= 0) & (scenes.boxes <= 1)).all()
    assert len(scenes) == n


def test_every_image_has_an_object(scenes):
    assert scenes.valid.any(dim=1).all()
    assert scenes.masks.flatten(1).any(dim=1).all()


def test_deterministic_from_seed():
    a = make_scenes(6, size=32, seed=3)
    b = make_scenes(6, size=32, seed=3)
    c = make_scenes(6, size=32, seed=4)
    for x, y in zip((a.images, a.masks, a.boxes, a.valid, a.labels),
                    (b.images, b.masks, b.boxes, b.valid, b.labels), strict=True):
        assert torch.equal(x, y)
    assert not torch.equal(a.images, c.images)


def test_generator_stream_continues():
    g = torch.Generator().manual_seed(0)
    a = make_scenes(4, size=32, generator=g)
    b = make_scenes(4, size=32, generator=g)
    assert not torch.equal(a.images, b.images)


def test_boxes_equal_box_of_each_object_mask(scenes):
    for i in range(len(scenes)):
        for k in range(scenes.boxes.shape[1]):
            om = scenes.object_masks[i, k]
            assert bool(scenes.valid[i, k]) == bool(om.any())
            if scenes.valid[i, k]:
                assert scenes.boxes[i, k].tolist() == pytest.approx(_box_of(om), abs=1e-6)
                assert 0 <= int(scenes.labels[i, k]) < len(SHAPES)
            else:
                assert scenes.boxes[i, k].tolist() == [0, 0, 0, 0]
                assert int(scenes.labels[i, k]) == -1


def test_union_mask_and_disjoint_visible_parts(scenes):
    assert torch.equal(scenes.object_masks.any(dim=1, keepdim=True), scenes.masks)
    assert (scenes.object_masks.sum(dim=1) <= 1).all()


def test_objects_differ_from_background():
    # object pixels are saturated colours, background pixels greyish: the mean saturation differs
    s = make_scenes(16, size=48, seed=1, noise=0.0)
    sat = s.images.amax(1) - s.images.amin(1)
    fg = sat[s.masks[:, 0]].mean()
    bg = sat[~s.masks[:, 0]].mean()
    assert fg > bg + 0.2


def test_background_is_a_window_of_the_shared_family():
    n, size = 4, 24
    s = make_scenes(n, size=size, seed=0, backgrounds=2, noise=0.0)
    fam = background_family(2, size)  # (2, 3, 2S, 2S)
    assert fam.shape == (2, 3, 2 * size, 2 * size)
    for i in range(n):  # brute-force search of the window each background comes from
        bg = ~s.masks[i, 0]
        found = False
        for k in range(2):
            for dy in range(size + 1):
                for dx in range(size + 1):
                    win = fam[k, :, dy:dy + size, dx:dx + size]
                    if torch.equal(win[:, bg], s.images[i][:, bg]):
                        found = True
                        break
                if found:
                    break
            if found:
                break
        assert found, i


def test_per_image_backgrounds_and_bad_family_size():
    a = make_scenes(4, size=32, seed=0, backgrounds=None, noise=0.0)
    assert a.images.shape == (4, 3, 32, 32)
    with pytest.raises(ValueError, match="backgrounds"):
        make_scenes(2, size=32, backgrounds=0)


def test_boxes_from_masks_reference():
    m = torch.zeros(2, 10, 12, dtype=torch.bool)
    m[0, 2:5, 3:9] = True
    m[0, 7, 1] = True
    b, v = boxes_from_masks(m)
    assert v.tolist() == [True, False]
    assert b[0].tolist() == pytest.approx([1 / 12, 2 / 10, 9 / 12, 8 / 10])
    assert b[1].tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("kwargs", [dict(n=0), dict(n=2, size=8), dict(n=2, max_objects=0),
                                    dict(n=2, min_objects=4, max_objects=3), dict(n=2, scale=(0.3, 0.2))])
def test_bad_arguments(kwargs):
    n = kwargs.pop("n")
    with pytest.raises(ValueError):
        make_scenes(n, **kwargs)


def test_dataset_deterministic_per_index():
    ds = SyntheticScenes(10, size=32, seed=5, chunk=4)
    first = ds[9]
    ds2 = SyntheticScenes(10, size=32, seed=5, chunk=4)
    _ = ds2[0]
    again = ds2[9]
    assert torch.equal(first["image"], again["image"])
    assert torch.equal(ds[-1]["mask"], first["mask"])
    assert first["image"].shape == (3, 32, 32) and first["mask"].shape == (1, 32, 32)
    assert len(ds) == 10
    with pytest.raises(IndexError):
        ds[10]
    loader = torch.utils.data.DataLoader(ds, batch_size=5)
    batch = next(iter(loader))
    assert batch["image"].shape == (5, 3, 32, 32) and batch["boxes"].shape == (5, 3, 4)
