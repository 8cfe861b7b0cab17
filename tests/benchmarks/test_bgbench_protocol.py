"""The bgbench SSL protocol end to end at ``--scale tiny``: files, splits and metrics, not the numbers."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `benchmarks` is a namespace package at the repository root
    sys.path.insert(0, str(ROOT))

from benchmarks.bgbench.build import build  # noqa: E402
from benchmarks.bgbench.protocol import aggregate, main, run_protocol  # noqa: E402
from benchmarks.bgbench.train import ARMS, MODES, run_name  # noqa: E402

COUNTS = {"n_train_per_class": 12, "n_test_per_class": 6, "n_multi_train": 24, "n_multi_test": 12}
S = 32
SSL_RUNS = [run_name("simclr", "baseline", None)] + [run_name("simclr", a, m) for m in MODES for a in ARMS[1:]]
PROBES = ["probe/train", "probe/original", "probe/mixed_same", "probe/mixed_rand", "probe/only_fg",
          "probe/objects"]
LOC = [f"loc/{split}/{metric}_T{t}" for split in ("single", "multi")
       for metric in ("iou", "corloc", "box_miou", "contrast") for t in (1, 2)]


@pytest.fixture(scope="module")
def protocol_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], float]:
    data = build(tmp_path_factory.mktemp("bg") / "data", source="generated", seed=0, size=S, **COUNTS)
    out = tmp_path_factory.mktemp("bg") / "out"
    t0 = time.perf_counter()
    results = run_protocol(data, out, scale="tiny", seeds=[0], methods=["simclr"], progress=False)
    return out, results, time.perf_counter() - t0


def _check_range(name: str, key: str, value: float | None) -> None:
    assert value is not None and math.isfinite(value), f"{name} {key} = {value}"
    lo = -1.0 if key.endswith(("bg_gap", "contrast_T1", "contrast_T2")) else 0.0
    assert lo <= value <= 1.0, f"{name} {key} = {value} out of range"


def test_files_written(protocol_out: tuple[Path, dict[str, Any], float]) -> None:
    out, results, _ = protocol_out
    for name in ("results.json", "results.md", "cams.png", "views_baseline.png"):
        assert (out / name).is_file(), name
    for arm in ARMS[1:]:
        assert (out / f"views_{arm}.png").is_file() and (out / f"views_{arm}_online.png").is_file()
    assert json.loads((out / "results.json").read_text())["aggregate"] == results["aggregate"]
    md = (out / "results.md").read_text()
    assert "BG-gap" in md and "CorLoc" in md and all(name in md for name in SSL_RUNS)
    objects = np.load(out / "runs" / "simclr" / "baseline" / "s0" / "objects.npz")
    n = results["config"]["n_ssl_images"]
    assert objects["boxes"].shape == (n, 4, 4) and objects["valid"].shape == (n, 4)
    assert objects["masks"].shape == (n, 1, S, S) and objects["masks"].dtype == np.uint8


def test_splits_and_runs(protocol_out: tuple[Path, dict[str, Any], float]) -> None:
    _, results, _ = protocol_out
    cfg = results["config"]
    params = cfg["data"]["params"]
    n_classes = cfg["n_classes"]
    # The SSL set is the union of train (single objects) and multi_train (scenes).
    assert cfg["n_ssl_images"] == n_classes * params["n_train_per_class"] + params["n_multi_train"]
    assert cfg["n_supervised_images"] == n_classes * params["n_train_per_class"]
    names = sorted(r["name"] for r in results["runs"])
    assert names == sorted([*SSL_RUNS, "simclr/random_init", "supervised", "center_prior"])
    for r in results["runs"]:
        if r["name"] in SSL_RUNS:
            assert r["train"]["steps"] == 3 and math.isfinite(r["train"]["final_loss"])
            assert r["arm"] in ARMS and (r["mode"] is None) == (r["arm"] == "baseline")
            if r["arm"] in ("crop", "both"):
                assert r["train"]["object_fraction"] > 0  # views were cropped inside boxes


def test_every_metric_for_every_arm(protocol_out: tuple[Path, dict[str, Any], float]) -> None:
    _, results, _ = protocol_out
    agg = results["aggregate"]
    for name in [*SSL_RUNS, "simclr/random_init"]:
        for key in [*PROBES, "probe/bg_gap", *LOC]:
            assert agg[name][key]["n"] == 1, (name, key)
            _check_range(name, key, agg[name][key]["mean"])
        gap = agg[name]["probe/bg_gap"]["mean"]
        assert gap == pytest.approx(agg[name]["probe/mixed_same"]["mean"] - agg[name]["probe/mixed_rand"]["mean"],
                                    abs=1e-4)
    for key in [*PROBES, *[k for k in LOC if k.endswith("_T1")]]:
        _check_range("supervised", key, agg["supervised"][key]["mean"])
    for split in ("single", "multi"):
        for frac in ("0.25", "0.5"):
            _check_range("center_prior", f"loc/{split}/iou_center{frac}", agg["center_prior"][f"loc/{split}/iou_center"
                                                                                          f"{frac}"]["mean"])


def test_resume_skips_finished_runs(protocol_out: tuple[Path, dict[str, Any], float]) -> None:
    out, results, first = protocol_out
    data = Path(results["config"]["data"]["dir"])
    t0 = time.perf_counter()
    assert main(["--data", str(data), "--out", str(out), "--scale", "tiny", "--seeds", "0", "--no-figures",
                 "--quiet"]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["aggregate"] == results["aggregate"]
    assert time.perf_counter() - t0 < first  # nothing retrained


def test_aggregate_mean_std() -> None:
    runs = [{"name": "a", "seed": s, "metrics": {"m": v, "x": None}, "train": {"seconds": 1.0}}
            for s, v in enumerate((0.2, 0.4, 0.6))]
    agg = aggregate(runs)
    assert agg["a"]["m"] == {"mean": pytest.approx(0.4), "std": pytest.approx(0.2), "n": 3}
    assert agg["a"]["x"]["n"] == 0 and agg["a"]["train_seconds"]["mean"] == 1.0


def test_stem_stride_override_is_recorded_and_checked(protocol_out: tuple[Path, dict[str, Any], float],
                                                      tmp_path: Path) -> None:
    _, results, _ = protocol_out
    data = Path(results["config"]["data"]["dir"])
    with pytest.raises(ValueError, match="stem_stride must be 1 or 2"):
        run_protocol(data, tmp_path / "bad", scale="tiny", seeds=[0], stem_stride=3, progress=False)
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())  # nothing trained
    assert main(["--data", str(data), "--out", str(tmp_path / "s1"), "--scale", "tiny", "--seeds", "0", "--arms",
                 "baseline", "--stem-stride", "1", "--no-figures", "--quiet"]) == 0
    again = json.loads((tmp_path / "s1" / "results.json").read_text())
    assert again["config"]["train"]["stem_stride"] == 1
    assert results["config"]["train"]["stem_stride"] == 2  # the tiny scale's own value
    assert {r["name"] for r in again["runs"]} == {"simclr/baseline", "simclr/random_init", "supervised",
                                                  "center_prior"}


def test_localisation_scores_on_maps_with_known_answers() -> None:
    import torch

    from benchmarks.bgbench.evaluate import LocSet, localisation_scores

    masks = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    masks[0, 0, 2:6, 1:5] = True  # a 4x4 object
    masks[1, 0, 0:2, 0:8] = True  # a 2x8 object
    boxes = torch.tensor([[[1 / 8, 2 / 8, 5 / 8, 6 / 8]], [[0.0, 0.0, 1.0, 2 / 8]]])
    loc = LocSet(images=torch.zeros(2, 3, 8, 8), masks=masks, boxes=boxes, valid=torch.ones(2, 1, dtype=torch.bool))
    exact = localisation_scores(masks.float(), loc)
    assert exact["iou"] == pytest.approx(1.0) and exact["corloc"] == 1.0 and exact["contrast"] == pytest.approx(1.0)
    inverse = localisation_scores(1.0 - masks.float(), loc)
    assert inverse["contrast"] == pytest.approx(-1.0) and inverse["iou"] == pytest.approx(0.0)
    flat = localisation_scores(torch.full((2, 1, 8, 8), 0.7), loc)
    assert flat["contrast"] == pytest.approx(0.0, abs=1e-6)


def test_reevaluate_recomputes_metrics_from_saved_weights(protocol_out: tuple[Path, dict[str, Any], float],
                                                          tmp_path: Path) -> None:
    _, results, _ = protocol_out
    data = Path(results["config"]["data"]["dir"])
    args = ["--data", str(data), "--out", str(tmp_path), "--scale", "tiny", "--seeds", "0", "--arms", "baseline",
            "--no-figures", "--quiet"]
    assert main(args) == 0
    run = tmp_path / "runs" / "simclr" / "baseline" / "s0"
    first = json.loads((run / "result.json").read_text())
    weights = (run / "model.pt").stat().st_mtime_ns
    tampered = dict(first, metrics={**first["metrics"], "probe/original": -5.0, "loc/single/contrast_T1": None})
    (run / "result.json").write_text(json.dumps(tampered))
    assert main(args) == 0  # a plain resume trusts the stored result
    assert json.loads((run / "result.json").read_text())["metrics"]["probe/original"] == -5.0
    assert main([*args, "--reevaluate"]) == 0
    again = json.loads((run / "result.json").read_text())
    assert (run / "model.pt").stat().st_mtime_ns == weights  # not retrained
    assert again["train"] == first["train"]
    for key in ("probe/original", "loc/single/contrast_T1", "loc/single/iou_T1"):
        assert again["metrics"][key] == pytest.approx(first["metrics"][key], abs=1e-4), key
