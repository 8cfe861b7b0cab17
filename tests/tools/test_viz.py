"""Tests of objaug.tools.viz: colormap values, overlays, box outlines, grids and PNG files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from objaug.tools.viz import (
    FALLBACK_COLOR,
    denormalize,
    draw_boxes,
    jet,
    make_grid,
    mask_to_rgb,
    overlay_cam,
    save_png,
    to_uint8,
)


def test_jet_endpoints_and_middle():
    v = torch.tensor([0.0, 0.5, 1.0]).view(3, 1, 1, 1)
    c = jet(v)[:, :, 0, 0]
    assert c[0].tolist() == pytest.approx([0.0, 0.0, 0.5])   # dark blue
    assert c[1].tolist() == pytest.approx([0.5, 1.0, 0.5])   # green-ish middle
    assert c[2].tolist() == pytest.approx([0.5, 0.0, 0.0])   # dark red
    hw = jet(torch.tensor([[-1.0, 2.0]]))  # (H, W) input -> (3, H, W), clamped
    assert hw.shape == (3, 1, 2) and hw[:, 0, 0].tolist() == pytest.approx([0.0, 0.0, 0.5])


def test_overlay_zero_map_gives_low_colour():
    images = torch.zeros(2, 3, 4, 5)
    maps = torch.zeros(2, 1, 4, 5)
    out = overlay_cam(images, maps, alpha=1.0)
    assert out.dtype == torch.uint8 and out.shape == (2, 3, 4, 5)
    assert out[:, 0].eq(0).all() and out[:, 1].eq(0).all() and out[:, 2].eq(128).all()  # 0.5 * 255 rounds to 128


def test_overlay_blend_and_resize():
    images = torch.ones(1, 3, 8, 8)
    maps = torch.ones(1, 1, 2, 2)  # resized to 8x8
    out = overlay_cam(images, maps, alpha=0.5)
    # 0.5 * 1 + 0.5 * (0.5, 0, 0) -> (0.75, 0.5, 0.5)
    assert out[0, :, 3, 3].tolist() == [191, 128, 128]
    out0 = overlay_cam(images, maps, alpha=0.0)
    assert out0.eq(255).all()
    with pytest.raises(ValueError):
        overlay_cam(images, torch.ones(2, 1, 8, 8))


def test_box_outline_lands_where_expected():
    img = torch.zeros(1, 3, 10, 10, dtype=torch.uint8)
    boxes = torch.tensor([[[0.2, 0.3, 0.6, 0.8], [0, 0, 0, 0]]])
    valid = torch.tensor([[True, False]])
    out = draw_boxes(img, boxes, valid, colors=[(0, 255, 0)])
    green = (out[0, 1] == 255) & (out[0, 0] == 0)
    # x from 2 to 6 - 1 = 5, y from 3 to 8 - 1 = 7
    expected = torch.zeros(10, 10, dtype=torch.bool)
    expected[3, 2:6] = expected[7, 2:6] = True
    expected[3:8, 2] = expected[3:8, 5] = True
    assert torch.equal(green, expected)


def test_fallback_box_drawn_in_its_own_colour():
    img = torch.zeros(2, 3, 6, 6)
    boxes = torch.tensor([[[0.0, 0.0, 1.0, 1.0]], [[0.0, 0.0, 0.5, 0.5]]])
    valid = torch.tensor([[False], [True]])
    out = draw_boxes(img, boxes, valid, colors=[(0, 255, 0)])
    assert out[0, :, 0, 0].tolist() == list(FALLBACK_COLOR)
    assert out[0, :, 5, 5].tolist() == list(FALLBACK_COLOR)
    assert out[0, :, 2, 2].tolist() == [0, 0, 0]
    assert out[1, :, 0, 0].tolist() == [0, 255, 0]
    none = draw_boxes(img, boxes, valid, fallback_color=None)
    assert none[0].eq(0).all()


def test_denormalize_inverts_normalisation():
    x = torch.rand(2, 3, 4, 4)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.3, 0.4)
    norm = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(denormalize(norm, mean, std), x, atol=1e-6)


def test_grid_and_png_roundtrip(tmp_path):
    imgs = torch.rand(3, 3, 8, 8)
    grid = make_grid(imgs, nrow=3, padding=1)
    assert grid.dtype == torch.uint8 and grid.shape == (3, 10, 28)
    path = save_png(imgs, tmp_path / "sub" / "grid.png", nrow=3)  # default padding 2
    with Image.open(path) as im:
        assert im.size == (3 * 8 + 4 * 2, 8 + 2 * 2) and im.mode == "RGB"
    p1 = save_png(mask_to_rgb(torch.ones(1, 1, 4, 4, dtype=torch.bool))[0], tmp_path / "m.png")
    with Image.open(p1) as im:
        assert im.getpixel((0, 0)) == (255, 255, 255)
    assert to_uint8(torch.tensor([0.0, 0.5, 1.0, 2.0])).tolist() == [0, 128, 255, 255]
    with pytest.raises(ValueError):
        save_png(torch.zeros(5, 4, 4), tmp_path / "bad.png")


def test_plot_object_aware_views_grid(tmp_path):
    from objaug.augment.pipeline import ObjectAwareAugment
    from objaug.augment.views import ViewConfig
    from objaug.tools.viz import BOX_COLORS, plot_object_aware_views

    view = ViewConfig(input_size=16, cj_prob=0.0, random_gray_scale=0.0, gaussian_blur=0.0)  # ImageNet-normalised
    aug = ObjectAwareAugment([view, ViewConfig(input_size=16, cj_prob=0.0, random_gray_scale=0.0, gaussian_blur=0.0,
                                               mixup=False, normalize=None)])
    images = torch.full((2, 3, 32, 32), 0.25)
    boxes = torch.tensor([[[0.25, 0.25, 0.75, 0.75]], [[0.0, 0.0, 0.5, 0.5]]])
    valid = torch.tensor([[True], [False]])  # image 1: no box, the grey whole-frame fallback is drawn
    grid = plot_object_aware_views(images, aug, boxes, valid, path=tmp_path / "views.png")
    band = 25  # "image + boxes" does not fit a 16 px tile: two lines of titles
    assert grid.dtype == torch.uint8 and grid.shape == (3, band + 2 * 16 + 3 * 2, 3 * 16 + 4 * 2)
    with Image.open(tmp_path / "views.png") as im:
        assert torch.equal(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1), grid)

    def has(color, rows, cols):
        patch = grid[:, rows, cols].reshape(3, -1)
        return bool((patch == torch.tensor(color, dtype=torch.uint8).view(3, 1)).all(0).any())

    row0, row1 = slice(band + 2, band + 18), slice(band + 20, band + 36)
    col0, views = slice(2, 18), slice(20, 56)
    assert has(BOX_COLORS[0], row0, col0) and not has(BOX_COLORS[0], row0, views)
    assert not has(BOX_COLORS[0], row1, col0) and has(FALLBACK_COLOR, row1, col0)
    for cols in (slice(20, 36), slice(38, 54)):  # both views un-normalised back to the image's 0.25 (64)
        assert (grid[:, row0, cols] - 64).abs().max() <= 1
    assert (grid[:, :band] < 255).any()  # the titles


def test_plot_object_aware_views_refuses_a_lightly_transform():
    from objaug.tools.viz import plot_object_aware_views

    with pytest.raises(TypeError, match="augment must be an objaug.augment.pipeline.ObjectAwareAugment .* or one of "
                                        "objaug's per-image Lightly transforms"):
        plot_object_aware_views(torch.rand(2, 3, 16, 16), lambda x: x)  # type: ignore[arg-type]


@pytest.mark.parametrize("tile", [64, 32, 16])
def test_titles_stay_inside_their_columns(tile):
    from objaug.tools.viz import make_grid, with_titles

    titles = ["image + boxes", "view 1 (mixup)", "view 2"]
    grid = make_grid(torch.zeros(3, 3, tile, tile), nrow=3)
    out = with_titles(grid, titles, tile)
    band = out.shape[1] - grid.shape[1]
    assert band == (14 if tile > 90 else 25)  # "image + boxes" is 66 px wide in PIL's default font
    ink = (out[:, :band] < 128).any(0)  # dark title pixels (H_band, W)
    for j in range(3):
        x0 = 2 + j * (tile + 2)
        cols = ink[:, x0:x0 + tile].any(0).nonzero().flatten()
        assert cols.numel() > 0  # every column has a title
    columns = ink.any(0).nonzero().flatten()
    owner = (columns - 2) // (tile + 2)
    inside = (columns - 2) % (tile + 2) < tile  # no ink in the padding between tiles
    assert bool(inside.all()) and set(owner.tolist()) == {0, 1, 2}
