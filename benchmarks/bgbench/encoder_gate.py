"""A one-seed pilot of issue 13's encoder gate on bgbench v2: does the baseline SSL encoder's ContraCAM
favour the objects more than the random network's (``obj − bg``), and beat the centre box on mask IoU?

Trains one baseline SSL run (:func:`.train.train_ssl`, SimCLR by default, on ``train`` + ``multi_train`` as
the protocol, labels unused) and evaluates it with :func:`.evaluate.evaluate_model` at several checkpoints
of the *same* run (step 0 is the random initialisation), plus the centre-box priors. Not the protocol v2:
no arms, one seed.

Usage (from the repository root)::

    nice -n 10 .venv/bin/python -m benchmarks.bgbench.encoder_gate --data DIR --steps 1000 \\
        --checkpoints 0 100 300 600 1000 --threads 1 --out benchmarks/.cache/gate/encoder-simclr-s0.json
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from objaug import ContraCAM

from .data import CAM_SETTINGS, OBJAUG_CAM_SETTINGS, load_manifest, load_split
from .evaluate import (
    EvalConfig,
    EvalData,
    evaluate_center_prior,
    evaluate_model,
    localisation_scores,
    prepare_eval_data,
)
from .gate import save_json
from .train import ARCHS, METHODS, SSLModel, TrainConfig, embed_all, normalize, to_float_images, train_ssl

__all__ = ["main", "run_encoder_gate"]

#: The metrics reported per checkpoint (fractions; ``contrast`` = obj − bg of the [0, 1] maps).
KEYS = ("probe/original", "probe/mixed_same", "probe/mixed_rand", "probe/only_fg", "probe/bg_gap", "probe/objects",
        "loc/single/iou_T1", "loc/single/contrast_T1", "loc/multi/iou_T1", "loc/multi/contrast_T1")


#: CAM variants of :func:`cam_ablation`: the reference settings at three temperatures, objaug's shipped defaults
#: (edge-aware output, weighted refinement), and label-free hard negatives (issue 14) at temperature 0.2.
CAM_VARIANTS: dict[str, dict[str, Any]] = {
    "t1": {**CAM_SETTINGS, "temperature": 1.0},
    "t0.2": {**CAM_SETTINGS, "temperature": 0.2},
    "t0.1": {**CAM_SETTINGS, "temperature": 0.1},
    "defaults": {},
    "hn8_t0.2": {**CAM_SETTINGS, "temperature": 0.2, "hard_negatives": 8},
    "hn8_t0.2_defaults": {"temperature": 0.2, "hard_negatives": 8},
    # the --cam-options objaug profile: shipped defaults + data.OBJAUG_CAM_SETTINGS, with a bank of the SSL set
    "objaug_bank": dict(OBJAUG_CAM_SETTINGS),
}
#: The variants that also contrast with a bank of the SSL images' embeddings (``cam_ablation(bank_images=)``).
BANK_VARIANTS: frozenset[str] = frozenset({"objaug_bank"})
#: The variants also run with same-background CAM batches (the reference settings only).
SAME_BG_VARIANTS: frozenset[str] = frozenset({"t1", "t0.2", "t0.1"})


def cam_ablation(model: SSLModel, data: EvalData, groups: np.ndarray, *,
                 variants: dict[str, dict[str, Any]] | None = None, batch_size: int = 64,
                 bank_images: torch.Tensor | None = None) -> dict[str, float]:
    """ContraCAM (T=1) of the single-object localisation set under CAM levers, without retraining: the CAM
    temperature, objaug's shipped options, label-free hard negatives, and negatives from images of the same
    background group (each group's images as one CAM batch; ``groups`` = their ``bg_group``, a ground-truth
    stand-in for nearest-neighbour negatives; reference settings only). The :data:`BANK_VARIANTS` contrast
    with the embeddings of ``bank_images`` ((N, 3, S, S) in [0, 1], the SSL set; skipped without it).

    Returns ``{"iou_<variant>": .., "contrast_<variant>": .., "iou_<variant>_samebg": .., ...}`` (fractions).
    """
    loc = data.loc["single"]
    n = loc.images.shape[0]
    out: dict[str, float] = {}
    for name, kwargs in (variants or CAM_VARIANTS).items():
        if name in BANK_VARIANTS and bank_images is None:
            continue
        cam = ContraCAM(model.backbone, projector=model.projector, iters=1, check_finite=False, **kwargs)
        bank = embed_all(cam, bank_images) if name in BANK_VARIANTS and bank_images is not None else None
        tags = [("", list(torch.arange(n).split(batch_size)))]
        if name in SAME_BG_VARIANTS:
            tags.append(("_samebg", [torch.as_tensor(np.flatnonzero(groups == g)) for g in np.unique(groups)]))
        for tag, batches in tags:
            maps = torch.zeros(n, 1, *loc.images.shape[-2:])
            for idx in batches:
                if len(idx) >= 2:
                    maps[idx] = cam(normalize(loc.images[idx]), bank).float()
                else:  # a lone image has no negatives: use it with the whole set
                    maps[idx] = cam(normalize(loc.images), bank)[idx].float()
            scores = localisation_scores(maps, loc)
            out[f"iou_{name}{tag}"] = round(float(scores["iou"]), 4)
            out[f"contrast_{name}{tag}"] = round(float(scores["contrast"]), 4)
    return out


def run_encoder_gate(data: str | Path, *, method: str = "simclr", arch: str = "w16", steps: int = 1000,
                     batch_size: int = 128, lr: float = 2e-3, seed: int = 0,
                     checkpoints: Sequence[int] = (0, 100, 300, 600, 1000), eval_cfg: EvalConfig | None = None,
                     progress: bool = False, say: Any = print) -> dict[str, Any]:
    """Train and evaluate at the checkpoints; returns ``{"checkpoints": {step: metrics}, "centre_box": ...}``."""
    t0 = time.perf_counter()
    man = load_manifest(data)
    cfg_e = eval_cfg or EvalConfig(probe_iters=100, cam_batch=64, cam_iters=10, n_loc=128, n_probe_train=1000,
                                   n_crops_train=1000, n_crops_test=600)
    load = partial(load_split, data)
    images = to_float_images(np.concatenate([load("train")["images"], load("multi_train")["images"]]))
    eval_data = prepare_eval_data(load, len(man["classes"]), cfg_e)
    centre = evaluate_center_prior(eval_data, cfg_e)
    results: dict[int, dict[str, float]] = {}
    eval_s: dict[int, float] = {}
    ablation: dict[int, dict[str, float]] = {}
    n_loc = eval_data.loc["single"].images.shape[0]
    groups = load("original")["bg_group"][:n_loc]

    def on_checkpoint(step: int, model: SSLModel) -> None:
        t = time.perf_counter()
        m = evaluate_model("ssl", model, eval_data, cfg_e)
        results[step] = {k: round(float(m[k]), 4) for k in m}
        ablation[step] = cam_ablation(model, eval_data, groups, batch_size=cfg_e.cam_batch, bank_images=images)
        eval_s[step] = round(time.perf_counter() - t, 1)
        say(f"  CAM levers at step {step}: " + ", ".join(f"{k} {100 * v:.1f}" for k, v in ablation[step].items()))
        say(f"step {step}: " + ", ".join(f"{k.split('/', 1)[1]} {100 * m[k]:.1f}" for k in KEYS)
            + f" ({eval_s[step]:.0f} s)")

    cfg = TrainConfig(method=method, arch=arch, view_size=int(man["size"]), batch_size=batch_size, steps=steps,
                      lr=lr, seed=seed)
    _, stats = train_ssl(cfg, images, progress=progress, log_every=max(1, steps // 10), on_checkpoint=on_checkpoint,
                         checkpoints=tuple(checkpoints))
    return {"data": str(data), "method": method, "arch": arch, "steps": steps, "batch_size": batch_size, "lr": lr,
            "seed": seed, "n_ssl_images": int(images.shape[0]), "train": stats, "eval": cfg_e.__dict__,
            "checkpoints": {str(k): v for k, v in sorted(results.items())}, "eval_seconds": eval_s,
            "cam_levers": {str(k): v for k, v in sorted(ablation.items())},
            "centre_box": {k: round(v, 4) for k, v in centre.items()},
            "wall_s": round(time.perf_counter() - t0, 1), "threads": torch.get_num_threads()}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bgbench.encoder_gate",
                                 description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--method", default="simclr", choices=METHODS)
    ap.add_argument("--arch", default="w16", choices=ARCHS)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoints", type=int, nargs="+", default=[0, 100, 300, 600, 1000])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    if a.threads is not None:
        torch.set_num_threads(a.threads)
    r = run_encoder_gate(a.data, method=a.method, arch=a.arch, steps=a.steps, batch_size=a.batch_size, lr=a.lr,
                         seed=a.seed, checkpoints=a.checkpoints, say=lambda s: print(s, flush=True))
    r["command"] = "python -m benchmarks.bgbench.encoder_gate " + shlex.join(
        sys.argv[1:] if argv is None else list(argv))
    print("centre box: " + ", ".join(f"{k} {100 * v:.1f}" for k, v in r["centre_box"].items() if "iou" in k))
    print(f"train {r['train']['seconds']:.0f} s, loss {r['train']['loss_curve']}, wall {r['wall_s']:.0f} s")
    save_json(a.out, r)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
