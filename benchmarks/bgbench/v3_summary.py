"""Protocol v3's summary (issue 26): per-arm mean ± std, paired differences with t-intervals, the gates and
the verdicts, written to ``benchmarks/results/bgbench_v3_small.json`` with exactly the issue's keys.

**Paired difference**: for each seed where both runs exist, ``arm − baseline`` (percentage points); its
mean and the 95 % t-interval ``mean ± t(0.975, n−1) · sd / sqrt(n)`` over those seeds (``None`` below two
seeds).

**Verdict rule** (:func:`verdict`), for a claim that a readout moves in a direction: ``"holds"`` when the
whole 95 % interval lies on the claimed side of 0; ``"does not hold"`` when it lies on the other side (0
included: no effect or the opposite one); ``"cannot tell"`` when it contains 0 in its interior, when there
are fewer than two paired seeds, or when the object-learning gate fails (arms are compared only where the
baseline learned objects). The claims and the comparison each rests on are :data:`CLAIMS`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .summary import mean_std

__all__ = ["CLAIMS", "KEYS", "paired", "paired_difference", "summarise_v3", "verdict", "write_summary"]

#: The summary's top-level keys (the issue's list, exactly).
KEYS: tuple[str, ...] = ("arms", "paired", "gates", "verdicts", "seeds", "command", "wall_s")
#: Readouts kept as they are (not percentages).
RAW_READOUTS: frozenset[str] = frozenset({"ssl_loss"})
#: claim -> (comparison in ``paired``, readout, claimed direction).
#: The augmentation claims rest on the oracle arms (the augmentation itself, with perfect masks and boxes, at the
#: paper's p 0.4), the CAM claim on the baseline's own ContraCAM: each claim isolates one thing. The ContraCAM
#: arms (``paired["mixup_contracam"]``, ``paired["crop_contracam"]``) show how much of it the shipped masks keep.
CLAIMS: dict[str, tuple[str, str, str]] = {
    "mixup_reduces_background_bias": ("mixup_oracle_p0.4", "bg_gap", "decrease"),
    "crop_helps_per_object": ("crop_oracle", "per_object", "increase"),
    "contracam_beats_centre_box": ("baseline_vs_centre_box", "iou_t1", "increase"),
    "late_mixup_vs_early": ("mixup_oracle_late_vs_p0.4", "bg_gap", "decrease"),
}


def paired_difference(diffs: Sequence[float]) -> dict[str, Any]:
    """``{"mean_diff", "ci95": [lo, hi], "n"}`` of per-seed differences (t-interval; ``None`` below 2 seeds)."""
    from scipy.stats import t

    d = np.asarray(diffs, dtype=np.float64)
    if d.size == 0:
        return {"mean_diff": None, "ci95": [None, None], "n": 0}
    mean = float(d.mean())
    if d.size < 2:
        return {"mean_diff": round(mean, 2), "ci95": [None, None], "n": 1}
    half = float(t.ppf(0.975, d.size - 1)) * float(d.std(ddof=1)) / math.sqrt(d.size)
    return {"mean_diff": round(mean, 2), "ci95": [round(mean - half, 2), round(mean + half, 2)], "n": int(d.size)}


def verdict(cell: Mapping[str, Any] | None, direction: str) -> str:
    """``"holds"`` / ``"does not hold"`` / ``"cannot tell"`` from a paired cell (see the module docstring)."""
    if direction not in ("increase", "decrease"):
        raise ValueError(f"direction must be 'increase' or 'decrease', got {direction!r}.")
    lo, hi = (cell or {}).get("ci95", [None, None])
    if lo is None or hi is None:
        return "cannot tell"
    if direction == "decrease":
        lo, hi = -hi, -lo
    if lo > 0:
        return "holds"
    if hi <= 0:
        return "does not hold"
    return "cannot tell"


def _by_seed(runs: Sequence[Mapping[str, Any]], arm: str) -> dict[int, Mapping[str, float]]:
    return {int(r["seed"]): r["readouts"] for r in runs if r["arm"] == arm}


def _scale(key: str, value: float) -> float:
    return value if key in RAW_READOUTS else 100.0 * value


def paired(a: Mapping[int, Mapping[str, float]], b: Mapping[int, Mapping[str, float]]) -> dict[str, Any]:
    """Per readout, the paired difference ``a − b`` over the seeds both have (percentage points)."""
    seeds = sorted(set(a) & set(b))
    keys = sorted({k for s in seeds for k in a[s] if k in b[s]})
    return {k: paired_difference([_scale(k, a[s][k]) - _scale(k, b[s][k]) for s in seeds
                                  if a[s].get(k) is not None and b[s].get(k) is not None]) for k in keys}


def summarise_v3(runs: Sequence[Mapping[str, Any]], *, centre_box_iou: float, gate_points: float,
                 data_gate: Mapping[str, Any], command: str, wall_s: float) -> dict[str, Any]:
    """The summary of protocol v3's runs.

    Args:
        runs: one dict per finished run: ``{"arm", "seed", "readouts": {readout: value}}`` (fractions, as
            :mod:`.v3_readouts`; ``ssl_loss`` and the view fractions included); ``arm`` ``"random_init"``
            is the seed's untrained network.
        centre_box_iou: the best centre-box prior's mask IoU on the ContraCAM images (a fraction).
        gate_points: the object-learning gate's margin (points).
        data_gate: the data choice on the validation splits (:func:`.v3_gate.summarise_pilots`).
        command: the exact command.
        wall_s: measured wall time of all runs, seconds.

    Returns:
        A dict with exactly :data:`KEYS`.
    """
    arms: dict[str, Any] = {}
    for arm in dict.fromkeys(r["arm"] for r in runs):
        per = _by_seed(runs, arm)
        keys = sorted({k for v in per.values() for k in v})
        arms[arm] = {k: mean_std([v[k] for v in per.values() if v.get(k) is not None], digits=2,
                                 scale=1.0 if k in RAW_READOUTS else 100.0) for k in keys}
    base = _by_seed(runs, "baseline")
    pairs: dict[str, Any] = {arm: paired(_by_seed(runs, arm), base) for arm in arms
                             if arm not in ("baseline", "random_init")}
    if "mixup_oracle_late" in arms and "mixup_oracle_p0.4" in arms:
        pairs["mixup_oracle_late_vs_p0.4"] = paired(_by_seed(runs, "mixup_oracle_late"),
                                                    _by_seed(runs, "mixup_oracle_p0.4"))
    centre = {s: {"iou_t1": centre_box_iou} for s in base}
    pairs["baseline_vs_centre_box"] = {"iou_t1": paired(base, centre)["iou_t1"]} if base else {}
    rand = _by_seed(runs, "random_init")
    learned = paired(base, rand).get("heldout_object", paired_difference([]))
    passed = learned["mean_diff"] is not None and learned["mean_diff"] >= gate_points
    gates = {"data": dict(data_gate), "object_learning": {
        "readout": "heldout_object", "points_needed": gate_points,
        "baseline": arms.get("baseline", {}).get("heldout_object"),
        "random_init": arms.get("random_init", {}).get("heldout_object"),
        "difference": learned, "passed": bool(passed),
        "baseline_at_half": arms.get("baseline", {}).get("heldout_object_at_half"),
        "val": {"baseline": arms.get("baseline", {}).get("heldout_object_val"),
                "random_init": arms.get("random_init", {}).get("heldout_object_val"),
                "difference": paired(base, rand).get("heldout_object_val", paired_difference([]))}}}
    verdicts = {claim: verdict(pairs.get(comp, {}).get(readout), direction) if passed else "cannot tell"
                for claim, (comp, readout, direction) in CLAIMS.items()}
    return {"arms": arms, "paired": pairs, "gates": gates, "verdicts": verdicts,
            "seeds": sorted({int(r["seed"]) for r in runs}), "command": command, "wall_s": round(float(wall_s), 1)}


def write_summary(path: str | Path, summary: Mapping[str, Any]) -> Path:
    """Write the summary JSON (atomically), after checking it has exactly :data:`KEYS` and valid verdicts."""
    if tuple(summary) != KEYS:
        raise ValueError(f"the summary's keys must be exactly {KEYS}, got {tuple(summary)}.")
    bad = {k: v for k, v in summary["verdicts"].items() if v not in ("holds", "does not hold", "cannot tell")}
    if bad or set(summary["verdicts"]) != set(CLAIMS):
        raise ValueError(f"verdicts must cover {sorted(CLAIMS)} with holds / does not hold / cannot tell, got "
                         f"{summary['verdicts']}.")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(summary, indent=1) + "\n")
    tmp.replace(p)
    return p
