"""Tests for objaug.metrics against hand-computed values and torchvision."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.ops import box_iou

from objaug.metrics import (
    best_box_iou,
    box_corloc,
    center_box_prior,
    center_boxes,
    mask_iou,
    pairwise_box_iou,
)


def random_boxes(g: torch.Generator, b: int, k: int, lo: float, gap: float, span: float) -> torch.Tensor:
    """(b, k, 4) xyxy boxes: corners uniform in [0, lo), sides gap + uniform [0, span)."""
    xy = torch.rand(b, k, 2, generator=g) * lo
    return torch.cat([xy, xy + gap + torch.rand(b, k, 2, generator=g) * span], dim=2)

def test_mask_iou_hand_computed() -> None:
    pred = torch.zeros(4, 1, 4, 4)
    target = torch.zeros(4, 1, 4, 4, dtype=torch.bool)
    pred[0, 0, 0:2, 0:2] = 0.9  # 4 px
    target[0, 0, 0:2, 0:3] = True  # 6 px, overlap 4 -> 4 / 6
    pred[1, 0, 0, 0] = 1.0  # disjoint -> 0
    target[1, 0, 3, 3] = True
    # image 2: both empty -> 1 (paper's convention)
    pred[3, 0, :, :] = 0.5  # threshold is inclusive: 16 px, target 8 px -> 0.5
    target[3, 0, :2] = True
    out = mask_iou(pred, target)
    assert out.dtype == torch.float32 and out.shape == (4,)
    torch.testing.assert_close(out, torch.tensor([4 / 6, 0.0, 1.0, 0.5]))
    # Empty prediction, non-empty target -> 0.
    assert mask_iou(torch.zeros(1, 1, 4, 4), target[:1]).tolist() == [0.0]


def test_mask_iou_threshold_and_float_target() -> None:
    pred = torch.tensor([[[[0.2, 0.4, 0.6, 0.8]]]])
    target = torch.tensor([[[[0.0, 1.0, 1.0, 0.0]]]])
    torch.testing.assert_close(mask_iou(pred, target), torch.tensor([1 / 3]))  # {2,3} vs {1,2}
    torch.testing.assert_close(mask_iou(pred, target, threshold=0.3), torch.tensor([2 / 3]))
    torch.testing.assert_close(mask_iou(pred, target, threshold=0.9), torch.tensor([0.0]))
    torch.testing.assert_close(mask_iou(pred, target > 0.5), mask_iou(pred, target))


def test_mask_iou_matches_a_slow_reference() -> None:
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(6, 1, 9, 7, generator=g)
    target = torch.rand(6, 1, 9, 7, generator=g) > 0.6
    out = mask_iou(pred, target, threshold=0.4)
    for i in range(6):
        p = set(map(tuple, (pred[i, 0] >= 0.4).nonzero().tolist()))
        t = set(map(tuple, target[i, 0].nonzero().tolist()))
        assert math.isclose(float(out[i]), len(p & t) / len(p | t), rel_tol=1e-6)


def test_mask_iou_validation() -> None:
    pred = torch.rand(2, 1, 4, 4)
    with pytest.raises(ValueError, match="resize_masks"):
        mask_iou(pred, torch.zeros(2, 1, 8, 8, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool or floating"):
        mask_iou(pred, torch.zeros(2, 1, 4, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="threshold"):
        mask_iou(pred, pred, threshold=0.0)
    with pytest.raises(TypeError, match="floating"):
        mask_iou(pred > 0.5, pred)


def test_pairwise_box_iou_matches_torchvision() -> None:
    g = torch.Generator().manual_seed(1)
    a = random_boxes(g, 3, 5, 0.6, 0.05, 0.4)
    b = random_boxes(g, 3, 2, 0.6, 0.05, 0.4)
    out = pairwise_box_iou(a, b)
    assert out.shape == (3, 5, 2) and out.dtype == torch.float32
    for i in range(3):
        torch.testing.assert_close(out[i], box_iou(a[i], b[i]))


def test_pairwise_box_iou_hand_computed_and_degenerate() -> None:
    a = torch.tensor([[[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0]]])
    b = torch.tensor([[[0.25, 0.25, 0.75, 0.75], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]])
    out = pairwise_box_iou(a, b)
    # overlap 0.0625, union 0.25 + 0.25 - 0.0625 = 0.4375
    torch.testing.assert_close(out, torch.tensor([[[0.0625 / 0.4375, 0.0, 0.25], [0.0, 0.0, 0.0]]]))
    with pytest.raises(ValueError, match="batch size"):
        pairwise_box_iou(a, b.expand(2, 3, 4))


def test_box_corloc() -> None:
    pred = torch.tensor(
        [
            [[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]],  # slot 0 hits GT 1 exactly
            [[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]],  # slot 1 would hit, slot 0 misses
            [[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]],  # fallback, GT covers 60 %
            [[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0]],  # GT only in a padding slot
        ]
    )
    pred_valid = torch.tensor([[True, True], [True, True], [False, False], [True, False]])
    gt = torch.tensor(
        [
            [[0.5, 0.5, 1.0, 1.0], [0.0, 0.0, 0.5, 0.5]],
            [[0.6, 0.6, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]],
            [[0.0, 0.0, 1.0, 0.6], [0.0, 0.0, 0.0, 0.0]],
            [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]],
        ]
    )
    gt_valid = torch.tensor([[True, True], [True, False], [True, False], [True, False]])
    out = box_corloc(pred, pred_valid, gt, gt_valid)
    assert out.dtype == torch.bool and out.tolist() == [True, False, True, False]
    assert box_corloc(pred, pred_valid, gt, gt_valid, use_fallback=False).tolist() == [True, False, False, False]
    # IoU of image 2 is exactly 0.6.
    assert box_corloc(pred, pred_valid, gt, gt_valid, iou=0.61).tolist() == [True, False, False, False]
    # Image 3 with its GT made valid: IoU 1.
    gt_valid[3, 1] = True
    assert box_corloc(pred, pred_valid, gt, gt_valid)[3]


def test_best_box_iou() -> None:
    pred = torch.tensor(
        [
            [[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]],
            [[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]],
            [[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]],
        ]
    )
    pred_valid = torch.tensor([[True, True, False], [False, False, False], [True, False, False]])
    gt = torch.tensor(
        [
            [[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 0.75]],
            [[0.0, 0.0, 0.5, 1.0], [0.0, 0.0, 0.0, 0.0]],
            [[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0]],
        ]
    )
    gt_valid = torch.tensor([[True, True], [True, False], [False, False]])
    out = best_box_iou(pred, pred_valid, gt, gt_valid)
    # Image 0: GT0 best 1.0; GT1 (area 0.125) best with pred1 (area 0.25): 0.125 / 0.25 = 0.5 ->
    # mean 0.75 (the invalid whole-image pred 2 is ignored). Image 1: no valid pred -> 0.
    # Image 2: no GT -> NaN.
    assert out.dtype == torch.float32
    torch.testing.assert_close(out[:2], torch.tensor([0.75, 0.0]))
    assert math.isnan(float(out[2]))
    fallback = best_box_iou(pred, pred_valid, gt, gt_valid, use_fallback=True)
    torch.testing.assert_close(fallback[:2], torch.tensor([0.75, 0.5]))


def test_best_box_iou_matches_torchvision_loop() -> None:
    g = torch.Generator().manual_seed(2)
    pred = random_boxes(g, 4, 3, 0.5, 0.1, 0.4)
    gt = random_boxes(g, 4, 2, 0.5, 0.1, 0.4)
    pred_valid = torch.tensor([[True, True, False], [True, False, False], [True, True, True], [True, True, False]])
    gt_valid = torch.tensor([[True, True], [True, False], [True, True], [False, True]])
    out = best_box_iou(pred, pred_valid, gt, gt_valid)
    for i in range(4):
        ious = box_iou(gt[i][gt_valid[i]], pred[i][pred_valid[i]])
        assert math.isclose(float(out[i]), float(ious.max(dim=1).values.mean()), rel_tol=1e-6)


def test_box_metric_validation() -> None:
    boxes = torch.zeros(2, 3, 4)
    valid = torch.zeros(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="batch size"):
        box_corloc(boxes, valid, boxes[:1], valid[:1])
    with pytest.raises(ValueError, match="valid"):
        box_corloc(boxes, valid.float(), boxes, valid)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="iou"):
        box_corloc(boxes, valid, boxes, valid, iou=0.0)
    with pytest.raises(ValueError, match=r"\(B, K, 4\)"):
        best_box_iou(boxes[..., :2], valid, boxes, valid)


def test_center_box_prior() -> None:
    mask = center_box_prior(3, 8, fraction=0.25)
    assert mask.shape == (3, 1, 8, 8) and mask.dtype == torch.float32
    expected = torch.zeros(8, 8)
    expected[2:6, 2:6] = 1.0
    assert torch.equal(mask[1, 0], expected)
    default = center_box_prior(2, (100, 60))  # 50 % of the area: 71 x 42 px
    assert int(default[0].sum()) == 71 * 42
    assert abs(float(default[0].mean()) - 0.5) < 0.01
    rows = default[0, 0].any(1).nonzero().flatten()
    assert rows[0] == 14 and rows[-1] == 84  # (100 - 71) // 2 = 14, 14 + 71 - 1
    assert torch.equal(center_box_prior(1, 5, fraction=1.0), torch.ones(1, 1, 5, 5))
    with pytest.raises(ValueError, match="fraction"):
        center_box_prior(1, 8, fraction=0.0)
    with pytest.raises(ValueError, match="batch"):
        center_box_prior(-1, 8)
    with pytest.raises(ValueError, match="size"):
        center_box_prior(1, (8, 0))


def test_center_boxes_agree_with_the_mask() -> None:
    boxes, valid = center_boxes(2, fraction=0.25)
    assert boxes.shape == (2, 1, 4) and valid.all()
    torch.testing.assert_close(boxes[0, 0], torch.tensor([0.25, 0.25, 0.75, 0.75]))
    # The mask's box and center_boxes coincide where the pixel grid allows it.
    mask = center_box_prior(1, 8, fraction=0.25)
    gt = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    gt[..., 2:6, 2:6] = True
    assert mask_iou(mask, gt).tolist() == [1.0]
    default, _ = center_boxes(1)
    s = math.sqrt(0.5)
    torch.testing.assert_close(default[0, 0], torch.tensor([(1 - s) / 2, (1 - s) / 2, (1 + s) / 2, (1 + s) / 2]))


def test_map_contrast_known_answers_and_errors() -> None:
    from objaug.metrics import map_contrast

    target = torch.zeros(4, 1, 6, 6, dtype=torch.bool)
    target[:, :, 1:3, 2:5] = True  # 6 object pixels, 30 background pixels
    maps = torch.zeros(4, 1, 6, 6)
    maps[0] = target[0].float()  # exactly the object: +1
    maps[1] = 1.0 - target[1].float()  # exactly the background: -1
    maps[2] = 0.25  # constant: 0
    maps[3, :, 1:3, 2:5] = 0.5  # objects at 0.5, background: 6 pixels at 0.9, 24 at 0
    maps[3, :, 5, :] = 0.9
    got = map_contrast(maps, target)
    expected = torch.tensor([1.0, -1.0, 0.0, 0.5 - 6 * 0.9 / 30])
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(map_contrast(maps, target.float()), expected)  # float targets, >= 0.5
    # undefined where the mask is all object or all background
    full = torch.ones(2, 1, 6, 6, dtype=torch.bool)
    full[1] = False
    assert torch.isnan(map_contrast(maps[:2], full)).all()
    with pytest.raises(ValueError, match="same shape"):
        map_contrast(maps, target[:, :, :5])
    with pytest.raises(TypeError, match="bool or floating"):
        map_contrast(maps, target.to(torch.int64))
