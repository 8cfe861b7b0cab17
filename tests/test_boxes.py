"""Tests for objaug.boxes: hand-made maps and a slow per-image reference (BFS labelling)."""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import pytest
import torch

from objaug.boxes import boxes_from_cam, boxes_to_pixels
from objaug.config import BoxConfig


def bfs_components(image: np.ndarray, connectivity: int) -> list[list[tuple[int, int]]]:
    """Components of one (H, W) bool image, in row-major order of their first pixel."""
    steps = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if connectivity == 8:
        steps += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    h, w = image.shape
    seen = np.zeros_like(image)
    comps = []
    for y0 in range(h):
        for x0 in range(w):
            if image[y0, x0] and not seen[y0, x0]:
                seen[y0, x0] = True
                queue, comp = deque([(y0, x0)]), []
                while queue:
                    y, x = queue.popleft()
                    comp.append((y, x))
                    for dy, dx in steps:
                        yy, xx = y + dy, x + dx
                        if 0 <= yy < h and 0 <= xx < w and image[yy, xx] and not seen[yy, xx]:
                            seen[yy, xx] = True
                            queue.append((yy, xx))
                comps.append(comp)
    return comps


def reference_boxes(maps: torch.Tensor, **options: float | int | bool) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`per_image_boxes` with the options given; the others take the defaults of
    :class:`objaug.config.BoxConfig` (the one place they are written)."""
    box_defaults = BoxConfig()
    settings = {
        "threshold": box_defaults.threshold,
        "min_area": box_defaults.min_area,
        "margin": box_defaults.margin,
        "max_boxes": box_defaults.max_boxes,
        "connectivity": box_defaults.connectivity,
        "relative": False,
    }
    settings.update(options)
    return per_image_boxes(maps, **settings)  # type: ignore[arg-type]


def per_image_boxes(maps: torch.Tensor, *, threshold: float, min_area: float, margin: float, max_boxes: int,
                    connectivity: int, relative: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Slow per-image version of boxes_from_cam, written from its specification."""
    b, _, h, w = maps.shape
    boxes = torch.zeros(b, max_boxes, 4)
    valid = torch.zeros(b, max_boxes, dtype=torch.bool)
    for i in range(b):
        m = maps[i, 0].double().numpy()
        fg = (m >= threshold * m.max()) & (m > 0) if relative else m >= threshold
        comps = [c for c in bfs_components(fg, connectivity) if len(c) >= round(min_area * h * w, 6)]
        comps = sorted(comps, key=len, reverse=True)[:max_boxes]  # stable: ties keep scan order
        for k, comp in enumerate(comps):
            ys = [p[0] for p in comp]
            xs = [p[1] for p in comp]
            x1, x2, y1, y2 = min(xs), max(xs) + 1, min(ys), max(ys) + 1
            bw, bh = x2 - x1, y2 - y1
            box = [(x1 - margin * bw) / w, (y1 - margin * bh) / h, (x2 + margin * bw) / w, (y2 + margin * bh) / h]
            boxes[i, k] = torch.tensor([min(max(v, 0.0), 1.0) for v in box])
            valid[i, k] = True
        if not comps:
            boxes[i, 0] = torch.tensor([0.0, 0.0, 1.0, 1.0])
    return boxes, valid


def gaussian_maps(b: int, h: int, w: int, seed: int, blobs: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    maps = torch.zeros(b, 1, h, w)
    for _ in range(blobs):
        cy, cx = torch.rand(b, 1, 1, 1, generator=g) * h, torch.rand(b, 1, 1, 1, generator=g) * w
        s = 1.5 + torch.rand(b, 1, 1, 1, generator=g) * h / 6
        amp = 0.4 + 0.6 * torch.rand(b, 1, 1, 1, generator=g)
        maps = torch.maximum(maps, amp * torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s**2)))
    lo, hi = maps.amin((2, 3), keepdim=True), maps.amax((2, 3), keepdim=True)
    return (maps - lo) / (hi - lo)


def test_two_blobs_give_two_boxes_largest_first() -> None:
    maps = torch.zeros(1, 1, 20, 20)
    maps[0, 0, 2:6, 3:9] = 1.0  # 4 x 6 = 24 px
    maps[0, 0, 10:18, 10:20] = 0.7  # 8 x 10 = 80 px
    boxes, valid = boxes_from_cam(maps, margin=0.0)
    assert boxes.shape == (1, 4, 4) and boxes.dtype == torch.float32 and valid.dtype == torch.bool
    assert valid.tolist() == [[True, True, False, False]]
    torch.testing.assert_close(boxes[0, 0], torch.tensor([0.5, 0.5, 1.0, 0.9]))
    torch.testing.assert_close(boxes[0, 1], torch.tensor([0.15, 0.1, 0.45, 0.3]))
    assert (boxes[0, 2:] == 0).all()


