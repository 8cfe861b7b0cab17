"""The bgbench SSL debiasing protocol (issue 7), one command.

For every method and seed: the baseline SSL model, the object-aware arms (``crop``, ``mixup``, ``both``) in
the two-stage mode (CAMs of the same-seed baseline) and the online mode (CAMs of the model being trained),
the random-initialisation reference (the seed's initial weights) and, per seed, a supervised model (the
Grad-CAM reference). Every model is evaluated on frozen features (:mod:`.evaluate`); the results go to
``results.json`` (every run and mean ± std over seeds), ``results.md`` (tables) and pictures
(:mod:`.figures`).

Usage (from the repository root)::

    python -m benchmarks.bgbench.protocol --data DIR --out DIR --scale small --seeds 0 1 2 \\
        [--methods simclr byol] [--arms baseline crop mixup both] [--modes two-stage online] [--device cpu]

The SSL training set is the union of the single-object ``train`` images and the ``multi_train`` scenes (one
SSL model serves both probes; labels unused). Resumable: a run whose ``result.json`` exists is skipped (its
weights are reloaded when a later step needs them); results of another configuration in the same ``--out``
are refused.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from objaug.augment.mixup import BackgroundMixup
from objaug.functional.mixup import largest_strip

from .data import CAM_PROFILES, OBJAUG_CAM_BANK, OBJAUG_CAM_SETTINGS, OBJAUG_MIXUP, load_manifest, load_split
from .evaluate import EvalConfig, EvalData, evaluate_center_prior, evaluate_model, prepare_eval_data
from .summary import mean_std
from .train import (
    ARMS,
    METHODS,
    MODES,
    SSLModel,
    SupervisedModel,
    TrainConfig,
    compute_objects,
    oracle_objects,
    run_name,
    to_float_images,
    train_ssl,
    train_supervised,
)

__all__ = ["SCALES", "Scale", "aggregate", "main", "run_protocol", "write_markdown"]


@dataclasses.dataclass(frozen=True)
class Scale:
    """A protocol size.

    Attributes:
        arch: backbone (``"resnet18"`` or ``"tiny"``).
        stem_stride: ResNet-18 stem stride (2: 4x4 maps at 64 px; 1: 8x8).
        steps: optimiser steps of every training run (SSL and supervised).
        batch_size: base images per step.
        lr: peak AdamW learning rate.
        queue_size: MoCo queue.
        two_stage_iters: ContraCAM refinement iterations of the two-stage boxes (the paper's 10).
        two_stage_iters_single: the same for the single-object images (``None``: ``two_stage_iters``; the
            paper used T=10 boxes on multi-object scenes only, T=1-2 on single-object images).
        eval: evaluation settings.
        methods: default methods.
    """

    arch: str
    stem_stride: int
    steps: int
    batch_size: int
    lr: float
    queue_size: int
    two_stage_iters: int
    eval: EvalConfig
    methods: tuple[str, ...]
    two_stage_iters_single: int | None = None
    warmup: int = 10

    @property
    def single_iters(self) -> int:
        """Refinement iterations of the single-object images' two-stage boxes."""
        return self.two_stage_iters_single or self.two_stage_iters


SCALES: dict[str, Scale] = {
    # CI: a few steps of a tiny network on tiny images; checks the pipeline, not the numbers.
    "tiny": Scale(arch="tiny", stem_stride=2, steps=3, batch_size=16, lr=2e-3, queue_size=64, two_stage_iters=2,
                  eval=EvalConfig(probe_iters=20, cam_batch=16, cam_iters=2, n_loc=32, feature_batch=128),
                  methods=("simclr",)),
    # 2 CPU cores, one method, 3 seeds. Measured per seed (SimCLR, 64 px, 3900 SSL images, 2 threads): 7 SSL runs
    # of 50 steps x 64 images at 1.4-1.6 s/step (~530 s), supervised 35 s, two-stage CAM pass (T=10) ~115 s,
    # 9 evaluations x ~21 s (~190 s): ~870 s; + figures 30 s: ~44 min for 3 seeds on an unloaded machine.
    # BYOL/MoCo steps cost ~1.25x (the momentum branch). `--steps 40` leaves ~15 % margin (~39 min).
    "small": Scale(arch="resnet18", stem_stride=2, steps=50, batch_size=64, lr=2e-3, queue_size=1024,
                   two_stage_iters=10,
                   eval=EvalConfig(probe_iters=100, cam_batch=64, cam_iters=10, n_loc=128, n_probe_train=1000,
                                   n_probe_test=None, n_crops_train=1000, n_crops_test=600),
                   methods=("simclr",)),
    # Protocol v2 (issue 13) on data v2: the width-16 demo ResNet (8x8 maps at 64 px), 300 steps of 128 images
    # (~10.5 epochs of 3660 SSL images; the encoder-gate pilot's probes were within 2 points of 1000 steps at
    # 300), cosine schedule with a 15-step warm-up; two-stage boxes at T=2 on single-object images and T=10 on
    # the scenes, mixup masks at T=1 (the paper's settings).
    "v2-small": Scale(arch="w16", stem_stride=2, steps=300, batch_size=128, lr=2e-3, queue_size=1024,
                      two_stage_iters=10, two_stage_iters_single=2, warmup=15,
                      eval=EvalConfig(probe_iters=100, cam_batch=64, cam_iters=10, n_loc=128, n_probe_train=1000,
                                      n_probe_test=None, n_crops_train=1000, n_crops_test=600),
                      methods=("simclr",)),
    # A GPU: 8x8 maps at 64 px, longer schedules, every test image localised.
    "large": Scale(arch="resnet18", stem_stride=1, steps=3000, batch_size=256, lr=2e-3, queue_size=4096,
                   two_stage_iters=10, eval=EvalConfig(probe_iters=200, cam_batch=64, cam_iters=10, n_loc=None,
                                                        feature_batch=512),
                   methods=("simclr", "byol")),
}

#: Reference rows that are not SSL arms.
REFERENCES: tuple[str, ...] = ("random_init", "supervised", "supervised_unbiased", "center_prior")


# ------------------------------------------------------------------------------------------------ helpers
def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=False, default=_json_default))
    os.replace(tmp, path)


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, tuple):
        return list(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def _finite(metrics: dict[str, float]) -> dict[str, float | None]:
    return {k: (round(v, 5) if isinstance(v, float) and math.isfinite(v) else None) for k, v in metrics.items()}


def objects_stats(objects: dict[str, np.ndarray], cfg: TrainConfig) -> dict[str, float]:
    """What the two-stage CAMs give the augmentations, over the SSL set.

    Returns:
        ``valid_fraction`` (images with at least one CAM box), ``boxes_per_image`` (valid boxes),
        ``box_area`` (mean area of the top box, fallback = whole image), ``mixable_fraction`` (images whose
        mixup object rectangle, by ``cfg``'s mixup threshold and fallback
        (``BackgroundMixup.object_rectangles``), leaves a background strip: background mixup can only build a
        background for those) and ``seconds`` (time of the CAM pass).
    """
    valid = objects["valid"]
    box = objects["boxes"][:, 0]
    masks = torch.from_numpy(objects["masks"]).float().div_(255.0)
    mixup = BackgroundMixup(threshold=cfg.mixup_threshold, fallback_mass=cfg.mixup_fallback_mass)
    rect = mixup.object_rectangles(masks)
    _, strip_area = largest_strip(rect, masks.shape[-2], masks.shape[-1])
    return {
        "valid_fraction": round(float(valid.any(axis=1).mean()), 4),
        "boxes_per_image": round(float(valid.sum(axis=1).mean()), 3),
        "box_area": round(float(((box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])).mean()), 4),
        "mixable_fraction": round(float((strip_area > 0).float().mean()), 4),
        "seconds": round(float(objects.get("seconds", np.float64(0.0))), 1),
    }


