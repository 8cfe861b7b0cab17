"""Training for the bgbench protocol (issue 7): SSL models four ways, two-stage and online, and a supervised model.

Methods (``--method``): ``simclr`` (NT-Xent over both views), ``moco`` (MoCo v2: momentum encoder, a small
queue of keys, symmetric InfoNCE) and ``byol`` (EMA target, predictor, symmetric cosine loss). Arms:

* ``baseline``: the method's lightly-1.6 views (:func:`objaug.simclr_views` / ``moco_v2_views`` /
  ``byol_views``), whole-image random resized crops;
* ``crop``: the object-aware random crop (every view is cropped inside one of the image's CAM boxes);
* ``mixup``: background mixup of the first view (whole-image crops; the CAM mask gives the mixing ratio);
* ``both``: object-aware crop and background mixup.

Each object-aware arm runs in one of two modes:

* ``two-stage`` (the paper): ContraCAM of the same-seed *baseline* model over the whole SSL training set,
  computed once (:func:`compute_objects`), then fixed. Boxes come from T=10 refined maps, mixup masks
  from the T=1 maps (the paper's settings; both from one ContraCAM call with ``return_steps``). They are
  held in memory (numpy), not in an :class:`objaug.store.ObjectStore`: the data is a few thousand small
  images, and the protocol caches them as ``objects.npz`` next to the baseline's weights.
* ``oracle``: as two-stage, with ground-truth boxes (every object's tight box) and masks (the union of the
  objects' masks) instead of CAMs (:func:`oracle_objects`): the bound a perfect CAM would give;
* ``online`` (objaug's :class:`objaug.integrations.lightly.device_step.ObjectAwareStep`): ContraCAM (T=1)
  of the model being trained, on every step's batch (``refresh_every`` > 1 caches boxes per sample), from
  the momentum/target branch for MoCo and BYOL (``ObjectAwareStep.from_model``'s convention) and from the
  model itself for SimCLR; MoCo's queue is passed as extra CAM negatives.

Every run of one seed starts from the same initial weights (the seed), sees the same batch order and
draws its augmentations from a forked global RNG, so the arms of a seed are paired. Labels are never
used by the SSL runs. The supervised model (same backbone + a linear classifier, cross-entropy on the
single-object ``train`` split) is the Grad-CAM reference.

Backbone (``arch="resnet18"``): torchvision ResNet-18 (``fc = Identity``) with a 3x3 stride-2 stem
(instead of 7x7), max pooling kept, and ``layer4`` at stride 1: total stride 16, 512-d features, 4x4
final maps at 64 px (the standard stem gives 2x2). ``stem_stride=1`` (the large scale) gives stride 8.
``arch="tiny"`` is objaug's demo network (:func:`objaug.tools.archs.tiny_resnet`, width 8) for the CI test.
Models are kept in ``channels_last`` memory format (measured 1.3-1.6x faster forward+backward on the CPU).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from objaug import (
    IMAGENET_NORMALIZE,
    BackgroundMixup,
    ContraCAM,
    ObjectAwareAugment,
    ViewConfig,
    boxes_from_cam,
    byol_views,
    masks_to_uint8,
    moco_v2_views,
    simclr_views,
)
from objaug.config import BoxConfig, CamConfig, ScheduleConfig
from objaug.tools.archs import build_projector, demo_backbone, tiny_resnet

from .data import CAM_PROFILES, CAM_SETTINGS, OBJAUG_CAM_SETTINGS

__all__ = [
    "ARMS",
    "METHODS",
    "MODES",
    "SSLModel",
    "SupervisedModel",
    "TrainConfig",
    "batch_indices",
    "build_backbone",
    "compute_objects",
    "embed_all",
    "oracle_objects",
    "make_augment",
    "normalize",
    "run_name",
    "train_ssl",
    "train_supervised",
]

METHODS: tuple[str, ...] = ("simclr", "moco", "byol")
#: Backbones: torchvision ResNet-18 (small stem), objaug's demo network at width 8 ("tiny", CI) and at width 16
#: ("w16": stages 16-32-64-64, 8x8 maps at 64 px; the issue-13 pilot's supervised gate network) and at width 32 ("w32").
ARCHS: tuple[str, ...] = ("resnet18", "tiny", "w16", "w32")
ARMS: tuple[str, ...] = ("baseline", "crop", "mixup", "both")
#: ``oracle``: the two-stage mode fed ground-truth boxes and masks (:func:`oracle_objects`): what a perfect CAM gives.
MODES: tuple[str, ...] = ("two-stage", "online", "oracle")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (SSL or supervised).

    Attributes:
        method: ``"simclr"``, ``"moco"`` or ``"byol"`` (ignored by the supervised run).
        arm: ``"baseline"``, ``"crop"``, ``"mixup"`` or ``"both"``.
        mode: ``"two-stage"`` or ``"online"`` for the object-aware arms, ``None`` for the baseline.
        seed: initial weights, batch order and augmentations.
        arch: ``"resnet18"`` or ``"tiny"``.
        stem_stride: stride of the 3x3 stem of the ResNet-18 (2: 4x4 maps at 64 px; 1: 8x8).
        view_size: side of the augmented views (the frames' size S in the protocol).
        batch_size: base images per step (two views each).
        steps: optimiser steps.
        lr: peak AdamW learning rate (linear warm-up over ``warmup`` steps, then cosine to 0).
        warmup: warm-up steps.
        weight_decay: AdamW weight decay.
        temperature: softmax temperature of NT-Xent / InfoNCE.
        proj_hidden: hidden width of the projector (and BYOL's predictor).
        proj_dim: output width of the projector.
        queue_size: MoCo's queue of keys.
        momentum: base EMA momentum of MoCo's key encoder / BYOL's target (cosine schedule to 1 for BYOL).
        cam_iters: ContraCAM iterations of the online mode (the paper's T=1 for masks).
        refresh_every: online mode: run the CAM every N steps (N > 1 caches boxes per sample; not with mixup).
        box_threshold: ``boxes_from_cam`` threshold (0.5, the paper's).
        mixup_p: background mixup probability (the paper's 0.4).
        mixup_threshold: background mixup mask threshold (the paper's 0.2, or ``"otsu"``).
        mixup_fallback_mass: background mixup's ``fallback_mass`` (``None``: the paper's rule).
        cam_options: ``"reference"`` (:data:`.data.CAM_SETTINGS`) or ``"objaug"`` (:data:`.data.OBJAUG_CAM_SETTINGS`
            over the shipped defaults), the online mode's ContraCAM settings.
        mixup_queue: background mixup queue of backgrounds (the paper's 50).
        device: torch device string.
    """

    method: str = "simclr"
    arm: str = "baseline"
    mode: str | None = None
    seed: int = 0
    arch: str = "resnet18"
    stem_stride: int = 2
    view_size: int = 64
    batch_size: int = 128
    steps: int = 200
    lr: float = 2e-3
    warmup: int = 10
    weight_decay: float = 1e-4
    temperature: float = 0.2
    proj_hidden: int = 512
    proj_dim: int = 128
    queue_size: int = 1024
    momentum: float = 0.99
    cam_iters: int = 1
    refresh_every: int = 1
    box_threshold: float = 0.5
    mixup_p: float = 0.4
    mixup_threshold: float | Literal["otsu"] = 0.2
    mixup_fallback_mass: float | None = None
    mixup_queue: int = 50
    cam_options: Literal["reference", "objaug"] = "reference"
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}.")
        if self.arm not in ARMS:
            raise ValueError(f"arm must be one of {ARMS}, got {self.arm!r}.")
        if self.cam_options not in CAM_PROFILES:
            raise ValueError(f"cam_options must be one of {CAM_PROFILES}, got {self.cam_options!r}.")
        if self.arm == "baseline" and self.mode is not None:
            raise ValueError("the baseline arm has no mode (pass mode=None).")
        if self.arm != "baseline" and self.mode not in MODES:
            raise ValueError(f"arm {self.arm!r} needs mode in {MODES}, got {self.mode!r}.")
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}.")


