"""Evaluation of frozen models for the bgbench protocol (issue 7): linear probes and localisation.

* **Background probes**: global-average-pooled backbone features, standardised with the training
  features' mean and std, a multinomial logistic regression (full batch, L-BFGS, float64, fixed L2 weight
  decay, zero initialisation: deterministic) trained on the single-object ``train`` split, accuracy on
  ``original``, ``mixed_same``, ``mixed_rand``, ``only_fg``; BG-gap = mixed_same - mixed_rand.
* **Per-object probe** (COCO-Crop-like): every object of the multi-object scenes cropped by its own
  visible box (10 % margin per side), resized to S x S (``torchvision.ops.roi_align``, bilinear); a probe
  trained on the ``multi_train`` crops, accuracy on the ``multi_test`` crops.
* **Localisation** on ``original`` (single object) and ``multi_test`` (2-4 objects): ContraCAM maps at
  T=1 and T=10 (one call with ``return_steps``: the T=1 map is the first step) of the backbone + projector,
  in consecutive batches of ``cam_batch`` images (ContraCAM contrasts an image with its batch). Mean mask
  IoU (:func:`objaug.mask_iou`, map >= 0.5 vs the union of the ground-truth masks), CorLoc@0.5
  (:func:`objaug.box_corloc` of the top :func:`objaug.boxes_from_cam` box vs the ground-truth boxes; the
  whole-image fallback box counts where nothing was found) and box mIoU (:func:`objaug.best_box_iou`).
  References: the centre-box prior (:func:`objaug.center_box_prior` / :func:`objaug.center_boxes`), and
  Grad-CAM (predicted class, ``layer4``, own implementation) of the supervised model, scored the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from objaug import (
    ContraCAM,
    best_box_iou,
    box_corloc,
    boxes_from_cam,
    center_box_prior,
    center_boxes,
    map_contrast,
    mask_iou,
    split_model,
)

from .data import CAM_SETTINGS
from .train import SupervisedModel, normalize, to_float_images

__all__ = [
    "PROBE_SPLITS",
    "EvalConfig",
    "EvalData",
    "LocSet",
    "contracam_maps",
    "evaluate_center_prior",
    "evaluate_model",
    "extract_features",
    "gradcam_maps",
    "linear_probe",
    "localisation_scores",
    "object_crops",
    "prepare_eval_data",
]

#: Test splits of the background probe.
PROBE_SPLITS: tuple[str, ...] = ("original", "mixed_same", "mixed_rand", "only_fg")


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation settings.

    Attributes:
        probe_weight_decay: L2 penalty ``0.5 * wd * ||W||^2`` of the probes (on standardised features).
        probe_iters: L-BFGS iterations of the probes.
        feature_batch: images per forward pass for features.
        cam_batch: ContraCAM batch (the negatives of each image).
        cam_iters: refinement iterations of the refined maps (reported as ``_T<cam_iters>``).
        n_loc: localisation images per split (the first ``n_loc``), ``None`` for all.
        n_probe_train: images of ``train`` for the background probe (the first ones; rows are shuffled
            across classes), ``None`` for all.
        n_probe_test: images per background test split (the same rows in each), ``None`` for all.
        n_crops_train: object crops of ``multi_train`` for the per-object probe (first ones), ``None``: all.
        n_crops_test: object crops of ``multi_test``, ``None`` for all.
        crop_margin: per-object crops: margin per side, fraction of the box size.
        min_crop_px: per-object crops: skip objects whose visible box is narrower/shorter than this.
        threshold: map threshold of mask IoU and boxes (the method's 0.5).
        center_fractions: areas of the centre-box priors.
    """

    probe_weight_decay: float = 1e-3
    probe_iters: int = 100
    feature_batch: int = 256
    cam_batch: int = 64
    cam_iters: int = 10
    n_loc: int | None = 256
    n_probe_train: int | None = None
    n_probe_test: int | None = None
    n_crops_train: int | None = None
    n_crops_test: int | None = None
    crop_margin: float = 0.1
    min_crop_px: int = 3
    threshold: float = 0.5
    center_fractions: tuple[float, ...] = (0.25, 0.5)


