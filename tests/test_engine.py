"""objaug.engine: each image's region and the per-view crop."""

from __future__ import annotations

import torch

from objaug.engine import choose_regions, crop_view
from objaug.functional.crop import sample_regions


def test_choose_regions_is_sample_regions_and_draws_nothing_without_boxes():
    boxes = torch.tensor([[[0.1, 0.1, 0.4, 0.5]], [[0.2, 0.3, 0.9, 0.8]]])
    valid = torch.ones(2, 1, dtype=torch.bool)
    torch.manual_seed(0)
    regions, used = choose_regions(boxes, valid, 2, torch.device("cpu"), p=0.5)
    torch.manual_seed(0)
    ref, _, ref_used = sample_regions(boxes, valid, p=0.5)
    assert torch.equal(regions, ref) and torch.equal(used, ref_used)
    state = torch.get_rng_state()
    regions, used = choose_regions(None, None, 3, torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(regions, torch.tensor([[0.0, 0.0, 1.0, 1.0]]).expand(3, 4)) and not used.any()


def test_crop_view_crops_images_and_masks_alike():
    images = torch.rand(3, 3, 16, 20)
    cut = crop_view(images, torch.tensor([[0.0, 0.0, 1.0, 1.0]]).expand(3, 4), (8, 8), scale=(0.3, 1.0),
                    ratio=(0.75, 1.33), flip_prob=0.5, masks=images[:, :1])
    assert cut.image.shape == (3, 3, 8, 8) and cut.masks is not None and cut.masks.shape == (3, 1, 8, 8)
    torch.testing.assert_close(cut.masks, cut.image[:, :1])
    assert cut.crop_boxes.shape == (3, 4) and cut.flip.shape == (3,) and cut.fallback.shape == (3,)