def _run_dir(out: Path, name: str, seed: int) -> Path:
    return out / "runs" / name.replace("@", "-at-") / f"s{seed}"


def _save_state(model: torch.nn.Module, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)


def _load_state(model: torch.nn.Module, path: Path, device: torch.device) -> torch.nn.Module:
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.to(device).to(memory_format=torch.channels_last).eval()


# ------------------------------------------------------------------------------------------------ protocol
class Protocol:
    """State of one protocol invocation (data, output folder, configuration); see :func:`run_protocol`."""

    def __init__(self, data_dir: Path, out: Path, scale_name: str, *, device: str, progress: bool,
                 steps: int | None = None, stem_stride: int | None = None, reevaluate: bool = False,
                 cam_options: str = "reference") -> None:
        if cam_options not in CAM_PROFILES:
            raise ValueError(f"cam_options must be one of {CAM_PROFILES}, got {cam_options!r}.")
        self.cam_options = cam_options
        self.data_dir = data_dir
        self.out = out
        self.scale_name = scale_name
        scale = SCALES[scale_name]
        if steps is not None:
            scale = dataclasses.replace(scale, steps=steps)
        if stem_stride is not None:
            scale = dataclasses.replace(scale, stem_stride=stem_stride)
        self.scale = scale
        self.device = torch.device(device)
        self.progress = progress
        self.reevaluate = reevaluate
        self.manifest = load_manifest(data_dir)
        self.size = int(self.manifest["size"])
        self.n_classes = len(self.manifest["classes"])
        load = partial(load_split, data_dir)
        train = load("train")
        multi = load("multi_train")
        self.n_single = int(train["images"].shape[0])
        self.oracle = oracle_objects(train, multi)
        # The unbiased control (data v2): the same object rows on random background groups.
        self.unbiased_images: torch.Tensor | None = None
        if (data_dir / "train_unbiased.npz").is_file():
            self.unbiased_images = to_float_images(load("train_unbiased")["images"], self.device)
        # The SSL training set: single-object train images, then the multi-object train scenes.
        self.ssl_images = to_float_images(np.concatenate([train["images"], multi["images"]]), self.device)
        self.sup_images = to_float_images(train["images"], self.device)
        self.sup_labels = torch.as_tensor(train["labels"], dtype=torch.int64).to(self.device)
        self.eval_data: EvalData = prepare_eval_data(load, self.n_classes, scale.eval, device=self.device)
        self.config = {
            "scale": scale_name, "size": self.size, "n_classes": self.n_classes,
            "data": {"dir": str(data_dir), "source": self.manifest.get("source"), "seed": self.manifest.get("seed"),
                     "params": self.manifest.get("params")},
            "n_ssl_images": int(self.ssl_images.shape[0]), "n_supervised_images": int(self.sup_images.shape[0]),
            "train": dataclasses.asdict(self.base_cfg()), "eval": dataclasses.asdict(scale.eval),
            "two_stage_iters": scale.two_stage_iters,
            "two_stage_iters_single": scale.single_iters,
            "cam_options": cam_options,
        }
        self.timings: dict[str, float] = {}

    def base_cfg(self, **kw: Any) -> TrainConfig:
        """The scale's :class:`TrainConfig` with overrides (view size = the data's size)."""
        s = self.scale
        cfg = TrainConfig(arch=s.arch, stem_stride=s.stem_stride, view_size=self.size, batch_size=s.batch_size,
                          steps=s.steps, lr=s.lr, warmup=s.warmup, queue_size=s.queue_size,
                          device=str(self.device), cam_options=self.cam_options,
                          **(OBJAUG_MIXUP if self.cam_options == "objaug" else {}))  # type: ignore[arg-type]
        return dataclasses.replace(cfg, **kw)

    def cam_setup(self) -> tuple[dict[str, Any] | None, bool]:
        """``(cam_kwargs, bank)`` of the two-stage CAMs for :func:`.train.compute_objects` (``--cam-options``)."""
        if self.cam_options == "objaug":
            return dict(OBJAUG_CAM_SETTINGS), OBJAUG_CAM_BANK
        return None, False

    # ---------------------------------------------------------------- bookkeeping
    def _done(self, name: str, seed: int) -> dict[str, Any] | None:
        path = _run_dir(self.out, name, seed) / "result.json"
        if not path.is_file():
            return None
        result: dict[str, Any] = json.loads(path.read_text())
        if result.get("protocol_config") != json.loads(json.dumps(self.config, default=_json_default)):
            raise RuntimeError(f"{path} was written by another protocol configuration (scale, data or settings "
                               "differ); use another --out or delete it.")
        return result

    def _finish(self, name: str, seed: int, metrics: dict[str, float], extra: dict[str, Any]) -> dict[str, Any]:
        result = {"name": name, "seed": seed, "metrics": _finite(metrics), **extra,
                  "protocol_config": self.config}
        _write_json(_run_dir(self.out, name, seed) / "result.json", result)
        return result

    def _reevaluated(self, done: dict[str, Any], kind: str, model: Any) -> dict[str, Any]:
        """``done`` with its metrics recomputed from ``model`` (training statistics kept)."""
        t0 = time.perf_counter()
        metrics = evaluate_model(kind, model, self.eval_data, self.scale.eval)
        extra = {k: v for k, v in done.items() if k not in ("name", "seed", "metrics", "protocol_config")}
        extra["eval_seconds"] = round(time.perf_counter() - t0, 2)
        return self._finish(done["name"], done["seed"], metrics, extra)

    def ssl_model(self, cfg: TrainConfig) -> SSLModel:
        """A model of ``cfg``'s architecture with the seed's initial weights (no training)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            return SSLModel(cfg).to(self.device).to(memory_format=torch.channels_last).eval()

    def load_ssl(self, cfg: TrainConfig) -> SSLModel:
        """The trained weights of a finished run."""
        path = _run_dir(self.out, run_name(cfg.method, cfg.arm, cfg.mode), cfg.seed) / "model.pt"
        model = _load_state(SSLModel(cfg), path, self.device)
        assert isinstance(model, SSLModel)
        return model

    def load_supervised(self, seed: int, name: str = "supervised") -> SupervisedModel:
        """The trained supervised model of a seed (``name``: ``supervised`` or ``supervised_unbiased``)."""
        path = _run_dir(self.out, name, seed) / "model.pt"
        model = _load_state(SupervisedModel(self.scale.arch, self.n_classes, stem_stride=self.scale.stem_stride),
                            path, self.device)
        assert isinstance(model, SupervisedModel)
        return model

    # ---------------------------------------------------------------- runs
    def ssl_run(self, cfg: TrainConfig, objects: dict[str, np.ndarray] | None) -> dict[str, Any]:
        """Train (unless done), evaluate, save weights and result of one SSL run."""
        name = run_name(cfg.method, cfg.arm, cfg.mode)
        done = self._done(name, cfg.seed)
        if done is not None:
            return self._reevaluated(done, "ssl", self.load_ssl(cfg)) if self.reevaluate else done
        model, stats = train_ssl(cfg, self.ssl_images, objects=objects, progress=self.progress,
                                 log_every=max(1, cfg.steps // 10))
        _save_state(model, _run_dir(self.out, name, cfg.seed) / "model.pt")
        t0 = time.perf_counter()
        metrics = evaluate_model("ssl", model, self.eval_data, self.scale.eval)
        return self._finish(name, cfg.seed, metrics, {
            "method": cfg.method, "arm": cfg.arm, "mode": cfg.mode, "train": stats,
            "eval_seconds": round(time.perf_counter() - t0, 2)})

    def objects_for(self, cfg: TrainConfig) -> dict[str, np.ndarray]:
        """The two-stage boxes/masks of the seed's baseline over the SSL set (cached as ``objects.npz``)."""
        base = dataclasses.replace(cfg, arm="baseline", mode=None)
        path = _run_dir(self.out, run_name(cfg.method, "baseline", None), cfg.seed) / "objects.npz"
        if path.is_file():
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
        model = self.load_ssl(base)
        t0 = time.perf_counter()
        cam_kwargs, bank = self.cam_setup()
        parts = [compute_objects(model.backbone, model.projector, imgs, iters=iters,
                                 batch_size=self.scale.batch_size, box_threshold=cfg.box_threshold,
                                 progress=self.progress, cam_kwargs=cam_kwargs, bank=bank)
                 for imgs, iters in ((self.ssl_images[:self.n_single], self.scale.single_iters),
                                     (self.ssl_images[self.n_single:], self.scale.two_stage_iters))]
        objects = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        seconds = time.perf_counter() - t0
        tmp = path.with_name("objects.tmp.npz")
        objects["seconds"] = np.asarray(seconds, dtype=np.float64)
        np.savez_compressed(tmp, **objects)  # type: ignore[arg-type]
        os.replace(tmp, path)
        return objects

    def random_init_run(self, cfg: TrainConfig) -> dict[str, Any]:
        """Evaluate the seed's initial weights (the random-init reference) of a method's architecture."""
        name = f"{cfg.method}/random_init"
        done = self._done(name, cfg.seed)
        if done is not None:
            return self._reevaluated(done, "ssl", self.ssl_model(cfg)) if self.reevaluate else done
        t0 = time.perf_counter()
        metrics = evaluate_model("ssl", self.ssl_model(cfg), self.eval_data, self.scale.eval)
        return self._finish(name, cfg.seed, metrics, {"method": cfg.method, "arm": "random_init", "mode": None,
                                                      "eval_seconds": round(time.perf_counter() - t0, 2)})

    def supervised_run(self, seed: int, *, unbiased: bool = False) -> dict[str, Any]:
        """Train and evaluate the supervised reference of a seed (``unbiased``: on ``train_unbiased``, the same
        object rows on random backgrounds, with the same labels)."""
        name = "supervised_unbiased" if unbiased else "supervised"
        done = self._done(name, seed)
        if done is not None:
            return self._reevaluated(done, "supervised", self.load_supervised(seed, name)) if self.reevaluate \
                else done
        images = self.unbiased_images if unbiased else self.sup_images
        if images is None:
            raise ValueError("the unbiased supervised reference needs data v2 (a train_unbiased split).")
        cfg = self.base_cfg(seed=seed)
        model, stats = train_supervised(cfg, images, self.sup_labels, self.n_classes, progress=self.progress)
        _save_state(model, _run_dir(self.out, name, seed) / "model.pt")
        t0 = time.perf_counter()
        metrics = evaluate_model("supervised", model, self.eval_data, self.scale.eval)
        return self._finish(name, seed, metrics, {"method": None, "arm": name, "mode": None, "train": stats,
                                                  "eval_seconds": round(time.perf_counter() - t0, 2)})

    def center_prior_run(self) -> dict[str, Any]:
        """The centre-box priors (seed-independent)."""
        done = self._done("center_prior", 0)
        if done is not None and not self.reevaluate:
            return done
        return self._finish("center_prior", 0, evaluate_center_prior(self.eval_data, self.scale.eval),
                            {"method": None, "arm": "center_prior", "mode": None})


