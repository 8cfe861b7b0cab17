"""The data gate of bgbench v2 (issue 13): is object class learnable from these objects at this resolution?

Trains the supervised reference (:func:`.train.train_supervised`: cross-entropy, one random-resized-crop view,
AdamW, warm-up + cosine) on one training split of a v2 dataset, ``train`` (home-biased) or ``train_unbiased``
(the same object rows on random backgrounds), and reports the classifier's own accuracy on every test family
(``val_*``, the main splits, ``heldout_*``) and the BG-gap (``mixed_same`` − ``mixed_rand``). The gate: the
unbiased model reaches >= 40 % on the main ``only_fg``; the biased one shows a large BG-gap.

Usage (from the repository root; one thread, nice, in the background on the shared 2-core machine)::

    nice -n 10 .venv/bin/python -m benchmarks.bgbench.gate --data DIR --train-split train_unbiased \\
        --steps 600 --threads 1 --out benchmarks/.cache/gate/unbiased-s0.json
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import load_manifest, load_split
from .train import ARCHS, TrainConfig, normalize, to_float_images, train_supervised

__all__ = ["accuracy", "main", "run_gate"]

FAMILY_PREFIXES: dict[str, str] = {"val": "val_", "main": "", "heldout": "heldout_"}
BG = ("original", "mixed_same", "mixed_rand", "only_fg")


@torch.no_grad()
def accuracy(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray, *, batch: int = 256) -> float:
    """Top-1 accuracy of a classifier on (N, S, S, 3) uint8 images (normalised as in training)."""
    model.eval()
    correct = 0
    for i in range(0, len(images), batch):
        x = normalize(to_float_images(images[i:i + batch])).contiguous(memory_format=torch.channels_last)
        correct += int((model(x).argmax(1).numpy() == labels[i:i + batch]).sum())
    return correct / max(1, len(images))


def run_gate(data: str | Path, *, train_split: str = "train", steps: int = 600, batch_size: int = 128,
             lr: float = 2e-3, seed: int = 0, arch: str = "w16", families: Sequence[str] = ("val", "main", "heldout"),
             progress: bool = False) -> dict[str, Any]:
    """Train one supervised model and evaluate it; returns the result (fractions in [0, 1])."""
    t0 = time.perf_counter()
    man = load_manifest(data)
    if man.get("format") != 2:
        raise ValueError(f"{data} is not a v2 dataset (build it with `--version v2`).")
    train = load_split(data, train_split)
    images = to_float_images(train["images"])
    labels = torch.as_tensor(train["labels"], dtype=torch.int64)
    cfg = TrainConfig(arch=arch, view_size=int(man["size"]), batch_size=batch_size, steps=steps, lr=lr, seed=seed)
    model, stats = train_supervised(cfg, images, labels, len(man["classes"]), progress=progress)
    t_train = time.perf_counter() - t0
    acc: dict[str, dict[str, float]] = {}
    for fam in families:
        prefix = FAMILY_PREFIXES[fam]
        acc[fam] = {}
        for b in BG:
            split = load_split(data, prefix + b)
            acc[fam][b] = round(accuracy(model, split["images"], split["labels"]), 4)
        acc[fam]["bg_gap"] = round(acc[fam]["mixed_same"] - acc[fam]["mixed_rand"], 4)
    home = np.asarray(man["home"])[train["labels"]]
    return {
        "data": str(data), "data_version": man.get("data_version"), "home_fraction": man["home_fraction"],
        "train_split": train_split, "train_home_share": round(float((train["bg_group"] == home).mean()), 4),
        "n_classes": len(man["classes"]), "chance": round(1 / len(man["classes"]), 4),
        "arch": arch, "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed,
        "train": stats, "accuracy": acc,
        "wall_s": {"train": round(t_train, 1), "total": round(time.perf_counter() - t0, 1)},
        "threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version(),
    }


def _table(r: dict[str, Any]) -> str:
    lines = [f"{r['train_split']} (home share {r['train_home_share']:.2f}), {r['arch']}, {r['steps']} steps x "
             f"{r['batch_size']}, seed {r['seed']}: train {r['wall_s']['train']:.0f} s, "
             f"total {r['wall_s']['total']:.0f} s",
             f"{'family':<8} {'orig':>6} {'m_same':>6} {'m_rand':>6} {'only_fg':>7} {'BG-gap':>6}"]
    for fam, a in r["accuracy"].items():
        lines.append(f"{fam:<8} {100 * a['original']:6.1f} {100 * a['mixed_same']:6.1f} {100 * a['mixed_rand']:6.1f} "
                     f"{100 * a['only_fg']:7.1f} {100 * a['bg_gap']:6.1f}")
    return "\n".join(lines)


def save_json(path: Path | None, result: dict[str, Any]) -> None:
    """Write a run's result as JSON (creating the folder); nothing when ``path`` is None."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bgbench.gate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="a v2 dataset folder")
    ap.add_argument("--train-split", default="train", choices=("train", "train_unbiased"))
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--arch", default="w16", choices=ARCHS)
    ap.add_argument("--families", nargs="+", default=["val", "main", "heldout"], choices=tuple(FAMILY_PREFIXES))
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    ap.add_argument("--progress", action="store_true")
    a = ap.parse_args(argv)
    if a.threads is not None:
        torch.set_num_threads(a.threads)
    r = run_gate(a.data, train_split=a.train_split, steps=a.steps, batch_size=a.batch_size, lr=a.lr, seed=a.seed,
                 arch=a.arch, families=a.families, progress=a.progress)
    r["command"] = "python -m benchmarks.bgbench.gate " + shlex.join(sys.argv[1:] if argv is None else list(argv))
    print(_table(r))
    save_json(a.out, r)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