@dataclass
class LocSet:
    """Images and ground truth of one localisation split.

    Attributes:
        images: (N, 3, S, S) float in [0, 1].
        masks: (N, 1, S, S) bool union of the objects' masks.
        boxes: (N, K, 4) float32 normalised xyxy.
        valid: (N, K) bool.
    """

    images: Tensor
    masks: Tensor
    boxes: Tensor
    valid: Tensor


@dataclass
class EvalData:
    """Everything the evaluation reads, prepared once (:func:`prepare_eval_data`), on one device.

    Attributes:
        n_classes: C.
        probe_images: ``{"train", "original", ...}`` -> (N, 3, S, S) float in [0, 1].
        probe_labels: the same keys -> (N,) int64.
        crop_images: ``{"multi_train", "multi_test"}`` -> (M, 3, S, S) object crops.
        crop_labels: the same keys -> (M,) int64.
        loc: ``{"single", "multi"}`` -> :class:`LocSet`.
    """

    n_classes: int
    probe_images: dict[str, Tensor]
    probe_labels: dict[str, Tensor]
    crop_images: dict[str, Tensor]
    crop_labels: dict[str, Tensor]
    loc: dict[str, LocSet] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ data
def object_crops(images: Tensor, boxes: Tensor, labels: Tensor, *, size: int, margin: float = 0.1,
                 min_px: int = 3) -> tuple[Tensor, Tensor]:
    """Crop every object of multi-object scenes by its own box, resized to ``size`` (batched roi_align).

    Args:
        images: (N, 3, S, S) float.
        boxes: (N, K, 4) normalised xyxy visible boxes.
        labels: (N, K) int64, -1 in empty slots.
        size: output side.
        margin: margin per side, fraction of the box's width/height (clipped to the image).
        min_px: objects whose box is narrower or shorter than this many pixels are skipped.

    Returns:
        ``(crops, crop_labels)``: (M, 3, size, size) float and (M,) int64, in (scene, slot) order.
    """
    from torchvision.ops import roi_align

    n, k = labels.shape
    s_h, s_w = images.shape[-2:]
    scale = torch.tensor([s_w, s_h, s_w, s_h], dtype=torch.float32, device=images.device)
    px = boxes.to(images.device, torch.float32) * scale
    wh = (px[..., 2:] - px[..., :2])
    keep = (labels >= 0).to(images.device) & (wh >= min_px).all(dim=-1)
    pad = torch.cat([wh, wh], dim=-1) * margin * torch.tensor([-1.0, -1.0, 1.0, 1.0], device=images.device)
    px = torch.minimum(torch.maximum(px + pad, torch.zeros_like(px)), scale.expand_as(px))
    batch_idx = torch.arange(n, device=images.device).view(n, 1).expand(n, k)
    rois = torch.cat([batch_idx[keep].unsqueeze(1).float(), px[keep]], dim=1)
    crops = roi_align(images, rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=2, aligned=True)
    return crops, labels.to(images.device)[keep]