def test_margin_arithmetic_is_exact() -> None:
    maps = torch.zeros(1, 1, 40, 20)
    maps[0, 0, 10:30, 5:15] = 1.0  # columns 5..14, rows 10..29
    boxes, valid = boxes_from_cam(maps, margin=0.2)
    # x: [5, 15] / 20 = [0.25, 0.75], width 0.5 -> +-0.1; y: [10, 30] / 40 = [0.25, 0.75] -> +-0.1.
    torch.testing.assert_close(boxes[0, 0], torch.tensor([0.15, 0.15, 0.85, 0.85]))
    boxes, _ = boxes_from_cam(maps, margin=0.5)
    torch.testing.assert_close(boxes[0, 0], torch.tensor([0.0, 0.0, 1.0, 1.0]))
    boxes, _ = boxes_from_cam(maps, margin=0.1)
    torch.testing.assert_close(boxes[0, 0], torch.tensor([0.2, 0.2, 0.8, 0.8]))


def test_clip_at_the_borders() -> None:
    maps = torch.zeros(1, 1, 10, 10)
    maps[0, 0, 0:4, 6:10] = 1.0  # top-right corner, 4 x 4
    boxes, _ = boxes_from_cam(maps, margin=0.25)
    # x: [0.6, 1.0] +- 0.1 -> [0.5, 1.0]; y: [0.0, 0.4] +- 0.1 -> [0.0, 0.5]
    torch.testing.assert_close(boxes[0, 0], torch.tensor([0.5, 0.0, 1.0, 0.5]))


def test_min_area_filter() -> None:
    maps = torch.zeros(1, 1, 20, 20)  # 400 px; min_area 0.01 -> 4 px
    maps[0, 0, 1, 1:4] = 1.0  # 3 px: dropped
    maps[0, 0, 5, 5:9] = 1.0  # 4 px: kept
    maps[0, 0, 10:12, 10:15] = 1.0  # 10 px: kept
    boxes, valid = boxes_from_cam(maps, margin=0.0, min_area=0.01)
    assert valid[0].tolist() == [True, True, False, False]
    torch.testing.assert_close(boxes[0, 0], torch.tensor([0.5, 0.5, 0.75, 0.6]))
    torch.testing.assert_close(boxes[0, 1], torch.tensor([0.25, 0.25, 0.45, 0.3]))
    _, valid = boxes_from_cam(maps, margin=0.0, min_area=0.0)
    assert valid[0].tolist() == [True, True, True, False]
    _, valid = boxes_from_cam(maps, margin=0.0, min_area=0.03)
    assert valid[0].tolist() == [False] * 4
    # 0.07 * 100 is 7.000000000000001 in floating point; a 7-pixel component still qualifies.
    maps = torch.zeros(1, 1, 10, 10)
    maps[0, 0, 0, :7] = 1.0
    assert boxes_from_cam(maps, min_area=0.07)[1][0, 0]
    assert not boxes_from_cam(maps, min_area=0.071)[1][0, 0]


def test_fallback_when_nothing_qualifies() -> None:
    maps = torch.zeros(3, 1, 8, 8)
    maps[1, 0, 2:5, 2:5] = 1.0
    maps[2, 0, 0, 0] = 1.0  # one pixel < 1 % of 64? 1 >= 0.64 -> kept; use min_area to drop
    boxes, valid = boxes_from_cam(maps, margin=0.0, min_area=0.05)
    assert not valid[0].any() and not valid[2].any() and valid[1, 0]
    found = valid.any(1)
    assert found.tolist() == [False, True, False]
    for i in (0, 2):
        torch.testing.assert_close(boxes[i, 0], torch.tensor([0.0, 0.0, 1.0, 1.0]))
        assert (boxes[i, 1:] == 0).all()