def aggregate(results: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, float | int | None]]]:
    """Mean, sample std (ddof 1; 0 for one seed) and count over seeds, per run name and metric."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault(r["name"], []).append(r)
    out: dict[str, dict[str, dict[str, float | int | None]]] = {}
    for name, rs in groups.items():
        keys = sorted({k for r in rs for k in r["metrics"]})
        out[name] = {}
        for k in keys:
            out[name][k] = mean_std([r["metrics"][k] for r in rs if r["metrics"].get(k) is not None], digits=5)
        for key in ("seconds", "object_fraction", "mixed_fraction"):
            stats = [r["train"][key] for r in rs if isinstance(r.get("train"), dict) and key in r["train"]]
            if stats:
                out[name][f"train_{key}"] = mean_std(stats, digits=4)
    return out


def _cell(agg: dict[str, dict[str, Any]], key: str, pct: bool = True) -> str:
    v = agg.get(key)
    if v is None or v["mean"] is None:
        return "–"
    scale = 100.0 if pct else 1.0
    if v["n"] > 1:
        return f"{scale * v['mean']:.1f} ± {scale * v['std']:.1f}"
    return f"{scale * v['mean']:.1f}"


def write_markdown(results: dict[str, Any], path: Path) -> Path:
    """Write ``results.md``: background probes, per-object probe, localisation (single, multi), timings.

    Args:
        results: the ``results.json`` content (``aggregate``, ``config``, ``timing``).
        path: output file.

    Returns:
        ``path``.
    """
    agg: dict[str, dict[str, Any]] = results["aggregate"]
    cfg = results["config"]
    iters = cfg["eval"]["cam_iters"]
    names = list(agg)
    ssl = [n for n in names if "/" in n and not n.endswith("/random_init")]
    refs = [n for n in names if n.endswith("/random_init")] + [n for n in ("supervised", "supervised_unbiased")
                                                               if n in agg]
    seeds = sorted({s for r in results["runs"] for s in [r["seed"]] if r["name"] != "center_prior"})
    lines = [
        "# bgbench SSL debiasing protocol: results",
        "",
        f"Scale `{cfg['scale']}`, {cfg['size']} px, {cfg['n_classes']} classes, data `{cfg['data']['source']}` "
        f"(seed {cfg['data']['seed']}), seeds {seeds}; backbone `{cfg['train']['arch']}`, "
        f"{cfg['train']['steps']} steps of {cfg['train']['batch_size']} images "
        f"({cfg['n_ssl_images']} SSL images). Values in %, mean ± std over seeds (sample std).",
        "",
        "## Background probes (linear probe on frozen features, trained on `train`)",
        "",
        "| run | original | mixed_same | mixed_rand | only_fg | BG-gap (same − rand) | per-object (multi_test crops) |",
        "|---|---|---|---|---|---|---|",
    ]
    for n in ssl + refs:
        a = agg[n]
        lines.append(f"| {n} | {_cell(a, 'probe/original')} | {_cell(a, 'probe/mixed_same')} | "
                     f"{_cell(a, 'probe/mixed_rand')} | {_cell(a, 'probe/only_fg')} | {_cell(a, 'probe/bg_gap')} | "
                     f"{_cell(a, 'probe/objects')} |")
    for split, title in (("single", "`original` (one object)"), ("multi", "`multi_test` (2-4 objects)")):
        lines += [
            "",
            f"## Localisation on {title}",
            "",
            "ContraCAM (Grad-CAM for the supervised model, T=1 only); mask IoU of map >= 0.5 vs the union of the "
            "objects' masks; CorLoc@0.5 of the top `boxes_from_cam` box; box mIoU = best-box IoU per object; "
            "obj − bg = mean map value on the objects minus on the background (negative: the maps favour the "
            "background).",
            "",
            f"| run | IoU T=1 | IoU T={iters} | CorLoc T=1 | CorLoc T={iters} | box mIoU T=1 | box mIoU T={iters} "
            f"| obj − bg T=1 | obj − bg T={iters} |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for n in ssl + refs:
            a = agg[n]
            lines.append(
                f"| {n} | {_cell(a, f'loc/{split}/iou_T1')} | {_cell(a, f'loc/{split}/iou_T{iters}')} | "
                f"{_cell(a, f'loc/{split}/corloc_T1')} | {_cell(a, f'loc/{split}/corloc_T{iters}')} | "
                f"{_cell(a, f'loc/{split}/box_miou_T1')} | {_cell(a, f'loc/{split}/box_miou_T{iters}')} | "
                f"{_cell(a, f'loc/{split}/contrast_T1')} | {_cell(a, f'loc/{split}/contrast_T{iters}')} |")
        if "center_prior" in agg:
            a = agg["center_prior"]
            for frac in cfg["eval"]["center_fractions"]:
                f = f"{frac:g}"
                lines.append(f"| centre box ({f} of the area) | {_cell(a, f'loc/{split}/iou_center{f}')} | | "
                             f"{_cell(a, f'loc/{split}/corloc_center{f}')} | | "
                             f"{_cell(a, f'loc/{split}/box_miou_center{f}')} | | | |")
    lines += ["", "## Augmentations and time", "",
              "Share of training views cropped inside a CAM box and share of first views background-mixed "
              "(means over the run); training seconds.", "",
              "| run | views in a box (%) | views mixed (%) | train s |", "|---|---|---|---|"]
    for n in ssl + refs:
        if "train_seconds" in agg[n]:
            a = agg[n]
            lines.append(f"| {n} | {_cell(a, 'train_object_fraction')} | {_cell(a, 'train_mixed_fraction')} | "
                         f"{a['train_seconds']['mean']:.1f} |")
    ts = results.get("two_stage_objects", {})
    if ts:
        lines += ["", "Two-stage CAMs of the baseline over the SSL set (T=" + str(cfg["two_stage_iters"]) + " boxes, "
                  "T=1 masks): images with a box, boxes per image, area of the top box (fallback: whole image), "
                  "images whose mask rectangle leaves a background strip (the only ones background mixup can mix).",
                  "", "| baseline | with a box (%) | boxes / image | top box area (%) | mixable (%) | CAM pass s |",
                  "|---|---|---|---|---|---|"]
        for key, st in ts.items():
            lines.append(f"| {key} | {100 * st['valid_fraction']:.1f} | {st['boxes_per_image']:.2f} | "
                         f"{100 * st['box_area']:.1f} | {100 * st['mixable_fraction']:.1f} | {st['seconds']:.0f} |")
    t = results.get("timing", {})
    if t:
        lines += ["", "Wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in t.items()) + "."]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_protocol(data_dir: str | os.PathLike[str], out: str | os.PathLike[str], *, scale: str = "small",
                 seeds: Sequence[int] = (0, 1, 2), methods: Sequence[str] | None = None,
                 arms: Sequence[str] = ARMS, modes: Sequence[str] = MODES, device: str = "cpu",
                 progress: bool = True, figures: bool = True, steps: int | None = None,
                 stem_stride: int | None = None, reevaluate: bool = False,
                 ablations: bool = False, cam_options: str = "reference") -> dict[str, Any]:
    """Run (or resume) the whole protocol and write ``results.json``, ``results.md`` and the pictures.

    Args:
        data_dir: a built bgbench dataset (FORMAT.md).
        out: output folder (created): ``runs/<run>/s<seed>/{result.json,model.pt}``, results, pictures.
        scale: ``"tiny"`` (CI), ``"small"`` (2 CPU cores) or ``"large"`` (a GPU); see :data:`SCALES`.
        seeds: seeds (>= 3 for mean ± std).
        methods: SSL methods (default: the scale's).
        arms: arms; ``baseline`` is always trained (the two-stage arms need it).
        modes: modes of the object-aware arms.
        device: ``"cpu"`` or ``"cuda"``.
        progress: tqdm bars.
        figures: write the pictures.
        steps: override the scale's training steps (for timing experiments).
        stem_stride: override the scale's ResNet stem stride (1: 8x8 maps at 64 px, 4x the compute of 2).
        reevaluate: recompute the metrics of finished runs from their saved weights (after the evaluation
            changed); nothing is retrained.
        ablations: also run :func:`.encoder_gate.cam_ablation` (CAM temperature, objaug's options, hard and
            same-background negatives) on every saved baseline, without retraining (``results["ablations"]``).
        cam_options: ``"reference"`` (the reference code's CAM settings, the paper's mixup rule: every
            committed v2 result) or ``"objaug"`` (:data:`.data.OBJAUG_CAM_SETTINGS` with a bank of the SSL
            set for the two-stage CAMs and the online CAM, and background mixup's shipped rule,
            :data:`.data.OBJAUG_MIXUP`).

    Returns:
        The ``results.json`` content.
    """
    t_start = time.perf_counter()
    out_p = Path(out)
    out_p.mkdir(parents=True, exist_ok=True)
    methods = tuple(methods) if methods else SCALES[scale].methods
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r}; methods are {METHODS}.")
    arms = tuple(a for a in ARMS if a in arms or a == "baseline")
    modes = tuple(m for m in MODES if m in modes)
    if device == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if stem_stride not in (None, 1, 2):
        raise ValueError(f"stem_stride must be 1 or 2, got {stem_stride!r}.")
    proto = Protocol(Path(data_dir), out_p, scale, device=device, progress=progress, steps=steps,
                     stem_stride=stem_stride, reevaluate=reevaluate, cam_options=cam_options)
    from tqdm import tqdm

    def say(line: str) -> None:
        if progress:
            tqdm.write(line)  # keeps the lines whole between progress bars
    say(f"bgbench protocol: scale {scale}, methods {list(methods)}, arms {list(arms)}, modes {list(modes)}, "
        f"seeds {list(seeds)}, {proto.config['n_ssl_images']} SSL images of {proto.size} px, device {device}, "
        f"{torch.get_num_threads()} threads -> {out_p}")
    results: list[dict[str, Any]] = [proto.center_prior_run()]
    two_stage: dict[str, dict[str, float]] = {}
    timing = {"data": time.perf_counter() - t_start}
    for seed in seeds:
        for method in methods:
            base = proto.base_cfg(method=method, seed=seed)
            t0 = time.perf_counter()
            r = proto.ssl_run(base, None)
            results.append(r)
            say(f"  {run_name(method, 'baseline', None)} s{seed}: " + _summary(r))
            objects = None
            if "two-stage" in modes and len(arms) > 1:
                objects = proto.objects_for(base)
                stats = objects_stats(objects, base)
                two_stage[f"{method}/s{seed}"] = stats
                timing["two_stage_cams"] = timing.get("two_stage_cams", 0.0) + stats["seconds"]
            for mode in modes:
                for arm in arms:
                    if arm == "baseline":
                        continue
                    cfg = dataclasses.replace(base, arm=arm, mode=mode)
                    r = proto.ssl_run(cfg, {"two-stage": objects, "oracle": proto.oracle}.get(mode))
                    results.append(r)
                    say(f"  {run_name(method, arm, mode)} s{seed}: " + _summary(r))
            r = proto.random_init_run(base)
            results.append(r)
            say(f"  {method}/random_init s{seed}: " + _summary(r))
            timing[f"{method}_s{seed}"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        r = proto.supervised_run(seed)
        results.append(r)
        say(f"  supervised s{seed}: " + _summary(r))
        timing[f"supervised_s{seed}"] = time.perf_counter() - t0
        if proto.unbiased_images is not None:
            t0 = time.perf_counter()
            r = proto.supervised_run(seed, unbiased=True)
            results.append(r)
            say(f"  supervised_unbiased s{seed}: " + _summary(r))
            timing[f"supervised_unbiased_s{seed}"] = time.perf_counter() - t0
    ablation: dict[str, dict[str, dict[str, float]]] = {}
    if ablations:
        from .encoder_gate import cam_ablation

        n_loc = proto.eval_data.loc["single"].images.shape[0]
        groups = load_split(proto.data_dir, "original")["bg_group"][:n_loc]
        t0 = time.perf_counter()
        for method in methods:
            for seed in seeds:
                model = proto.load_ssl(proto.base_cfg(method=method, seed=seed))
                ablation.setdefault(method, {})[f"s{seed}"] = cam_ablation(
                    model, proto.eval_data, groups, batch_size=proto.scale.eval.cam_batch,
                    bank_images=proto.ssl_images)
        timing["ablations"] = time.perf_counter() - t0
    runs = [{k: v for k, v in r.items() if k != "protocol_config"} for r in results]
    payload: dict[str, Any] = {
        "config": proto.config,
        "methods": list(methods), "arms": list(arms), "modes": list(modes), "seeds": list(seeds),
        "runs": runs,
        "aggregate": aggregate(results),
        "two_stage_objects": two_stage,
        "ablations": ablation,
        "timing": {},
        "environment": {"torch": torch.__version__, "python": platform.python_version(), "device": device,
                        "threads": torch.get_num_threads(), "cpu_count": os.cpu_count()},
    }
    if figures:
        from .figures import write_figures

        t0 = time.perf_counter()
        payload["figures"] = [str(p.relative_to(out_p)) for p in write_figures(proto, methods[0], seeds[0], arms,
                                                                                modes)]
        timing["figures"] = time.perf_counter() - t0
    timing["total"] = time.perf_counter() - t_start
    payload["timing"] = {k: round(v, 1) for k, v in timing.items()}
    _write_json(out_p / "results.json", payload)
    write_markdown(payload, out_p / "results.md")
    say(f"wrote {out_p / 'results.json'} and {out_p / 'results.md'} in {timing['total']:.0f} s")
    return payload


def _summary(r: dict[str, Any]) -> str:
    m = r["metrics"]
    parts = []
    for key, label in (("probe/original", "orig"), ("probe/mixed_rand", "rand"), ("probe/bg_gap", "gap"),
                       ("probe/objects", "obj"), ("loc/single/iou_T1", "IoU1"), ("loc/multi/corloc_T1", "CorLoc1m")):
        if m.get(key) is not None:
            parts.append(f"{label} {100 * m[key]:.1f}")
    if isinstance(r.get("train"), dict):
        parts.append(f"train {r['train']['seconds']:.0f} s")
    if "eval_seconds" in r:
        parts.append(f"eval {r['eval_seconds']:.0f} s")
    return ", ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: see the module docstring."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bgbench.protocol",
                                 description="bgbench SSL debiasing protocol (issue 7).")
    ap.add_argument("--data", type=Path, required=True, help="a built bgbench dataset folder")
    ap.add_argument("--out", type=Path, required=True, help="output folder (resumable)")
    ap.add_argument("--scale", choices=tuple(SCALES), default="small")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=None,
                    help="SSL methods (default: the scale's; small: simclr)")
    ap.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--steps", type=int, default=None, help="override the scale's training steps")
    ap.add_argument("--stem-stride", type=int, choices=(1, 2), default=None,
                    help="override the scale's stem stride (1: 8x8 maps at 64 px, about 4x the compute)")
    ap.add_argument("--reevaluate", action="store_true",
                    help="recompute the metrics of finished runs from their saved weights (nothing is retrained)")
    ap.add_argument("--cam-options", choices=CAM_PROFILES, default="reference",
                    help="reference: the reference code's CAM settings and the paper's mixup rule (the committed "
                         "results); objaug: the options chosen on validation (data.OBJAUG_CAM_SETTINGS, a bank "
                         "of the SSL set, mixup's Otsu cut and mass fallback)")
    ap.add_argument("--ablations", action="store_true",
                    help="CAM ablations on the saved baseline weights (temperature, options, negatives)")
    ap.add_argument("--summary", type=Path, default=None,
                    help="also write the issue-13 summary JSON here (e.g. benchmarks/results/bgbench_v2_small.json)")
    ap.add_argument("--no-figures", action="store_true")
    ap.add_argument("--quiet", action="store_true", help="no progress bars or per-run lines")
    a = ap.parse_args(argv)
    if a.threads is not None:
        torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    payload = run_protocol(a.data, a.out, scale=a.scale, seeds=a.seeds, methods=a.methods, arms=a.arms,
                           modes=a.modes, device=a.device, progress=not a.quiet, figures=not a.no_figures,
                           steps=a.steps, stem_stride=a.stem_stride, reevaluate=a.reevaluate,
                           ablations=a.ablations, cam_options=a.cam_options)
    if a.summary is not None:
        import shlex

        from .summary import summarise

        command = "python -m benchmarks.bgbench.protocol " + shlex.join(sys.argv[1:] if argv is None else argv)
        _write_json(a.summary, summarise(payload, command=command, wall_s=time.perf_counter() - t0,
                                         ablations=payload["ablations"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
