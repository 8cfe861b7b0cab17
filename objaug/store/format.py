"""The on-disk format of an object store (version 1), and its low-level encoders and decoders.

A store is a directory::

    STORE/
      manifest.json        # JSON: format, version, dataset, model, settings, layout, shards, summary
      shards/00000.bin     # one file per shard of ``shard_size`` consecutive dataset indexes
      shards/00001.bin
      runs.log             # volatile: one JSON line per process and run (times, speed); never read back

A shard file (all integers little-endian)::

    bytes 0..7     magic  b"OBJAUGSH"
    bytes 8..11    uint32 header length L
    bytes 12..12+L header: UTF-8 JSON (sorted keys), padded with spaces so the data starts at a
                   multiple of 64 bytes
    data           the arrays below, each starting at a multiple of 64 bytes (offsets relative to
                   the data start, listed in the header under "arrays"):
      boxes    <f4  (n, K, 4)  normalised x1, y1, x2, y2 (boxes_from_cam's output, bit-exact)
      valid    |u1  (n, K)     1 where the slot holds a box
      status   |u1  (n,)       0 = ok, 1 = skipped (unreadable / bad sample)
      offsets  <u8  (n + 1,)   byte offsets of the mask records inside ``masks``
      masks    |u1  (offsets[n],) the mask records, one after the other
      record_crc32 <u4 (n,)    CRC-32 of each mask record (checked as it is read; optional)

    The header's ``"crc32"`` holds the CRC-32 of ``boxes``, ``valid``, ``status`` and ``offsets``
    (checked when a reader opens the shard; optional, absent in shards of earlier objaug versions).

Mask codec ``"gradient-deflate"``: a uint8 (h, w) mask ``x`` (``round(m * 255)``) is stored as the
raw-deflate (zlib ``wbits=-15``, Huffman-only strategy) compression of its 2-D gradient residual
``r = x - up(x) - left(x) + upleft(x) (mod 256)`` (zero outside the mask), i.e. a PNG-like
predictor. Smooth CAM masks leave small residuals, which Huffman coding packs to ~0.7-1.2 KB for
56 x 56 masks. Decoding inverts the predictor with two cumulative sums (mod 256) over a whole batch
of records at once. Every record decodes independently, so any sample is readable on its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "MASK_CODEC",
    "SHARD_MAGIC",
    "SHARDS_DIR",
    "StoreError",
    "StoreIncompleteError",
    "StoreMismatchError",
    "StoreVersionError",
    "ShardHeader",
    "atomic_write_bytes",
    "canonical_json",
    "decode_masks",
    "encode_masks",
    "encode_shard",
    "file_sha256",
    "read_manifest",
    "read_shard_header",
    "shard_name",
]

FORMAT_NAME = "objaug-store"
#: The store format version this objaug writes and reads. Readers refuse other versions.
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
SHARDS_DIR = "shards"
LOG_NAME = "runs.log"
SHARD_MAGIC = b"OBJAUGSH"
MASK_CODEC = "gradient-deflate"
_ALIGN = 64
_STATUS_OK = 0
_STATUS_SKIPPED = 1


class StoreError(ValueError):
    """A store cannot be used as asked (the message says why and what to do)."""


class StoreVersionError(StoreError):
    """The store was written in a format version this objaug does not know."""


class StoreIncompleteError(StoreError):
    """The store is not finished (a run was interrupted) or files are missing or damaged."""


class StoreMismatchError(StoreError):
    """The store does not belong to this dataset / model / settings."""


def shard_name(index: int) -> str:
    """Relative path of shard ``index`` inside a store (``shards/00012.bin``)."""
    return f"{SHARDS_DIR}/{index:05d}.bin"


def canonical_json(obj: Any) -> bytes:
    """Deterministic JSON (sorted keys, fixed separators, ASCII, trailing newline)."""
    return (json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=True, allow_nan=False) + "\n").encode("ascii")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, tmp_suffix: str = ".partial") -> None:
    """Write ``data`` to ``path`` atomically: a temporary file beside it, fsync, then rename.

    A reader sees either the old file or the complete new one, never a half-written file.
    """
    path = Path(path)
    tmp = path.with_name(path.name + tmp_suffix)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------
# Mask codec


def _gradient_residual(x: np.ndarray) -> np.ndarray:
    """(n, h, w) uint8 -> residual x - up - left + upleft (mod 256), vectorised."""
    v = x.copy()
    v[:, 1:, :] -= x[:, :-1, :]
    r = v.copy()
    r[:, :, 1:] -= v[:, :, :-1]
    return r


def _integrate(r: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_gradient_residual`: cumulative sums (mod 256) along w, then h.

    torch's uint8 cumsum wraps like numpy's and is 2x faster on these strided axes.
    """
    t = torch.from_numpy(np.ascontiguousarray(r))
    return t.cumsum(2, dtype=torch.uint8).cumsum(1, dtype=torch.uint8).numpy()


