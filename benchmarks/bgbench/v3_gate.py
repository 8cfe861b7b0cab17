"""Protocol v3's object-learning gate on the **validation** family (issue 26): one baseline SimCLR run
evaluated at checkpoints against the random network, to choose the data, the steps and the view settings.

The gate: the baseline's held-out object probe (:mod:`.v3_readouts`, ``heldout_object``) beats the random
network's by at least :data:`GATE_POINTS` points. Every number here comes from the val splits (``val_*`` and
``val_heldout_*``); data without a val held-out family (v2) reports ``heldout_object`` as missing and the
training-object ``only_fg`` readouts instead.

Usage (from the repository root; one JSON line per checkpoint on stdout, resumable by checkpoint file)::

    python -m benchmarks.bgbench.v3_gate --data DIR --steps 1200 --checkpoints 300 600 900 1200 \\
        [--unscaled-views] [--seed 0] --threads 1 --out FILE.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch

from .data import load_manifest, load_split
from .train import SSLModel, TrainConfig, to_float_images
from .v3_readouts import ReadoutConfig, prepare_readouts, readouts
from .v3_train import ARMS_V3, train_arm

__all__ = ["GATE_POINTS", "gate_passed", "main", "ssl_images"]

#: Points by which the baseline's held-out object probe must beat the random network's.
GATE_POINTS = 15.0


def gate_passed(baseline: float, random_init: float) -> bool:
    """Whether a held-out object probe (fractions) passes the gate: ``100 * (baseline - random) >= 15``."""
    return 100.0 * (baseline - random_init) >= GATE_POINTS - 1e-9


def ssl_images(data_dir: Path, device: str = "cpu") -> torch.Tensor:
    """The SSL set of a dataset: ``train`` then ``multi_train`` images, (N, 3, S, S) float in [0, 1]."""
    return to_float_images(np.concatenate([load_split(data_dir, "train")["images"],
                                           load_split(data_dir, "multi_train")["images"]]), device)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: see the module docstring."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bgbench.v3_gate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--checkpoints", type=int, nargs="+", default=[300, 600, 900, 1200])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--unscaled-views", action="store_true", help="lightly's blur and min crop scale at any size")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, required=True, help="JSON lines, one per checkpoint")
    a = ap.parse_args(argv)
    if a.threads is not None:
        torch.set_num_threads(a.threads)
    man = load_manifest(a.data)
    data = prepare_readouts(partial(load_split, a.data), set(man["splits"]), len(man["classes"]),
                            len(man["bg_groups"]), "val", ReadoutConfig())
    images = ssl_images(a.data)
    cfg = TrainConfig(arch="w16", view_size=int(man["size"]), batch_size=a.batch_size, steps=a.steps, lr=2e-3,
                      warmup=15, seed=a.seed)
    a.out.parent.mkdir(parents=True, exist_ok=True)

    def record(step: int, model: SSLModel) -> None:
        t0 = time.perf_counter()
        r = {k: round(100 * v, 2) for k, v in readouts(model, data, ReadoutConfig()).items()}
        line = {"data": str(a.data), "scaled_views": not a.unscaled_views, "steps": a.steps, "seed": a.seed,
                "step": step, "val": r, "eval_s": round(time.perf_counter() - t0, 1)}
        with a.out.open("a") as f:
            f.write(json.dumps(line) + "\n")
        print(json.dumps(line), flush=True)

    t0 = time.perf_counter()
    _, stats = train_arm(cfg, ARMS_V3["baseline"], images, scaled_views=not a.unscaled_views,
                         on_checkpoint=record, checkpoints=tuple(a.checkpoints))
    print(json.dumps({"train_s": stats["seconds"], "wall_s": round(time.perf_counter() - t0, 1),
                      "ssl_loss": stats["ssl_loss"], "loss_curve": stats["loss_curve"]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())


def summarise_pilots(paths: Sequence[Path]) -> dict[str, object]:
    """The validation evidence of the data and steps choice: every pilot's checkpoints (:func:`main`'s JSON
    lines), each with the readouts minus the random network's (step 0) readouts, in points.

    The random network is the step-0 line of a pilot with the same data and seed (its own file's, else another
    pilot's: the initial weights depend on the seed only, not on the views or the number of steps).

    Args:
        paths: the pilots' ``--out`` files.

    Returns:
        ``{"family": "val", "points_needed": 15, "pilots": [{"data", "scaled_views", "steps", "seed", "step",
        "val", "gain_over_random", "passed"}, ...]}`` (``passed``: ``heldout_object`` gain >= 15, ``None`` where
        the data has no val held-out objects or no pilot of that data and seed has a step-0 line).
    """
    files = [[json.loads(s) for s in Path(path).read_text().splitlines() if s.strip()] for path in paths]
    random = {(d["data"], d["seed"]): d["val"] for lines in files for d in lines if d["step"] == 0}
    pilots: list[dict[str, object]] = []
    for lines in files:
        for d in lines:
            base = random.get((d["data"], d["seed"]))
            gain = {k: round(v - base[k], 2) for k, v in d["val"].items() if base and k in base}
            held = gain.get("heldout_object")
            pilots.append({"data": Path(d["data"]).name, "scaled_views": d["scaled_views"],
                           "steps": d.get("steps"), "seed": d["seed"], "step": d["step"], "val": d["val"],
                           "gain_over_random": gain, "passed": None if held is None else held >= GATE_POINTS})
    return {"family": "val", "points_needed": GATE_POINTS, "pilots": pilots}