def run_name(method: str, arm: str, mode: str | None) -> str:
    """The run's name in results: ``"simclr/baseline"``, ``"simclr/crop@online"``, ..."""
    return f"{method}/{arm}" if mode is None else f"{method}/{arm}@{mode}"


# ------------------------------------------------------------------------------------------------ models
def build_backbone(arch: str = "resnet18", *, stem_stride: int = 2) -> nn.Module:
    """A randomly initialised backbone, images (B, 3, S, S) -> GAP features (B, D).

    Args:
        arch: ``"resnet18"`` (torchvision, 3x3 stem of stride ``stem_stride``, max pooling, stride-1
            ``layer4``; D = 512) or ``"tiny"`` (:func:`objaug.tools.archs.tiny_resnet` of widths 8-16-32-32, a
            stride-2 stem and a stride-1 last stage; D = 32).
        stem_stride: 1 or 2 (``resnet18`` only).

    Returns:
        A torchvision ``ResNet`` (so objaug's encoder/head split applies) in train mode, on the CPU.
    """
    if arch == "tiny":
        return tiny_resnet(widths=(8, 16, 32, 32), stem_stride=2, strides=(1, 2, 2, 1))
    if arch in ("w16", "w32"):
        return demo_backbone(width=int(arch[1:]))
    if arch != "resnet18":
        raise ValueError(f"unknown arch {arch!r}")
    from torchvision.models import resnet18

    model = resnet18(weights=None)
    model.fc = nn.Identity()  # type: ignore[assignment]
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=stem_stride, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    block = model.layer4[0]
    block.conv1.stride = (1, 1)  # type: ignore[union-attr]
    assert block.downsample is not None
    block.downsample[0].stride = (1, 1)  # type: ignore[union-attr]
    return model


