"""Protocol v3's readouts of a frozen SSL encoder (issue 26): what each augmentation changed in it.

Every readout is a fraction in [0, 1] (``obj_bg_t1`` in [-1, 1]); linear probes are :func:`.evaluate.linear_probe`
(standardised frozen features, L-BFGS, deterministic). A *family* is a set of test splits: ``"val"``
(training objects on the val regions, held-out objects from ``val_heldout_``: the splits every setting is
chosen on) or ``"test"`` (the main splits and ``heldout_``: the reported numbers).

========================  ===========================================================  =========================
readout                   what it is                                                   an ideal debiased encoder
========================  ===========================================================  =========================
``original`` ...          v2's background probe (trained on the biased ``train``),     high everywhere, ``only_fg``
``only_fg``               accuracy on ``original`` / ``mixed_same`` / ``mixed_rand``   and ``mixed_rand`` close to
                          / ``only_fg``                                                ``original``
``bg_gap``                ``mixed_same`` − ``mixed_rand`` of that probe                 0
``bg_gap_unbiased``       the same with the probe trained on ``train_unbiased``         0 (no shortcut in the probe
                          (the same rows on random backgrounds)                        either)
``only_fg_unbiased``      that probe on ``only_fg`` (training objects, no background)   high
``bg_decodable``          a probe for the *background group* on ``mixed_rand``          chance (1/9): nothing of
                          features (first half of the rows → second half)              the background kept
``heldout_object``        probe trained on ``train_unbiased`` (class labels), tested   high: objects never seen in
                          on ``only_fg`` of **held-out objects**                       training recognised
``per_object``            v2's per-object probe, ``multi_train`` → ``multi_test``      high
                          object crops (test family only)
``iou_t1``, ``obj_bg_t1`` the encoder's own ContraCAM (reference settings, T=1) on     IoU above the centre box,
                          the first ``n_loc`` ``original`` images: mask IoU at 0.5,   ``obj − bg`` clearly > 0
                          mean map on the object minus on the background
========================  ===========================================================  =========================

The SSL loss curve (and ``ssl_loss``, its mean over the last 10 % of the run) comes from training
(:mod:`.v3_train`): an ideal debiased encoder reaches a low loss *with* the augmentation (it still tells the
images apart), rather than staying near chance.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .evaluate import LocSet, contracam_maps, extract_features, linear_probe, localisation_scores, object_crops
from .train import to_float_images

__all__ = ["FAMILY_PREFIXES", "READOUTS", "ReadoutConfig", "ReadoutData", "prepare_readouts", "readouts"]

#: family -> (prefix of the training-object splits, prefix of the held-out-object splits).
FAMILY_PREFIXES: dict[str, tuple[str, str]] = {"val": ("val_", "val_heldout_"), "test": ("", "heldout_")}
#: Every readout key :func:`readouts` can return.
READOUTS: tuple[str, ...] = ("original", "mixed_same", "mixed_rand", "only_fg", "bg_gap", "bg_gap_unbiased",
                             "only_fg_unbiased", "bg_decodable", "heldout_object", "per_object", "iou_t1",
                             "obj_bg_t1")
_BG = ("original", "mixed_same", "mixed_rand", "only_fg")


@dataclass(frozen=True)
class ReadoutConfig:
    """Settings of the readouts.

    Attributes:
        probe_iters: L-BFGS iterations of every probe.
        probe_weight_decay: their L2 penalty.
        feature_batch: images per forward pass.
        n_loc: images of ``original`` for the ContraCAM readouts.
        cam_batch: ContraCAM batch (an image's negatives).
        n_crops_train: ``multi_train`` object crops of the per-object probe (``None``: all).
        n_crops_test: ``multi_test`` object crops (``None``: all).
    """

    probe_iters: int = 100
    probe_weight_decay: float = 1e-3
    feature_batch: int = 256
    n_loc: int = 128
    cam_batch: int = 64
    n_crops_train: int | None = 1000
    n_crops_test: int | None = 600


@dataclass
class ReadoutData:
    """Images and labels of one family, prepared once (:func:`prepare_readouts`).

    Attributes:
        family: ``"val"`` or ``"test"``.
        n_classes: object classes C.
        n_groups: background groups.
        images: ``train``, ``train_unbiased``, the four background splits (unprefixed names) and
            ``heldout_only_fg`` (absent when the data has no held-out family for ``family``) -> (N, 3, S, S).
        labels: the same keys -> (N,) class labels.
        rand_groups: (N,) background group of each ``mixed_rand`` row.
        crops: ``{"multi_train", "multi_test"}`` object crops and labels (test family only).
        loc: the ContraCAM set (first ``n_loc`` of ``original``).
    """

    family: str
    n_classes: int
    n_groups: int
    images: dict[str, Tensor]
    labels: dict[str, Tensor]
    rand_groups: Tensor
    crops: dict[str, tuple[Tensor, Tensor]]
    loc: LocSet


def prepare_readouts(load: Callable[[str], Mapping[str, np.ndarray]], available: set[str], n_classes: int,
                     n_groups: int, family: str, cfg: ReadoutConfig, *, device: str = "cpu") -> ReadoutData:
    """Load one family's splits.

    Args:
        load: ``load(split) -> arrays`` (e.g. ``partial(load_split, data_dir)``).
        available: the split names the data has (its manifest's ``splits``).
        n_classes: C.
        n_groups: background groups.
        family: ``"val"`` or ``"test"``.
        cfg: settings.
        device: where to keep the tensors.

    Returns:
        A :class:`ReadoutData`.
    """
    own, held = FAMILY_PREFIXES[family]
    names = {"train": "train", "train_unbiased": "train_unbiased", **{b: own + b for b in _BG}}
    if held + "only_fg" in available:
        names["heldout_only_fg"] = held + "only_fg"
    images, labels, arrays = {}, {}, {}
    for key, split in names.items():
        arrays[key] = load(split)
        images[key] = to_float_images(arrays[key]["images"], device)
        labels[key] = torch.as_tensor(arrays[key]["labels"], dtype=torch.int64).to(device)
    crops: dict[str, tuple[Tensor, Tensor]] = {}
    if family == "test":
        size = images["train"].shape[-1]
        for name, cap in (("multi_train", cfg.n_crops_train), ("multi_test", cfg.n_crops_test)):
            m = load(name)
            x, y = object_crops(to_float_images(m["images"], device), torch.as_tensor(m["boxes"]),
                                torch.as_tensor(m["labels"], dtype=torch.int64), size=size)
            crops[name] = (x[:cap], y[:cap])
    orig = arrays["original"]
    n = min(cfg.n_loc, len(orig["labels"]))
    loc = LocSet(images=images["original"][:n],
                 masks=torch.as_tensor(orig["masks"][:n]).to(device).bool().unsqueeze(1),
                 boxes=torch.as_tensor(orig["boxes"][:n]).to(device).float().unsqueeze(1),
                 valid=torch.ones(n, 1, dtype=torch.bool, device=device))
    return ReadoutData(family, n_classes, n_groups, images, labels,
                       torch.as_tensor(arrays["mixed_rand"]["bg_group"], dtype=torch.int64).to(device), crops, loc)


def _probe(cfg: ReadoutConfig, x: Tensor, y: Tensor, tests: dict[str, tuple[Tensor, Tensor]], n: int
           ) -> dict[str, float]:
    return linear_probe(x, y, tests, n, weight_decay=cfg.probe_weight_decay, iters=cfg.probe_iters)


def background_decodability(feats: Tensor, groups: Tensor, n_groups: int, cfg: ReadoutConfig) -> float:
    """Accuracy of a probe for the background group: trained on the first half of ``feats``' rows, tested on
    the second half (``mixed_rand`` rows: the group is independent of the object's class)."""
    half = feats.shape[0] // 2
    return _probe(cfg, feats[:half], groups[:half], {"rest": (feats[half:], groups[half:])}, n_groups)["rest"]


def probe_readouts(feats: Mapping[str, Tensor], data: ReadoutData, cfg: ReadoutConfig) -> dict[str, float]:
    """Every probe readout from precomputed features (keys of :attr:`ReadoutData.images` and, for the test
    family, ``crops/multi_train`` and ``crops/multi_test``)."""
    lab = data.labels
    tests = {b: (feats[b], lab[b]) for b in _BG}
    out: dict[str, float] = {}
    biased = _probe(cfg, feats["train"], lab["train"], tests, data.n_classes)
    out.update({b: biased[b] for b in _BG})
    out["bg_gap"] = biased["mixed_same"] - biased["mixed_rand"]
    if "heldout_only_fg" in feats:
        tests["heldout_only_fg"] = (feats["heldout_only_fg"], lab["heldout_only_fg"])
    unbiased = _probe(cfg, feats["train_unbiased"], lab["train_unbiased"], tests, data.n_classes)
    out["bg_gap_unbiased"] = unbiased["mixed_same"] - unbiased["mixed_rand"]
    out["only_fg_unbiased"] = unbiased["only_fg"]
    if "heldout_only_fg" in unbiased:
        out["heldout_object"] = unbiased["heldout_only_fg"]
    out["bg_decodable"] = background_decodability(feats["mixed_rand"], data.rand_groups, data.n_groups, cfg)
    if "crops/multi_train" in feats:
        y_tr, y_te = data.crops["multi_train"][1], data.crops["multi_test"][1]
        out["per_object"] = _probe(cfg, feats["crops/multi_train"], y_tr,
                                   {"t": (feats["crops/multi_test"], y_te)}, data.n_classes)["t"]
    return out


def readouts(model: nn.Module, data: ReadoutData, cfg: ReadoutConfig) -> dict[str, float]:
    """All readouts of a frozen model with ``backbone`` and ``projector`` (an :class:`.train.SSLModel`).

    Args:
        model: the model (eval mode, on the data's device).
        data: :func:`prepare_readouts`' output.
        cfg: settings.

    Returns:
        ``{readout: value}`` for the keys of :data:`READOUTS` that the family has.
    """
    backbone: Any = model.backbone
    feats = {k: extract_features(backbone, v, batch_size=cfg.feature_batch) for k, v in data.images.items()}
    for name, (x, _) in data.crops.items():
        feats[f"crops/{name}"] = extract_features(backbone, x, batch_size=cfg.feature_batch)
    out = probe_readouts(feats, data, cfg)
    t1, _ = contracam_maps(backbone, model.projector, data.loc.images, iters=1, batch_size=cfg.cam_batch)  # type: ignore[arg-type]
    loc = localisation_scores(t1, data.loc)
    out["iou_t1"], out["obj_bg_t1"] = loc["iou"], loc["contrast"]
    return out
