"""Protocol v3 (issue 26), one command: what each augmentation changes in the encoder, and when it pays.

Arms (:data:`.v3_train.ARMS_V3`): the SimCLR baseline; background mixup with ground-truth masks at p 0.4
and p 1.0; mixup with ContraCAM masks (two-stage, objaug's options for weak encoders: temperature 0.2, 32
nearest negatives, a bank of the SSL set, 16x16 maps, the Otsu cut and mass fallback); the object-aware crop
with ground-truth boxes and with ContraCAM boxes; and mixup (ground truth, p 0.4) switched on halfway, on
top of the same-seed baseline's half-way checkpoint. Every run is read out on the test family
(:mod:`.v3_readouts`); the summary (:mod:`.v3_summary`) pairs every arm with the baseline per seed.

Runs go in priority order: the baseline, the random network and the oracle arms first, arm by arm over every
seed, then the ContraCAM arms and the late start seed by seed, so a cut-short invocation leaves whole arms.
Resumable: a run whose ``result.json`` exists (same configuration) is skipped; ``results.json``, ``results.md``
and the summary are rewritten after every run from every finished run in ``--out`` (of any invocation), so they
always hold what has finished; ``--max-minutes 0`` only rewrites them.

Usage (from the repository root)::

    python -m benchmarks.bgbench.v3 --data DIR --out DIR --scale v3-small --seeds 0 1 2 --threads 1 \\
        --pilots gate.jsonl ... --summary benchmarks/results/bgbench_v3_small.json [--arms ...] [--max-minutes M]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from objaug import center_box_prior, mask_iou

from .data import OBJAUG_CAM_BANK, OBJAUG_CAM_SETTINGS, load_manifest, load_split
from .train import SSLModel, TrainConfig, compute_objects, oracle_objects
from .v3_gate import GATE_POINTS, ssl_images, summarise_pilots
from .v3_readouts import ReadoutConfig, prepare_readouts, readouts
from .v3_report import report
from .v3_summary import summarise_v3, write_summary
from .v3_train import ARMS_V3, arm_config, train_arm

__all__ = ["SCALES_V3", "V3Scale", "V3Protocol", "main", "plan"]


@dataclasses.dataclass(frozen=True)
class V3Scale:
    """A protocol v3 size.

    Attributes:
        arch: backbone (:data:`.train.ARCHS`).
        steps: SSL optimiser steps of every arm (the late start switches mixup on at ``steps // 2``).
        batch_size: images per step.
        lr: peak AdamW learning rate.
        warmup: warm-up steps.
        scaled_views: blur sigmas and minimum crop scale scaled to the image size (``scale_to_size``).
        readout: readout settings.
        log_every: steps between two points of the loss curve.
    """

    arch: str
    steps: int
    batch_size: int
    lr: float
    warmup: int
    scaled_views: bool
    readout: ReadoutConfig
    log_every: int = 10


SCALES_V3: dict[str, V3Scale] = {
    # CI: checks the pipeline, not the numbers.
    "v3-tiny": V3Scale(arch="tiny", steps=4, batch_size=16, lr=2e-3, warmup=1, scaled_views=True, log_every=1,
                       readout=ReadoutConfig(probe_iters=10, n_loc=16, cam_batch=8, n_crops_train=64,
                                             n_crops_test=32)),
    # 1 CPU thread: the width-16 demo ResNet on data v3-fm at 32 px, batch 128. Steps from the val pilot
    # (benchmarks.bgbench.v3_gate, docs/benchmarks.md "Protocol v3"): the held-out object probe gained +0.9 points
    # over the random network at step 250 and +10.2 at step 500 of a 1000-step run; 700 steps (full cosine) is
    # the most one thread could afford for the baseline and oracle arms.
    "v3-small": V3Scale(arch="w16", steps=700, batch_size=128, lr=2e-3, warmup=15, scaled_views=True,
                        readout=ReadoutConfig()),
    # The gate lever of session 8: twice the steps. On val (seed 0) the held-out object probe gained +10.9 points
    # at step 700, +14.8 at step 1050 and +16.8 at step 1400 of this schedule. Twice v3-small's cost, so
    # only the baseline and the headline oracle arm fit a session; not the protocol budget.
    "v3-long": V3Scale(arch="w16", steps=1400, batch_size=128, lr=2e-3, warmup=15, scaled_views=True,
                       readout=ReadoutConfig()),
}
#: The arms that are never cut, run arm by arm over every seed (so a cut-short invocation leaves whole arms with
#: every seed: paired intervals), then the rest seed by seed.
FIRST: tuple[str, ...] = ("baseline", "random_init", "mixup_oracle_p0.4", "crop_oracle", "mixup_oracle_p1.0")


def plan(arms: Sequence[str], seeds: Sequence[int], *, baselines: bool = True) -> list[tuple[str, int]]:
    """The (arm, seed) runs in priority order: :data:`FIRST` arm by arm, then the others seed by seed.

    The baselines and random networks come first unless ``baselines=False`` (another process trains them into
    the same ``--out``; the ContraCAM arms and the late start need them).
    """
    required = ("baseline", "random_init") if baselines else ()
    first = [(a, s) for a in FIRST for s in seeds if a in arms or a in required]
    rest = [(a, s) for s in seeds for a in arms if a not in FIRST]
    return first + rest


class V3Protocol:
    """The data, output folder and configuration of one protocol v3 invocation."""

    def __init__(self, data_dir: Path, out: Path, scale: str, *, device: str = "cpu") -> None:
        self.data_dir, self.out, self.device = data_dir, out, device
        self.scale = SCALES_V3[scale]
        man = load_manifest(data_dir)
        self.size = int(man["size"])
        load = partial(load_split, data_dir)
        self.images = ssl_images(data_dir, device)
        self.n_single = int(load("train")["labels"].shape[0])
        self.oracle = oracle_objects(load("train"), load("multi_train"))
        self.data = prepare_readouts(load, set(man["splits"]), len(man["classes"]), len(man["bg_groups"]), "test",
                                     self.scale.readout, device=device)
        # The baselines and random networks are also read out on the val family (the gate's val check).
        self.val = prepare_readouts(load, set(man["splits"]), len(man["classes"]), len(man["bg_groups"]), "val",
                                    self.scale.readout, device=device)
        loc = self.data.loc
        self.centre_box_iou = max(float(mask_iou(center_box_prior(loc.masks.shape[0], self.size, fraction=f,
                                                                  device=loc.masks.device), loc.masks).mean())
                                  for f in (0.25, 0.5))
        self.config = {"scale": scale, "data": data_dir.name, "data_version": man.get("data_version", "v1"),
                       "size": self.size, "n_ssl_images": int(self.images.shape[0]),
                       "scale_settings": dataclasses.asdict(self.scale)}

    def base_cfg(self, seed: int) -> TrainConfig:
        """The baseline's :class:`TrainConfig` of a seed."""
        s = self.scale
        return TrainConfig(arch=s.arch, view_size=self.size, batch_size=s.batch_size, steps=s.steps, lr=s.lr,
                           warmup=s.warmup, seed=seed, device=self.device)

    def run_dir(self, arm: str, seed: int) -> Path:
        """``<out>/runs/<arm>/s<seed>``."""
        return self.out / "runs" / arm / f"s{seed}"

    def done(self, arm: str, seed: int) -> dict[str, Any] | None:
        """A finished run's result (``None`` if not run); refuses one of another configuration."""
        path = self.run_dir(arm, seed) / "result.json"
        if not path.is_file():
            return None
        result: dict[str, Any] = json.loads(path.read_text())
        if result["config"] != json.loads(json.dumps(self.config)):
            raise RuntimeError(f"{path} comes from another configuration; use another --out.")
        return result

    def _model(self, cfg: TrainConfig, state: dict[str, Any] | None = None) -> SSLModel:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            model = SSLModel(cfg)
        if state is not None:
            model.load_state_dict(state)
        return model.to(self.device).to(memory_format=torch.channels_last).eval()

    def _read(self, model: SSLModel) -> dict[str, float]:
        return readouts(model, self.data, self.scale.readout)

    def contracam_objects(self, seed: int) -> dict[str, np.ndarray]:
        """Two-stage boxes and masks of the SSL set from the seed's baseline (objaug's options; cached)."""
        path = self.run_dir("baseline", seed) / "objects.npz"
        if path.is_file():
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
        cfg = self.base_cfg(seed)
        model = self._model(cfg, torch.load(self.run_dir("baseline", seed) / "model.pt", weights_only=True))
        parts = [compute_objects(model.backbone, model.projector, imgs, iters=iters, batch_size=self.scale.batch_size,
                                 cam_kwargs=dict(OBJAUG_CAM_SETTINGS), bank=OBJAUG_CAM_BANK)
                 for imgs, iters in ((self.images[:self.n_single], 2), (self.images[self.n_single:], 10))]
        objects = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        np.savez_compressed(path.with_name("objects.tmp.npz"), **objects)  # type: ignore[arg-type]
        os.replace(path.with_name("objects.tmp.npz"), path)
        return objects

    def finished(self) -> list[dict[str, Any]]:
        """Every finished run in ``<out>/runs`` (any invocation), in :func:`plan` order."""
        seeds = sorted({int(p.name[1:]) for p in (self.out / "runs").glob("*/s*") if p.name[1:].isdigit()})
        found = (self.done(arm, seed) for arm, seed in plan(list(ARMS_V3), seeds))
        return [r for r in found if r is not None]

    def run(self, arm: str, seed: int) -> dict[str, Any]:
        """Train (unless done) and read out one run; writes its ``result.json`` (and the baseline's weights)."""
        found = self.done(arm, seed)
        if found is not None:
            return found
        t0 = time.perf_counter()
        cfg = self.base_cfg(seed)
        extra: dict[str, Any] = {}
        if arm == "random_init":
            model = self._model(cfg)
            values = self._read(model)
            values.update({f"{k}_val": v for k, v in readouts(model, self.val, self.scale.readout).items()})
        else:
            spec = ARMS_V3[arm]
            objects = {"oracle": self.oracle, None: None}.get(spec.objects) if spec.objects != "contracam" \
                else self.contracam_objects(seed)
            half = self.run_dir("baseline", seed) / "half.pt"
            kw: dict[str, Any] = {}
            if arm == "baseline":
                kw = {"save_at": int(cfg.steps * 0.5), "save_to": half}
            elif spec.start > 0:
                if int(cfg.steps * spec.start) != int(cfg.steps * 0.5):
                    raise ValueError("the late start resumes the baseline's half-way checkpoint (start 0.5).")
                kw = {"resume": half}
            model, stats = train_arm(arm_config(cfg, spec), spec, self.images, objects=objects,
                                     scaled_views=self.scale.scaled_views, log_every=self.scale.log_every, **kw)
            values = self._read(model)
            values.update({k: stats[k] for k in ("ssl_loss", "views_mixed", "views_in_box")})
            if arm == "baseline":
                torch.save(model.state_dict(), self.run_dir(arm, seed) / "model.pt")
                state = torch.load(half, map_location="cpu", weights_only=False)["model"]
                at_half = self._read(self._model(cfg, state))
                values.update({f"{k}_at_half": v for k, v in at_half.items()})
                values.update({f"{k}_val": v for k, v in readouts(model, self.val, self.scale.readout).items()})
            extra = {"train": {k: v for k, v in stats.items()}}
        result = {"arm": arm, "seed": seed, "readouts": {k: round(float(v), 5) for k, v in values.items()},
                  **extra, "wall_s": round(time.perf_counter() - t0, 1), "config": self.config}
        path = self.run_dir(arm, seed) / "result.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_suffix(".tmp").write_text(json.dumps(result, indent=1))
        path.with_suffix(".tmp").replace(path)
        return result


def _write(proto: V3Protocol, a: argparse.Namespace, command: str) -> None:
    """``results.json``, ``results.md`` and the summary of every finished run in ``--out`` (any invocation)."""
    results = proto.finished()
    payload = {"config": proto.config, "centre_box_iou": proto.centre_box_iou,
               "runs": [{k: v for k, v in x.items() if k != "config"} for x in results]}
    (a.out / "results.json").write_text(json.dumps(payload, indent=1))
    if not results:
        return
    summary = summarise_v3(results, centre_box_iou=proto.centre_box_iou, gate_points=GATE_POINTS,
                           data_gate={"chosen": proto.config["data"], **summarise_pilots(a.pilots)},
                           command=command, wall_s=sum(x["wall_s"] for x in results))
    (a.out / "results.md").write_text(report(summary))
    if a.summary is not None:
        write_summary(a.summary, summary)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: see the module docstring."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bgbench.v3", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="a built dataset (v3-fm: benchmarks.bgbench.fmnist)")
    ap.add_argument("--out", type=Path, required=True, help="output folder (resumable)")
    ap.add_argument("--scale", choices=tuple(SCALES_V3), default="v3-small")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--arms", nargs="+", choices=tuple(ARMS_V3), default=list(ARMS_V3))
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--pilots", type=Path, nargs="*", default=[], help="v3_gate outputs (the val evidence)")
    ap.add_argument("--summary", type=Path, default=None, help="write the issue-26 summary JSON here")
    ap.add_argument("--no-baselines", action="store_true",
                    help="do not train the baselines and random networks first (another process does, same --out)")
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="start no new run after this many minutes (finished runs stay; rerun to go on)")
    a = ap.parse_args(argv)
    if a.threads is not None:
        torch.set_num_threads(a.threads)
    t_start = time.perf_counter()
    proto = V3Protocol(a.data, a.out, a.scale, device=a.device)
    command = "python -m benchmarks.bgbench.v3 " + shlex.join(sys.argv[1:] if argv is None else list(argv))
    for arm, seed in plan(a.arms, a.seeds, baselines=not a.no_baselines):
        if proto.done(arm, seed) is not None:
            continue
        if a.max_minutes is not None and time.perf_counter() - t_start > 60 * a.max_minutes:
            print(f"stopping before {arm} s{seed}: --max-minutes {a.max_minutes} reached", flush=True)
            break
        r = proto.run(arm, seed)
        shown = {k: round(100 * r["readouts"][k], 1) for k in ("bg_gap", "heldout_object", "per_object", "iou_t1")
                 if k in r["readouts"]}
        print(f"{arm} s{seed}: {shown} ({r['wall_s']:.0f} s)", flush=True)
        _write(proto, a, command)
    _write(proto, a, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
