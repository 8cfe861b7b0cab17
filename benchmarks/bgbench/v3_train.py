"""Protocol v3's arms and their SSL training loop (issue 26), with a late start for background mixup.

An arm (:class:`ArmSpec`) is a baseline SimCLR run plus, optionally, the object-aware crop and/or background
mixup fed by ground-truth objects (``oracle``: the bound a perfect CAM gives) or by the ContraCAM of the
same-seed baseline (``contracam``: two-stage, objaug's options for weak encoders). The **late start** switches
mixup on after ``start`` of the steps. objaug's adapters have no mixup start step yet (the solo-learn
``objaug.mixup`` schema and the Lightly ``ObjectAwareStep`` / ``BackgroundMixup`` mix from the first step),
so the late start lives here: the late arm resumes the same-seed baseline's checkpoint at that step (weights,
optimiser and RNG state: its first half *is* the baseline's) and trains the rest with mixup.

Pairing: every arm of a seed starts from the same initial weights and sees the same batch order
(:func:`.train.batch_indices`); augmentations draw from the seeded global RNG.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from objaug import BackgroundMixup, ObjectAwareAugment, ViewConfig, simclr_views
from objaug.config import BoxConfig

from .data import OBJAUG_MIXUP
from .train import SSLModel, TrainConfig, batch_indices

__all__ = ["ARMS_V3", "ArmSpec", "arm_config", "make_views", "train_arm"]


@dataclass(frozen=True)
class ArmSpec:
    """One arm of protocol v3.

    Attributes:
        crop: object-aware random crop (every view inside one of the image's boxes).
        mixup_p: background mixup probability of view 1 (0: no mixup).
        objects: where boxes and masks come from: ``None``, ``"oracle"`` or ``"contracam"``.
        start: fraction of the steps after which mixup switches on (0: from the first step).
        objaug_rule: background mixup's shipped rule (Otsu cut, 90 % mass fallback:
            :data:`.data.OBJAUG_MIXUP`) instead of the paper's threshold 0.2 (for soft CAM masks).
    """

    crop: bool = False
    mixup_p: float = 0.0
    objects: str | None = None
    start: float = 0.0
    objaug_rule: bool = False

    def __post_init__(self) -> None:
        if (self.crop or self.mixup_p > 0) != (self.objects is not None):
            raise ValueError("an object-aware arm needs objects ('oracle' or 'contracam'), the baseline none.")
        if not 0.0 <= self.start < 1.0 or (self.start > 0 and self.mixup_p == 0):
            raise ValueError("start must be in [0, 1), and > 0 only for a mixup arm.")


#: The arms, in the order of priority (the baseline and the oracle arms first).
ARMS_V3: dict[str, ArmSpec] = {
    "baseline": ArmSpec(),
    "mixup_oracle_p0.4": ArmSpec(mixup_p=0.4, objects="oracle"),
    "mixup_oracle_p1.0": ArmSpec(mixup_p=1.0, objects="oracle"),
    "crop_oracle": ArmSpec(crop=True, objects="oracle"),
    "mixup_contracam": ArmSpec(mixup_p=0.4, objects="contracam", objaug_rule=True),
    "crop_contracam": ArmSpec(crop=True, objects="contracam"),
    "mixup_oracle_late": ArmSpec(mixup_p=0.4, objects="oracle", start=0.5),
}


def arm_config(base: TrainConfig, spec: ArmSpec) -> TrainConfig:
    """``base`` with the arm's mixup settings (arm/mode fields as :mod:`.train` names them)."""
    arm = "both" if spec.crop and spec.mixup_p else "crop" if spec.crop else "mixup" if spec.mixup_p else "baseline"
    mode = None if arm == "baseline" else "two-stage" if spec.objects == "contracam" else "oracle"
    rule: dict[str, Any] = dict(OBJAUG_MIXUP) if spec.objaug_rule else {}
    return dataclasses.replace(base, arm=arm, mode=mode, mixup_p=spec.mixup_p or base.mixup_p, **rule)


def make_views(size: int, spec: ArmSpec, *, scaled: bool) -> list[ViewConfig]:
    """SimCLR's views for an arm (``scaled``: blur and minimum crop scale scaled to ``size``)."""
    views = simclr_views(size, mixup=spec.mixup_p > 0, scale_to_size=scaled)
    return views if spec.crop else [dataclasses.replace(v, object_crop=False) for v in views]


def _augment(cfg: TrainConfig, spec: ArmSpec, scaled: bool) -> ObjectAwareAugment:
    mixup = None
    if spec.mixup_p > 0:
        mixup = BackgroundMixup(p=spec.mixup_p, threshold=cfg.mixup_threshold,
                                fallback_mass=cfg.mixup_fallback_mass, queue_size=cfg.mixup_queue,
                                check_inputs=False)
    return ObjectAwareAugment(make_views(cfg.view_size, spec, scaled=scaled), mixup=mixup,
                              box_config=BoxConfig(threshold=cfg.box_threshold), check_inputs=False)


def _lr(step: int, cfg: TrainConfig) -> float:
    warm = min(1.0, (step + 1) / max(1, cfg.warmup))
    return cfg.lr * warm * 0.5 * (1.0 + math.cos(math.pi * step / max(1, cfg.steps)))


