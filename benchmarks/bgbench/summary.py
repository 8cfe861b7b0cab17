"""The machine-readable summary of a protocol v2 run (issue 13): ``benchmarks/results/bgbench_v2_small.json``.

Numbers only (no images), in percent: per arm and mode the mean and sample std over seeds of the background
probes, the per-object probe and ContraCAM localisation, the references (centre box, random initialisation,
supervised on the biased and on the unbiased training split), CAM ablations on the saved baseline weights,
the seeds, the measured wall time and the exact command. Built from ``results.json``
(:func:`.protocol.run_protocol`) by :func:`summarise`; the key layout is the issue's::

    {"arms": {"baseline": {"original": {"mean": .., "std": ..}, ...}, "crop/two-stage": {...}, ...,
              "crop/oracle": {...}},
     "references": {"centre_box": {...}, "random_init": {...}, "supervised": {...}, "supervised_unbiased": {...}},
     "seeds": [...], "command": "...", "wall_s": ...}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["METRICS", "mean_std", "summarise"]

#: Summary key -> ``results.json`` metric (fractions there, percent here).
METRICS: dict[str, str] = {
    "original": "probe/original",
    "mixed_same": "probe/mixed_same",
    "mixed_rand": "probe/mixed_rand",
    "only_fg": "probe/only_fg",
    "bg_gap": "probe/bg_gap",
    "per_object": "probe/objects",
    "iou_t1": "loc/single/iou_T1",
    "iou_t10": "loc/single/iou_T10",
    "obj_bg_t1": "loc/single/contrast_T1",
    "obj_bg_t10": "loc/single/contrast_T10",
    "multi_iou_t1": "loc/multi/iou_T1",
    "multi_iou_t10": "loc/multi/iou_T10",
    "multi_obj_bg_t1": "loc/multi/contrast_T1",
    "views_in_box": "train_object_fraction",
    "views_mixed": "train_mixed_fraction",
}


def mean_std(values: Sequence[float] | np.ndarray, *, digits: int, scale: float = 1.0
             ) -> dict[str, float | int | None]:
    """``{"mean", "std", "n"}`` of ``values`` times ``scale``, rounded to ``digits``: the sample std (ddof 1),
    0 for one value; ``None`` for both when there are no values (the protocol's convention over seeds)."""
    v = np.asarray(values, dtype=np.float64) * scale
    if v.size == 0:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": round(float(v.mean()), digits),
            "std": round(float(v.std(ddof=1)), digits) if v.size > 1 else 0.0, "n": int(v.size)}


def _pct(cell: Mapping[str, Any] | None) -> dict[str, float | int] | None:
    if cell is None or cell.get("mean") is None:
        return None
    return {"mean": round(100.0 * float(cell["mean"]), 2), "std": round(100.0 * float(cell["std"] or 0.0), 2),
            "n": int(cell["n"])}


def _metrics(agg: Mapping[str, Any], keys: Mapping[str, str] = METRICS) -> dict[str, Any]:
    return {k: v for k, src in keys.items() if (v := _pct(agg.get(src))) is not None}


def _arm_key(name: str) -> tuple[str, str]:
    """``"simclr/crop@two-stage"`` -> ``("simclr", "crop/two-stage")``; ``"simclr/baseline"`` -> ``baseline``."""
    method, rest = name.split("/", 1)
    return method, rest.replace("@", "/")


def _ablation_stats(ablations: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    """Mean/std over seeds of each CAM-ablation value (fractions in, percent out)."""
    keys = sorted({k for a in ablations.values() for k in a})
    return {k: mean_std([a[k] for a in ablations.values() if k in a], digits=2, scale=100.0) for k in keys}


def summarise(results: Mapping[str, Any], *, command: str, wall_s: float,
              ablations: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None) -> dict[str, Any]:
    """The issue-13 summary of a ``results.json`` payload.

    Args:
        results: :func:`.protocol.run_protocol`'s return value (``aggregate``, ``seeds``, ``methods``, ...).
        command: the exact command line that produced it.
        wall_s: measured wall time of the whole run, seconds.
        ablations: ``{method: {"s<seed>": cam_ablation values}}`` on the saved baseline weights, or ``None``.

    Returns:
        ``{"arms": {...}, "references": {...}, "methods": {...}, "ablations": {...}, "seeds", "command",
        "wall_s", "config"}``: ``arms`` holds the first method's arms under the issue's names
        (``baseline``, ``crop/two-stage``, ...); ``methods`` holds every method's arms the same way.
    """
    agg: Mapping[str, Any] = results["aggregate"]
    methods: list[str] = list(results["methods"])
    per_method: dict[str, dict[str, Any]] = {m: {} for m in methods}
    refs: dict[str, Any] = {}
    for name, cell in agg.items():
        if name == "center_prior":
            continue
        if name in ("supervised", "supervised_unbiased"):
            refs[name] = _metrics(cell)
            continue
        method, arm = _arm_key(name)
        if arm == "random_init":
            if method == methods[0]:
                refs["random_init"] = _metrics(cell)
            continue
        per_method.setdefault(method, {})[arm] = _metrics(cell)
    centre = agg.get("center_prior", {})
    refs["centre_box"] = {
        f"{k}_{f}": v for f in ("0.25", "0.5") for k, src in (("iou", "loc/single/iou_center"),
                                                               ("multi_iou", "loc/multi/iou_center"))
        if (v := _pct(centre.get(f"{src}{f}"))) is not None}
    return {
        "arms": per_method[methods[0]],
        "references": refs,
        "methods": per_method,
        "ablations": {m: _ablation_stats(a) for m, a in (ablations or {}).items()},
        "two_stage_objects": results.get("two_stage_objects", {}),
        "seeds": list(results["seeds"]),
        "command": command,
        "wall_s": round(float(wall_s), 1),
        "timing": results.get("timing", {}),
        "config": {k: results["config"][k] for k in ("scale", "size", "n_classes", "n_ssl_images", "train",
                                                      "two_stage_iters", "two_stage_iters_single", "cam_options")
                   if k in results["config"]},
        "environment": results.get("environment", {}),
    }
