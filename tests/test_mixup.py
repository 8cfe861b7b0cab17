"""Tests for objaug.functional.mixup and objaug.augment.mixup.BackgroundMixup.

The vectorised code is checked against a slow per-sample reference written here from method.md §4
(pixel-by-pixel Python loops), driven with the same random draws through the params dict.
"""

from __future__ import annotations

import copy
import importlib.util
from collections import deque
from pathlib import Path

import pytest
import torch
from torch import Tensor

import objaug.functional.mixup_kernel as fmix  # the unchecked kernel and its CPU fast path
from objaug.augment.mixup import BackgroundMixup
from objaug.functional.mixup import (
    STRIP_ORDER,
    background_mixup,
    largest_strip,
    mask_bounding_boxes,
    mean_fill_backgrounds,
    tiled_strip_backgrounds,
)

# Every test runs on both kernels: the CPU's compacting path and the fixed-shape (accelerator) one.
pytestmark = pytest.mark.usefixtures("mixup_path")  # tests/conftest.py


# --------------------------------------------------------------------------- reference (slow)


def ref_rectangle(hard: Tensor) -> tuple[int, int, int, int]:
    """Inclusive (y0, y1, x0, x1) of a (H, W) bool mask by scanning; whole image if empty."""
    h, w = hard.shape
    rows = [y for y in range(h) if bool(hard[y].any())]
    cols = [x for x in range(w) if bool(hard[:, x].any())]
    if not rows:
        return 0, h - 1, 0, w - 1
    return min(rows), max(rows), min(cols), max(cols)


def ref_tiled_background(img: Tensor, rect: tuple[int, int, int, int]) -> Tensor:
    """Largest strip outside rect (ties: top, left, right, bottom), tiled, pasted inside rect."""
    _, h, w = img.shape
    y0, y1, x0, x1 = rect
    strips = [("top", y0 * w), ("left", x0 * h), ("right", (w - 1 - x1) * h), ("bottom", (h - 1 - y1) * w)]
    best = strips[0]
    for s in strips[1:]:
        if s[1] > best[1]:
            best = s
    name = best[0]
    bg = img.clone()
    for y in range(y0, y1 + 1):
        for x in range(x0, x1 + 1):
            sy, sx = y, x
            if name == "top":
                sy = y % y0
            elif name == "bottom":
                start, height = y1 + 1, h - 1 - y1
                sy = start + (y - start) % height
            elif name == "left":
                sx = x % x0
            else:
                start, width = x1 + 1, w - 1 - x1
                sx = start + (x - start) % width
            bg[:, y, x] = img[:, sy, sx]
    return bg


def ref_mean_background(img: Tensor, hard: Tensor) -> Tensor:
    bg = img.clone()
    keep = ~hard
    for c in range(img.shape[0]):
        bg[c][hard] = img[c][keep].mean()
    return bg


def ref_call(images, masks, params, queue: list[Tensor], queue_size, threshold, source):
    """One call of the method with given draws; queue: list oldest first, returns the new list."""
    b, _, h, w = images.shape
    apply = params["apply"].tolist()
    perm = params["perm"].tolist()
    qidx = params["queue_idx"].tolist()
    bgs: list[Tensor | None] = []
    for i in range(b):
        hard = masks[i, 0] >= threshold
        rect = ref_rectangle(hard)
        if rect == (0, h - 1, 0, w - 1) or not apply[i]:
            bgs.append(None)
        elif source == "tiled-strip":
            bgs.append(ref_tiled_background(images[i], rect))
        else:
            bgs.append(ref_mean_background(images[i], hard))
    out = images.clone()
    mixed = []
    from_queue = 0
    for i in range(b):
        target = None
        if bgs[i] is not None:
            if bgs[perm[i]] is not None:
                target = bgs[perm[i]]
            elif queue:  # draws see the queue as it was before this call
                target = queue[qidx[i] % len(queue)]
                from_queue += 1
        if target is not None:
            out[i] = masks[i] * images[i] + (1 - masks[i]) * target
        mixed.append(target is not None)
    new_queue = list(queue) + [bg for bg in bgs if bg is not None]  # pushed after, in batch order
    new_queue = new_queue[len(new_queue) - queue_size:] if len(new_queue) > queue_size else new_queue
    return out, torch.tensor(mixed), new_queue, from_queue


# --------------------------------------------------------------------------- data