def test_max_boxes_keeps_the_largest() -> None:
    maps = torch.zeros(1, 1, 10, 40)
    sizes = [2, 5, 3, 6, 4]  # square sides, one column of background between squares
    for k, s in enumerate(sizes):
        maps[0, 0, 1 : 1 + s, 1 + 7 * k : 1 + 7 * k + s] = 1.0
    boxes, valid = boxes_from_cam(maps, margin=0.0, max_boxes=2, min_area=0.0)
    assert boxes.shape == (1, 2, 4) and valid.all()
    widths = ((boxes[0, :, 2] - boxes[0, :, 0]) * 40).round().tolist()
    assert widths == [6.0, 5.0]
    boxes, valid = boxes_from_cam(maps, margin=0.0, max_boxes=8, min_area=0.0)
    assert valid[0].tolist() == [True] * 5 + [False] * 3
    widths = ((boxes[0, :5, 2] - boxes[0, :5, 0]) * 40).round().tolist()
    assert widths == [6.0, 5.0, 4.0, 3.0, 2.0]


def test_ring_gives_one_box() -> None:
    maps = torch.zeros(1, 1, 20, 20)
    maps[0, 0, 4:16, 4:16] = 1.0
    maps[0, 0, 6:14, 6:14] = 0.0  # a hole: the reference code would also box the hole contour
    boxes, valid = boxes_from_cam(maps, margin=0.0)
    assert valid[0].tolist() == [True, False, False, False]
    torch.testing.assert_close(boxes[0, 0], torch.tensor([0.2, 0.2, 0.8, 0.8]))


def test_threshold_is_inclusive_and_no_background_component_dropped() -> None:
    maps = torch.zeros(1, 1, 10, 10)
    maps[0, 0, 2:4, 2:4] = 0.5
    boxes, valid = boxes_from_cam(maps, threshold=0.5, margin=0.0)
    assert valid[0, 0] and not valid[0, 1:].any()  # the only component is kept
    torch.testing.assert_close(boxes[0, 0], torch.tensor([0.2, 0.2, 0.4, 0.4]))
    _, valid = boxes_from_cam(maps, threshold=0.51)
    assert not valid.any()
    # Low values (e.g. 1/255) are background at the default threshold (no `p >= 1/255` bug).
    maps = torch.full((1, 1, 10, 10), 1 / 255)
    maps[0, 0, 5:8, 5:8] = 1.0
    boxes, valid = boxes_from_cam(maps, margin=0.0)
    torch.testing.assert_close(boxes[0, 0], torch.tensor([0.5, 0.5, 0.8, 0.8]))


def test_ties_broken_by_first_pixel() -> None:
    maps = torch.zeros(1, 1, 10, 10)
    maps[0, 0, 6:8, 1:3] = 1.0  # lower-left, 4 px
    maps[0, 0, 1:3, 6:8] = 1.0  # upper-right, 4 px, first in row-major order
    boxes, _ = boxes_from_cam(maps, margin=0.0)
    torch.testing.assert_close(boxes[0, 0], torch.tensor([0.6, 0.1, 0.8, 0.3]))
    torch.testing.assert_close(boxes[0, 1], torch.tensor([0.1, 0.6, 0.3, 0.8]))


def test_connectivity_8_joins_diagonal_pixels() -> None:
    maps = torch.zeros(1, 1, 10, 10)
    for i in range(5):
        maps[0, 0, i, i] = 1.0
    _, valid4 = boxes_from_cam(maps, min_area=0.0, max_boxes=6)
    boxes8, valid8 = boxes_from_cam(maps, min_area=0.0, max_boxes=6, connectivity=8, margin=0.0)
    assert int(valid4.sum()) == 5 and int(valid8.sum()) == 1
    torch.testing.assert_close(boxes8[0, 0], torch.tensor([0.0, 0.0, 0.5, 0.5]))


def test_relative_threshold() -> None:
    maps = gaussian_maps(4, 24, 24, seed=5)
    expected = boxes_from_cam(maps, threshold=0.4)
    got = boxes_from_cam(maps * 0.5, threshold=0.4, relative=True)
    torch.testing.assert_close(got[0], expected[0])
    assert torch.equal(got[1], expected[1])
    boxes, valid = boxes_from_cam(torch.zeros(1, 1, 8, 8), relative=True)
    assert not valid.any()
    torch.testing.assert_close(boxes[0, 0], torch.tensor([0.0, 0.0, 1.0, 1.0]))


@pytest.mark.parametrize(
    ("kwargs", "seed"),
    [
        ({}, 0),
        ({"threshold": 0.3, "margin": 0.1, "max_boxes": 3}, 1),
        ({"min_area": 0.0, "connectivity": 8, "max_boxes": 6}, 2),
        ({"min_area": 0.02, "margin": 0.0, "max_boxes": 1}, 3),
        ({"threshold": 0.6, "relative": True}, 4),
    ],
)
def test_batch_matches_per_image_reference(kwargs: dict, seed: int) -> None:
    maps = gaussian_maps(12, 24, 28, seed=seed, blobs=4)
    boxes, valid = boxes_from_cam(maps, **kwargs)
    ref_boxes, ref_valid = reference_boxes(maps, **kwargs)
    assert torch.equal(valid, ref_valid)
    torch.testing.assert_close(boxes, ref_boxes)


