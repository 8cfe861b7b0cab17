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
LOC = [f"loc/{split}/{metric}_T{t}" for split in ("single", "multi") for metric in ("iou", "corloc", "box_miou")
       for t in (1, 2)]


@pytest.fixture(scope="module")
def protocol_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], float]:
    data = build(tmp_path_factory.mktemp("bg") / "data", source="generated", seed=0, size=S, **COUNTS)
    out = tmp_path_factory.mktemp("bg") / "out"
    t0 = time.perf_counter()
    results = run_protocol(data, out, scale="tiny", seeds=[0], methods=["simclr"], progress=False)
    return out, results, time.perf_counter() - t0


def _check_range(name: str, key: str, value: float | None) -> None:
    assert value is not None and math.isfinite(value), f"{name} {key} = {value}"
    lo = -1.0 if key.endswith("bg_gap") else 0.0
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