def prepare_eval_data(load: Callable[[str], Mapping[str, np.ndarray]], n_classes: int, cfg: EvalConfig, *,
                      device: torch.device | str = "cpu") -> EvalData:
    """Load the evaluation splits once.

    Args:
        load: ``load(split_name) -> dict of arrays`` (FORMAT.md), e.g. ``partial(load_split, data_dir)``.
        n_classes: C.
        cfg: evaluation settings (``n_loc``, crop settings).
        device: where to keep the tensors.

    Returns:
        An :class:`EvalData`.
    """
    probe_images: dict[str, Tensor] = {}
    probe_labels: dict[str, Tensor] = {}
    single: dict[str, Mapping[str, np.ndarray]] = {}
    for name in ("train", *PROBE_SPLITS):
        arrays = load(name)
        single[name] = arrays
        cap = cfg.n_probe_train if name == "train" else cfg.n_probe_test
        probe_images[name] = to_float_images(arrays["images"][:cap], device)
        probe_labels[name] = torch.as_tensor(arrays["labels"][:cap], dtype=torch.int64).to(device)
    size = probe_images["train"].shape[-1]
    crop_images: dict[str, Tensor] = {}
    crop_labels: dict[str, Tensor] = {}
    multi: dict[str, Mapping[str, np.ndarray]] = {}
    for name in ("multi_train", "multi_test"):
        arrays = load(name)
        multi[name] = arrays
        crops, labels = object_crops(
            to_float_images(arrays["images"], device), torch.as_tensor(arrays["boxes"]),
            torch.as_tensor(arrays["labels"], dtype=torch.int64), size=size, margin=cfg.crop_margin,
            min_px=cfg.min_crop_px)
        cap = cfg.n_crops_train if name == "multi_train" else cfg.n_crops_test
        crop_images[name], crop_labels[name] = crops[:cap], labels[:cap]
    orig = single["original"]
    n_single = len(orig["labels"]) if cfg.n_loc is None else min(cfg.n_loc, len(orig["labels"]))
    loc = {"single": LocSet(
        images=probe_images["original"][:n_single],
        masks=torch.as_tensor(orig["masks"][:n_single]).to(device).bool().unsqueeze(1),
        boxes=torch.as_tensor(orig["boxes"][:n_single]).to(device).float().unsqueeze(1),
        valid=torch.ones(n_single, 1, dtype=torch.bool, device=device),
    )}
    mt = multi["multi_test"]
    n_multi = len(mt["images"]) if cfg.n_loc is None else min(cfg.n_loc, len(mt["images"]))
    loc["multi"] = LocSet(
        images=to_float_images(mt["images"][:n_multi], device),
        masks=torch.as_tensor(mt["masks"][:n_multi]).to(device).amax(dim=1, keepdim=True).bool(),
        boxes=torch.as_tensor(mt["boxes"][:n_multi]).to(device).float(),
        valid=torch.as_tensor(mt["labels"][:n_multi] >= 0).to(device),
    )
    return EvalData(n_classes=n_classes, probe_images=probe_images, probe_labels=probe_labels,
                    crop_images=crop_images, crop_labels=crop_labels, loc=loc)


# ------------------------------------------------------------------------------------------------ probes
@torch.no_grad()
def extract_features(backbone: nn.Module, images: Tensor, *, batch_size: int = 256) -> Tensor:
    """Frozen global-average-pooled features of images (B, 3, S, S) in [0, 1] -> (N, D) float32.

    The backbone runs in eval mode (BatchNorm running statistics) and is put back in its mode.
    """
    was_training = backbone.training
    backbone.eval()
    try:
        out = [backbone(normalize(images[i:i + batch_size])).float() for i in range(0, images.shape[0], batch_size)]
    finally:
        backbone.train(was_training)
    return torch.cat(out)


def linear_probe(train_x: Tensor, train_y: Tensor, tests: Mapping[str, tuple[Tensor, Tensor]], n_classes: int,
                 *, weight_decay: float = 1e-3, iters: int = 100) -> dict[str, float]:
    """A multinomial logistic-regression probe: fit on ``train``, accuracy on each test set.

    Features are standardised with the training mean and std; weights start at zero; full-batch L-BFGS
    (strong Wolfe line search) in float64 on the features' device: deterministic for fixed inputs.

    Args:
        train_x: (N, D) features; train_y: (N,) int64 labels in [0, C).
        tests: name -> ((M, D) features, (M,) labels).
        n_classes: C.
        weight_decay: L2 penalty ``0.5 * wd * ||W||^2`` added to the mean cross-entropy.
        iters: L-BFGS iterations.

    Returns:
        ``{"train": accuracy on the training set, name: accuracy, ...}`` in [0, 1].
    """
    x = train_x.double()
    mean = x.mean(dim=0)
    std = x.std(dim=0).clamp_min(1e-6)
    x = (x - mean) / std
    w = torch.zeros(x.shape[1], n_classes, dtype=torch.float64, device=x.device, requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float64, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=iters, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-7, tolerance_change=1e-10)

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x @ w + b, train_y) + 0.5 * weight_decay * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    out: dict[str, float] = {}
    with torch.no_grad():
        for name, (tx, ty) in {"train": (train_x, train_y), **tests}.items():
            logits = ((tx.double() - mean) / std) @ w + b
            out[name] = float((logits.argmax(dim=1) == ty).double().mean()) if ty.numel() else float("nan")
    return out


