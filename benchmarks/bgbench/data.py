"""Load a built bgbench dataset (format: ``benchmarks/bgbench/FORMAT.md``).

Example::

    >>> out = default_out("generated", seed=0, size=64)  # doctest: +SKIP
    >>> man = load_manifest(out); test = load_split(out, "mixed_rand")  # doctest: +SKIP
    >>> as_tensor_images(test["images"]).shape  # doctest: +SKIP
    torch.Size([N, 3, 64, 64])
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["BG_SPLITS", "CAM_PROFILES", "CAM_SETTINGS", "FORMAT_VERSION", "MULTI_SPLITS", "OBJAUG_CAM_BANK",
           "OBJAUG_CAM_SETTINGS", "OBJAUG_MIXUP", "ONLY_FG_GREY", "SINGLE_SPLITS", "SPLITS", "TEST_SPLITS",
           "as_tensor_images", "default_out", "load_manifest", "load_split"]

FORMAT_VERSION = 1
#: Single-object test splits: same placements, different backgrounds (ImageNet-9 Background Challenge).
#: ContraCAM settings of every bgbench run: the reference code's (plain union of the iterations, no edge
#: filter), the settings all runs in docs/benchmarks.md were measured with before objaug's defaults changed
#: (issue 14); a v2 protocol should choose its CAM options on the validation split.
CAM_SETTINGS: dict[str, object] = {"refine": "union", "edges": False}
#: ``--cam-options objaug`` (issue 14): objaug's shipped ContraCAM defaults (edge filter, weighted refinement)
#: plus the options chosen on ``val_original`` (never a test split) for these weak encoders: temperature 0.2,
#: the 32 nearest negatives among the batch and a bank of the SSL set's embeddings (:data:`OBJAUG_CAM_BANK`),
#: and 16x16 maps (``expand_res``); and background mixup's shipped defaults (Otsu cut, mass-rectangle fallback).
OBJAUG_CAM_SETTINGS: dict[str, object] = {"temperature": 0.2, "hard_negatives": 32, "expand_res": True}
#: Whether the ``objaug`` profile's two-stage CAMs and CAM ablation contrast against the SSL set's embeddings.
OBJAUG_CAM_BANK = True
OBJAUG_MIXUP: dict[str, object] = {"mixup_threshold": "otsu", "mixup_fallback_mass": 0.9}
#: ``--cam-options`` profiles.
CAM_PROFILES: tuple[str, ...] = ("reference", "objaug")
TEST_SPLITS: tuple[str, ...] = ("original", "mixed_same", "mixed_rand", "only_fg")
BG_SPLITS = TEST_SPLITS  # alias
#: Single-object splits (kind "single").
SINGLE_SPLITS: tuple[str, ...] = ("train", *TEST_SPLITS)
#: Multi-object splits (kind "multi", K = 4 slots).
MULTI_SPLITS: tuple[str, ...] = ("multi_train", "multi_test")
#: Every split, in the order they are built and drawn in ``samples.png``.
SPLITS: tuple[str, ...] = (*SINGLE_SPLITS, *MULTI_SPLITS)
#: The constant background of ``only_fg``.
ONLY_FG_GREY: tuple[int, int, int] = (124, 116, 104)
_CACHE = Path(__file__).resolve().parents[1] / ".cache" / "bgbench"


def default_out(source: str, seed: int, size: int, cache: str | os.PathLike[str] | None = None) -> Path:
    """``<cache>/data-<source>-s<seed>-<size>px`` (cache default ``benchmarks/.cache/bgbench``)."""
    return Path(cache if cache is not None else _CACHE) / f"data-{source}-s{seed}-{size}px"


def load_manifest(out: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``<out>/manifest.json`` (see FORMAT.md for its keys).

    Raises:
        FileNotFoundError: no built dataset in ``out`` (build it with ``python -m benchmarks.bgbench.build``).
    """
    path = Path(out) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"no bgbench dataset in {out} (missing manifest.json); build one with "
                                f"`python -m benchmarks.bgbench.build --source debian --seed 0 --size 64`.")
    man: dict[str, Any] = json.loads(path.read_text())
    if man.get("format") not in (FORMAT_VERSION, 2):  # 2: data v2 (benchmarks/bgbench/v2.py)
        raise ValueError(f"{path} has format {man.get('format')!r}, this loader reads {FORMAT_VERSION} and 2; "
                         "rebuild.")
    return man


def load_split(out: str | os.PathLike[str], name: str) -> dict[str, np.ndarray]:
    """Load one split's arrays.

    Args:
        out: dataset folder.
        name: one of :data:`SPLITS` (or a v2 split present in ``out``, e.g. ``train_unbiased``).

    Returns:
        Single-object splits: ``images`` uint8 (N, S, S, 3), ``labels`` int64 (N,), ``masks`` uint8
        (N, S, S) in {0, 1}, ``boxes`` float32 (N, 4) normalised xyxy, ``object_id``, ``bg_id``, ``bg_group``
        int64 (N,). Multi-object splits: ``images`` (N, S, S, 3), ``masks`` uint8 (N, 4, S, S), ``boxes``
        float32 (N, 4, 4), ``labels``/``object_id`` int64 (N, 4) (-1 in empty slots), ``n_objects``,
        ``bg_id``, ``bg_group`` int64 (N,).
    """
    path = Path(out) / f"{name}.npz"
    if name not in SPLITS and not path.is_file():  # data v2 has more splits (train_unbiased, val_*, heldout_*)
        raise ValueError(f"unknown split {name!r}; splits are {', '.join(SPLITS)} (v2 data: see its manifest).")
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; (re)build the dataset in {out}.")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def as_tensor_images(images_uint8: np.ndarray) -> Tensor:
    """(N, S, S, 3) uint8 images -> float32 tensor (N, 3, S, S) in [0, 1] (a copy, on the CPU)."""
    import torch

    arr = np.asarray(images_uint8)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"expected (N, S, S, 3) uint8 images, got {arr.dtype} {arr.shape}.")
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float().div_(255.0)
