"""objaug.engine: the box source's schedule and cache, store reads, regions and the per-view crop."""

from __future__ import annotations

import pytest
import torch

from objaug.engine import IndexCache, ObjectSource, choose_regions, crop_view, read_store
from objaug.functional.crop import sample_regions
from objaug.masks import masks_from_uint8, masks_to_uint8


def test_schedule_warm_up_and_counters():
    src = ObjectSource(every_n_steps=3, start_step=2)
    due = []
    for _ in range(9):
        due.append(src.cam_due())
        src.finish({"x": 1}, cam=due[-1])
    assert due == [False, False, True, False, False, True, False, False, True]
    assert src.batches_seen == 9 and src.refreshes == 3 and src.last_info == {"x": 1, "cam": True}
    assert src.needs_cam()  # no cache yet
    src.allocate(4, 2)
    assert not src.cam_due() and not src.needs_cam()
    src.release()
    assert src.cache is None


def test_index_cache_round_trip_packs_masks_as_uint8():
    cache = IndexCache(6, 2, box_dtype=torch.float16, mask_size=4)
    boxes = torch.tensor([[[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0]]]).repeat(2, 1, 1)
    valid = torch.tensor([[True, False], [True, True]])
    masks = torch.rand(2, 1, 8, 8)
    cache.write(torch.tensor([4, 1]), boxes, valid, masks)
    b, v, m = cache.read(torch.tensor([1, 4, 0]))
    assert b.dtype == torch.float32 and torch.equal(v, torch.tensor([[True, True], [True, False], [False, False]]))
    torch.testing.assert_close(b[:2], boxes.flip(0).half().float())
    small = torch.nn.functional.interpolate(masks, size=(4, 4), mode="area")
    assert torch.equal(m[:2], masks_from_uint8(masks_to_uint8(small)).flip(0)) and not m[2].any()
    assert len(cache) == 6 and cache.fits(boxes) and not cache.fits(boxes[:, :1])


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


class _Store:
    def __init__(self, result):
        self.result = result

    def get_batch(self, indexes):
        return self.result


def test_read_store_validates_once_and_unpacks_uint8_masks():
    boxes, valid = torch.rand(2, 3, 4), torch.ones(2, 3, dtype=torch.bool)
    masks = torch.full((2, 1, 4, 4), 255, dtype=torch.uint8)
    b, v, m = read_store(_Store((boxes, valid, masks)), torch.tensor([0, 1]), torch.device("cpu"))
    assert torch.equal(b, boxes) and v.dtype == torch.bool and m is not None and (m == 1.0).all()
    _, v, m = read_store(_Store({"boxes": boxes}), torch.tensor([0, 1]), torch.device("cpu"))
    assert v.all() and m is None
    with pytest.raises(ValueError, match="boxes must be a"):
        read_store(_Store((boxes[0], valid)), torch.tensor([0, 1]), torch.device("cpu"))
    with pytest.raises(TypeError, match="get_batch"):
        read_store(_Store(boxes), torch.tensor([0, 1]), torch.device("cpu"))


def test_boxes_from_maps_takes_a_refined_camss_steps():
    import torch.nn.functional as F

    from objaug.boxes import boxes_from_cam, boxes_from_steps
    from objaug.engine import boxes_from_maps

    g = torch.Generator().manual_seed(0)
    steps = [torch.rand(3, 1, 32, 32, generator=g) ** 4 for _ in range(3)]
    a = boxes_from_maps(steps, threshold=0.6)
    b = boxes_from_steps(steps, threshold=0.6)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    one = boxes_from_maps(steps[0], threshold=0.6)
    ref = boxes_from_cam(steps[0], threshold=0.6)
    assert torch.equal(one[0], ref[0]) and torch.equal(one[1], ref[1])
    small = boxes_from_maps(steps, map_size=16, threshold=0.6)
    ref = boxes_from_steps([F.interpolate(s, size=(16, 16), mode="area") for s in steps], threshold=0.6)
    assert torch.equal(small[0], ref[0]) and torch.equal(small[1], ref[1])
