"""boxes_from_steps (boxes of a refined ContraCAM, per iteration) and frame_boxes, on maps whose answer is known."""

from __future__ import annotations

import pytest
import torch

from objaug.boxes import boxes_from_cam, boxes_from_steps, frame_boxes, frame_only


def _blob(maps: torch.Tensor, i: int, y0: int, y1: int, x0: int, x1: int, v: float = 1.0) -> None:
    maps[i, 0, y0:y1, x0:x1] = v


def test_one_step_equals_boxes_from_cam():
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(3, 1, 20, 20, generator=g)
    a = boxes_from_steps([maps], threshold=0.7, margin=0.1)
    b = boxes_from_cam(maps, threshold=0.7, margin=0.1)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_later_iterations_add_new_objects_and_drop_repeats():
    s0 = torch.zeros(2, 1, 40, 40)
    s1 = torch.zeros(2, 1, 40, 40)
    _blob(s0, 0, 2, 12, 2, 12)            # image 0: object A found first
    _blob(s1, 0, 4, 14, 4, 14)            # ... found again, shifted (overlaps A: dropped)
    _blob(s1, 0, 25, 35, 25, 35)          # ... and a new object B
    _blob(s1, 1, 10, 20, 10, 20)          # image 1: nothing at first, one object in the second pass
    boxes, valid = boxes_from_steps([s0, s1], margin=0.0, max_boxes=3)
    assert valid.tolist() == [[True, True, False], [True, False, False]]
    torch.testing.assert_close(boxes[0, 0], torch.tensor([2, 2, 12, 12]) / 40.0)
    torch.testing.assert_close(boxes[0, 1], torch.tensor([25, 25, 35, 35]) / 40.0)
    torch.testing.assert_close(boxes[1, 0], torch.tensor([10, 10, 20, 20]) / 40.0)
    assert (boxes[0, 2] == 0).all()
    # the union of the maps merges A and its repeat into one larger box instead
    ub, uv = boxes_from_cam(torch.maximum(s0, s1), margin=0.0, max_boxes=3)
    torch.testing.assert_close(ub[0, 0], torch.tensor([2, 2, 14, 14]) / 40.0)


def test_a_box_inside_an_earlier_one_counts_as_overlap():
    s0 = torch.zeros(1, 1, 40, 40)
    s1 = torch.zeros(1, 1, 40, 40)
    _blob(s0, 0, 0, 30, 0, 30)
    _blob(s1, 0, 10, 14, 10, 14)  # IoU with the first box is small, but it lies inside it
    _, valid = boxes_from_steps([s0, s1], margin=0.0)
    assert valid.sum() == 1
    _, valid = boxes_from_steps([s0, s1], margin=0.0, overlap=1.0)  # overlap 1: only exact repeats dropped
    assert valid.sum() == 2


def test_nothing_found_gives_the_whole_image_fallback():
    steps = [torch.zeros(2, 1, 16, 16)] * 3
    boxes, valid = boxes_from_steps(steps)
    assert not valid.any()
    assert torch.equal(boxes[:, 0], torch.tensor([[0.0, 0.0, 1.0, 1.0]] * 2))


@pytest.mark.parametrize("steps, kwargs, err, match", [
    ([], {}, TypeError, "non-empty list"),
    (torch.zeros(1, 1, 8, 8), {}, TypeError, "non-empty list"),
    ([torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 9)], {}, ValueError, r"steps\[1\]"),
    ([torch.zeros(1, 1, 8, 8)], {"overlap": 1.5}, ValueError, "overlap"),
    ([torch.zeros(1, 1, 8, 8)], {"threshold": 0.0}, ValueError, "threshold"),
])
def test_bad_steps_are_refused(steps, kwargs, err, match):
    with pytest.raises(err, match=match):
        boxes_from_steps(steps, **kwargs)


def test_frame_boxes_flags_found_boxes_that_are_the_whole_frame():
    boxes = torch.tensor([[[0.0, 0.0, 1.0, 1.0], [0.1, 0.1, 0.5, 0.5]],
                          [[0.0, 0.02, 0.99, 1.0], [0.0, 0.0, 1.0, 1.0]]])
    valid = torch.tensor([[True, True], [True, False]])
    assert frame_boxes(boxes, valid).tolist() == [[True, False], [True, False]]
    assert frame_boxes(boxes, valid, coverage=1.0).tolist() == [[True, False], [False, False]]
    with pytest.raises(ValueError, match="coverage"):
        frame_boxes(boxes, valid, coverage=0.0)
    with pytest.raises(ValueError, match="valid"):
        frame_boxes(boxes, valid[:1])


def test_frame_only_flags_images_whose_every_box_is_the_whole_frame():
    full, small = [0.0, 0.0, 1.0, 1.0], [0.1, 0.1, 0.4, 0.4]
    boxes = torch.tensor([[full, small], [full, full], [small, full], [full, full]])
    valid = torch.tensor([[True, True], [True, False], [True, False], [False, False]])
    # image 0 has an object box too; 1 only a frame box; 2 only an object box; 3 nothing (the fallback)
    assert frame_only(boxes, valid).tolist() == [False, True, False, False]
