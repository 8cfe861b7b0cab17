"""Resuming a store: which earlier run a new one continues, and what differs between them."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from objaug.store.format import LOG_NAME, MANIFEST_NAME, SHARDS_DIR, StoreError, read_manifest

__all__ = ["clear_store", "existing_manifest", "manifest_diff", "store_identity"]

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
