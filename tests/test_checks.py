"""Tests for the value checks in objaug.validation (one pass over the data, exact answers)."""

from __future__ import annotations

import pytest
import torch

from objaug.validation import check_finite, check_range


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_check_range_accepts_the_closed_interval_and_rejects_one_bad_value(dtype):
    x = torch.rand(3, 1, 17, 19).to(dtype)
    x[0, 0, 0, 0], x[2, 0, 16, 18] = 0.0, 1.0  # both ends are allowed
    check_range(x, "masks", 0.0, 1.0)
    for bad in (-0.01, 1.01, float("nan"), float("inf"), -float("inf")):
        y = x.clone()
        y[1, 0, 8, 9] = bad  # a single value anywhere
        with pytest.raises(ValueError, match=r"masks must lie in \[0.0, 1.0\]"):
            check_range(y, "masks", 0.0, 1.0)


def test_check_finite_finds_one_nan_or_inf_and_accepts_large_finite_values():
    x = torch.full((2, 3, 5, 5), 6.0e4, dtype=torch.float16)  # finite, but its sum overflows float16
    check_finite(x, "images")
    for bad in (float("nan"), float("inf"), -float("inf")):
        y = x.clone()
        y[1, 2, 4, 4] = bad
        with pytest.raises(ValueError, match="images contains NaN or infinite"):
            check_finite(y, "images")


def test_empty_tensors_pass():
    check_range(torch.empty(0, 1, 4, 4), "masks", 0.0, 1.0)
    check_finite(torch.empty(0, 3, 4, 4), "images")


def test_three_d_hints_name_the_missing_dimension():
    import pytest
    import torch

    from objaug.boxes import boxes_from_cam
    from objaug.validation import check_image_batch

    with pytest.raises(ValueError, match=r"maps\.unsqueeze\(1\)"):
        boxes_from_cam(torch.zeros(2, 8, 8))  # (B, H, W) maps: the channel is missing
    with pytest.raises(ValueError, match=r"images\.unsqueeze\(0\)"):
        check_image_batch(torch.zeros(3, 8, 8))  # one (C, H, W) image: the batch is missing
