"""bgbench protocol v3 (issue 26): verdict rule, paired intervals, JSON writer, readouts on known answers,
the late start and a tiny end-to-end run on the generated stand-in (no network, no apt, no Debian files)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `benchmarks` is a namespace package at the repository root
    sys.path.insert(0, str(ROOT))

from benchmarks.bgbench import v2, v3  # noqa: E402
from benchmarks.bgbench.fmnist import read_idx  # noqa: E402
from benchmarks.bgbench.train import TrainConfig  # noqa: E402
from benchmarks.bgbench.v3_gate import gate_passed, summarise_pilots  # noqa: E402
from benchmarks.bgbench.v3_readouts import ReadoutConfig, ReadoutData, background_decodability, probe_readouts  # noqa: E402
from benchmarks.bgbench.v3_report import report  # noqa: E402
from benchmarks.bgbench.v3_summary import KEYS, paired_difference, summarise_v3, verdict, write_summary  # noqa: E402
from benchmarks.bgbench.v3_train import ARMS_V3, ArmSpec, train_arm  # noqa: E402


# ------------------------------------------------------------------------------------------------ statistics
def test_paired_difference_by_hand() -> None:
    got = paired_difference([1.0, 2.0, 3.0])
    half = 4.302653 * 1.0 / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(n)
    assert got["mean_diff"] == 2.0 and got["n"] == 3
    assert got["ci95"] == pytest.approx([2.0 - half, 2.0 + half], abs=0.006)
    assert paired_difference([4.0])["ci95"] == [None, None]
    assert paired_difference([])["mean_diff"] is None


@pytest.mark.parametrize(("ci", "direction", "want"), [
    ([1.0, 3.0], "increase", "holds"), ([-3.0, -1.0], "increase", "does not hold"),
    ([-1.0, 2.0], "increase", "cannot tell"), ([-3.0, -1.0], "decrease", "holds"),
    ([1.0, 3.0], "decrease", "does not hold"), ([-2.0, 0.0], "increase", "does not hold"),
    ([None, None], "increase", "cannot tell"),
])
def test_verdict_rule(ci: list[float | None], direction: str, want: str) -> None:
    assert verdict({"mean_diff": 0.0, "ci95": ci}, direction) == want
    assert verdict(None, direction) == "cannot tell"


def _runs(delta: float, n_seeds: int = 3) -> list[dict[str, object]]:
    """Synthetic runs: every arm's bg_gap ``delta`` (fraction) below the baseline's, with seed noise."""
    runs: list[dict[str, object]] = []
    for s in range(n_seeds):
        noise = 0.002 * s
        runs.append({"arm": "baseline", "seed": s, "readouts": {"bg_gap": 0.4 + noise, "heldout_object": 0.5,
                                                                 "per_object": 0.5, "iou_t1": 0.3 + noise}})
        runs.append({"arm": "random_init", "seed": s, "readouts": {"heldout_object": 0.3, "bg_gap": 0.3}})
        for arm in ARMS_V3:
            if arm != "baseline":
                runs.append({"arm": arm, "seed": s, "readouts": {"bg_gap": 0.4 + noise - delta,
                                                                 "per_object": 0.5 + delta + noise,
                                                                 "heldout_object": 0.5}})
    return runs


def test_summary_keys_verdicts_and_gate(tmp_path: Path) -> None:
    s = summarise_v3(_runs(0.05), centre_box_iou=0.25, gate_points=15.0, data_gate={"chosen": "x"}, command="c",
                     wall_s=1.0)
    assert tuple(s) == KEYS
    assert s["gates"]["object_learning"]["passed"] is True  # 50 - 30 = 20 points
    assert s["arms"]["baseline"]["bg_gap"] == {"mean": 40.2, "std": 0.2, "n": 3}
    assert s["paired"]["mixup_oracle_p0.4"]["bg_gap"]["mean_diff"] == pytest.approx(-5.0)
    assert s["verdicts"]["mixup_reduces_background_bias"] == "holds"
    assert s["verdicts"]["crop_helps_per_object"] == "holds"
    assert s["verdicts"]["contracam_beats_centre_box"] == "holds"  # 30.2 against 25
    assert s["verdicts"]["late_mixup_vs_early"] == "does not hold"  # late == early on every seed: interval [0, 0]
    md = report(s)
    assert "| mixup_reduces_background_bias | holds |" in md and "| baseline | 3 | 40.2 ± 0.2 |" in md
    path = write_summary(tmp_path / "s.json", s)
    assert tuple(json.loads(path.read_text())) == KEYS
    with pytest.raises(ValueError, match="exactly"):
        write_summary(tmp_path / "bad.json", {**s, "extra": 1})
    failed = summarise_v3([r for r in _runs(0.05) if r["arm"] != "random_init"]
                          + [{"arm": "random_init", "seed": i, "readouts": {"heldout_object": 0.45}} for i in range(3)],
                          centre_box_iou=0.25, gate_points=15.0, data_gate={}, command="c", wall_s=1.0)
    assert failed["gates"]["object_learning"]["passed"] is False
    assert set(failed["verdicts"].values()) == {"cannot tell"}  # arms not compared when the gate fails


def test_plan_order() -> None:
    order = v3.plan(list(ARMS_V3), [0, 1])
    assert order[:4] == [("baseline", 0), ("baseline", 1), ("random_init", 0), ("random_init", 1)]
    assert order[-3:] == [("mixup_contracam", 1), ("crop_contracam", 1), ("mixup_oracle_late", 1)]
    assert len(order) == 2 * (len(ARMS_V3) + 1)
    alone = v3.plan(["mixup_oracle_p0.4"], [0, 1], baselines=False)
    assert alone == [("mixup_oracle_p0.4", 0), ("mixup_oracle_p0.4", 1)]


def test_gate_rule_and_pilot_summary(tmp_path: Path) -> None:
    assert gate_passed(0.30, 0.15) and not gate_passed(0.29, 0.15)
    lines = [{"data": "d/x", "scaled_views": True, "seed": 0, "step": st, "val": {"heldout_object": v}}
             for st, v in ((0, 15.0), (500, 31.0))]
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    got = summarise_pilots([tmp_path / "p.jsonl"])
    assert [p["passed"] for p in got["pilots"]] == [False, True]
    assert got["pilots"][1]["gain_over_random"]["heldout_object"] == 16.0
    # a pilot without its own step 0 (other views, same data and seed) is compared with that random network
    other = {"data": "d/x", "scaled_views": False, "steps": 700, "seed": 0, "step": 700,
             "val": {"heldout_object": 20.5}}
    (tmp_path / "q.jsonl").write_text(json.dumps(other))
    unseeded = {**other, "seed": 1}
    (tmp_path / "r.jsonl").write_text(json.dumps(unseeded))
    got = summarise_pilots([tmp_path / "p.jsonl", tmp_path / "q.jsonl", tmp_path / "r.jsonl"])
    assert got["pilots"][2]["gain_over_random"] == {"heldout_object": 5.5} and got["pilots"][2]["passed"] is False
    assert got["pilots"][2]["steps"] == 700 and got["pilots"][0]["steps"] is None
    assert got["pilots"][3]["gain_over_random"] == {} and got["pilots"][3]["passed"] is None  # no seed-1 step 0


# ------------------------------------------------------------------------------------------------ readouts
def test_background_decodability_known_answers() -> None:
    g = torch.arange(200) % 4
    informative = torch.nn.functional.one_hot(g, 4).float() + 0.01 * torch.randn(200, 4)
    assert background_decodability(informative, g, 4, ReadoutConfig(probe_iters=50)) == 1.0
    torch.manual_seed(0)
    noise = torch.randn(200, 16)
    assert background_decodability(noise, g, 4, ReadoutConfig(probe_iters=50)) < 0.5


def test_probe_readouts_on_features_that_encode_class_only() -> None:
    """Features = one-hot class + noise: no background in them, so every probe is right on every split,
    the BG-gaps are 0 and the background group is at chance."""
    torch.manual_seed(0)
    n_cls, n = 3, 300
    labels = {k: torch.arange(n) % n_cls for k in ("train", "train_unbiased", "original", "mixed_same",
                                                   "mixed_rand", "only_fg", "heldout_only_fg")}
    feats = {k: torch.nn.functional.one_hot(y, n_cls).float() * 3 + 0.1 * torch.randn(n, n_cls)
             for k, y in labels.items()}
    feats = {k: torch.cat([v, torch.randn(n, 4)], 1) for k, v in feats.items()}
    groups = torch.randint(0, 3, (n,))
    data = ReadoutData("test", n_cls, 3, {}, labels, groups, {}, None)  # type: ignore[arg-type]
    out = probe_readouts(feats, data, ReadoutConfig(probe_iters=50))
    assert out["original"] == out["mixed_rand"] == out["only_fg"] == out["heldout_object"] == 1.0
    assert out["bg_gap"] == 0.0 and out["bg_gap_unbiased"] == 0.0
    assert out["bg_decodable"] < 0.55  # chance is 1/3


# ------------------------------------------------------------------------------------------------ training
def test_late_start_resumes_the_baseline_exactly(tmp_path: Path) -> None:
    """Resuming the half-way checkpoint with the baseline's own arm reproduces the baseline bit for bit, so the
    late arm's first half *is* the baseline."""
    torch.manual_seed(0)
    images = torch.rand(40, 3, 32, 32)
    cfg = TrainConfig(arch="tiny", view_size=32, batch_size=8, steps=4, warmup=1, seed=3)
    full, _ = train_arm(cfg, ARMS_V3["baseline"], images, save_at=2, save_to=tmp_path / "half.pt", log_every=1)
    again, stats = train_arm(cfg, ARMS_V3["baseline"], images, resume=tmp_path / "half.pt", log_every=1)
    assert stats["start_step"] == 2 and [p[0] for p in stats["loss_curve"]] == [1, 2, 3, 4]
    for a, b in zip(full.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="objects"):
        ArmSpec(mixup_p=0.4)
    with pytest.raises(ValueError, match="start"):
        ArmSpec(crop=True, objects="oracle", start=0.5)


