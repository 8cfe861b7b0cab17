"""Random access to a precomputed object store: boxes, validity and soft masks by dataset index.

:class:`ObjectStore` memory-maps the shard files lazily, once per process: nothing is opened in
the constructor except the manifest, and a store object that crosses a ``fork`` (DataLoader
workers) or is pickled (``spawn`` workers) reopens its maps in the new process, so no file handle or
mapping is shared between processes.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from objaug.masks import masks_from_uint8, resize_masks
from objaug.store.format import (
    MANIFEST_NAME,
    StoreIncompleteError,
    StoreMismatchError,
    decode_masks,
    file_sha256,
    read_manifest,
    read_shard_header,
)
from objaug.validation import check_path

__all__ = ["ObjectStore", "StoreBatch", "StoreItem"]


class StoreItem(NamedTuple):
    """One sample of a store.

    Attributes:
        boxes: (K, 4) float32 normalised x1, y1, x2, y2 (slot 0 is the whole image when nothing was
            found or the sample was skipped).
        valid: (K,) bool.
        mask: (1, h, w) float32 soft mask in [0, 1] (all zeros for a skipped sample).
    """

    boxes: Tensor
    valid: Tensor
    mask: Tensor


class StoreBatch(NamedTuple):
    """A batch of samples of a store: boxes (B, K, 4) float32, valid (B, K) bool, masks (B, 1, h, w)
    float32 in [0, 1]."""

    boxes: Tensor
    valid: Tensor
    masks: Tensor


class _Shard:
    """Read-only views into one memory-mapped shard file."""

    def __init__(self, path: Path, expect_index: int, expect_start: int) -> None:
        header = read_shard_header(path)
        if header.index != expect_index or header.start != expect_start:
            raise StoreIncompleteError(
                f"Shard {path} holds shard {header.index} starting at {header.start}, expected shard "
                f"{expect_index} starting at {expect_start}; the store is damaged."
            )
        self.header = header
        buf = np.memmap(path, dtype=np.uint8, mode="r")  # the file is closed; the mapping stays
        self.buf = buf

        def view(name: str) -> np.ndarray:
            off, dtype, shape = header.array_range(name)
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            return buf[off:off + nbytes].view(dtype).reshape(shape)

        self.boxes = view("boxes")
        self.valid = view("valid")
        self.status = view("status")
        for name, crc in header.header.get("crc32", {}).items():  # the small arrays: a few KB per shard
            if zlib.crc32(np.ascontiguousarray(view(name)).data) != int(crc):
                raise StoreIncompleteError(f"Shard {path}: its {name} array does not match its CRC-32; the store is "
                                           "damaged. Restore the file or recompute the store (--overwrite).")
        self.offsets = view("offsets").astype(np.int64)  # small: n + 1 integers
        # the compressed records as a memoryview: slicing it is ~20x cheaper than slicing a np.memmap
        self.masks: memoryview = view("masks").data
        o = self.offsets
        if o.size == 0 or o[0] != 0 or (np.diff(o) < 0).any() or o[-1] != len(self.masks):
            raise StoreIncompleteError(f"Shard {path}: its mask record offsets are inconsistent; the store is "
                                       "damaged. Restore the file or recompute the store (--overwrite).")
        self.crc: np.ndarray | None = view("record_crc32") if "record_crc32" in header.header["arrays"] else None
        self.path = path

    def record(self, local: int, start: int, end: int) -> memoryview:
        """Mask record ``local`` (bytes ``start:end``), its length and CRC-32 checked."""
        rec = self.masks[start:end]
        if self.crc is not None and zlib.crc32(rec) != int(self.crc[local]):
            raise StoreIncompleteError(f"Shard {self.path}: the mask record of sample {self.header.start + local} "
                                       "does not match its CRC-32; the store is damaged. Restore the file or "
                                       "recompute the store (--overwrite).")
        return rec


def _as_index_array(indexes: object, n: int) -> np.ndarray:
    """Check and convert indexes to a 1-D int64 numpy array within [0, n)."""
    if isinstance(indexes, Tensor):
        if indexes.dtype in (torch.bool,) or indexes.is_floating_point() or indexes.is_complex():
            raise TypeError(f"indexes must be an integer tensor, got {indexes.dtype}.")
        arr = indexes.detach().cpu().numpy().astype(np.int64, copy=False)
    else:
        arr = np.asarray(indexes)
        if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"indexes must be integers (a tensor, array or sequence), got dtype {arr.dtype}.")
        arr = arr.astype(np.int64, copy=False)
    if arr.ndim != 1:
        raise ValueError(f"indexes must be 1-D, got shape {tuple(arr.shape)}.")
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        bad = arr[(arr < 0) | (arr >= n)][0]
        raise IndexError(f"index {int(bad)} is out of range for a store of {n} samples (valid: 0..{n - 1}).")
    return arr


class ObjectStore:
    """Read a store written by :func:`objaug.store.precompute` (see ``docs/store-format.md``).

    Args:
        path: the store directory.
        dataset: optional dataset to check the store against (same length and fingerprint, see
            :func:`objaug.store.precompute.dataset_fingerprint`); a mismatch raises.
        verify: check every shard's SHA-256 against the manifest now (reads the whole store once).
            Without it only the file sizes are checked.

    Raises:
        FileNotFoundError: no store at ``path``.
        StoreVersionError: a format version this objaug does not read.
        StoreIncompleteError: the run that writes the store has not finished, or shard files are
            missing, truncated or (with ``verify``) damaged.
        StoreMismatchError: ``dataset`` is not the store's dataset.

    Example:
        >>> store = ObjectStore("coco_boxes")
        >>> boxes, valid, mask = store[12]                        # (K, 4), (K,), (1, 56, 56)
        >>> boxes, valid, masks = store.get_batch(torch.tensor([3, 7]), mask_size=224)

    Safe in DataLoader workers: the shard files are memory-mapped lazily in each process.
    """

    def __init__(self, path: str | os.PathLike[str], *, dataset: object | None = None, verify: bool = False) -> None:
        self.path = Path(check_path(path, "path"))
        self.manifest: dict[str, Any] = read_manifest(self.path)
        layout = self.manifest["layout"]
        self._length = int(self.manifest["dataset"]["length"])
        self.shard_size = int(layout["shard_size"])
        self.max_boxes = int(layout["max_boxes"])
        self.mask_size: tuple[int, int] = (int(layout["mask_size"][0]), int(layout["mask_size"][1]))
        self._shard_entries: list[dict[str, Any]] = list(self.manifest["shards"])
        missing = []
        for entry in self._shard_entries:
            f = self.path / entry["file"]
            if not f.is_file() or f.stat().st_size != int(entry["bytes"]):
                missing.append(entry["file"])
        if missing:
            raise StoreIncompleteError(
                f"The store at {self.path} has {len(missing)} missing or resized shard file(s) "
                f"({', '.join(missing[:5])}{'...' if len(missing) > 5 else ''}). Restore them, or recompute the "
                "store (precompute(..., overwrite=True))."
            )
        if verify:
            self.verify()
        self._pid: int | None = None
        self._shards: dict[int, _Shard] = {}
        if dataset is not None:
            self.check_dataset(dataset)

    # -- process-local state ------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_pid"] = None
        state["_shards"] = {}
        return state

    def _shard(self, s: int) -> _Shard:
        pid = os.getpid()
        if self._pid != pid:  # first use in this process (or after a fork): drop inherited maps
            self._shards = {}
            self._pid = pid
        shard = self._shards.get(s)
        if shard is None:
            entry = self._shard_entries[s]
            shard = _Shard(self.path / entry["file"], s, s * self.shard_size)
            self._shards[s] = shard
        return shard

    def close(self) -> None:
        """Drop this process's memory maps (they are reopened on the next access)."""
        self._shards = {}

    # -- metadata -------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._length

    def __repr__(self) -> str:
        s = self.manifest["summary"]
        return (f"ObjectStore({str(self.path)!r}, samples={self._length}, skipped={s['skipped']}, "
                f"coverage={s['coverage']:.3f}, max_boxes={self.max_boxes}, mask_size={self.mask_size})")

    @property
    def settings(self) -> dict[str, Any]:
        """The settings the store was computed with (ContraCAM, boxes, masks, image size...)."""
        return dict(self.manifest["settings"])

    @property
    def summary(self) -> dict[str, Any]:
        """``count``, ``ok``, ``skipped``, ``with_box`` and ``coverage`` (fraction of the non-skipped
        samples with at least one valid box)."""
        return dict(self.manifest["summary"])

    @property
    def skipped(self) -> list[dict[str, Any]]:
        """The skipped samples: ``{"index": i, "error": "..."}``, sorted by index."""
        return list(self.manifest["skipped"])

    def verify(self) -> None:
        """Check every shard file's SHA-256 against the manifest.

        Raises:
            StoreIncompleteError: a shard differs (damaged or replaced).
        """
        bad = [e["file"] for e in self._shard_entries if file_sha256(self.path / e["file"]) != e["sha256"]]
        if bad:
            raise StoreIncompleteError(
                f"{len(bad)} shard file(s) of {self.path} do not match the checksums in {MANIFEST_NAME} "
                f"({', '.join(bad[:5])}): damaged or replaced. Recompute the store."
            )

    def check_dataset(self, dataset: object) -> None:
        """Raise :class:`StoreMismatchError` unless ``dataset`` has the store's length and fingerprint.

        The message says what differs (length, the same files in another order, other files) and how to fix it.
        """
        from objaug.store.datasets import dataset_fingerprint, files_fingerprint, sampled_fingerprint

        info = self.manifest["dataset"]
        made = (f"The store at {self.path} was made from a dataset of {self._length} samples "
                f"(fingerprint {str(info['fingerprint'])[:22]}...)")
        fix = (f"Pair it with the dataset it was made from (the same folder, file filter and order; `objaug "
               f"precompute --data DIR` lists every image under DIR sorted by relative path, as "
               f"objaug.store.ImageFolderFiles(DIR) does), or recompute it for this dataset: `objaug precompute "
               f"--dataset module:callable --out {self.path} --overwrite ...`.")
        if not hasattr(dataset, "__len__"):
            raise TypeError(f"dataset must be a map-style dataset with __len__, got {type(dataset).__name__}.")
        n = len(dataset)
        if n != self._length:
            raise StoreMismatchError(f"{made}; this {type(dataset).__name__} has {n}. {fix}")
        fp = dataset_fingerprint(dataset)
        if fp == info["fingerprint"]:
            return
        if str(info["fingerprint"]).startswith("sampled-v1:") and sampled_fingerprint(dataset) == info["fingerprint"]:
            return  # a store made before folder datasets got folder fingerprints
        files = files_fingerprint(dataset)
        if files is not None and files == info.get("files"):
            raise StoreMismatchError(
                f"{made}; this {type(dataset).__name__} reads the same {n} files in another order (e.g. torchvision's "
                "ImageFolder orders by class folder, `objaug precompute --data` by relative path), so sample i "
                "would get another image's boxes. Read the folder with objaug.store.ImageFolderFiles(DIR) (the "
                f"store's order), or recompute the store for this dataset. {fix}")
        raise StoreMismatchError(f"{made}; this {type(dataset).__name__} is another dataset: the same length but "
                                 f"other files or contents (fingerprint {fp[:22]}...). {fix}")

    # -- data -----------------------------------------------------------------------------------------

    def __getitem__(self, index: int) -> StoreItem:
        return self.get(index)

    def get(self, index: int, *, mask_size: int | tuple[int, int] | None = None) -> StoreItem:
        """One sample: ``(boxes (K, 4), valid (K,), mask (1, h, w))`` as CPU tensors.

        Args:
            index: dataset index in ``[0, len(store))``.
            mask_size: resize the mask to ``S`` or ``(H, W)`` (bilinear); ``None`` keeps the stored size.

        Raises:
            IndexError: index out of range.
        """
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            if isinstance(index, Tensor) and index.ndim == 0 and not index.is_floating_point():
                index = int(index)
            else:
                raise TypeError(f"index must be an int, got {type(index).__name__}; use get_batch for many.")
        b = self.get_batch(np.array([int(index)], dtype=np.int64), mask_size=mask_size)
        return StoreItem(b.boxes[0], b.valid[0], b.masks[0])

    def _locate(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Shard number and local index of each index, and the groups of positions per shard."""
        shard = idx // self.shard_size
        local = idx - shard * self.shard_size
        uniq, inverse = np.unique(shard, return_inverse=True)
        return shard, local, uniq, inverse

    def get_batch(self, indexes: Tensor | Sequence[int] | np.ndarray, *,
                  mask_size: int | tuple[int, int] | None = None) -> StoreBatch:
        """Many samples at once, vectorised (numpy fancy indexing on the memory maps).

        Args:
            indexes: (B,) integer tensor / array / sequence of dataset indexes (repeats allowed).
            mask_size: resize the masks to ``S`` or ``(H, W)`` (bilinear); ``None`` keeps the stored size.

        Returns:
            :class:`StoreBatch` ``(boxes (B, K, 4) float32, valid (B, K) bool, masks (B, 1, h, w)
            float32 in [0, 1])``, CPU tensors (move them with ``.to(device)``).

        Raises:
            TypeError: non-integer indexes. ValueError: not 1-D. IndexError: out of range.
        """
        idx = _as_index_array(indexes, self._length)
        b = idx.shape[0]
        k = self.max_boxes
        h, w = self.mask_size
        boxes = np.empty((b, k, 4), dtype=np.float32)
        valid = np.empty((b, k), dtype=np.uint8)
        records: list[Any] = [b""] * b
        _, local, uniq, inverse = self._locate(idx)
        for g, s in enumerate(uniq.tolist()):  # one step per distinct shard, not per sample
            pos = np.flatnonzero(inverse == g)
            loc = local[pos]
            sh = self._shard(s)
            boxes[pos] = sh.boxes[loc]
            valid[pos] = sh.valid[loc]
            starts = sh.offsets[loc]
            ends = sh.offsets[loc + 1]
            for p, i, a, e in zip(pos.tolist(), loc.tolist(), starts.tolist(), ends.tolist(), strict=True):
                records[p] = sh.record(i, a, e)
        masks_u8 = decode_masks(records, (h, w))
        masks = masks_from_uint8(torch.from_numpy(masks_u8).unsqueeze(1))
        if mask_size is not None and b > 0:
            masks = resize_masks(masks, mask_size, mode="bilinear")
        return StoreBatch(torch.from_numpy(boxes), torch.from_numpy(valid).bool(), masks)

    def is_skipped(self, indexes: Tensor | Sequence[int] | np.ndarray) -> Tensor:
        """(B,) bool: True where the sample was skipped at precompute time (unreadable or bad)."""
        idx = _as_index_array(indexes, self._length)
        out = np.zeros(idx.shape[0], dtype=bool)
        _, local, uniq, inverse = self._locate(idx)
        for g, s in enumerate(uniq.tolist()):
            pos = np.flatnonzero(inverse == g)
            out[pos] = self._shard(s).status[local[pos]] != 0
        return torch.from_numpy(out)

    def all_boxes(self) -> StoreBatch:
        """Boxes and validity of the whole store, without masks (masks is an empty (N, 1, 0, 0) tensor).

        Cheap: reads only the small box arrays of every shard.
        """
        boxes = np.empty((self._length, self.max_boxes, 4), dtype=np.float32)
        valid = np.empty((self._length, self.max_boxes), dtype=np.uint8)
        for s in range(len(self._shard_entries)):
            sh = self._shard(s)
            a = s * self.shard_size
            boxes[a:a + sh.header.count] = sh.boxes
            valid[a:a + sh.header.count] = sh.valid
        return StoreBatch(torch.from_numpy(boxes), torch.from_numpy(valid).bool(),
                          torch.zeros((self._length, 1, 0, 0)))