def feature_dim(arch: str) -> int:
    """The backbone's feature dimension D."""
    return {"tiny": 32, "w16": 64, "w32": 128}.get(arch, 512)


def _mlp(in_dim: int, hidden: int, out: int) -> nn.Module:
    proj = build_projector(f"bn:{hidden}-{out}", in_dim)
    assert proj is not None
    return proj


class SSLModel(nn.Module):
    """A backbone with the method's heads and, for MoCo/BYOL, a momentum branch.

    Attributes:
        backbone: the online backbone (the one probed).
        projector: the online projector (SimCLR, BYOL: Linear-BN-ReLU-Linear; MoCo v2: Linear-ReLU-Linear).
        predictor: BYOL's predictor (``None`` otherwise).
        backbone_m, projector_m: MoCo's key encoder / BYOL's target (``None`` for SimCLR), EMA of the online.
        queue: MoCo's (Q, D) queue of normalised keys (a buffer; empty for the others). It starts with
            random unit vectors (as MoCo); ``queue_filled`` counts the real keys (the ContraCAM negatives).
    """

    queue: Tensor
    queue_ptr: Tensor
    queue_filled: Tensor

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__()
        self.method = cfg.method
        self.temperature = cfg.temperature
        d = feature_dim(cfg.arch)
        self.backbone = build_backbone(cfg.arch, stem_stride=cfg.stem_stride)
        if cfg.method == "moco":
            self.projector: nn.Module = nn.Sequential(nn.Linear(d, cfg.proj_hidden), nn.ReLU(inplace=True),
                                                      nn.Linear(cfg.proj_hidden, cfg.proj_dim))
        else:
            self.projector = _mlp(d, cfg.proj_hidden, cfg.proj_dim)
        self.predictor: nn.Module | None = (_mlp(cfg.proj_dim, cfg.proj_hidden, cfg.proj_dim)
                                            if cfg.method == "byol" else None)
        self.backbone_m: nn.Module | None = None
        self.projector_m: nn.Module | None = None
        if cfg.method in ("moco", "byol"):
            self.backbone_m = copy.deepcopy(self.backbone).requires_grad_(False)
            self.projector_m = copy.deepcopy(self.projector).requires_grad_(False)
        q = cfg.queue_size if cfg.method == "moco" else 0
        self.register_buffer("queue", F.normalize(torch.randn(q, cfg.proj_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.int64))
        self.register_buffer("queue_filled", torch.zeros((), dtype=torch.int64))

    def cam_branch(self) -> tuple[nn.Module, nn.Module]:
        """(backbone, projector) whose ContraCAM drives the online mode: the momentum branch if any."""
        if self.backbone_m is not None and self.projector_m is not None:
            return self.backbone_m, self.projector_m
        return self.backbone, self.projector

    def queue_negatives(self) -> Tensor | None:
        """MoCo's filled part of the queue, (n, D), as extra ContraCAM negatives (``None`` otherwise)."""
        n = int(self.queue_filled)
        return self.queue[:n].detach() if n > 0 else None

    @torch.no_grad()
    def momentum_update(self, tau: float) -> None:
        """EMA update of the momentum branch: ``m = tau * m + (1 - tau) * online`` (buffers copied)."""
        if self.backbone_m is None or self.projector_m is None:
            return
        for online, target in ((self.backbone, self.backbone_m), (self.projector, self.projector_m)):
            for p_on, p_t in zip(online.parameters(), target.parameters(), strict=True):
                p_t.lerp_(p_on.detach(), 1.0 - tau)
            for b_on, b_t in zip(online.buffers(), target.buffers(), strict=True):
                b_t.copy_(b_on)

    @torch.no_grad()
    def _enqueue(self, keys: Tensor) -> None:
        q = self.queue.shape[0]
        if q == 0:
            return
        keys = keys[:q]
        n = keys.shape[0]
        idx = (self.queue_ptr + torch.arange(n, device=keys.device)) % q
        self.queue.index_copy_(0, idx, keys)
        self.queue_ptr.copy_((self.queue_ptr + n) % q)
        self.queue_filled.copy_(torch.clamp(self.queue_filled + n, max=q))

    def loss(self, v1: Tensor, v2: Tensor) -> Tensor:
        """The method's loss of two batches of views (B, 3, s, s) (normalised). Updates MoCo's queue."""
        b = v1.shape[0]
        if self.method == "simclr":
            from objaug.tools.losses import nt_xent

            z = self.projector(self.backbone(torch.cat([v1, v2])))
            return nt_xent(z[:b], z[b:], temperature=self.temperature)
        assert self.backbone_m is not None and self.projector_m is not None
        x = torch.cat([v1, v2])
        z = self.projector(self.backbone(x))
        with torch.no_grad():
            # Keys in train-mode BN over two halves of a random permutation of the views ("shuffle BN" on
            # one device): a key's batch statistics then differ from its query's, so BN cannot leak which
            # samples are the positives (MoCo's single-device cheat).
            self.backbone_m.train()
            self.projector_m.train()
            perm = torch.randperm(2 * b, device=x.device)
            halves = [self.projector_m(self.backbone_m(x[part])) for part in perm.chunk(2)]
            k = torch.empty_like(z).index_copy_(0, perm, torch.cat(halves))
        if self.method == "byol":
            assert self.predictor is not None
            p = F.normalize(self.predictor(z), dim=1)
            k = F.normalize(k, dim=1)
            swapped = torch.cat([k[b:], k[:b]])
            return (2 - 2 * (p * swapped).sum(dim=1)).mean()
        # MoCo v2, symmetric: query of view 1 vs key of view 2 and vice versa; negatives from the queue.
        q = F.normalize(z, dim=1)
        k = F.normalize(k, dim=1)
        swapped = torch.cat([k[b:], k[:b]])
        pos = (q * swapped).sum(dim=1, keepdim=True)
        neg = q @ self.queue.clone().t()  # clone: enqueued below (random keys until filled, as MoCo)
        logits = torch.cat([pos, neg], dim=1) / self.temperature
        loss = F.cross_entropy(logits, torch.zeros(2 * b, dtype=torch.long, device=q.device))
        self._enqueue(k[:b])  # one view's keys per step
        return loss


class SupervisedModel(nn.Module):
    """The backbone with a linear classifier (the Grad-CAM reference)."""

    def __init__(self, arch: str, n_classes: int, *, stem_stride: int = 2) -> None:
        super().__init__()
        self.backbone = build_backbone(arch, stem_stride=stem_stride)
        self.classifier = nn.Linear(feature_dim(arch), n_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Images (B, 3, S, S) normalised -> logits (B, C)."""
        return self.classifier(self.backbone(x))


# ------------------------------------------------------------------------------------------------ data
def normalize(x: Tensor) -> Tensor:
    """ImageNet normalisation of (B, 3, H, W) images in [0, 1] (what every model here expects)."""
    mean = torch.tensor(IMAGENET_NORMALIZE["mean"], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_NORMALIZE["std"], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def to_float_images(images: np.ndarray | Tensor, device: torch.device | str = "cpu") -> Tensor:
    """(N, S, S, 3) uint8 (numpy or torch) -> (N, 3, S, S) float32 in [0, 1] on ``device``."""
    t = torch.as_tensor(images).to(device)
    return t.permute(0, 3, 1, 2).float().div_(255.0).contiguous()


def batch_indices(n: int, batch_size: int, steps: int, *, seed: int) -> Iterator[Tensor]:
    """``steps`` batches of dataset indexes: epochs of a seeded permutation, ragged ends dropped.

    Args:
        n: dataset size (>= 2).
        batch_size: indexes per batch (clipped to ``n``).
        steps: number of batches.
        seed: the permutations' seed.

    Yields:
        (b,) int64 CPU tensors.
    """
    gen = torch.Generator().manual_seed(10_007 * seed + 17)
    b = min(batch_size, n)
    per_epoch = n // b
    done = 0
    while done < steps:
        perm = torch.randperm(n, generator=gen)
        for i in range(min(per_epoch, steps - done)):
            yield perm[i * b:(i + 1) * b]
        done += min(per_epoch, steps - done)


def method_views(method: str, size: int, arm: str) -> list[ViewConfig]:
    """The method's lightly-1.6 views at ``size`` for an arm (mixup on view 1; ``mixup`` arm: whole-image crops)."""
    mixup = arm in ("mixup", "both")
    make = {"simclr": simclr_views, "moco": moco_v2_views, "byol": byol_views}[method]
    views = make(size, mixup=mixup)
    if arm == "mixup":
        views = [dataclasses.replace(v, object_crop=False) for v in views]
    return views


def make_augment(cfg: TrainConfig) -> ObjectAwareAugment:
    """The run's batched view pipeline (without a CAM: boxes/masks are passed per call or by the step)."""
    views = method_views(cfg.method, cfg.view_size, cfg.arm)
    mixup = None
    if cfg.arm in ("mixup", "both"):
        mixup = BackgroundMixup(p=cfg.mixup_p, threshold=cfg.mixup_threshold,
                                fallback_mass=cfg.mixup_fallback_mass, queue_size=cfg.mixup_queue,
                                check_inputs=False)
    return ObjectAwareAugment(views, mixup=mixup, box_config=BoxConfig(threshold=cfg.box_threshold),
                              check_inputs=False)


def _lr_at(step: int, cfg: TrainConfig) -> float:
    warm = min(1.0, (step + 1) / max(1, cfg.warmup))
    return cfg.lr * warm * 0.5 * (1.0 + math.cos(math.pi * step / max(1, cfg.steps)))


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False, disable=not enabled, dynamic_ncols=True)


# ------------------------------------------------------------------------------------------------ two-stage
@torch.no_grad()
def compute_objects(backbone: nn.Module, projector: nn.Module | None, images: Tensor, *, iters: int = 10,
                    batch_size: int = 128, box_threshold: float = 0.5, max_boxes: int = 4,
                    progress: bool = False, cam_kwargs: dict[str, Any] | None = None,
                    bank: bool = False) -> dict[str, np.ndarray]:
    """ContraCAM boxes and masks of a whole image set with a fixed model (the two-stage mode's first stage).

    One ContraCAM call per batch (``iters`` refinement iterations, ``return_steps``): boxes from the refined
    union (the paper's T=10 for boxes), soft masks from the first iteration (the paper's T=1 for mixup).
    Batches are near-equal consecutive chunks (ContraCAM contrasts each image with its batch).

    Args:
        backbone: the model's backbone (a torchvision ResNet); put back as found.
        projector: its projector (appended to the head) or ``None``.
        images: (N, 3, S, S) float in [0, 1] on the model's device, N >= 2.
        iters: refinement iterations T for the boxes.
        batch_size: ContraCAM batch size.
        box_threshold: ``boxes_from_cam`` threshold.
        max_boxes: box slots K.
        progress: show a progress bar.
        cam_kwargs: ContraCAM options (default :data:`.data.CAM_SETTINGS`, the reference's).
        bank: also contrast every batch with the embeddings of all ``images`` (``ContraCAM.embed``; with
            ``hard_negatives`` the nearest are searched there too, never an image's own copy).

    Returns:
        ``{"boxes": (N, K, 4) float32, "valid": (N, K) bool, "masks": (N, 1, S, S) uint8 (0..255, T=1 maps)}``.
    """
    cam = ContraCAM(backbone, projector=projector, iters=iters, check_finite=False,
                    **(CAM_SETTINGS if cam_kwargs is None else cam_kwargs))  # type: ignore[arg-type]
    negatives = embed_all(cam, images, batch_size) if bank else None
    n = images.shape[0]
    chunks = torch.tensor_split(torch.arange(n), max(1, math.ceil(n / batch_size)))
    boxes, valid, masks = [], [], []
    bar = _progress(len(chunks), "two-stage CAMs", progress)
    for idx in chunks:
        union, steps = cam(normalize(images[idx]), negatives, return_steps=True)
        b, v = boxes_from_cam(union, threshold=box_threshold, max_boxes=max_boxes)
        boxes.append(b.cpu())
        valid.append(v.cpu())
        masks.append(masks_to_uint8(steps[0]).cpu())
        bar.update(1)
    bar.close()
    return {"boxes": torch.cat(boxes).numpy(), "valid": torch.cat(valid).numpy(),
            "masks": torch.cat(masks).numpy()}


def embed_all(cam: ContraCAM, images: Tensor, batch_size: int = 256) -> Tensor:
    """(N, D) unit-norm embeddings of (N, 3, S, S) images in [0, 1] by ``cam``'s model (a CAM bank)."""
    return torch.cat([cam.embed(normalize(images[i:i + batch_size])) for i in range(0, images.shape[0], batch_size)])


def oracle_objects(single: dict[str, np.ndarray], multi: dict[str, np.ndarray], *,
                   max_boxes: int = 4) -> dict[str, np.ndarray]:
    """Ground-truth boxes and masks of the SSL set (single-object images, then multi-object scenes), in
    :func:`compute_objects`' format: the oracle arms' perfect CAM.

    Args:
        single: a single-object split (``boxes`` (N, 4) normalised xyxy, ``masks`` (N, S, S) in {0, 1}).
        multi: a multi-object split (``boxes`` (M, 4, 4), ``masks`` (M, 4, S, S), ``n_objects`` (M,)).
        max_boxes: box slots K (>= 4, the scenes' object slots).

    Returns:
        ``{"boxes": (N+M, K, 4) float32, "valid": (N+M, K) bool, "masks": (N+M, 1, S, S) uint8 (0 or 255)}``.
    """
    n, m = single["boxes"].shape[0], multi["boxes"].shape[0]
    slots = multi["boxes"].shape[1]
    if max_boxes < slots:
        raise ValueError(f"max_boxes must be >= {slots} (the scenes' object slots), got {max_boxes}.")
    boxes = np.zeros((n + m, max_boxes, 4), np.float32)
    boxes[..., 2:] = 1.0
    valid = np.zeros((n + m, max_boxes), bool)
    boxes[:n, 0] = single["boxes"]
    valid[:n, 0] = True
    boxes[n:, :slots] = multi["boxes"]
    valid[n:, :slots] = np.arange(slots)[None] < multi["n_objects"][:, None]
    boxes[~valid] = (0.0, 0.0, 1.0, 1.0)  # empty slots: the whole frame, never used (valid is False)
    union = np.concatenate([single["masks"], multi["masks"].max(axis=1)]).astype(np.uint8) * 255
    return {"boxes": boxes, "valid": valid, "masks": union[:, None]}


# ------------------------------------------------------------------------------------------------ training
def _checkpoint(fn: Callable[[int, SSLModel], None], step: int, model: SSLModel, device: torch.device) -> None:
    """Run ``fn(step, model)`` in eval mode under a forked RNG, then put the model back in train mode."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        model.eval()
        fn(step, model)
        model.train()


def train_ssl(cfg: TrainConfig, images: Tensor, *, objects: dict[str, np.ndarray] | None = None,
              progress: bool = True, log_every: int = 0,
              on_log: Callable[[int, float], None] | None = None,
              on_checkpoint: Callable[[int, SSLModel], None] | None = None,
              checkpoints: tuple[int, ...] = ()) -> tuple[SSLModel, dict[str, Any]]:
    """Train one SSL run.

    Args:
        cfg: the run (method, arm, mode, schedule).
        images: (N, 3, S, S) float in [0, 1], the SSL training set, on ``cfg.device``.
        objects: the two-stage mode's :func:`compute_objects` output for ``images`` (required then).
        progress: tqdm bar.
        log_every: call ``on_log(step, loss)`` every this many steps (0: never).
        on_log: the logging callback.
        on_checkpoint: called as ``on_checkpoint(step, model)`` after the optimiser steps listed in
            ``checkpoints`` (and with step 0 before training if 0 is listed), in eval mode under a forked RNG
            (training continues as without it); the time it takes is not counted in ``seconds``.
        checkpoints: steps at which to call ``on_checkpoint``.

    Returns:
        ``(model, stats)``: the trained model (eval mode, on ``cfg.device``) and
        ``{"steps", "seconds", "final_loss", "loss_curve", "object_fraction", "mixed_fraction"}``
        (the last two: mean share of views cropped inside a box / mixed, over the run).
    """
    device = torch.device(cfg.device)
    n = images.shape[0]
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(cfg.seed)
        model = SSLModel(cfg).to(device).to(memory_format=torch.channels_last)
        augment = make_augment(cfg).to(device)
        step_fn: Any = None
        boxes_t = valid_t = masks_t = None
        if cfg.mode in ("two-stage", "oracle"):
            if objects is None:
                raise ValueError(f"the {cfg.mode} mode needs objects= (compute_objects of the baseline model, "
                                 "or oracle_objects).")
            boxes_t = torch.as_tensor(objects["boxes"]).to(device)
            valid_t = torch.as_tensor(objects["valid"]).to(device)
            masks_t = torch.as_tensor(objects["masks"]).to(device)
        elif cfg.mode == "online":
            from objaug.integrations.lightly.device_step import ObjectAwareStep

            cam_bb, cam_proj = model.cam_branch()
            online_cam = None if cfg.cam_options == "reference" else ContraCAM(
                cam_bb, projector=cam_proj, iters=cfg.cam_iters, check_finite=False, **OBJAUG_CAM_SETTINGS)  # type: ignore[arg-type]
            step_fn = ObjectAwareStep(
                augment, model=None if online_cam else cam_bb, cam=online_cam,
                projector=None if online_cam else cam_proj,
                cam_config=None if online_cam else CamConfig(iters=cfg.cam_iters),
                negatives=model.queue_negatives if cfg.method == "moco" else None,
                schedule=ScheduleConfig(every_n_steps=cfg.refresh_every),
                num_samples=n if cfg.refresh_every > 1 else None,
                box_config=BoxConfig(threshold=cfg.box_threshold),
            )
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        curve: list[float] = []
        obj_frac: list[Tensor] = []
        mix_frac: list[Tensor] = []
        bar = _progress(cfg.steps, f"{run_name(cfg.method, cfg.arm, cfg.mode)} s{cfg.seed}", progress)
        if on_checkpoint is not None and 0 in checkpoints:
            _checkpoint(on_checkpoint, 0, model, device)
        start = time.perf_counter()
        loss = torch.zeros(())
        model.train()
        for step, idx in enumerate(batch_indices(n, cfg.batch_size, cfg.steps, seed=cfg.seed)):
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, cfg)
            idx_d = idx.to(device)
            x = images.index_select(0, idx_d)
            with torch.no_grad():
                if step_fn is not None:
                    views = step_fn(x, indexes=idx_d)
                elif boxes_t is not None and valid_t is not None and masks_t is not None:
                    masks = masks_t.index_select(0, idx_d).float().div_(255.0) if cfg.arm != "crop" else None
                    views = augment(x, boxes_t.index_select(0, idx_d), valid_t.index_select(0, idx_d), masks)
                else:
                    views = augment(x)
            params_used = augment._params
            if params_used:
                obj_frac.append(params_used[0]["object"].float().mean())
                if "mixed" in params_used[0]:
                    mix_frac.append(params_used[0]["mixed"].float().mean())
            loss = model.loss(views[0], views[1])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if model.backbone_m is not None:
                base = cfg.momentum
                tau = 1 - (1 - base) * (math.cos(math.pi * step / max(1, cfg.steps)) + 1) / 2 \
                    if cfg.method == "byol" else base
                model.momentum_update(tau)
            if on_checkpoint is not None and step + 1 in checkpoints:
                paused = time.perf_counter()
                _checkpoint(on_checkpoint, step + 1, model, device)
                start += time.perf_counter() - paused
            if log_every and (step + 1) % log_every == 0:
                value = float(loss.detach())
                curve.append(round(value, 4))
                if on_log is not None:
                    on_log(step + 1, value)
                bar.set_postfix(loss=f"{value:.3f}", refresh=False)
            bar.update(1)
        bar.close()
        seconds = time.perf_counter() - start
    model.eval()
    stats = {
        "steps": cfg.steps,
        "seconds": round(seconds, 2),
        "final_loss": round(float(loss.detach()), 4),
        "loss_curve": curve,
        "object_fraction": round(float(torch.stack(obj_frac).mean()), 4) if obj_frac else 0.0,
        "mixed_fraction": round(float(torch.stack(mix_frac).mean()), 4) if mix_frac else 0.0,
    }
    return model, stats


def train_supervised(cfg: TrainConfig, images: Tensor, labels: Tensor, n_classes: int, *,
                     progress: bool = True) -> tuple[SupervisedModel, dict[str, Any]]:
    """Train the supervised reference: cross-entropy on labelled images, the same steps and batch as SSL.

    Augmentation: one view, random resized crop (scale 0.2-1) + flip + mild colour jitter (0.4, p 0.8),
    no grayscale or blur.

    Args:
        cfg: the schedule (method/arm/mode ignored).
        images: (N, 3, S, S) float in [0, 1] on ``cfg.device``.
        labels: (N,) int64 on ``cfg.device``.
        n_classes: C.
        progress: tqdm bar.

    Returns:
        ``(model, stats)`` with ``{"steps", "seconds", "final_loss", "train_accuracy"}`` (accuracy on the
        augmented batches of the last 10 % of steps).
    """
    device = torch.device(cfg.device)
    n = images.shape[0]
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(cfg.seed)
        model = SupervisedModel(cfg.arch, n_classes, stem_stride=cfg.stem_stride).to(device).to(
            memory_format=torch.channels_last)
        view = ViewConfig(input_size=cfg.view_size, min_scale=0.2, cj_strength=0.5, random_gray_scale=0.0,
                          gaussian_blur=0.0)
        augment = ObjectAwareAugment([view], check_inputs=False).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        bar = _progress(cfg.steps, f"supervised s{cfg.seed}", progress)
        start = time.perf_counter()
        loss = torch.zeros(())
        correct: list[Tensor] = []
        model.train()
        for step, idx in enumerate(batch_indices(n, cfg.batch_size, cfg.steps, seed=cfg.seed)):
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, cfg)
            idx_d = idx.to(device)
            with torch.no_grad():
                (x,) = augment(images.index_select(0, idx_d))
            y = labels.index_select(0, idx_d)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step >= 0.9 * cfg.steps:
                correct.append((logits.argmax(1) == y).float().mean().detach())
            bar.update(1)
        bar.close()
        seconds = time.perf_counter() - start
    model.eval()
    return model, {"steps": cfg.steps, "seconds": round(seconds, 2), "final_loss": round(float(loss.detach()), 4),
                   "train_accuracy": round(float(torch.stack(correct).mean()), 4) if correct else float("nan")}