def probe_scores(backbone: nn.Module, data: EvalData, cfg: EvalConfig) -> dict[str, float]:
    """Background probes and the per-object probe of a backbone (keys ``probe/...``)."""
    feats = {k: extract_features(backbone, v, batch_size=cfg.feature_batch) for k, v in data.probe_images.items()}
    bg = linear_probe(feats["train"], data.probe_labels["train"],
                      {k: (feats[k], data.probe_labels[k]) for k in PROBE_SPLITS}, data.n_classes,
                      weight_decay=cfg.probe_weight_decay, iters=cfg.probe_iters)
    crop_feats = {k: extract_features(backbone, v, batch_size=cfg.feature_batch) for k, v in data.crop_images.items()}
    obj = linear_probe(crop_feats["multi_train"], data.crop_labels["multi_train"],
                       {"multi_test": (crop_feats["multi_test"], data.crop_labels["multi_test"])}, data.n_classes,
                       weight_decay=cfg.probe_weight_decay, iters=cfg.probe_iters)
    out = {f"probe/{k}": v for k, v in bg.items()}
    out["probe/bg_gap"] = bg["mixed_same"] - bg["mixed_rand"]
    out["probe/objects"] = obj["multi_test"]
    out["probe/objects_train"] = obj["train"]
    return out


# ------------------------------------------------------------------------------------------------ maps
def _chunks(n: int, batch: int) -> tuple[Tensor, ...]:
    """Near-equal consecutive index chunks of at most ``batch`` (so none has a single image)."""
    return torch.tensor_split(torch.arange(n), max(1, math.ceil(n / batch)))


def contracam_maps(backbone: nn.Module, projector: nn.Module | None, images: Tensor, *, iters: int = 10,
                   batch_size: int = 64) -> tuple[Tensor, Tensor]:
    """ContraCAM maps at T=1 and T=``iters`` from one refined call per batch.

    Args:
        backbone: a torchvision-ResNet-like backbone (objaug's automatic split); left as found.
        projector: its projector, or ``None``.
        images: (N, 3, S, S) float in [0, 1] (normalised here).
        iters: refinement iterations.
        batch_size: ContraCAM batch.

    Returns:
        ``(maps_t1, maps_tn)``, each (N, 1, S, S) float32 in [0, 1].
    """
    cam = ContraCAM(backbone, projector=projector, iters=iters, check_finite=False, **CAM_SETTINGS)  # type: ignore[arg-type]
    t1, tn = [], []
    for idx in _chunks(images.shape[0], batch_size):
        union, steps = cam(normalize(images[idx.to(images.device)]), return_steps=True)
        t1.append(steps[0])
        tn.append(union)
    return torch.cat(t1), torch.cat(tn)


def gradcam_maps(model: SupervisedModel, images: Tensor, *, batch_size: int = 64) -> Tensor:
    """Grad-CAM of the predicted class at the last spatial stage (``layer4``) of a supervised model.

    ``relu(sum_c mean_hw(d logit / d A_c) * A_c)``, upsampled bicubically to the image size (as ContraCAM)
    and min-max normalised per image (an all-zero map stays 0). Eval mode; the model is put back as found.

    Args:
        model: a :class:`SupervisedModel`.
        images: (N, 3, S, S) float in [0, 1].
        batch_size: images per pass.

    Returns:
        (N, 1, S, S) float32 in [0, 1].
    """
    split = split_model(model.backbone)
    was_training = model.training
    model.eval()
    out = []
    try:
        for i in range(0, images.shape[0], batch_size):
            x = normalize(images[i:i + batch_size])
            with torch.no_grad():
                feats = split.encoder(x)
            feats = feats.detach().requires_grad_(True)
            with torch.enable_grad():
                logits = model.classifier(split.head(feats))
                score = logits.gather(1, logits.argmax(dim=1, keepdim=True)).sum()
                (grads,) = torch.autograd.grad(score, feats)
            cam = F.relu((grads.mean(dim=(2, 3), keepdim=True) * feats.detach()).sum(dim=1, keepdim=True))
            cam = F.interpolate(cam, size=images.shape[-2:], mode="bicubic", align_corners=False).clamp_min(0)
            lo = cam.amin(dim=(2, 3), keepdim=True)
            hi = cam.amax(dim=(2, 3), keepdim=True)
            out.append(torch.where(hi > lo, (cam - lo) / (hi - lo).clamp_min(1e-12), torch.zeros_like(cam)))
    finally:
        model.train(was_training)
    return torch.cat(out).float()