def test_noise_matches_reference() -> None:
    g = torch.Generator().manual_seed(7)
    maps = torch.rand(4, 1, 16, 16, generator=g)
    for connectivity in (4, 8):
        kwargs = {"min_area": 0.0, "max_boxes": 10, "connectivity": connectivity}
        boxes, valid = boxes_from_cam(maps, **kwargs)  # type: ignore[arg-type]
        ref_boxes, ref_valid = reference_boxes(maps, **kwargs)  # type: ignore[arg-type]
        assert torch.equal(valid, ref_valid)
        torch.testing.assert_close(boxes, ref_boxes)


def test_tiny_images_and_dtypes() -> None:
    boxes, valid = boxes_from_cam(torch.ones(2, 1, 1, 1), max_boxes=4)
    assert boxes.shape == (2, 4, 4) and valid.tolist() == [[True, False, False, False]] * 2
    torch.testing.assert_close(boxes[:, 0], torch.tensor([[0.0, 0.0, 1.0, 1.0]] * 2))
    maps = gaussian_maps(3, 16, 16, seed=9)
    ref = boxes_from_cam(maps)
    for dtype in (torch.float64, torch.float16, torch.bfloat16):
        boxes, valid = boxes_from_cam(maps.to(dtype), threshold=0.5)
        assert boxes.dtype == torch.float32
        if dtype == torch.float64:
            torch.testing.assert_close(boxes, ref[0])
            assert torch.equal(valid, ref[1])


def test_boxes_to_pixels() -> None:
    maps = torch.zeros(1, 1, 12, 16)
    maps[0, 0, 3:7, 2:11] = 1.0
    boxes, _ = boxes_from_cam(maps, margin=0.0)
    px = boxes_to_pixels(boxes[0, 0], (12, 16), integer=True)
    assert px.dtype == torch.int64 and px.tolist() == [2, 3, 11, 7]
    fpx = boxes_to_pixels(boxes, (12, 16))
    assert fpx.shape == (1, 4, 4) and fpx.dtype == torch.float32
    torch.testing.assert_close(fpx[0, 0], torch.tensor([2.0, 3.0, 11.0, 7.0]))
    square = boxes_to_pixels(torch.tensor([0.5, 0.25, 1.0, 1.0]), 8)
    torch.testing.assert_close(square, torch.tensor([4.0, 2.0, 8.0, 8.0]))
    with pytest.raises(ValueError, match="size"):
        boxes_to_pixels(boxes, 0)
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        boxes_to_pixels(torch.zeros(3, 5), 8)
    with pytest.raises(TypeError):
        boxes_to_pixels(torch.zeros(3, 4, dtype=torch.int64), 8)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"threshold": 0.0}, ValueError, "threshold"),
        ({"threshold": 1.5}, ValueError, "threshold"),
        ({"threshold": math.nan}, ValueError, "threshold"),
        ({"min_area": 1.0}, ValueError, "min_area"),
        ({"min_area": -0.1}, ValueError, "min_area"),
        ({"margin": -0.1}, ValueError, "margin"),
        ({"max_boxes": 0}, ValueError, "max_boxes"),
        ({"max_boxes": 2.0}, TypeError, "max_boxes"),
        ({"connectivity": 6}, ValueError, "connectivity"),
        ({"relative": 1}, TypeError, "relative"),
    ],
)
def test_argument_validation(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        boxes_from_cam(torch.zeros(1, 1, 8, 8), **kwargs)


def test_maps_validation() -> None:
    with pytest.raises(ValueError, match="channels"):
        boxes_from_cam(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="4-D"):
        boxes_from_cam(torch.zeros(1, 8, 8))
    with pytest.raises(TypeError, match="floating"):
        boxes_from_cam(torch.zeros(1, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        boxes_from_cam(np.zeros((1, 1, 8, 8)))  # type: ignore[arg-type]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.cuda
def test_cuda_matches_cpu() -> None:
    maps = gaussian_maps(8, 64, 64, seed=11, blobs=4)
    cpu = boxes_from_cam(maps)
    gpu = boxes_from_cam(maps.cuda())
    assert gpu[0].device.type == "cuda"
    torch.testing.assert_close(gpu[0].cpu(), cpu[0])
    assert torch.equal(gpu[1].cpu(), cpu[1])
