"""Writing a store: atomic shard files, a background writer thread, and the final manifest.

Crash safety: a shard is written to ``shards/NNNNN.bin.partial``, flushed to disk and renamed to
``shards/NNNNN.bin``; the rename is atomic, so a file with the final name is always complete. The
manifest is written (atomically too) with ``"complete": false`` when a run starts and rewritten with
``"complete": true`` and every shard's checksum when all shards exist. Readers refuse an incomplete
manifest, and a resumed run keeps the finished shards and redoes the others.

Testing hook: the environment variable ``OBJAUG_PRECOMPUTE_FAIL_AFTER=k`` makes a process raise
:class:`SimulatedCrash` right after it has written k shards, and ``k:midwrite`` makes it raise while
writing shard k + 1 (after half of its temporary file), as if the process had been killed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from objaug.store.format import (
    LOG_NAME,
    MANIFEST_NAME,
    SHARDS_DIR,
    ShardHeader,
    StoreIncompleteError,
    _fsync_dir,
    atomic_write_bytes,
    canonical_json,
    encode_shard,
    file_sha256,
    read_shard_header,
    shard_name,
)

__all__ = ["FAIL_ENV", "ShardWriter", "SimulatedCrash", "append_log", "finalize_manifest", "finished_shard",
           "remove_partials", "write_pending_manifest", "write_shard"]

FAIL_ENV = "OBJAUG_PRECOMPUTE_FAIL_AFTER"


class SimulatedCrash(RuntimeError):
    """Raised by the ``OBJAUG_PRECOMPUTE_FAIL_AFTER`` testing hook."""


def _fail_plan() -> tuple[int, bool] | None:
    value = os.environ.get(FAIL_ENV, "").strip()
    if not value:
        return None
    count, _, mode = value.partition(":")
    return int(count), mode == "midwrite"


def write_shard(store: Path, data: bytes, index: int, *, midwrite_crash: bool = False) -> None:
    """Write shard ``index``'s bytes atomically (temporary file, fsync, rename)."""
    path = store / shard_name(index)
    if midwrite_crash:
        tmp = path.with_name(path.name + ".partial")
        with open(tmp, "wb") as f:
            f.write(data[: len(data) // 2])
        raise SimulatedCrash(f"simulated crash while writing shard {index} ({FAIL_ENV})")
    atomic_write_bytes(path, data)


def finished_shard(store: Path, index: int, start: int, count: int, max_boxes: int,
                   mask_size: tuple[int, int], *, delete: bool = True) -> ShardHeader | None:
    """The header of shard ``index`` if its file exists and is structurally complete and as expected,
    else ``None`` (a damaged file is deleted so that it is redone, unless ``delete=False``)."""
    path = store / shard_name(index)
    if not path.is_file():
        return None
    try:
        h = read_shard_header(path)
    except StoreIncompleteError:
        if delete:
            path.unlink(missing_ok=True)
        return None
    if (h.index, h.start, h.count, h.max_boxes, h.mask_size) != (index, start, count, max_boxes, mask_size):
        if delete:
            path.unlink(missing_ok=True)
        return None
    return h


def remove_partials(store: Path) -> int:
    """Delete leftover temporary files of interrupted runs; returns how many."""
    n = 0
    shards = store / SHARDS_DIR
    if shards.is_dir():
        for p in sorted(shards.glob("*.partial")):
            p.unlink(missing_ok=True)
            n += 1
    for p in store.glob("*.partial"):
        p.unlink(missing_ok=True)
        n += 1
    return n


class ShardWriter:
    """Encodes (mask compression) and writes shards on one background thread.

    At most ``max_pending`` shards wait in the queue; :meth:`submit` blocks beyond that. Errors of
    the thread are raised by the next :meth:`submit` or by :meth:`close`.
    """

    def __init__(self, store: Path, *, max_pending: int = 2) -> None:
        self.store = store
        self.max_pending = max_pending
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="objaug-store-writer")
        self._pending: list[Future[None]] = []
        self.written = 0
        self._fail = _fail_plan()

    def _job(self, index: int, start: int, arrays: Mapping[str, np.ndarray],
             skipped: Sequence[Mapping[str, Any]]) -> None:
        data = encode_shard(index=index, start=start, boxes=arrays["boxes"], valid=arrays["valid"],
                            status=arrays["status"], masks=arrays["masks"], skipped=skipped)
        midwrite = self._fail is not None and self._fail[1] and self.written == self._fail[0]
        write_shard(self.store, data, index, midwrite_crash=midwrite)
        self.written += 1
        if self._fail is not None and not self._fail[1] and self.written >= self._fail[0]:
            raise SimulatedCrash(f"simulated crash after writing {self.written} shard(s) ({FAIL_ENV})")

    def submit(self, index: int, start: int, arrays: Mapping[str, np.ndarray],
               skipped: Sequence[Mapping[str, Any]]) -> None:
        """Queue shard ``index`` (its arrays are owned by the writer from now on)."""
        while len(self._pending) >= self.max_pending:
            self._pending.pop(0).result()
        for f in [f for f in self._pending if f.done()]:
            self._pending.remove(f)
            f.result()
        self._pending.append(self._pool.submit(self._job, index, start, arrays, skipped))

    def close(self) -> None:
        """Wait for every queued shard; re-raise the first error."""
        try:
            for f in self._pending:
                f.result()
        finally:
            self._pending = []
            self._pool.shutdown(wait=True)

    def abort(self) -> None:
        """Let queued shards finish (each is written whole or not at all) and ignore their errors."""
        for f in self._pending:
            try:
                f.result()
            except Exception:  # noqa: BLE001 - the caller is already handling an error
                pass
        self._pending = []
        self._pool.shutdown(wait=True)


def finalize_manifest(store: Path, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Check every shard, gather checksums, skipped samples and coverage, and write the complete manifest.

    Args:
        store: the store directory.
        manifest: the run's manifest (``dataset``, ``model``, ``settings``, ``layout``...; its
            ``shards``, ``skipped``, ``summary`` and ``complete`` entries are replaced).

    Returns:
        The manifest written.

    Raises:
        StoreIncompleteError: a shard is missing or damaged (another process failed).
    """
    layout = manifest["layout"]
    n = int(manifest["dataset"]["length"])
    size = int(layout["shard_size"])
    k = int(layout["max_boxes"])
    mask_size = (int(layout["mask_size"][0]), int(layout["mask_size"][1]))
    shards = []
    skipped: list[dict[str, Any]] = []
    missing = []
    with_box = 0
    for s in range(int(layout["num_shards"])):
        start = s * size
        count = min(size, n - start)
        h = finished_shard(store, s, start, count, k, mask_size)
        if h is None:
            missing.append(s)
            continue
        path = store / shard_name(s)
        off, dtype, shape = h.array_range("valid")
        valid = np.fromfile(path, dtype=dtype, count=int(np.prod(shape)), offset=off).reshape(shape)
        off, dtype, shape = h.array_range("status")
        status = np.fromfile(path, dtype=dtype, count=int(np.prod(shape)), offset=off)
        with_box += int((valid.any(axis=1) & (status == 0)).sum())
        skipped.extend(h.skipped)
        shards.append({"bytes": h.file_size, "count": count, "file": shard_name(s), "index": s,
                       "sha256": file_sha256(path), "skipped": len(h.skipped), "start": start})
    if missing:
        raise StoreIncompleteError(
            f"{len(missing)} shard(s) of {store} are missing after the run (first: {missing[:5]}): a process "
            "failed. Run the same command again to finish them."
        )
    skipped.sort(key=lambda e: int(e["index"]))
    ok = n - len(skipped)
    out = dict(manifest)
    out.update({
        "complete": True,
        "shards": shards,
        "skipped": skipped,
        "summary": {"count": n, "coverage": (with_box / ok) if ok else 0.0, "ok": ok, "skipped": len(skipped),
                    "with_box": with_box},
    })
    atomic_write_bytes(store / MANIFEST_NAME, canonical_json(out))
    return out


def write_pending_manifest(store: Path, manifest: Mapping[str, Any]) -> None:
    """Write the run's manifest with ``"complete": false`` (atomically)."""
    out = dict(manifest)
    out.update({"complete": False, "shards": [], "skipped": [], "summary": None})
    (store / SHARDS_DIR).mkdir(parents=True, exist_ok=True)
    _fsync_dir(store)
    atomic_write_bytes(store / MANIFEST_NAME, canonical_json(out))


def append_log(store: Path, record: Mapping[str, Any]) -> None:
    """Append one JSON line to ``runs.log`` (volatile run information: times, speed, world size).

    ``runs.log`` is never read by objaug and is not part of a store's identity.
    """
    line = json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **record}, sort_keys=True) + "\n"
    fd = os.open(store / LOG_NAME, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)