def encode_masks(masks: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Encode (n, h, w) uint8 masks with the ``gradient-deflate`` codec.

    Returns:
        ``(blob, offsets)``: the records one after the other, and (n + 1,) uint64 offsets
        (record i is ``blob[offsets[i]:offsets[i + 1]]``).
    """
    if masks.dtype != np.uint8 or masks.ndim != 3:
        raise ValueError(f"masks must be a (n, h, w) uint8 array, got {masks.dtype} {masks.shape}.")
    residual = np.ascontiguousarray(_gradient_residual(masks))
    records = []
    for r in residual:  # one zlib call per record (C code; the GIL is released while it runs)
        c = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_HUFFMAN_ONLY)
        records.append(c.compress(r.tobytes()) + c.flush())
    offsets = np.zeros(len(records) + 1, dtype=np.uint64)
    offsets[1:] = np.cumsum([len(r) for r in records], dtype=np.uint64)
    return b"".join(records), offsets


def decode_masks(records: Sequence[Any], shape: tuple[int, int]) -> np.ndarray:
    """Decode ``gradient-deflate`` records into (n, h, w) uint8 masks.

    Args:
        records: the compressed records (bytes-like, e.g. slices of a memory map).
        shape: (h, w) of one mask.

    Raises:
        StoreError: a record is damaged (does not inflate to h * w bytes).
    """
    h, w = shape
    n = len(records)
    if n == 0:
        return np.zeros((0, h, w), dtype=np.uint8)
    try:
        raw = bytearray().join([zlib.decompress(r, -15, h * w) for r in records])  # writable, for torch
    except zlib.error as e:
        raise StoreError(f"A mask record is damaged ({e}); rebuild the store or its shard.") from e
    if len(raw) != n * h * w:
        raise StoreError(f"A mask record is damaged (inflated to {len(raw)} bytes for {n} masks of {h}x{w}).")
    return _integrate(np.frombuffer(raw, dtype=np.uint8).reshape(n, h, w))


# --------------------------------------------------------------------------------------------------
# Shard files


#: the arrays whose CRC-32 the header keeps (checked on opening a shard: a few KB per shard)
SMALL_ARRAYS = ("boxes", "valid", "status", "offsets")


def record_crc32(blob: bytes | memoryview, offsets: np.ndarray) -> np.ndarray:
    """(n,) little-endian uint32 CRC-32 of each record ``blob[offsets[i]:offsets[i + 1]]``."""
    bounds = offsets.astype(np.int64).tolist()
    return np.array([zlib.crc32(blob[a:e]) for a, e in zip(bounds[:-1], bounds[1:], strict=True)], dtype="<u4")


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def encode_shard(
    *,
    index: int,
    start: int,
    boxes: np.ndarray,
    valid: np.ndarray,
    status: np.ndarray,
    masks: np.ndarray,
    skipped: Sequence[Mapping[str, Any]],
) -> bytes:
    """Serialise one shard (see the module docstring for the layout).

    Args:
        index: shard number.
        start: dataset index of the shard's first sample.
        boxes: (n, K, 4) float32. valid: (n, K) bool. status: (n,) uint8 (0 ok, 1 skipped).
        masks: (n, h, w) uint8.
        skipped: ``{"index": int, "error": str}`` for every skipped sample (JSON-able).

    Returns:
        The file's bytes (deterministic for equal inputs).
    """
    n, k = valid.shape
    h, w = masks.shape[1:]
    blob, offsets = encode_masks(masks)
    arrays: list[tuple[str, np.ndarray | bytes, str, list[int]]] = [
        ("boxes", np.ascontiguousarray(boxes, dtype="<f4"), "<f4", [n, k, 4]),
        ("valid", np.ascontiguousarray(valid, dtype=np.uint8), "|u1", [n, k]),
        ("status", np.ascontiguousarray(status, dtype=np.uint8), "|u1", [n]),
        ("offsets", offsets.astype("<u8"), "<u8", [n + 1]),
        ("masks", blob, "|u1", [len(blob)]),
        # CRC-32 of each mask record, checked as each record is read (readers before 0.x ignore it)
        ("record_crc32", record_crc32(blob, offsets), "<u4", [n]),
    ]
    table: dict[str, dict[str, Any]] = {}
    parts: list[bytes] = []
    pos = 0
    for name, arr, dtype, shape in arrays:
        data = arr if isinstance(arr, bytes) else arr.tobytes()
        table[name] = {"dtype": dtype, "offset": pos, "shape": shape}
        parts.append(data)
        pad = _align(pos + len(data)) - (pos + len(data))
        parts.append(b"\0" * pad)
        pos += len(data) + pad
    header = {
        "arrays": table,
        # CRC-32 of the small arrays, checked when a reader opens the shard
        "crc32": {name: zlib.crc32(arr.tobytes()) for name, arr, _, _ in arrays if name in SMALL_ARRAYS
                  and isinstance(arr, np.ndarray)},
        "count": n,
        "data_bytes": pos,
        "format": "objaug-shard",
        "index": index,
        "mask_codec": MASK_CODEC,
        "mask_size": [h, w],
        "max_boxes": k,
        "skipped": list(skipped),
        "start": start,
        "version": FORMAT_VERSION,
    }
    hjson = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    data_start = _align(12 + len(hjson))
    hjson += b" " * (data_start - 12 - len(hjson))
    return SHARD_MAGIC + len(hjson).to_bytes(4, "little") + hjson + b"".join(parts)


class ShardHeader:
    """The parsed header of a shard file, with the absolute byte ranges of its arrays."""

    def __init__(self, header: dict[str, Any], data_start: int, file_size: int) -> None:
        self.header = header
        self.data_start = data_start
        self.file_size = file_size
        self.index = int(header["index"])
        self.start = int(header["start"])
        self.count = int(header["count"])
        self.max_boxes = int(header["max_boxes"])
        self.mask_size = (int(header["mask_size"][0]), int(header["mask_size"][1]))
        self.skipped: list[dict[str, Any]] = list(header["skipped"])

    def array_range(self, name: str) -> tuple[int, np.dtype[Any], tuple[int, ...]]:
        """(absolute byte offset, dtype, shape) of array ``name``."""
        a = self.header["arrays"][name]
        return self.data_start + int(a["offset"]), np.dtype(a["dtype"]), tuple(int(s) for s in a["shape"])


def read_shard_header(path: str | os.PathLike[str]) -> ShardHeader:
    """Read and check a shard file's header (magic, version, sizes; not the checksum).

    Raises:
        StoreIncompleteError: not a shard file, truncated or damaged.
        StoreVersionError: a shard version this objaug does not know.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:8] != SHARD_MAGIC:
                raise StoreIncompleteError(f"{path} is not an objaug shard file (bad magic or truncated).")
            hlen = int.from_bytes(head[8:12], "little")
            raw = f.read(hlen)
    except OSError as e:
        raise StoreIncompleteError(f"Cannot read shard {path}: {e}.") from e
    if len(raw) != hlen:
        raise StoreIncompleteError(f"Shard {path} is truncated (header cut short).")
    try:
        header = json.loads(raw.decode("ascii"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StoreIncompleteError(f"Shard {path} has a damaged header: {e}.") from e
    if header.get("format") != "objaug-shard":
        raise StoreIncompleteError(f"{path} is not an objaug shard file.")
    if header.get("version") != FORMAT_VERSION:
        raise StoreVersionError(
            f"Shard {path} has format version {header.get('version')!r}; this objaug reads version "
            f"{FORMAT_VERSION}. Use a matching objaug version or recompute the store."
        )
    data_start = 12 + hlen
    if size != data_start + int(header["data_bytes"]):
        raise StoreIncompleteError(
            f"Shard {path} has {size} bytes, its header says {data_start + int(header['data_bytes'])}: "
            "truncated or damaged."
        )
    return ShardHeader(header, data_start, size)


# --------------------------------------------------------------------------------------------------
# Manifest


def read_manifest(store: str | os.PathLike[str], *, require_complete: bool = True) -> dict[str, Any]:
    """Read and check ``STORE/manifest.json``.

    Args:
        store: the store directory.
        require_complete: raise :class:`StoreIncompleteError` if the run that writes the store has
            not finished.

    Raises:
        FileNotFoundError: no store (no manifest) at ``store``.
        StoreVersionError: unknown format version.
        StoreIncompleteError / StoreError: unfinished or unreadable manifest.
    """
    path = Path(store) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"No object store at {store!s}: {MANIFEST_NAME} is missing. Create one with `objaug precompute`."
        )
    try:
        manifest = json.loads(path.read_text(encoding="ascii"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StoreError(f"{path} is not valid JSON ({e}); the store is damaged.") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise StoreError(f"{path} is not an objaug store manifest (format != {FORMAT_NAME!r}).")
    version = manifest.get("version")
    if version != FORMAT_VERSION:
        newer = isinstance(version, int) and version > FORMAT_VERSION
        raise StoreVersionError(
            f"The store at {store!s} has format version {version!r}, but this objaug reads version "
            f"{FORMAT_VERSION}. "
            + ("Upgrade objaug to read it." if newer else "Recompute the store with this objaug.")
        )
    if require_complete and not manifest.get("complete", False):
        raise StoreIncompleteError(
            f"The store at {store!s} is incomplete (its precompute run was interrupted or is still running). "
            "Run the same `objaug precompute` command again to resume it."
        )
    return manifest