def blob_masks(b: int, h: int, w: int, gen: torch.Generator) -> Tensor:
    """Soft Gaussian blobs of random centre/size; some all-zero, some all-one masks mixed in."""
    ys = torch.arange(h).view(1, h, 1).float()
    xs = torch.arange(w).view(1, 1, w).float()
    cy = torch.rand(b, 1, 1, generator=gen) * h
    cx = torch.rand(b, 1, 1, generator=gen) * w
    sy = 0.5 + torch.rand(b, 1, 1, generator=gen) * h / 3
    sx = 0.5 + torch.rand(b, 1, 1, generator=gen) * w / 3
    m = torch.exp(-((ys - cy) ** 2 / (2 * sy**2) + (xs - cx) ** 2 / (2 * sx**2)))
    m = m.unsqueeze(1)
    if b >= 4:
        m[1] = 0.0
        m[2] = 1.0
    return m


# --------------------------------------------------------------------------- parity


@pytest.mark.parametrize("source", ["tiled-strip", "batch"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_parity_with_reference_across_calls(source, dtype):
    gen = torch.Generator().manual_seed(0)
    b, c, h, w = 7, 3, 11, 13
    queue_size = 4
    mix = BackgroundMixup(p=0.6, threshold=0.3, queue_size=queue_size, source=source)
    ref_queue: list[Tensor] = []
    n_mixed_from_queue = 0
    for step in range(5):
        images = torch.randn(b, c, h, w, generator=gen, dtype=dtype) * 2 - 0.5  # normalised-like range
        masks = blob_masks(b, h, w, gen).to(dtype)
        params = mix.forward_parameters(images.shape, generator=gen)
        exp_out, exp_mixed, new_queue, from_queue = ref_call(
            images, masks, params, ref_queue, queue_size, 0.3, source
        )
        n_mixed_from_queue += from_queue
        out, mixed = mix(images, masks, params=params)
        torch.testing.assert_close(out, exp_out, rtol=0, atol=1e-12 if dtype == torch.float64 else 1e-6)
        assert torch.equal(mixed, exp_mixed)
        ref_queue = new_queue
        got_queue = mix.queued_backgrounds()
        assert got_queue.shape[0] == len(ref_queue), step
        if ref_queue:
            torch.testing.assert_close(got_queue, torch.stack(ref_queue), rtol=0, atol=1e-6)
        unmixed = ~mixed
        assert torch.equal(out[unmixed], images[unmixed])  # bit for bit
    assert n_mixed_from_queue > 0  # the queue fallback was exercised


def test_functional_matches_reference_single_call():
    gen = torch.Generator().manual_seed(3)
    images = torch.rand(6, 2, 9, 10, generator=gen)
    masks = blob_masks(6, 9, 10, gen)
    apply = torch.ones(6, dtype=torch.bool)
    perm = torch.randperm(6, generator=gen)
    res = background_mixup(images, masks, apply, perm, threshold=0.2)
    params = {"apply": apply, "perm": perm, "queue_idx": torch.zeros(6, dtype=torch.int64)}
    exp_out, exp_mixed, _, _ = ref_call(images, masks, params, [], 50, 0.2, "tiled-strip")
    torch.testing.assert_close(res.images, exp_out)
    assert torch.equal(res.mixed, exp_mixed)
    bgs = tiled_strip_backgrounds(images, res.boxes)
    for i in range(6):
        rect = ref_rectangle(masks[i, 0] >= 0.2)
        assert tuple(res.boxes[i].tolist()) == rect
        if res.built[i]:
            torch.testing.assert_close(bgs[i], ref_tiled_background(images[i], rect))
    assert res.built.sum() >= 3


# --------------------------------------------------------------------------- special cases


def test_p_zero_is_identity():
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(5, 3, 12, 12, generator=gen)
    masks = blob_masks(5, 12, 12, gen)
    mix = BackgroundMixup(p=0.0)
    for _ in range(2):
        out, mixed = mix(images, masks)
        assert torch.equal(out, images)
        assert not mixed.any()
    assert int(mix.queue_length) == 0


def test_all_ones_mask_is_unmixed():
    images = torch.randn(4, 3, 8, 8)
    masks = torch.ones(4, 1, 8, 8)
    out, mixed = BackgroundMixup(p=1.0)(images, masks)
    assert torch.equal(out, images) and not mixed.any()


def test_all_zeros_and_below_threshold_masks_are_unmixed():
    images = torch.randn(4, 3, 8, 8)
    mix = BackgroundMixup(p=1.0, threshold=0.2)
    for masks in (torch.zeros(4, 1, 8, 8), torch.full((4, 1, 8, 8), 0.19)):
        out, mixed = mix(images, masks)
        assert torch.equal(out, images) and not mixed.any()
    boxes = mask_bounding_boxes(torch.zeros(2, 1, 5, 7))
    assert boxes.tolist() == [[0, 4, 0, 6]] * 2
    assert int(mix.queue_length) == 0


def test_threshold_is_inclusive():
    masks = torch.zeros(1, 1, 6, 6)
    masks[0, 0, 2, 3] = 0.2
    assert mask_bounding_boxes(masks, 0.2).tolist() == [[2, 2, 3, 3]]
    assert mask_bounding_boxes(masks, 0.21).tolist() == [[0, 5, 0, 5]]


def test_hand_made_left_strip_pixel_by_pixel():
    # 6 x 8 frame, object rows 2..3, cols 3..5: areas top 16, left 18, right 12, bottom 16 -> left.
    c, h, w = 2, 6, 8
    img = torch.arange(c * h * w, dtype=torch.float32).view(1, c, h, w)
    masks = torch.zeros(1, 1, h, w)
    masks[0, 0, 2:4, 3:6] = 0.5
    boxes = mask_bounding_boxes(masks)
    assert boxes.tolist() == [[2, 3, 3, 5]]
    strip, area = largest_strip(boxes, h, w)
    assert STRIP_ORDER[int(strip)] == "left" and int(area) == 18
    bg = tiled_strip_backgrounds(img, boxes)[0]
    for y in range(h):
        for x in range(w):
            inside = 2 <= y <= 3 and 3 <= x <= 5
            sx = x % 3 if inside else x
            assert torch.equal(bg[:, y, x], img[0, :, y, sx]), (y, x)
    # Through the module with p = 1 and the image as its own partner: m * x + (1 - m) * bg.
    mix = BackgroundMixup(p=1.0)
    params = {"apply": torch.tensor([True]), "perm": torch.tensor([0]), "queue_idx": torch.tensor([0])}
    out, mixed = mix(img, masks, params=params)
    assert mixed.tolist() == [True]
    torch.testing.assert_close(out[0], masks[0] * img[0] + (1 - masks[0]) * bg)


def test_hand_made_bottom_strip_is_phase_aligned():
    # 7 x 4 frame, object rows 0..2 full width: only the bottom strip (rows 3..6, height 4) exists.
    img = torch.arange(28, dtype=torch.float64).view(1, 1, 7, 4)
    boxes = torch.tensor([[0, 2, 0, 3]])
    bg = tiled_strip_backgrounds(img, boxes)[0, 0]
    # Inside R row y comes from 3 + (y - 3) mod 4: rows 0, 1, 2 <- rows 4, 5, 6.
    assert torch.equal(bg[:3], img[0, 0, 4:7])
    assert torch.equal(bg[3:], img[0, 0, 3:])


def test_hand_made_right_strip_and_top_strip():
    img = torch.arange(30, dtype=torch.float32).view(1, 1, 5, 6)
    # Object cols 0..2, all rows: right strip cols 3..5 (width 3): cols 0,1,2 <- 3 + (x - 3) mod 3 = 3,4,5.
    bg = tiled_strip_backgrounds(img, torch.tensor([[0, 4, 0, 2]]))[0, 0]
    assert torch.equal(bg[:, :3], img[0, 0, :, 3:])
    # Object rows 2..4, all cols: top strip rows 0..1: rows 2,3,4 <- 0,1,0.
    bg = tiled_strip_backgrounds(img, torch.tensor([[2, 4, 0, 5]]))[0, 0]
    assert torch.equal(bg[2:], img[0, 0, [0, 1, 0]])


def test_strip_ties_follow_documented_order():
    h = w = 9
    # centre 3x3 object: all four strips have area 27 -> top.
    boxes = torch.tensor([[3, 5, 3, 5], [0, 5, 3, 5], [0, 8, 3, 5], [0, 5, 0, 8]])
    strip, area = largest_strip(boxes, h, w)
    assert [STRIP_ORDER[s] for s in strip.tolist()] == ["top", "left", "left", "bottom"]
    assert area.tolist() == [27, 27, 27, 27]
    whole = largest_strip(torch.tensor([[0, 8, 0, 8]]), h, w)[1]
    assert whole.tolist() == [0]


def test_batch_source_fills_objects_with_background_mean():
    img = torch.randn(2, 3, 6, 6)
    masks = torch.zeros(2, 1, 6, 6)
    masks[:, :, 1:3, 2:5] = 0.9
    bg = mean_fill_backgrounds(img, masks)
    hard = masks[0, 0] >= 0.2
    for c in range(3):
        torch.testing.assert_close(bg[0, c][hard], img[0, c][~hard].mean().expand(int(hard.sum())))
        assert torch.equal(bg[0, c][~hard], img[0, c][~hard])
    mix = BackgroundMixup(p=1.0, source="batch")
    params = {"apply": torch.tensor([True, True]), "perm": torch.tensor([1, 0]),
              "queue_idx": torch.zeros(2, dtype=torch.int64)}
    out, mixed = mix(img, masks, params=params)
    assert mixed.all()
    torch.testing.assert_close(out[0], masks[0] * img[0] + (1 - masks[0]) * bg[1])


# --------------------------------------------------------------------------- queue


def _params(apply, perm, qidx):
    return {"apply": torch.tensor(apply), "perm": torch.tensor(perm), "queue_idx": torch.tensor(qidx)}


def test_queue_fifo_capacity_and_fallback():
    h = w = 8
    obj = torch.zeros(1, 1, h, w)
    obj[..., 2:5, 2:6] = 1.0
    full = torch.ones(1, 1, h, w)
    mix = BackgroundMixup(p=1.0, queue_size=3)
    gen = torch.Generator().manual_seed(5)

    # Call 1: empty queue, image 0 eligible, image 1 not; the partner of 0 is 1 (no bg) and the queue
    # is empty before the call -> unmixed, even though image 0's own bg is pushed by this call.
    x1 = torch.randn(2, 3, h, w, generator=gen)
    m1 = torch.cat([obj, full])
    out, mixed = mix(x1, m1, params=_params([True, True], [1, 0], [0, 0]))
    assert mixed.tolist() == [False, False] and torch.equal(out, x1)
    bg1 = tiled_strip_backgrounds(x1, mask_bounding_boxes(m1))[0]
    assert int(mix.queue_length) == 1
    assert torch.equal(mix.queued_backgrounds()[0], bg1)

    # Call 2: two eligible images -> queue [bg1, bg2a, bg2b] (FIFO, batch order).
    x2 = torch.randn(2, 3, h, w, generator=gen)
    m2 = torch.cat([obj, obj])
    mix(x2, m2, params=_params([True, True], [1, 0], [0, 0]))
    bg2 = tiled_strip_backgrounds(x2, mask_bounding_boxes(m2))
    q = mix.queued_backgrounds()
    assert q.shape[0] == 3
    assert torch.equal(q[0], bg1) and torch.equal(q[1], bg2[0]) and torch.equal(q[2], bg2[1])

    # Call 3: partner has no bg -> draw from the queue at FIFO position 1 (bg2a); capacity 3 drops bg1.
    x3 = torch.randn(2, 3, h, w, generator=gen)
    m3 = torch.cat([obj, full])
    out, mixed = mix(x3, m3, params=_params([True, True], [1, 0], [1, 0]))
    assert mixed.tolist() == [True, False]
    torch.testing.assert_close(out[0], obj[0] * x3[0] + (1 - obj[0]) * bg2[0])
    assert torch.equal(out[1], x3[1])
    bg3 = tiled_strip_backgrounds(x3, mask_bounding_boxes(m3))[0]
    q = mix.queued_backgrounds()
    assert q.shape[0] == 3
    assert torch.equal(q[0], bg2[0]) and torch.equal(q[1], bg2[1]) and torch.equal(q[2], bg3)

    # queue_idx is taken modulo the queue length.
    out, mixed = mix(x3, m3, params=_params([True, True], [1, 0], [4, 0]))  # 4 % 3 = 1 -> bg2b
    torch.testing.assert_close(out[0], obj[0] * x3[0] + (1 - obj[0]) * bg2[1])


def test_queue_keeps_last_when_call_builds_more_than_capacity():
    gen = torch.Generator().manual_seed(2)
    b, h, w = 7, 6, 6
    x = torch.randn(b, 1, h, w, generator=gen)
    m = torch.zeros(b, 1, h, w)
    m[..., 1:3, 1:4] = 1.0
    apply = [True, False, True, True, True, False, True]  # 5 built, capacity 3 -> images 3, 4, 6
    mix = BackgroundMixup(p=1.0, queue_size=3)
    mix(torch.randn(b, 1, h, w, generator=gen), m, params=_params([True] * 7, list(range(7)), [0] * 7))
    mix(x, m, params=_params(apply, list(range(7)), [0] * 7))
    bg = tiled_strip_backgrounds(x, mask_bounding_boxes(m))
    assert torch.equal(mix.queued_backgrounds(), bg[[3, 4, 6]])
    assert int(mix._queue_pushed) == 12


def test_queue_size_zero_never_uses_queue():
    mix = BackgroundMixup(p=1.0, queue_size=0)
    obj = torch.zeros(2, 1, 6, 6)
    obj[0, :, 1:3, 1:3] = 1.0
    obj[1] = 1.0
    x = torch.randn(2, 3, 6, 6)
    for _ in range(2):
        out, mixed = mix(x, obj, params=_params([True, True], [1, 0], [0, 0]))
        assert not mixed.any() and torch.equal(out, x)
    assert mix.queued_backgrounds().shape[0] == 0


def test_queue_not_in_state_dict_and_follows_to():
    mix = BackgroundMixup(p=1.0)
    x = torch.randn(3, 3, 8, 8)
    m = torch.zeros(3, 1, 8, 8)
    m[..., 2:4, 2:4] = 1.0
    mix(x, m)
    assert mix.state_dict() == {}
    BackgroundMixup().load_state_dict(mix.state_dict(), strict=True)
    names = dict(mix.named_buffers())
    assert set(names) == {"_queue", "_queue_pushed"}
    mix.to(torch.float64)
    assert mix._queue is not None and mix._queue.dtype == torch.float64
    mix.to("meta")
    assert mix._queue.device.type == "meta" and mix._queue_pushed.device.type == "meta"


def test_shape_change_raises_and_reset_recovers():
    mix = BackgroundMixup(p=1.0)
    m = torch.zeros(2, 1, 8, 8)
    m[..., 2:4, 2:4] = 1.0
    mix(torch.randn(2, 3, 8, 8), m)
    m2 = torch.zeros(2, 1, 10, 8)
    with pytest.raises(ValueError, match="reset"):
        mix(torch.randn(2, 3, 10, 8), m2)
    with pytest.raises(ValueError, match="reset"):
        mix(torch.randn(2, 3, 8, 8, dtype=torch.float64), m.double())
    mix.reset()
    assert int(mix.queue_length) == 0 and mix.queued_backgrounds().numel() == 0
    out, _ = mix(torch.randn(2, 3, 10, 8), m2)
    assert mix._queue is not None and mix._queue.shape == (50, 3, 10, 8)
    # A different batch size is fine.
    mix(torch.randn(5, 3, 10, 8), torch.zeros(5, 1, 10, 8))


# --------------------------------------------------------------------------- replay and determinism


def test_replay_with_params_is_identical():
    gen = torch.Generator().manual_seed(4)
    mix = BackgroundMixup(p=0.7, queue_size=5)
    for _ in range(2):  # fill the queue a bit
        mix(torch.randn(6, 3, 10, 10, generator=gen), blob_masks(6, 10, 10, gen), generator=gen)
    twin = copy.deepcopy(mix)
    x = torch.randn(6, 3, 10, 10, generator=gen)
    m = blob_masks(6, 10, 10, gen)
    out1, mixed1 = mix(x, m, generator=gen)
    assert mix._params is not None
    out2, mixed2 = twin(x, m, params=mix._params)
    assert torch.equal(out1, out2) and torch.equal(mixed1, mixed2)
    assert torch.equal(mix.queued_backgrounds(), twin.queued_backgrounds())


def test_seeded_determinism():
    outs = []
    for _ in range(2):
        gen = torch.Generator().manual_seed(123)
        data = torch.Generator().manual_seed(7)
        mix = BackgroundMixup(p=0.5, queue_size=4)
        res = []
        for _ in range(3):
            x = torch.randn(8, 3, 9, 9, generator=data)
            res.append(mix(x, blob_masks(8, 9, 9, data), generator=gen))
        outs.append(res)
    for (a, ma), (b, mb) in zip(*outs, strict=True):
        assert torch.equal(a, b) and torch.equal(ma, mb)


def test_forward_parameters_shapes_and_ranges():
    mix = BackgroundMixup(p=0.5)
    prm = mix.forward_parameters(torch.Size([9, 3, 4, 4]), generator=torch.Generator().manual_seed(0))
    assert prm["apply"].dtype == torch.bool and prm["apply"].shape == (9,)
    assert sorted(prm["perm"].tolist()) == list(range(9))
    assert prm["queue_idx"].tolist() == [0] * 9  # empty queue
    x = torch.randn(4, 1, 6, 6)
    m = torch.zeros(4, 1, 6, 6)
    m[..., 1:3, 1:3] = 1.0
    mix = BackgroundMixup(p=1.0, queue_size=50)
    mix(x, m)
    qi = mix.forward_parameters((1000,), generator=torch.Generator().manual_seed(0))["queue_idx"]
    assert int(qi.min()) == 0 and int(qi.max()) == 3
    with pytest.raises(ValueError, match="generator"):
        mix.forward_parameters((4,), device="meta", generator=torch.Generator())


@pytest.mark.parametrize("source", ["tiled-strip", "batch"])
def test_inplace_autograd_and_layout_do_not_change_results(source):
    gen = torch.Generator().manual_seed(11)
    b, c, h, w = 9, 3, 10, 12
    calls = [(torch.randn(b, c, h, w, generator=gen), blob_masks(b, h, w, gen)) for _ in range(3)]
    base = BackgroundMixup(p=0.7, queue_size=4, source=source)
    prms, outs = [], []
    for x, m in calls:
        outs.append(base(x, m, generator=gen))
        prms.append(base._params)
    for name in ("inplace", "autograd", "channels_last", "growing batch"):
        mix = BackgroundMixup(p=0.7, queue_size=4, source=source, inplace=name == "inplace")
        if name == "growing batch":  # a first call of 2 images that builds nothing: the workspace grows
            none = {"apply": torch.zeros(2, dtype=torch.bool), "perm": torch.arange(2),
                    "queue_idx": torch.zeros(2, dtype=torch.int64)}
            mix(calls[0][0][:2], calls[0][1][:2], params=none)
        for (x, m), prm, (exp, exp_mixed) in zip(calls, prms, outs, strict=True):
            if name == "autograd":
                x = x.clone().requires_grad_()
            if name == "channels_last":
                x = x.contiguous(memory_format=torch.channels_last)
            if name == "inplace":
                x = x.clone()
            got, mixed = mix(x, m, params=prm)
            assert torch.equal(got.detach(), exp), name
            assert torch.equal(mixed, exp_mixed)
            assert (got.data_ptr() == x.data_ptr()) == (name == "inplace"), name
        assert torch.equal(mix.queued_backgrounds(), base.queued_backgrounds()), name


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_images(dtype):
    gen = torch.Generator().manual_seed(12)
    x = torch.randn(6, 3, 10, 10, generator=gen)
    m = blob_masks(6, 10, 10, gen)
    prm = _params([True] * 6, [1, 2, 3, 4, 5, 0], [0] * 6)
    exp, exp_mixed = BackgroundMixup(p=1.0)(x, m, params=prm)
    got, mixed = BackgroundMixup(p=1.0)(x.to(dtype), m.to(dtype), params=prm)
    assert got.dtype == dtype and torch.equal(mixed, exp_mixed)
    torch.testing.assert_close(got.float(), exp, atol=0.05, rtol=0.02)


def test_gradient_flows_to_images_not_queue():
    x = torch.randn(3, 3, 8, 8, requires_grad=True)
    m = torch.zeros(3, 1, 8, 8)
    m[..., 2:5, 2:5] = 0.7
    mix = BackgroundMixup(p=1.0)
    out, mixed = mix(x, m)
    out.sum().backward()
    assert x.grad is not None and mixed.all()
    assert mix._queue is not None and not mix._queue.requires_grad


# --------------------------------------------------------------------------- bad input


def test_bad_options():
    with pytest.raises(ValueError, match="p must"):
        BackgroundMixup(p=1.5)
    with pytest.raises(ValueError, match="p must"):
        BackgroundMixup(p=-0.1)
    with pytest.raises(TypeError, match="p must"):
        BackgroundMixup(p="0.4")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threshold"):
        BackgroundMixup(threshold=0.0)
    with pytest.raises(ValueError, match="threshold"):
        BackgroundMixup(threshold=1.2)
    with pytest.raises(ValueError, match="queue_size"):
        BackgroundMixup(queue_size=-1)
    with pytest.raises(TypeError, match="queue_size"):
        BackgroundMixup(queue_size=2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="source"):
        BackgroundMixup(source="inpaint")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        BackgroundMixup(0.4)  # type: ignore[misc]  # keyword-only


def test_bad_inputs():
    mix = BackgroundMixup(p=1.0)
    x = torch.randn(2, 3, 8, 8)
    m = torch.rand(2, 1, 8, 8)
    with pytest.raises(TypeError, match="floating"):
        mix((x * 255).to(torch.uint8), m)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        mix(x, torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        mix(x, torch.rand(2, 1, 7, 8))
    with pytest.raises(ValueError, match="same batch size"):
        mix(x, torch.rand(3, 1, 8, 8))
    with pytest.raises(TypeError, match="floating"):
        mix(x, (m > 0.5).long())
    with pytest.raises(ValueError, match=r"\[0.0, 1.0\]"):
        mix(x, m + 1.0)
    with pytest.raises(ValueError, match=r"\[0.0, 1.0\]"):
        mix(x, m.masked_fill(m > 0.5, float("nan")))
    with pytest.raises(ValueError, match="4-D"):
        mix(x[0], m)
    assert mix._queue is None  # nothing done before the checks
    # check_inputs=False skips the value check (no sync).
    BackgroundMixup(p=0.0, check_inputs=False)(x, m + 1.0)


def test_bad_params():
    mix = BackgroundMixup(p=1.0)
    x = torch.randn(2, 3, 8, 8)
    m = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match="keys"):
        mix(x, m, params={"apply": torch.ones(2, dtype=torch.bool)})
    with pytest.raises(ValueError, match="perm"):
        mix(x, m, params=_params([True, True], [0, 1, 2], [0, 0]))
    with pytest.raises(ValueError, match="apply"):
        mix(x, m, params={"apply": torch.ones(2), "perm": torch.tensor([0, 1]), "queue_idx": torch.zeros(2).long()})
    with pytest.raises(ValueError, match="perm"):
        mix(x, m, params=_params([True, True], [0, 5], [0, 0]))
    with pytest.raises(ValueError, match="queue_idx"):
        mix(x, m, params=_params([True, True], [0, 1], [-1, 0]))


def test_functional_bad_inputs():
    x = torch.randn(2, 3, 8, 8)
    m = torch.rand(2, 1, 8, 8)
    a = torch.ones(2, dtype=torch.bool)
    pm = torch.tensor([1, 0])
    with pytest.raises(ValueError, match="threshold"):
        background_mixup(x, m, a, pm, threshold=0.0)
    with pytest.raises(ValueError, match="perm"):
        background_mixup(x, m, a, torch.tensor([1, 0, 2]))
    with pytest.raises(ValueError, match="queue_slot"):
        background_mixup(x, m, a, pm, queue=torch.zeros(4, 3, 8, 8))
    with pytest.raises(ValueError, match="queue must"):
        background_mixup(x, m, a, pm, queue=torch.zeros(4, 3, 8, 9), queue_slot=pm,
                         queue_len=torch.tensor(1))
    with pytest.raises(TypeError, match="int64"):
        tiled_strip_backgrounds(x, torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        tiled_strip_backgrounds(x, torch.zeros(3, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        mask_bounding_boxes(torch.rand(2, 3, 4, 4))


# --------------------------------------------------------------------------- benchmark anchor


def _load_loop():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "_mixup_loop.py"
    spec = importlib.util.spec_from_file_location("_mixup_loop", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.mixup_loop


def test_loop_anchor_agrees_when_queue_is_not_involved():
    mixup_loop = _load_loop()
    gen = torch.Generator().manual_seed(8)
    b, h, w = 6, 12, 10
    x = torch.randn(b, 3, h, w, generator=gen)
    m = torch.zeros(b, 1, h, w)
    for i in range(b):  # every image eligible, various rectangles (all strips occur)
        y0, x0 = i % 3, (2 * i) % 5
        m[i, 0, y0 : y0 + 4 + i % 4, x0 : x0 + 3 + i % 3] = 0.3 + 0.1 * i
    queue: deque[Tensor] = deque(maxlen=50)
    out_loop, mixed_loop = mixup_loop(x, m, p=1.0, threshold=0.2, queue=queue,
                                      generator=torch.Generator().manual_seed(0))
    perm = torch.randperm(b, generator=torch.Generator().manual_seed(0))
    out, mixed = BackgroundMixup(p=1.0)(x, m, params=_params([True] * b, perm.tolist(), [0] * b))
    assert mixed_loop.all() and mixed.all()
    torch.testing.assert_close(out_loop, out)
    assert len(queue) == b
    out0, mixed0 = mixup_loop(x, m, p=0.0, threshold=0.2, queue=deque(maxlen=5))
    assert torch.equal(out0, x) and not mixed0.any()


# --------------------------------------------------------------------------- CUDA


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu_and_queue_moves():
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(8, 3, 16, 16, generator=gen)
    m = blob_masks(8, 16, 16, gen)
    cpu = BackgroundMixup(p=0.8, queue_size=6)
    gpu = copy.deepcopy(cpu).to("cuda")
    for _ in range(3):
        prm = cpu.forward_parameters(x.shape, generator=gen)
        out_c, mixed_c = cpu(x, m, params=prm)
        out_g, mixed_g = gpu(x.cuda(), m.cuda(), params={k: v.cuda() for k, v in prm.items()})
        torch.testing.assert_close(out_g.cpu(), out_c)
        assert torch.equal(mixed_g.cpu(), mixed_c)
    assert gpu._queue is not None and gpu._queue.is_cuda
    torch.testing.assert_close(gpu.queued_backgrounds().cpu(), cpu.queued_backgrounds())
    g = torch.Generator(device="cuda").manual_seed(0)
    gpu(x.cuda(), m.cuda(), generator=g)
    moved = gpu.to("cpu")
    assert moved._queue is not None and moved._queue.device.type == "cpu"
    with pytest.raises(ValueError, match="device"):
        moved(x.cuda(), m.cuda())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("inplace", [False, True])
def test_cuda_forward_has_no_host_sync(inplace):
    gen = torch.Generator().manual_seed(10)
    x = torch.randn(8, 3, 16, 16, generator=gen).cuda()
    m = blob_masks(8, 16, 16, gen).cuda()
    mix = BackgroundMixup(p=1.0, queue_size=6, check_inputs=False, inplace=inplace)
    mix(x.clone(), m)  # warm-up: creates the queue and workspace
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            mix(x.clone(), m)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert int(mix.queue_length) == 6


def test_inplace_falls_back_to_a_new_tensor_for_autograd_and_non_contiguous_input():
    gen = torch.Generator().manual_seed(21)
    x = torch.randn(4, 3, 8, 8, generator=gen)
    m = blob_masks(4, 8, 8, gen)
    prm = _params([True] * 4, [1, 2, 3, 0], [0] * 4)
    exp, _ = BackgroundMixup(p=1.0)(x, m, params=prm)
    leaf = x.clone().requires_grad_()
    got, _ = BackgroundMixup(p=1.0, inplace=True)(leaf, m, params=prm)
    assert got.data_ptr() != leaf.data_ptr() and torch.equal(got.detach(), exp)
    got.sum().backward()
    assert leaf.grad is not None
    strided = x.clone().permute(0, 1, 3, 2).contiguous().permute(0, 1, 3, 2)  # not contiguous
    before = strided.clone()
    got, _ = BackgroundMixup(p=1.0, inplace=True)(strided, m, params=prm)
    assert torch.equal(got, exp) and torch.equal(strided, before)


def test_cpu_takes_the_compacting_path_and_autograd_the_fixed_one(mixup_path):
    gen = torch.Generator().manual_seed(31)
    x = torch.randn(6, 3, 10, 10, generator=gen)
    m = torch.zeros(6, 1, 10, 10)
    # objects low (top strip), left (right strip), high (bottom strip), right (left strip): both tiling axes
    for i, (ys, xs) in enumerate([(slice(6, 9), slice(2, 7)), (slice(3, 6), slice(3, 6)), (slice(2, 7), slice(0, 3)),
                                  (slice(0, 3), slice(3, 8)), (slice(3, 6), slice(3, 6)), (slice(2, 8), slice(7, 10))]):
        m[i, 0, ys, xs] = 0.5 + 0.1 * i
    apply = torch.tensor([True, False, True, True, False, True])
    perm = torch.tensor([2, 0, 3, 5, 1, 0])
    kw = dict(threshold=0.2, source="tiled-strip", queue=None, queue_slot=None, queue_len=None)
    res, bgs, ranks = fmix.mixup_kernel(x, m, apply, perm, **kw)
    compact = ranks is not None
    assert compact == (mixup_path == "compact")
    # compact: only the built backgrounds (in any row order, `ranks` gives the batch order); fixed: one per image
    assert bgs.shape[0] == (int(res.built.sum()) if compact else 6)
    expected = tiled_strip_backgrounds(x, res.boxes)[res.built]
    if compact:
        assert ranks.tolist() == [0, 2, 1, 3]  # images 0, 3 tile rows, then 2, 5 tile columns
        torch.testing.assert_close(bgs, expected[ranks], rtol=0, atol=0)
    else:
        torch.testing.assert_close(bgs[res.built], expected, rtol=0, atol=0)
    leaf = x.clone().requires_grad_()
    res_g, _, ranks_g = fmix.mixup_kernel(leaf, m, apply, perm, **kw)
    assert ranks_g is None and torch.equal(res_g.images.detach(), res.images)
