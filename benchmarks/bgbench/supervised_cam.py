"""ContraCAM (label-free) on the protocol's saved supervised backbones: is a failed encoder gate the CAM's
fault or the encoder's?

The protocol scores the supervised references with Grad-CAM of their classifier. This script runs objaug's
ContraCAM instead (the evaluation's settings: in-batch negatives, reference options, no projector: the
backbone's pooled features are the embedding) on the same localisation sets, with the saved weights of
``supervised`` (biased ``train``) and ``supervised_unbiased`` (the unbiased control), every seed. If the
unbiased backbone's ContraCAM beats the centre box while the SSL baselines' does not, ContraCAM localises
whatever the encoder has learned, and the gate fails on the encoder.

Usage (from the repository root, after the protocol)::

    python -m benchmarks.bgbench.supervised_cam --data DIR --out RUNS_DIR --scale v2-small --seeds 0 1 2 \\
        [--summary benchmarks/results/bgbench_v2_small.json]

``--summary`` adds ``"contracam_on_supervised"`` to that summary (percent, mean/std over seeds).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .evaluate import contracam_maps, localisation_scores
from .protocol import SCALES, Protocol, _write_json
from .summary import mean_std

__all__ = ["main", "supervised_contracam"]


def supervised_contracam(proto: Protocol, seeds: Sequence[int], *, iters: int = 10) -> dict[str, Any]:
    """``{"<name>/<split>/<T1|T10>": {"iou": {"mean", "std", "n"}, "obj_bg": {...}}}`` in percent."""
    raw: dict[str, dict[str, list[float]]] = {}
    for name in ("supervised", "supervised_unbiased"):
        for seed in seeds:
            backbone = proto.load_supervised(seed, name).backbone
            for split, loc in proto.eval_data.loc.items():
                t1, tn = contracam_maps(backbone, None, loc.images, iters=iters,
                                        batch_size=proto.scale.eval.cam_batch)
                for tag, maps in (("T1", t1), (f"T{iters}", tn)):
                    s = localisation_scores(maps, loc)
                    cell = raw.setdefault(f"{name}/{split}/{tag}", {"iou": [], "obj_bg": []})
                    cell["iou"].append(100.0 * float(s["iou"]))
                    cell["obj_bg"].append(100.0 * float(s["contrast"]))
    return {k: {m: mean_std(v, digits=2) for m, v in cells.items()} for k, cells in raw.items()}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bgbench.supervised_cam",
                                 description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True, help="the protocol's output folder (saved weights)")
    ap.add_argument("--scale", choices=tuple(SCALES), default="v2-small")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--summary", type=Path, default=None, help="a protocol summary JSON to add the results to")
    a = ap.parse_args(argv)
    if a.threads is not None:
        torch.set_num_threads(a.threads)
    proto = Protocol(a.data, a.out, a.scale, device="cpu", progress=False)
    result = supervised_contracam(proto, a.seeds, iters=proto.scale.eval.cam_iters)
    for key, cell in result.items():
        print(f"{key}: IoU {cell['iou']['mean']:.1f} ± {cell['iou']['std']:.1f}, "
              f"obj − bg {cell['obj_bg']['mean']:.1f} ± {cell['obj_bg']['std']:.1f}")
    _write_json(a.out / "contracam_supervised.json", result)
    if a.summary is not None:
        summary = json.loads(a.summary.read_text())
        summary["contracam_on_supervised"] = result
        summary["contracam_on_supervised_command"] = "python -m benchmarks.bgbench.supervised_cam " + " ".join(
            sys.argv[1:] if argv is None else list(argv))
        _write_json(a.summary, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
