"""The objaug demo: SimCLR on embedded synthetic scenes for about a minute, then ContraCAM.

:func:`run_demo` trains a small torchvision ResNet (:func:`objaug.tools.archs.tiny_resnet`) and an MLP
projector with the NT-Xent loss on the synthetic multi-object scenes of :mod:`objaug.tools.synthetic`, with
Kornia batched augmentations (random resized crop, flip, colour jitter, grayscale), for a time budget
(or a fixed number of steps). It then computes ContraCAM maps (1 iteration and a refined number) on a
held-out batch and scores them against the known object masks (mean per-image mask IoU at threshold
0.5), next to the centre-box prior and the ContraCAM of the same network at its random initialisation.
It writes a picture grid, ``boxes.json`` and the trained weights (``model.pt``, usable with
``objaug cam --arch tiny_resnet_w<width>``).

Determinism: a seed fixes the data, the initialisation and the augmentations (the global RNG is forked,
not changed). With ``steps`` the whole run is reproducible (up to thread nondeterminism); with a time
budget the number of steps depends on the machine's speed.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from objaug.constants import IMAGENET_MEAN, IMAGENET_STD
from objaug.tools.archs import build_projector, demo_backbone
from objaug.tools.losses import nt_xent
from objaug.tools.synthetic import SceneBatch, make_scenes

__all__ = ["DemoConfig", "DemoResult", "build_demo_model", "evaluate_localisation", "run_demo",
           "train_simclr"]

_MEAN, _STD = IMAGENET_MEAN, IMAGENET_STD


@dataclass
class DemoConfig:
    """Settings of :func:`run_demo` (the defaults are the tuned ones).

    Attributes:
        seconds: training time budget in seconds (the loop stops at the first step past it).
        steps: fixed number of training steps instead of the time budget (reproducible), or None.
        seed: seed of data, initialisation and augmentations.
        device: torch device string.
        image_size: side of the synthetic images (pixels).
        width: channels of the ResNet's first stage (stages: width * (1, 2, 4, 4)).
        batch_size: images per step (two views each).
        lr: peak AdamW learning rate (linear warm-up over 10 steps, cosine decay over the budget).
        weight_decay: AdamW weight decay.
        temperature: NT-Xent temperature.
        projector: projector spec (:func:`objaug.tools.archs.build_projector`).
        crop_scale: area range of the random resized crop.
        color_jitter: brightness/contrast/saturation jitter strength.
        hue: hue jitter.
        eval_images: held-out images for the localisation scores (also the ContraCAM batch).
        refined_iters: ContraCAM iterations of the refined maps.
        threshold: threshold of maps for mask IoU and boxes.
        max_objects: object slots per synthetic image.
    """

    seconds: float = 60.0
    steps: int | None = None
    seed: int = 0
    device: str = "cpu"
    image_size: int = 64
    width: int = 16
    batch_size: int = 32
    lr: float = 4e-3
    weight_decay: float = 1e-4
    temperature: float = 0.2
    projector: str = "bn:128-64"
    crop_scale: tuple[float, float] = (0.2, 1.0)
    color_jitter: float = 0.4
    hue: float = 0.1
    eval_images: int = 128
    refined_iters: int = 5
    threshold: float = 0.5
    max_objects: int = 3


@dataclass
class DemoResult:
    """What :func:`run_demo` measured (IoUs are means of per-image mask IoU over the held-out batch)."""

    steps: int
    train_seconds: float
    final_loss: float
    iou: dict[str, float]
    box_recall: dict[str, float]
    files: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


def build_demo_model(cfg: DemoConfig) -> tuple[nn.Module, nn.Module]:
    """The demo's backbone and projector (CPU, train mode), initialised from ``torch``'s global RNG.

    The backbone is :func:`objaug.tools.archs.demo_backbone` (``--arch tiny_resnet_w<width>`` in ``objaug cam``):
    a torchvision ``ResNet`` with a stride-2 3x3 stem, no max pooling and a stride-1 last stage (total
    stride 8: 8x8 maps at 64 px), stages of ``width * (1, 2, 4, 4)`` channels.
    """
    model = demo_backbone(width=cfg.width)
    projector = build_projector(cfg.projector, 4 * cfg.width)
    assert projector is not None
    return model, projector


def _augment(cfg: DemoConfig) -> nn.Module:
    import kornia.augmentation as K

    s = cfg.image_size
    cj = cfg.color_jitter
    return nn.Sequential(
        K.RandomResizedCrop((s, s), scale=cfg.crop_scale),
        K.RandomHorizontalFlip(),
        K.ColorJitter(cj, cj, cj, cfg.hue, p=0.8),
        K.RandomGrayscale(p=0.2),
    )


def _normalize(x: Tensor) -> Tensor:
    mean = torch.tensor(_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def train_simclr(model: nn.Module, projector: nn.Module, cfg: DemoConfig, *,
                 progress: bool = True) -> tuple[int, float, float]:
    """Train ``model`` + ``projector`` with SimCLR on fresh synthetic scenes (in place).

    Uses torch's global RNG for the augmentations (call inside ``torch.random.fork_rng`` for
    isolation) and a private generator seeded from ``cfg.seed`` for the data.

    Returns:
        ``(steps, seconds, final_loss)``.
    """
    from tqdm import tqdm

    device = torch.device(cfg.device)
    model.to(device).train()
    projector.to(device).train()
    params = list(model.parameters()) + list(projector.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    aug = _augment(cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    budget = float(cfg.seconds)
    fixed = cfg.steps
    total = fixed if fixed is not None else max(1, int(math.ceil(budget)))
    unit = "step" if fixed is not None else "s"
    bar = tqdm(total=total, unit=unit, desc="SimCLR", disable=not progress, leave=False,
               bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt}{unit} [{elapsed}<{remaining}{postfix}]")
    step = 0
    loss_value = float("nan")
    start = time.perf_counter()
    try:
        while True:
            elapsed = time.perf_counter() - start
            frac = step / fixed if fixed is not None else elapsed / budget
            if frac >= 1.0:
                break
            lr = cfg.lr * min(1.0, (step + 1) / 10) * 0.5 * (1.0 + math.cos(math.pi * min(frac, 1.0)))
            for group in opt.param_groups:
                group["lr"] = lr
            scenes = make_scenes(cfg.batch_size, size=cfg.image_size, max_objects=cfg.max_objects,
                                 generator=gen)
            x = scenes.images.to(device)
            with torch.no_grad():
                v1, v2 = _normalize(aug(x)), _normalize(aug(x))
            z = projector(model(torch.cat([v1, v2])))
            loss = nt_xent(z[: cfg.batch_size], z[cfg.batch_size:], temperature=cfg.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % 5 == 0 or fixed is not None:
                loss_value = float(loss.detach())
                bar.set_postfix(step=step, loss=f"{loss_value:.3f}", refresh=False)
            bar.n = step if fixed is not None else min(time.perf_counter() - start, budget)
            bar.refresh()
        if step:
            loss_value = float(loss.detach())
    finally:
        bar.close()
    return step, time.perf_counter() - start, loss_value


def evaluate_localisation(model: nn.Module, projector: nn.Module | None, scenes: SceneBatch, *,
                          iters: int = 1, threshold: float = 0.5, max_boxes: int = 4,
                          reference: bool = False, **cam_options: Any) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """ContraCAM of a held-out batch, scored against its masks.

    Args:
        reference: the reference code's settings: ContraCAM with the plain union of the iterations and
            no edge filter (``refine="union", edges=False``; temperature 1 and in-batch negatives are the
            defaults), boxes from the components of that union (:func:`objaug.boxes.boxes_from_cam`). By
            default objaug's: the shipped ContraCAM defaults and each iteration's own boxes
            (:func:`objaug.boxes.boxes_from_steps`).
        cam_options: further :class:`objaug.ContraCAM` options (``temperature``, ``hard_negatives``,
            ``edges``, ...).

    Returns:
        ``(maps, iou, boxes, valid)``: maps (N, 1, S, S) in [0, 1], per-image mask IoU (N,), and the
        boxes (N, K, 4) / (N, K).
    """
    from objaug.boxes import boxes_from_cam, boxes_from_steps
    from objaug.contracam import ContraCAM
    from objaug.metrics import mask_iou

    device = next(model.parameters()).device
    if reference:
        cam_options = {"refine": "union", "edges": False, **cam_options}
    cam = ContraCAM(model, projector=projector, iters=iters, **cam_options)
    maps, steps = cam(_normalize(scenes.images.to(device)), return_steps=True)
    maps, steps = maps.cpu(), [s.cpu() for s in steps]
    iou = mask_iou(maps, scenes.masks, threshold=threshold)
    if reference:
        boxes, valid = boxes_from_cam(maps, threshold=threshold, max_boxes=max_boxes)
    else:
        boxes, valid = boxes_from_steps(steps, threshold=threshold, max_boxes=max_boxes)
    return maps, iou, boxes, valid


def _box_recall(boxes: Tensor, valid: Tensor, gt: Tensor, gt_valid: Tensor, thr: float = 0.5) -> float:
    """Fraction of ground-truth boxes matched by some predicted valid box with IoU >= thr."""
    from objaug.metrics import pairwise_box_iou

    iou = pairwise_box_iou(gt, boxes)  # (N, M, K)
    iou = iou.masked_fill(~valid.unsqueeze(1), 0.0)
    hit = (iou.amax(dim=2) >= thr) & gt_valid
    return float(hit.sum()) / max(1, int(gt_valid.sum()))


def run_demo(cfg: DemoConfig | None = None, *, out_dir: str | None = "objaug_demo",
             progress: bool = True, log: Any = print) -> DemoResult:
    """Train, evaluate, write pictures and ``boxes.json``; see the module docstring.

    Args:
        cfg: settings (defaults: :class:`DemoConfig`).
        out_dir: output directory (created), or None to write nothing.
        progress: show a tqdm progress bar during training.
        log: a print-like callable for the report lines (``None`` for silence).

    Returns:
        A :class:`DemoResult`.
    """
    from objaug.metrics import center_box_prior, mask_iou
    from objaug.tools.viz import draw_boxes, make_grid, mask_to_rgb, overlay_cam, save_png, to_uint8, with_titles

    cfg = cfg or DemoConfig()
    say = log or (lambda *a, **k: None)
    device = torch.device(cfg.device)
    held_out = make_scenes(cfg.eval_images, size=cfg.image_size, max_objects=cfg.max_objects,
                           seed=cfg.seed + 1_000_003)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model, projector = build_demo_model(cfg)
        init_model, init_proj = copy.deepcopy(model).to(device), copy.deepcopy(projector).to(device)
        say(f"objaug demo: SimCLR on synthetic scenes ({cfg.image_size} px, batch {cfg.batch_size}), "
            + (f"{cfg.steps} steps" if cfg.steps is not None else f"{cfg.seconds:g} s budget")
            + f", seed {cfg.seed}, device {device}")
        steps, seconds, loss = train_simclr(model, projector, cfg, progress=progress)
    say(f"trained {steps} steps in {seconds:.1f} s ({steps / max(seconds, 1e-9):.2f} steps/s), "
        f"final loss {loss:.3f}")

    iou: dict[str, float] = {}
    recall: dict[str, float] = {}
    results = {}
    runs = {"random_init": (init_model, init_proj, False), "trained": (model, projector, False),
            "reference": (model, projector, True)}  # "reference": the reference code's settings
    for name, (m, p, ref) in runs.items():
        for t in sorted({1, cfg.refined_iters}):
            maps, per_image, boxes, valid = evaluate_localisation(m, p, held_out, iters=t, threshold=cfg.threshold,
                                                                  reference=ref)
            key = f"contracam_{name}_T{t}"
            iou[key] = float(per_image.mean())
            recall[key] = _box_recall(boxes, valid, held_out.boxes, held_out.valid)
            results[key] = (maps, per_image, boxes, valid)
    for frac in (0.1, 0.25, 0.5):
        prior = center_box_prior(cfg.eval_images, cfg.image_size, fraction=frac)
        iou[f"center_prior_{frac:g}"] = float(mask_iou(prior, held_out.masks).mean())
    best_prior = max((v, k) for k, v in iou.items() if k.startswith("center_prior"))

    tr = f"contracam_trained_T{cfg.refined_iters}"
    say(f"mean mask IoU on {cfg.eval_images} held-out scenes (threshold {cfg.threshold:g}):")
    say(f"  ContraCAM, trained, T=1             {iou['contracam_trained_T1']:.3f}")
    say(f"  ContraCAM, trained, T={cfg.refined_iters:<2d}            {iou[tr]:.3f}")
    say(f"  ContraCAM, random init, T=1         {iou['contracam_random_init_T1']:.3f}")
    say(f"  ContraCAM, random init, T={cfg.refined_iters:<2d}        "
        f"{iou[f'contracam_random_init_T{cfg.refined_iters}']:.3f}")
    say(f"  centre-box prior (best of area 0.1/0.25/0.5: {best_prior[1].split('_')[-1]})  {best_prior[0]:.3f}")
    say(f"box recall (GT boxes hit at IoU >= 0.5): trained T=1 {recall['contracam_trained_T1']:.3f}, "
        f"T={cfg.refined_iters} {recall[tr]:.3f}; random init T=1 {recall['contracam_random_init_T1']:.3f}")
    rkey = f"contracam_reference_T{cfg.refined_iters}"
    say(f"with the reference code's settings (plain union, no edge filter, boxes of the union): mask IoU "
        f"T=1 {iou['contracam_reference_T1']:.3f}, T={cfg.refined_iters} {iou[rkey]:.3f}; box recall "
        f"T=1 {recall['contracam_reference_T1']:.3f}, T={cfg.refined_iters} {recall[rkey]:.3f}")
    metrics = _headline_metrics(iou, recall, cfg.refined_iters, best_prior[0])

    files: list[str] = []
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        k = min(12, cfg.eval_images)
        imgs = held_out.images[:k]
        m1, _, b1, v1 = results["contracam_trained_T1"]
        mr, _, br, vr = results[tr]
        cols = [
            to_uint8(imgs),
            overlay_cam(imgs, m1[:k]),
            draw_boxes(overlay_cam(imgs, mr[:k]), br[:k], vr[:k]),
            draw_boxes(mask_to_rgb(held_out.masks[:k]), held_out.boxes[:k], held_out.valid[:k],
                       colors=[(255, 0, 0)]),
        ]
        tiles = torch.stack(cols, dim=1).flatten(0, 1)  # row per image: image | T=1 | refined+boxes | GT
        tiles = torch.nn.functional.interpolate(tiles.float(), scale_factor=2, mode="nearest").to(torch.uint8)
        grid_path = os.path.join(out_dir, "demo_grid.png")
        titles = ["image", "ContraCAM T=1", f"T={cfg.refined_iters} + boxes", "ground truth"] * 2
        save_png(with_titles(make_grid(tiles, nrow=8), titles, tiles.shape[-1]), grid_path)  # two images a row
        files.append(grid_path)
        metrics_path = os.path.join(out_dir, "metrics.json")
        with open(metrics_path, "w") as f:
            json.dump(metrics, f, indent=1)
        files.append(metrics_path)
        rows = []
        for i in range(cfg.eval_images):
            rows.append({
                "index": i,
                "iou_T1": round(float(results["contracam_trained_T1"][1][i]), 4),
                f"iou_T{cfg.refined_iters}": round(float(results[tr][1][i]), 4),
                "boxes": [[round(float(c), 4) for c in bx] for bx in br[i]],
                "valid": [bool(v) for v in vr[i]],
                "fallback": not bool(vr[i].any()),
                "gt_boxes": [[round(float(c), 4) for c in bx] for bx in held_out.boxes[i]],
                "gt_valid": [bool(v) for v in held_out.valid[i]],
            })
        json_path = os.path.join(out_dir, "boxes.json")
        with open(json_path, "w") as f:
            json.dump({"version": 1, "box_format": "normalised xyxy", "image_size": cfg.image_size,
                       "steps": steps, "train_seconds": round(seconds, 2), "mean_iou": iou,
                       "box_recall": recall, "config": _jsonable(asdict(cfg)), "images": rows}, f, indent=1)
        files.append(json_path)
        model_path = os.path.join(out_dir, "model.pt")
        state = {f"backbone.{k}": v.detach().cpu() for k, v in model.state_dict().items()}
        state.update({f"projector.{k}": v.detach().cpu() for k, v in projector.state_dict().items()})
        torch.save(state, model_path)
        files.append(model_path)
        say(f"wrote {grid_path} (per image: image | ContraCAM T=1 | T={cfg.refined_iters} + boxes | "
            f"ground truth), {json_path} and {model_path}")
        say(f"  maps for your own images with this model: objaug cam IMAGES... --arch tiny_resnet_w{cfg.width} "
            f"--checkpoint {model_path} --projector {cfg.projector} --image-size {cfg.image_size} "
            f"--iters {cfg.refined_iters} --out OUT")
    return DemoResult(steps=steps, train_seconds=seconds, final_loss=loss, iou=iou, box_recall=recall,
                      files=files, config=_jsonable(asdict(cfg)), metrics=metrics)


def _headline_metrics(iou: dict[str, float], recall: dict[str, float], t_ref: int, center: float) -> dict[str, float]:
    """``metrics.json``: fractions in [0, 1]; ``ref_*`` with the reference code's settings (temperature 1,
    in-batch negatives, no edge refinement, boxes from the union of the iterations)."""
    return {
        "iou_t1": iou["contracam_trained_T1"], "iou_tref": iou[f"contracam_trained_T{t_ref}"],
        "recall_t1": recall["contracam_trained_T1"], "recall_tref": recall[f"contracam_trained_T{t_ref}"],
        "iou_center": center, "iou_random": iou["contracam_random_init_T1"],
        "ref_iou_t1": iou["contracam_reference_T1"], "ref_iou_tref": iou[f"contracam_reference_T{t_ref}"],
        "ref_recall_t1": recall["contracam_reference_T1"],
        "ref_recall_tref": recall[f"contracam_reference_T{t_ref}"],
        "t_ref": float(t_ref),
    }


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
