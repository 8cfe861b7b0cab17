"""objaug.provider: the schedule and the per-index cache, store reads; objaug.objects: boxes of maps."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from objaug.boxes import boxes_from_cam, boxes_from_steps
from objaug.config import BoxConfig, ScheduleConfig
from objaug.masks import masks_from_uint8, masks_to_uint8
from objaug.objects import Objects, boxes_of_maps
from objaug.provider import IndexCache, ObjectProvider, read_store


def _constant_cam(images, negatives=None):
    """A CAM whose map is the images' first channel (in [0, 1]): the provider's plumbing, not ContraCAM."""
    return images[:, :1].clamp(0, 1)


def test_schedule_warm_up_and_counters():
    provider = ObjectProvider(schedule=ScheduleConfig(every_n_steps=3, start_step=2), num_samples=4,
                              normalize=None)
    images, idx = torch.rand(2, 3, 8, 8), torch.tensor([0, 1])
    origins = [provider.objects(images, indexes=idx, cam=_constant_cam).origin for _ in range(9)]
    # before start_step: no cache yet, whole frames; then a CAM every third batch, the cache in between
    assert origins == ["none", "none", "cam", "cache", "cache", "cam", "cache", "cache", "cam"]
    assert provider.batches_seen == 9 and provider.refreshes == 3 and provider.cache is not None
    provider.release()
    assert provider.cache is None


def test_every_batch_schedule_keeps_no_cache():
    provider = ObjectProvider(normalize=None)
    found = provider.objects(torch.rand(2, 3, 8, 8), cam=_constant_cam)
    assert found.origin == "cam" and provider.cache is None and not provider.uses_cache


def test_index_cache_round_trip_packs_masks_as_uint8():
    cache = IndexCache(6, 2, box_dtype=torch.float16, mask_size=4)
    boxes = torch.tensor([[[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0]]]).repeat(2, 1, 1)
    valid = torch.tensor([[True, False], [True, True]])
    masks = torch.rand(2, 1, 8, 8)
    cache.write(torch.tensor([4, 1]), Objects(boxes, valid, masks))
    read = cache.read(torch.tensor([1, 4, 0]))
    b, v, m = read.boxes, read.valid, read.masks
    assert read.origin == "cache"
    assert b.dtype == torch.float32 and torch.equal(v, torch.tensor([[True, True], [True, False], [False, False]]))
    torch.testing.assert_close(b[:2], boxes.flip(0).half().float())
    small = F.interpolate(masks, size=(4, 4), mode="area")
    assert m is not None and torch.equal(m[:2], masks_from_uint8(masks_to_uint8(small)).flip(0)) and not m[2].any()
    assert len(cache) == 6 and cache.fits(boxes) and not cache.fits(boxes[:, :1])


def test_index_cache_refuses_indexes_beyond_its_rows():
    cache = IndexCache(4, 1)
    with pytest.raises(ValueError, match="num_samples=4 is too small for dataset index 7"):
        cache.check_indexes(torch.tensor([0, 7]))


class _Store:
    def __init__(self, result):
        self.result = result

    def get_batch(self, indexes):
        return self.result


def test_read_store_validates_once_and_unpacks_uint8_masks():
    boxes, valid = torch.rand(2, 3, 4), torch.ones(2, 3, dtype=torch.bool)
    masks = torch.full((2, 1, 4, 4), 255, dtype=torch.uint8)
    found = read_store(_Store((boxes, valid, masks)), torch.tensor([0, 1]), torch.device("cpu"))
    assert found.origin == "store" and torch.equal(found.boxes, boxes) and found.valid.dtype == torch.bool
    assert found.masks is not None and (found.masks == 1.0).all()
    found = read_store(_Store({"boxes": boxes}), torch.tensor([0, 1]), torch.device("cpu"))
    assert found.valid.all() and found.masks is None
    with pytest.raises(ValueError, match="boxes must be a"):
        read_store(_Store((boxes[0], valid)), torch.tensor([0, 1]), torch.device("cpu"))
    with pytest.raises(TypeError, match="get_batch"):
        read_store(_Store(boxes), torch.tensor([0, 1]), torch.device("cpu"))


def test_boxes_of_maps_takes_a_refined_cams_steps():
    g = torch.Generator().manual_seed(0)
    steps = [torch.rand(3, 1, 32, 32, generator=g) ** 4 for _ in range(3)]
    config = BoxConfig(threshold=0.6)
    a = boxes_of_maps(steps, config)
    b = boxes_from_steps(steps, threshold=0.6)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    one = boxes_of_maps(steps[0], config)
    ref = boxes_from_cam(steps[0], threshold=0.6)
    assert torch.equal(one[0], ref[0]) and torch.equal(one[1], ref[1])
    small = boxes_of_maps(steps, BoxConfig(threshold=0.6, map_size=16))
    ref = boxes_from_steps([F.interpolate(s, size=(16, 16), mode="area") for s in steps], threshold=0.6)
    assert torch.equal(small[0], ref[0]) and torch.equal(small[1], ref[1])
