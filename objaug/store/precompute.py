"""Precompute ContraCAM boxes and soft masks for a whole dataset into an object store.

:func:`precompute` runs ContraCAM over a map-style dataset in batches (DataLoader workers decode and
resize while the model runs), finds each batch's objects as the library defines them
(:func:`objaug.objects.find_objects`: boxes of every refinement iteration's map, the output map as the soft
mask) and stores a low-resolution uint8 copy of the mask per sample, shard by shard (see
:mod:`objaug.store.format`). It is resumable (finished shards are kept, the others redone), runs on
several processes with ``torch.distributed`` (shard ``s`` is done by rank ``s % world_size``), and
skips unreadable samples (counted and listed in the manifest) instead of crashing.

Reproducibility: ContraCAM contrasts each image with the other images of its batch, so a sample's
map depends on its batch. Batches are fixed ranges of dataset indexes inside a shard (a shard of n
samples is cut into ``ceil(n / batch_size)`` ranges whose sizes differ by at most one), so the
result does not depend on the number of processes, the number of DataLoader workers, or on how
often a run was interrupted.

Dataset contract (both for the Python API and ``--dataset module:callable``): a map-style dataset
(``__len__`` and ``__getitem__(int)``), deterministic (no random transforms), whose items are an
image or a tuple/list whose first element is the image, or a dict with an ``"image"`` key. An image
is a ``PIL.Image``, a (C, H, W) torch tensor (uint8 0..255, or float in [0, 1]), or an (H, W, C) /
(H, W) uint8 numpy array; C is 1, 3 or 4 (grey is repeated, alpha dropped). Images of any size are
resized (squashed, aspect ratio not kept) to ``image_size`` x ``image_size``, so the normalised boxes
refer to the original image whatever its size. Exceptions raised by ``__getitem__`` or the
conversion mark the sample as skipped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import objaug
from objaug.config import BoxConfig, CamConfig, ensure_config
from objaug.constants import IMAGE_EXTENSIONS, IMAGENET_MEAN, IMAGENET_STD, PRECISIONS
from objaug.contracam import ContraCAM
from objaug.masks import masks_to_uint8, resize_masks
from objaug.model_state import module_device
from objaug.objects import find_objects
from objaug.store.datasets import (
    ImageFolderFiles,
    dataset_fingerprint,
    files_fingerprint,
    load_dataset,
    load_image,
    model_fingerprint,
)
from objaug.store.distributed import ProcessGroup
from objaug.store.format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST_NAME,
    MASK_CODEC,
    StoreMismatchError,
    canonical_json,
    read_manifest,
)
from objaug.store.loading import check_input_options, embed_bank, prepared_loader
from objaug.store.resume import clear_store, existing_manifest, manifest_diff, store_identity
from objaug.store.writer import (
    ShardWriter,
    append_log,
    finalize_manifest,
    finished_shard,
    remove_partials,
    write_pending_manifest,
)
from objaug.validation import check_bool, check_choice, check_int, check_optional_int

__all__ = [
    "IMAGE_EXTENSIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageFolderFiles",
    "PrecomputeResult",
    "check_options",
    "dataset_fingerprint",
    "load_dataset",
    "load_image",
    "model_fingerprint",
    "precompute",
    "shard_batches",
    "store_settings",
]

#: The config fields every store's settings hold (the keys stores had before the configs, so those stores
#: resume). ``hard_negatives`` and ``bank`` (as ``bank_size``) are there when either is set; any other field
#: when it differs from its default.
_ALWAYS_STORED: tuple[str, ...] = ("iters", "temperature", "expand_res", "interpolation", "threshold", "min_area",
                                   "margin", "max_boxes")
_NEGATIVES_STORED: tuple[str, ...] = ("hard_negatives", "bank")
#: Settings written as floats (as they were before the configs, whatever number type the config holds).
_FLOAT_SETTINGS: tuple[str, ...] = ("temperature", "threshold", "min_area", "margin")


# --------------------------------------------------------------------------------------------------
# Batches


def shard_batches(start: int, count: int, batch_size: int) -> list[tuple[int, int]]:
    """The fixed batches of a shard: consecutive index ranges ``[a, b)`` covering ``[start, start + count)``.

    ``k = ceil(count / batch_size)`` ranges whose sizes differ by at most one (larger ones first), except
    that no range holds a single sample when ``count >= 2`` (``k <= count // 2``, as ContraCAM needs
    another image to contrast with; a range may then exceed ``batch_size``).
    """
    k = max(1, math.ceil(count / batch_size))
    if count >= 2:
        k = max(1, min(k, count // 2))
    base, extra = divmod(count, k)
    out = []
    a = start
    for j in range(k):
        b = a + base + (1 if j < extra else 0)
        out.append((a, b))
        a = b
    return out


# --------------------------------------------------------------------------------------------------
# The run


@dataclass
class PrecomputeResult:
    """What :func:`precompute` did in this process.

    Attributes:
        path: the store directory.
        manifest: the complete manifest.
        shards_written: shards computed by this process in this run (0 if the store was complete).
        images: samples processed by this process in this run.
        seconds: wall time of this process's computing loop.
        images_per_second: ``images / seconds``.
    """

    path: Path
    manifest: dict[str, Any]
    shards_written: int = 0
    images: int = 0
    seconds: float = 0.0
    images_per_second: float = 0.0
    rank: int = 0
    world_size: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


def check_options(*, batch_size: object, image_size: object, mean: object, std: object, mask_size: object,
                  shard_size: object, precision: object, num_workers: object = None) -> None:
    """Refuse impossible store options (the non-CAM ones of :func:`precompute`) before any work.

    Raises:
        ValueError: an option out of range or of the wrong type, naming it (e.g. ``batch_size must be an int
            >= 1, got 0.``).
    """
    check_input_options(batch_size=batch_size, image_size=image_size, mean=mean, std=std)
    check_int(mask_size, "mask_size", low=1)
    check_int(shard_size, "shard_size", low=1)
    check_optional_int(num_workers, "num_workers", low=0, none="min(8, cpu_count - 1)", why=" (DataLoader workers)")
    check_choice(precision, "precision", PRECISIONS)


def store_settings(cam_config: CamConfig, box_config: BoxConfig, *, length: int, batch_size: int, image_size: int,
                   mean: Sequence[float], std: Sequence[float], mask_size: int, mask_resize: str,
                   precision: str) -> dict[str, Any]:
    """The manifest's ``settings``: everything that changes the stored numbers (part of the store identity).

    The keys and values of the options stores had before :class:`~objaug.config.CamConfig` are kept (so those
    stores resume): ``iters``, ``temperature``, ``expand_res``, ``interpolation``, ``threshold``, ``min_area``,
    ``margin``, ``max_boxes`` always; ``hard_negatives`` and ``bank_size`` (the bank, at most ``length``) when
    either is set. Every other config field is added, under its name, only when it differs from its default.

    Args:
        cam_config, box_config: the CAM and box settings.
        length: the dataset length.
        batch_size, image_size, mean, std, mask_size, precision: the run's options (see :func:`precompute`).
        mask_resize: how the maps are resized to the masks (``"area"`` or ``"bilinear"``).
    """
    configs = (cam_config, box_config)
    values = {f.name: getattr(c, f.name) for c in configs for f in dataclasses.fields(c)}
    defaults = {f.name: f.default for c in configs for f in dataclasses.fields(c)}
    settings: dict[str, Any] = {
        "batch_size": batch_size, "image_resize": "squash-bilinear", "image_size": image_size,
        "mask_resize": mask_resize, "mask_size": mask_size, "mean": [float(m) for m in mean],
        "precision": precision, "std": [float(s) for s in std],
    }
    settings.update({name: values[name] for name in _ALWAYS_STORED})
    settings.update({name: float(values[name]) for name in _FLOAT_SETTINGS})
    if cam_config.hard_negatives is not None or cam_config.bank:
        settings.update(hard_negatives=cam_config.hard_negatives, bank_size=min(cam_config.bank, length))
    settings.update({name: value for name, value in values.items()
                     if name not in (*_ALWAYS_STORED, *_NEGATIVES_STORED) and value != defaults[name]})
    return dict(sorted(settings.items()))


def precompute(
    dataset: Any,
    model: nn.Module,
    out: str | os.PathLike[str],
    *,
    projector: nn.Module | None = None,
    cam_config: CamConfig | None = None,
    box_config: BoxConfig | None = None,
    batch_size: int = 64,
    image_size: int = 224,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    mask_size: int = 56,
    shard_size: int = 1024,
    precision: str = "fp32",
    num_workers: int | None = None,
    model_info: dict[str, Any] | None = None,
    dataset_info: dict[str, Any] | None = None,
    fingerprint: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    barrier_timeout: timedelta = timedelta(hours=6),
) -> PrecomputeResult:
    """Compute ContraCAM boxes and soft masks for every sample of ``dataset`` into the store ``out``.

    Resumable: an interrupted run leaves its finished shards; calling again with the same
    arguments computes only the missing ones, and the final store is byte-identical to that of an
    uninterrupted run (``runs.log`` aside). Under ``torch.distributed`` (initialised by the caller,
    e.g. with ``torchrun``), every rank calls this with the same arguments; rank r computes the
    shards s with ``s % world_size == r`` and rank 0 writes the merged manifest.

    Args:
        dataset: map-style dataset (see the module docstring for the item contract).
        model: the contrastive model (split into encoder and head by :func:`objaug.split.split_model`),
            on the device to compute on; left as found (mode, grads).
        out: the store directory (created).
        projector: optional projector appended to the head (see :class:`objaug.contracam.ContraCAM`).
        cam_config: the ContraCAM settings (default :class:`~objaug.config.CamConfig`; the paper uses
            ``iters=10`` for boxes). Its ``bank``: also contrast every batch with the embeddings of this many
            samples spread evenly over the dataset (:func:`objaug.store.loading.embed_bank`); with
            ``hard_negatives`` each image's nearest are searched there too (never its own copy).
        box_config: the box settings (default :class:`~objaug.config.BoxConfig`). The objects are
            :func:`objaug.objects.find_objects`'s: boxes of every iteration's map, the output map (of the first
            ``cam_config.mask_iters`` iterations when set) as the mask. Both configs are part of the store
            identity (:func:`store_settings`).
        batch_size: images per ContraCAM batch (the in-batch negatives; part of the store identity).
        image_size: images are resized to image_size x image_size.
        mean, std: per-channel normalisation of the [0, 1] images.
        mask_size: side of the stored soft masks (area-downsampled from the map; uint8).
        shard_size: samples per shard file.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast for the model).
        num_workers: DataLoader workers decoding images (default ``min(8, cpu_count - 1)``).
        model_info: JSON-able description of the model for the manifest (architecture, checkpoint
            identity); a fingerprint of the weights is always added.
        dataset_info: JSON-able description of the dataset for the manifest (``kind``, ``source``).
        fingerprint: the dataset's fingerprint (default :func:`dataset_fingerprint`).
        overwrite: delete an existing store at ``out`` first (only the store's own files).
        progress: show a tqdm progress bar (rank 0) with the throughput.
        barrier_timeout: how long ranks wait for each other.

    Returns:
        :class:`PrecomputeResult`.

    Raises:
        StoreMismatchError: ``out`` holds a store of another dataset, model or settings.
        StoreVersionError: ``out`` holds a store of a format version this objaug does not know.
        ValueError / TypeError: bad arguments (before any work).
    """
    cam_config = ensure_config(cam_config, CamConfig, "cam_config")
    box_config = ensure_config(box_config, BoxConfig, "box_config")
    check_options(batch_size=batch_size, image_size=image_size, mean=mean, std=std, mask_size=mask_size,
                  shard_size=shard_size, precision=precision, num_workers=num_workers)
    check_bool(overwrite, "overwrite")
    check_bool(progress, "progress")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    n = len(dataset)
    if n < 1:
        raise ValueError("dataset is empty.")
    cam = cam_config.build(model, projector=projector, check_finite=False)
    max_boxes = box_config.max_boxes
    device = module_device(model) or torch.device("cpu")
    out = Path(out)
    group = ProcessGroup(barrier_timeout)
    num_shards = math.ceil(n / shard_size)
    mask_mode = "area" if mask_size <= image_size else "bilinear"

    settings = store_settings(cam_config, box_config, length=n, batch_size=batch_size, image_size=image_size,
                              mean=mean, std=std, mask_size=mask_size, mask_resize=mask_mode, precision=precision)
    layout = {"mask_codec": MASK_CODEC, "mask_size": [mask_size, mask_size], "max_boxes": max_boxes,
              "num_shards": num_shards, "shard_pattern": "shards/{index:05d}.bin", "shard_size": shard_size}
    info = {"fingerprint": fingerprint if fingerprint is not None else dataset_fingerprint(dataset), "length": n}
    files = files_fingerprint(dataset)
    if files is not None:  # lets a reader tell "the same files in another order" from other files
        info["files"] = files
    info.update(dataset_info or {})
    minfo = {"weights": model_fingerprint(model, projector)}
    minfo.update(model_info or {})
    manifest: dict[str, Any] = {"dataset": info, "format": FORMAT_NAME, "layout": layout, "model": minfo,
                                "objaug_version": objaug.__version__, "settings": settings,
                                "version": FORMAT_VERSION}

    # 0. Every rank must compute the same thing (same data, weights and settings).
    digests = group.gather(hashlib.sha256(canonical_json(store_identity(manifest))).hexdigest())
    if len(set(digests)) > 1:
        raise StoreMismatchError(
            f"The {group.world} processes do not agree on the dataset, the model weights or the settings "
            f"(identity digests {sorted(set(d[:12] for d in digests))}); every rank must load the same data and "
            "the same weights (a randomly initialised model needs the same seed on every rank)."
        )

    # 1. Check any existing store (every rank reads it before rank 0 rewrites anything).
    if overwrite and group.rank == 0 and out.is_dir() and (out / MANIFEST_NAME).is_file():
        clear_store(out)
    group.barrier()
    existing = existing_manifest(out)
    if existing is not None:
        diffs = manifest_diff(store_identity(existing), store_identity(manifest))
        if diffs:
            raise StoreMismatchError(
                f"{out} holds a store made with other data, model or settings, so it cannot be resumed:\n  "
                + "\n  ".join(diffs[:12])
                + "\nUse another out directory, the same settings, or overwrite=True to start again."
            )
    complete = existing is not None and bool(existing.get("complete"))
    group.barrier()
    if group.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        remove_partials(out)
        if not complete:
            write_pending_manifest(out, manifest)
    group.barrier()

    # 2. This rank's unfinished shards.
    pending: list[tuple[int, int, int]] = []
    for s in range(group.rank, num_shards, group.world):
        start = s * shard_size
        count = min(shard_size, n - start)
        if finished_shard(out, s, start, count, max_boxes, (mask_size, mask_size)) is None:
            pending.append((s, start, count))
    t0 = time.perf_counter()
    processed = 0
    written = 0
    if pending:
        bank = embed_bank(dataset, cam, cam_config.bank, image_size=image_size, mean=mean, std=std,
                          batch_size=batch_size, device=device, num_workers=num_workers) if cam_config.bank else None
        processed, written = _run_shards(
            dataset, cam, out, pending, device=device, batch_size=batch_size, image_size=image_size, mean=mean,
            std=std, mask_size=mask_size, mask_mode=mask_mode, box_config=box_config,
            mask_iters=cam_config.mask_iters, precision=precision, num_workers=num_workers,
            progress=progress and group.rank == 0, bank=bank)
    seconds = time.perf_counter() - t0

    # 3. Merge.
    group.barrier()
    if group.rank == 0:
        final = finalize_manifest(out, manifest)
    group.barrier()
    if group.rank != 0:
        final = read_manifest(out)
    speed = processed / seconds if seconds > 0 else 0.0
    append_log(out, {"rank": group.rank, "world_size": group.world, "shards_written": written, "images": processed,
                     "seconds": round(seconds, 3), "images_per_second": round(speed, 2), "device": str(device)})
    return PrecomputeResult(out, final, written, processed, seconds, speed, group.rank, group.world)


def _run_shards(
    dataset: Any,
    cam: ContraCAM,
    out: Path,
    pending: list[tuple[int, int, int]],
    *,
    device: torch.device,
    batch_size: int,
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    mask_size: int,
    mask_mode: str,
    box_config: BoxConfig,
    mask_iters: int | None,
    precision: str,
    num_workers: int | None,
    progress: bool,
    bank: Tensor | None = None,
) -> tuple[int, int]:
    """Compute and write the ``pending`` shards ``(index, start, count)``; returns (images, shards)."""
    from tqdm.auto import tqdm

    batches = [list(range(a, b)) for _, start, count in pending for a, b in shard_batches(start, count, batch_size)]
    loader = prepared_loader(dataset, batches, image_size=image_size, mean=mean, std=std, device=device,
                             num_workers=num_workers)
    k = box_config.max_boxes
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    writer = ShardWriter(out)
    total = sum(c for _, _, c in pending)
    bar = tqdm(total=total, unit="img", disable=not progress, desc="precompute", dynamic_ncols=True,
               smoothing=0.1)
    queue = list(pending)
    cur: dict[str, Any] | None = None
    previous: Tensor | None = None  # the last batch of 2+ images: negatives for a lone image
    processed = 0
    try:
        for idx, images, ok, errors in loader:
            if cur is None:
                s, start, count = queue.pop(0)
                boxes0 = np.zeros((count, k, 4), dtype=np.float32)
                boxes0[:, 0] = (0.0, 0.0, 1.0, 1.0)
                cur = {"index": s, "start": start, "count": count, "filled": 0, "skipped": [],
                       "boxes": boxes0, "valid": np.zeros((count, k), dtype=bool),
                       "status": np.zeros(count, dtype=np.uint8),
                       "masks": np.zeros((count, mask_size, mask_size), dtype=np.uint8)}
            local = idx.numpy() - cur["start"]
            ok_np = ok.numpy()
            n_ok = int(ok_np.sum())
            if n_ok:
                x = images if n_ok == len(ok_np) else images[torch.from_numpy(ok_np)]
                x = x.to(device, non_blocking=True)
                negatives = bank
                if n_ok == 1:  # a lone image: contrast it with the previous batch, else a flat mean-colour image
                    if previous is not None:
                        negatives = cam.embed(previous) if bank is None else torch.cat([bank, cam.embed(previous)])
                    elif bank is None:
                        x = torch.cat([x, torch.zeros_like(x)])
                ctx = torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()
                with ctx:
                    objects = find_objects(cam, x, box_config, negatives=negatives, mask_iters=mask_iters)
                if n_ok > 1:
                    previous = x
                assert objects.masks is not None  # a ContraCAM's objects have masks
                m8 = masks_to_uint8(resize_masks(objects.masks[:n_ok].float(), mask_size, mode=mask_mode))
                sel = local[ok_np]
                cur["boxes"][sel] = objects.boxes[:n_ok].cpu().numpy()
                cur["valid"][sel] = objects.valid[:n_ok].cpu().numpy()
                cur["masks"][sel] = m8[:, 0].cpu().numpy()
            for j in np.flatnonzero(~ok_np).tolist():
                cur["status"][local[j]] = 1
                cur["skipped"].append({"error": errors[j], "index": int(idx[j])})
            cur["filled"] += len(ok_np)
            processed += len(ok_np)
            bar.update(len(ok_np))
            if cur["filled"] == cur["count"]:
                writer.submit(cur["index"], cur["start"], cur, cur["skipped"])
                cur = None
        writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
    return processed, writer.written