def test_read_idx_roundtrip(tmp_path: Path) -> None:
    import gzip

    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    head = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    (tmp_path / "x.gz").write_bytes(gzip.compress(head + arr.tobytes()))
    assert np.array_equal(read_idx(tmp_path / "x.gz"), arr)


# ------------------------------------------------------------------------------------------------ end to end
def test_tiny_protocol_end_to_end(tmp_path: Path) -> None:
    data = v2.build_v2(tmp_path / "d", source="generated", seed=0, size=32, n_train_per_class=8,
                       n_test_per_class=4, n_multi_train=12, n_multi_test=8)
    summary = tmp_path / "v3.json"
    args = ["--data", str(data), "--out", str(tmp_path / "o"), "--scale", "v3-tiny", "--seeds", "0", "1",
            "--threads", "1", "--summary", str(summary)]
    assert v3.main(args) == 0
    s = json.loads(summary.read_text())
    assert tuple(s) == KEYS and s["seeds"] == [0, 1]
    assert set(s["arms"]) == {*ARMS_V3, "random_init"}
    assert all(s["arms"][a]["bg_gap"]["n"] == 2 for a in ARMS_V3)
    assert s["paired"]["mixup_oracle_p1.0"]["bg_gap"]["n"] == 2
    assert s["arms"]["mixup_oracle_p1.0"]["views_mixed"]["mean"] > 0
    assert s["arms"]["crop_oracle"]["views_in_box"]["mean"] == 100.0
    assert "heldout_object_at_half" in s["arms"]["baseline"]
    assert set(s["verdicts"].values()) <= {"holds", "does not hold", "cannot tell"}
    mtimes = {p: p.stat().st_mtime for p in (tmp_path / "o" / "runs").rglob("result.json")}
    assert v3.main(args) == 0  # resumes: nothing is retrained
    assert all(p.stat().st_mtime == t for p, t in mtimes.items())
    summary.unlink()
    assert v3.main([*args[:6], "--seeds", "0", "--summary", str(summary), "--max-minutes", "0"]) == 0  # summary only
    again = json.loads(summary.read_text())
    assert again["seeds"] == [0, 1] and again["arms"] == s["arms"]  # every finished run on disk, any invocation
