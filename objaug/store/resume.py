"""Resuming a store: which earlier run a new one continues, and what differs between them."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from objaug.store.format import LOG_NAME, MANIFEST_NAME, SHARDS_DIR, StoreError, read_manifest
from objaug.store.writer import finished_shard

__all__ = ["StoreProgress", "clear_store", "existing_manifest", "manifest_diff", "store_identity", "store_progress"]

_IDENTITY_KEYS = ("format", "version", "dataset", "model", "settings", "layout")


def manifest_diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The differences of two manifests (nested dicts), one line per differing key."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            out += manifest_diff(old.get(k, "<absent>"), new.get(k, "<absent>"), f"{prefix}{k}.")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: the store has {old!r}, this run has {new!r}"]


def store_identity(manifest: dict[str, Any]) -> dict[str, Any]:
    """The parts of a manifest a resumed run must match (the dataset's ``kind``/``source`` are
    descriptive only: the same data may be reached by another path)."""
    out = {k: manifest.get(k) for k in _IDENTITY_KEYS}
    data = manifest.get("dataset") or {}
    out["dataset"] = {"fingerprint": data.get("fingerprint"), "length": data.get("length")}
    return out


def clear_store(out: Path) -> None:
    """Delete a store's manifest, log and shards (``overwrite=True``)."""
    for name in (MANIFEST_NAME, LOG_NAME):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / SHARDS_DIR, ignore_errors=True)


def existing_manifest(out: Path) -> dict[str, Any] | None:
    """The manifest of the store at ``out`` (complete or not), ``None`` for a missing or empty directory.

    Raises:
        StoreError: ``out`` is a file, or a non-empty directory that is not a store.
    """
    if not out.exists():
        return None
    if not out.is_dir():
        raise StoreError(f"out={str(out)!r} exists and is not a directory.")
    if not (out / MANIFEST_NAME).is_file():
        others = [p.name for p in out.iterdir() if p.name not in (SHARDS_DIR, LOG_NAME)]
        if others:
            raise StoreError(f"out={str(out)!r} is a non-empty directory that is not an objaug store "
                             f"(it holds {others[:3]}); choose a new or empty directory.")
        return None
    return read_manifest(out, require_complete=False)


@dataclass(frozen=True)
class StoreProgress:
    """How far the run that writes a store got.

    Attributes:
        shards_done: finished shards (file present, header complete and as the manifest expects).
        num_shards: shards of the whole store.
        images_done: samples in the finished shards.
        length: samples of the whole store (the dataset's length).
        complete: the run finished (the manifest says so).
    """

    shards_done: int
    num_shards: int
    images_done: int
    length: int
    complete: bool

    def describe(self) -> str:
        """E.g. ``"3 of 8 shards (300 of 750 images) done"``."""
        return (f"{self.shards_done} of {self.num_shards} shards ({self.images_done} of {self.length} images) "
                "done")


def store_progress(out: str | os.PathLike[str]) -> StoreProgress | None:
    """The progress of the store at ``out`` (finished or not), without changing anything on disk.

    Args:
        out: the store directory.

    Returns:
        The counts, or ``None`` when ``out`` holds no store yet (missing or empty directory).

    Raises:
        StoreError: ``out`` is a file, a non-empty directory that is not a store, or its manifest is
            unreadable.
    """
    path = Path(out)
    manifest = existing_manifest(path)
    if manifest is None:
        return None
    layout, n = manifest["layout"], int(manifest["dataset"]["length"])
    size, k = int(layout["shard_size"]), int(layout["max_boxes"])
    mask_size = (int(layout["mask_size"][0]), int(layout["mask_size"][1]))
    shards, images = 0, 0
    for s in range(int(layout["num_shards"])):
        count = min(size, n - s * size)
        if finished_shard(path, s, s * size, count, k, mask_size, delete=False) is not None:
            shards, images = shards + 1, images + count
    return StoreProgress(shards, int(layout["num_shards"]), images, n, bool(manifest.get("complete")))