def train_arm(cfg: TrainConfig, spec: ArmSpec, images: Tensor, *, objects: dict[str, np.ndarray] | None = None,
              scaled_views: bool = True, resume: Path | None = None, save_at: int | None = None,
              save_to: Path | None = None, log_every: int = 10,
              on_checkpoint: Callable[[int, SSLModel], None] | None = None,
              checkpoints: tuple[int, ...] = ()) -> tuple[SSLModel, dict[str, Any]]:
    """Train one arm (SimCLR; AdamW, linear warm-up then cosine, as :func:`.train.train_ssl`).

    Args:
        cfg: the schedule and model (``cfg.method`` must be ``"simclr"``).
        spec: the arm.
        images: (N, 3, S, S) float in [0, 1], the SSL set, on ``cfg.device``.
        objects: boxes, valid and masks of ``images`` (:func:`.train.oracle_objects` / ``compute_objects``
            format); required by an object-aware arm.
        scaled_views: blur and minimum crop scale scaled to the image size (:func:`make_views`).
        resume: a checkpoint written by ``save_to`` (the late start: weights, optimiser, RNG, step).
        save_at: write a checkpoint after this many steps (to ``save_to``).
        save_to: the checkpoint file.
        log_every: record the loss every this many steps (the loss curve).
        on_checkpoint: ``on_checkpoint(step, model)`` after the steps in ``checkpoints`` (0: before
            training), in eval mode under a forked RNG; its time is not counted.
        checkpoints: the steps of ``on_checkpoint``.

    Returns:
        ``(model, stats)``: the model in eval mode and ``{"steps", "seconds", "loss_curve": [[step, loss],
        ...], "ssl_loss" (mean of the last 10 % of the curve), "views_mixed", "views_in_box", "start_step"}``.
    """
    if cfg.method != "simclr":
        raise ValueError("protocol v3 trains SimCLR only.")
    if spec.objects is not None and objects is None:
        raise ValueError("an object-aware arm needs objects=.")
    device = torch.device(cfg.device)
    n = images.shape[0]
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(cfg.seed)
        model = SSLModel(cfg).to(device).to(memory_format=torch.channels_last)
        augment = _augment(cfg, spec, scaled_views).to(device)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                                weight_decay=cfg.weight_decay)
        first = 0
        curve: list[list[float]] = []
        if resume is not None:
            state = torch.load(resume, map_location="cpu", weights_only=False)
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            torch.set_rng_state(state["rng"])
            first, curve = int(state["step"]), [list(p) for p in state["curve"]]
        obj = {k: torch.as_tensor(v).to(device) for k, v in (objects or {}).items() if k in ("boxes", "valid", "masks")}
        fractions: dict[str, list[float]] = {"views_mixed": [], "views_in_box": []}
        seconds = 0.0
        t0 = time.perf_counter()
        loss = torch.zeros(())
        model.train()
        if on_checkpoint is not None and 0 in checkpoints and first == 0:
            _pause(on_checkpoint, 0, model, device)
        for step, idx in enumerate(batch_indices(n, cfg.batch_size, cfg.steps, seed=cfg.seed)):
            if step < first:
                continue
            for g in opt.param_groups:
                g["lr"] = _lr(step, cfg)
            idx_d = idx.to(device)
            x = images.index_select(0, idx_d)
            with torch.no_grad():
                if obj:
                    masks = obj["masks"].index_select(0, idx_d).float().div_(255.0) if spec.mixup_p else None
                    views = augment(x, obj["boxes"].index_select(0, idx_d), obj["valid"].index_select(0, idx_d),
                                    masks)
                else:
                    views = augment(x)
            params = augment._params[0] if augment._params else {}
            if "mixed" in params:
                fractions["views_mixed"].append(float(params["mixed"].float().mean()))
            if "object" in params:
                fractions["views_in_box"].append(float(params["object"].float().mean()))
            loss = model.loss(views[0], views[1])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if (step + 1) % log_every == 0:
                curve.append([step + 1, round(float(loss.detach()), 4)])
            if save_at is not None and step + 1 == save_at and save_to is not None:
                save_to.parent.mkdir(parents=True, exist_ok=True)
                torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "rng": torch.get_rng_state(),
                            "step": step + 1, "curve": curve}, save_to.with_suffix(".tmp"))
                save_to.with_suffix(".tmp").replace(save_to)
            if on_checkpoint is not None and step + 1 in checkpoints:
                seconds += time.perf_counter() - t0
                _pause(on_checkpoint, step + 1, model, device)
                t0 = time.perf_counter()
        seconds += time.perf_counter() - t0
    model.eval()
    tail = [v for _, v in curve[-max(1, len(curve) // 10):]]
    stats = {"steps": cfg.steps, "start_step": first, "seconds": round(seconds, 1), "loss_curve": curve,
             "ssl_loss": round(float(np.mean(tail)), 4) if tail else float("nan"),
             **{k: round(float(np.mean(v)), 4) if v else 0.0 for k, v in fractions.items()}}
    return model, stats


def _pause(fn: Callable[[int, SSLModel], None], step: int, model: SSLModel, device: torch.device) -> None:
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        model.eval()
        fn(step, model)
        model.train()