def localisation_scores(maps: Tensor, loc: LocSet, *, threshold: float = 0.5) -> dict[str, float]:
    """Mean mask IoU, CorLoc@0.5 and box mIoU of maps against a split's ground truth.

    Args:
        maps: (N, 1, S, S) float in [0, 1].
        loc: the split's :class:`LocSet`.
        threshold: map threshold (mask IoU and ``boxes_from_cam``).

    Returns:
        ``{"iou", "corloc", "box_miou", "contrast"}``; ``contrast`` in [-1, 1] is the mean over images of
        :func:`objaug.metrics.map_contrast`, (mean map value on object pixels) − (mean map value on
        background pixels): positive when the maps favour the objects, negative when they favour the
        background (threshold-free).
    """
    maps = maps.to(loc.masks.device)
    iou = mask_iou(maps, loc.masks, threshold=threshold)
    boxes, valid = boxes_from_cam(maps, threshold=threshold)
    hit = box_corloc(boxes, valid, loc.boxes, loc.valid)
    miou = best_box_iou(boxes, valid, loc.boxes, loc.valid)
    contrast = map_contrast(maps, loc.masks)
    return {"iou": float(iou.mean()), "corloc": float(hit.float().mean()), "box_miou": float(miou.nanmean()),
            "contrast": float(contrast.nanmean())}


def evaluate_center_prior(data: EvalData, cfg: EvalConfig) -> dict[str, float]:
    """Localisation scores of the centre-box priors (keys ``loc/<split>/<metric>_center<fraction>``)."""
    out: dict[str, float] = {}
    for split, loc in data.loc.items():
        n, size = loc.images.shape[0], loc.images.shape[-1]
        for frac in cfg.center_fractions:
            prior = center_box_prior(n, size, fraction=frac, device=loc.masks.device)
            boxes, valid = center_boxes(n, fraction=frac, device=loc.masks.device)
            out[f"loc/{split}/iou_center{frac:g}"] = float(mask_iou(prior, loc.masks).mean())
            out[f"loc/{split}/corloc_center{frac:g}"] = float(box_corloc(boxes, valid, loc.boxes, loc.valid)
                                                              .float().mean())
            out[f"loc/{split}/box_miou_center{frac:g}"] = float(best_box_iou(boxes, valid, loc.boxes, loc.valid)
                                                                .nanmean())
    return out


def evaluate_model(kind: str, model: Any, data: EvalData, cfg: EvalConfig) -> dict[str, float]:
    """All metrics of one frozen model.

    Args:
        kind: ``"ssl"`` (an :class:`~benchmarks.bgbench.train.SSLModel` or anything with ``backbone`` and
            ``projector``: probes on the backbone, ContraCAM T=1 and T=``cam_iters`` of backbone + projector)
            or ``"supervised"`` (a :class:`SupervisedModel`: probes, Grad-CAM reported as T=1).
        model: the model (eval mode, on the data's device).
        data: :func:`prepare_eval_data`'s output.
        cfg: settings.

    Returns:
        A flat dict: ``probe/train``, ``probe/original``, ``probe/mixed_same``, ``probe/mixed_rand``,
        ``probe/only_fg``, ``probe/bg_gap``, ``probe/objects``, ``probe/objects_train``, and per localisation
        split (``single``, ``multi``) ``loc/<split>/{iou,corloc,box_miou}_T1`` (and ``_T<cam_iters>`` for SSL).
    """
    if kind not in ("ssl", "supervised"):
        raise ValueError(f"kind must be 'ssl' or 'supervised', got {kind!r}.")
    out = probe_scores(model.backbone, data, cfg)
    for split, loc in data.loc.items():
        if kind == "ssl":
            t1, tn = contracam_maps(model.backbone, model.projector, loc.images, iters=cfg.cam_iters,
                                    batch_size=cfg.cam_batch)
            named = {"T1": t1, f"T{cfg.cam_iters}": tn}
        else:
            named = {"T1": gradcam_maps(model, loc.images, batch_size=cfg.cam_batch)}
        for tag, maps in named.items():
            for metric, value in localisation_scores(maps, loc, threshold=cfg.threshold).items():
                out[f"loc/{split}/{metric}_{tag}"] = value
    return out
