"""Tests for objaug.functional.components against a plain BFS flood fill (and scipy if present)."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
import torch

from objaug.functional.components import _label, connected_components

NEIGHBOURS = {
    4: ((-1, 0), (1, 0), (0, -1), (0, 1)),
    8: ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1)),
}


def bfs_labels(image: np.ndarray, connectivity: int) -> np.ndarray:
    """Reference labelling of one (H, W) bool image: 1 + smallest flat index of each component.

    Scanning pixels in row-major order, the first pixel met of a component is its smallest
    flat index, so labelling each new component with that index + 1 gives the canonical labels.
    """
    h, w = image.shape
    out = np.zeros((h, w), dtype=np.int64)
    for y0 in range(h):
        for x0 in range(w):
            if not image[y0, x0] or out[y0, x0]:
                continue
            label = y0 * w + x0 + 1
            out[y0, x0] = label
            queue = deque([(y0, x0)])
            while queue:
                y, x = queue.popleft()
                for dy, dx in NEIGHBOURS[connectivity]:
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < h and 0 <= xx < w and image[yy, xx] and not out[yy, xx]:
                        out[yy, xx] = label
                        queue.append((yy, xx))
    return out


def reference(binary: torch.Tensor, connectivity: int) -> torch.Tensor:
    arr = binary[:, 0].cpu().numpy()
    return torch.from_numpy(np.stack([bfs_labels(a, connectivity) for a in arr])).unsqueeze(1)


def spiral(n: int) -> np.ndarray:
    """A one-pixel-wide square spiral (a single 4-connected component with a ~n^2/2 long path)."""
    a = np.zeros((n, n), bool)
    r = 0
    while True:
        lo, hi = r, n - 1 - r
        if hi - lo < 2:
            if hi >= lo:
                a[lo, lo : hi + 1] = True
            break
        a[lo, lo : hi + 1] = True
        a[lo : hi + 1, hi] = True
        a[hi, lo : hi + 1] = True
        a[lo + 2 : hi + 1, lo] = True
        a[lo + 2, lo : lo + 3] = True
        r += 2
    return a


def snake(h: int, w: int) -> np.ndarray:
    """Boustrophedon: every other row full, joined alternately at the right and left ends."""
    a = np.zeros((h, w), bool)
    a[::2] = True
    for i, y in enumerate(range(1, h, 2)):
        a[y, w - 1 if i % 2 == 0 else 0] = True
    return a


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("density", [0.3, 0.5, 0.6])
def test_random_images_match_bfs(connectivity: int, density: float) -> None:
    g = torch.Generator().manual_seed(int(density * 100) + connectivity)
    binary = torch.rand(6, 1, 23, 31, generator=g) < density
    out = connected_components(binary, connectivity=connectivity)
    assert out.dtype == torch.int64 and out.shape == binary.shape
    assert torch.equal(out, reference(binary, connectivity))


def test_matches_scipy_if_installed() -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    g = torch.Generator().manual_seed(3)
    binary = torch.rand(4, 1, 40, 40, generator=g) < 0.55
    for connectivity in (4, 8):
        out = connected_components(binary, connectivity=connectivity)[:, 0].numpy()
        structure = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
        for ours, img in zip(out, binary[:, 0].numpy(), strict=True):
            theirs, count = ndimage.label(img, structure)
            # Same partition: a bijection between the two label sets on the foreground.
            pairs = set(zip(ours[img].tolist(), theirs[img].tolist(), strict=True))
            assert len(pairs) == count == len(np.unique(ours[img]))
            assert ((ours == 0) == (theirs == 0)).all()


@pytest.mark.parametrize("connectivity", [4, 8])
def test_spiral_and_snake_are_one_component(connectivity: int) -> None:
    shapes = [spiral(33), snake(33, 33)]
    binary = torch.from_numpy(np.stack(shapes)).unsqueeze(1)
    out = connected_components(binary, connectivity=connectivity)
    assert torch.equal(out, reference(binary, connectivity))
    for i in range(2):
        assert set(out[i][binary[i]].tolist()) == {1}


def test_spiral_with_tight_max_iters_still_exact_with_default_bound() -> None:
    binary = torch.from_numpy(spiral(41))[None, None]
    labels, iters = _label(binary, 4, None, 1)
    assert torch.equal(labels, reference(binary, 4))
    assert 0 < iters < 41 * 41  # converged well before the H * W bound
    # With every check disabled until the bound, the loop still stops at H * W iterations
    # for a tiny image and is exact.
    small = torch.from_numpy(spiral(7))[None, None]
    labels, iters = _label(small, 4, None, 10**6)
    assert iters == 49
    assert torch.equal(labels, reference(small, 4))


def test_max_iters_zero_gives_each_pixel_its_own_label() -> None:
    binary = torch.ones(1, 1, 2, 3, dtype=torch.bool)
    out = connected_components(binary, max_iters=0)
    assert torch.equal(out.flatten(), torch.arange(1, 7))


def test_checkerboard_4_vs_8() -> None:
    yy, xx = torch.meshgrid(torch.arange(9), torch.arange(10), indexing="ij")
    board = ((yy + xx) % 2 == 0)[None, None]
    four = connected_components(board, connectivity=4)
    eight = connected_components(board, connectivity=8)
    # 4-connected: every square is alone; 8-connected: all squares touch at corners.
    assert len(torch.unique(four[board])) == int(board.sum())
    assert torch.unique(eight[board]).tolist() == [1]
    assert torch.equal(four, reference(board, 4)) and torch.equal(eight, reference(board, 8))


def test_empty_full_and_mixed_batch() -> None:
    binary = torch.zeros(3, 1, 5, 6, dtype=torch.bool)
    binary[1] = True
    binary[2, 0, 4, 5] = True
    out = connected_components(binary)
    assert (out[0] == 0).all()
    assert (out[1] == 1).all()
    assert out[2, 0, 4, 5] == 30 and int(out[2].count_nonzero()) == 1


def test_single_pixel_and_single_row_images() -> None:
    assert connected_components(torch.ones(2, 1, 1, 1, dtype=torch.bool)).flatten().tolist() == [1, 1]
    row = torch.tensor([[[[1, 1, 0, 1, 0, 0, 1, 1, 1]]]], dtype=torch.bool)
    assert connected_components(row).flatten().tolist() == [1, 1, 0, 4, 0, 0, 7, 7, 7]
    col = row.transpose(2, 3)
    assert connected_components(col).flatten().tolist() == [1, 1, 0, 4, 0, 0, 7, 7, 7]


def test_empty_batch() -> None:
    out = connected_components(torch.zeros(0, 1, 4, 4, dtype=torch.bool))
    assert out.shape == (0, 1, 4, 4) and out.dtype == torch.int64


def test_images_in_a_batch_are_independent() -> None:
    g = torch.Generator().manual_seed(0)
    binary = torch.rand(5, 1, 16, 16, generator=g) < 0.5
    batched = connected_components(binary)
    for i in range(5):
        assert torch.equal(batched[i : i + 1], connected_components(binary[i : i + 1]))


def test_check_every_does_not_change_the_result() -> None:
    g = torch.Generator().manual_seed(1)
    binary = torch.rand(3, 1, 20, 20, generator=g) < 0.6
    expected = reference(binary, 4)
    for every in (1, 2, 3, 7):
        assert torch.equal(connected_components(binary, check_every=every), expected)


def test_input_validation() -> None:
    with pytest.raises(TypeError, match="bool"):
        connected_components(torch.zeros(1, 1, 4, 4))
    with pytest.raises(TypeError, match="torch.Tensor"):
        connected_components(np.zeros((1, 1, 4, 4), bool))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        connected_components(torch.zeros(1, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        connected_components(torch.zeros(1, 2, 4, 4, dtype=torch.bool))
    binary = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match="connectivity"):
        connected_components(binary, connectivity=6)
    with pytest.raises(ValueError, match="max_iters"):
        connected_components(binary, max_iters=-1)
    with pytest.raises(ValueError, match="check_every"):
        connected_components(binary, check_every=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.cuda
def test_cuda_matches_cpu() -> None:
    g = torch.Generator().manual_seed(2)
    binary = torch.rand(8, 1, 50, 60, generator=g) < 0.55
    for connectivity in (4, 8):
        cpu = connected_components(binary, connectivity=connectivity)
        gpu = connected_components(binary.cuda(), connectivity=connectivity)
        assert gpu.device.type == "cuda"
        assert torch.equal(gpu.cpu(), cpu)
