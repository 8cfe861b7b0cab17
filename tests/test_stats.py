"""objaug.stats: counts on the device, shares, the warn-once for near-zero boxed / mixed shares."""

from __future__ import annotations

import warnings

import pytest
import torch

from objaug.stats import AugmentStats, log_stats

FULL = torch.tensor([[0.0, 0.0, 1.0, 1.0]])


def _update(stats, *, used, regions, mixed=(), boxes=None, valid=None, cam=False):
    stats.update(used=torch.tensor(used), regions=regions, object_views=2, mixed=[torch.tensor(m) for m in mixed],
                 boxes=boxes, valid=valid, cam=cam)


def test_shares_count_found_boxes_apart_from_whole_frame_ones():
    s = AugmentStats(check_every=0)
    regions = torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.0, 0.0, 1.0, 1.0], [0.2, 0.2, 0.6, 0.9], [0.0, 0.0, 1.0, 1.0]])
    boxes = torch.stack([regions, FULL.expand(4, 4)], dim=1)  # (4, 2, 4): a box and a whole-frame one
    valid = torch.tensor([[True, True], [False, True], [True, False], [False, False]])
    _update(s, used=[True, True, True, False], regions=regions, mixed=[[True, False, False, False]], boxes=boxes,
            valid=valid, cam=True)
    sh = s.shares()
    assert float(sh["boxed"]) == 0.5  # images 0 and 2; image 1's "box" is the whole frame
    assert float(sh["whole_frame"]) == 0.5
    assert float(sh["mixed"]) == 0.25
    assert float(sh["boxes_per_image"]) == 0.5  # two found boxes over four images
    assert float(sh["cam_refreshes"]) == 1.0
    _update(s, used=[False] * 4, regions=FULL.expand(4, 4))
    assert float(s.shares()["boxed"]) == 0.25 and float(s.shares(last=True)["boxed"]) == 0.0
    assert torch.isnan(s.shares(last=True)["mixed"])  # the last batch had no mixup view
    assert s.steps == 2 and s.cam_refreshes == 1


def test_log_stats_logs_each_number_per_step_and_per_epoch():
    s = AugmentStats(check_every=0)
    _update(s, used=[True, False], regions=torch.tensor([[0.1, 0.1, 0.4, 0.4], [0.0, 0.0, 1.0, 1.0]]))
    calls = []
    log_stats(lambda name, value, **kw: calls.append((name, float(value), kw)), s, batch_size=2)
    assert [c[0] for c in calls] == ["objaug/boxed", "objaug/whole_frame", "objaug/boxes_per_image",
                                     "objaug/cam_refreshes"]  # no mixup view: no "mixed"
    assert calls[0][1] == 0.5 and calls[0][2] == {"on_step": True, "on_epoch": True, "batch_size": 2,
                                                  "sync_dist": False, "reduce_fx": "mean"}
    assert calls[3][2]["reduce_fx"] == "max"  # a running count: its epoch value is the count at the epoch's end


def test_warns_once_when_boxed_or_mixed_stay_near_zero():
    s = AugmentStats(check_every=3)
    with pytest.warns(UserWarning) as record:
        for _ in range(9):
            _update(s, used=[False, False], regions=FULL.expand(2, 4), mixed=[[False, False]])
    texts = [str(w.message) for w in record]
    assert len(texts) == 2  # once per kind, not every check
    assert any("fell back to the whole frame" in t and "threshold" in t for t in texts)
    assert any("mixup views were mixed" in t and "otsu" in t for t in texts)
    healthy = AugmentStats(check_every=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(4):
            _update(healthy, used=[True, True], regions=torch.tensor([[0.1, 0.1, 0.5, 0.5]] * 2), mixed=[[True, False]])
