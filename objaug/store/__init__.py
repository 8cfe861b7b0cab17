"""Precomputed object stores: ContraCAM boxes and soft masks for whole datasets, on disk.

* :func:`precompute` writes a store (resumable, sharded, multi-process with ``torch.distributed``).
* :class:`ObjectStore` reads one by dataset index (memory-mapped, safe in DataLoader workers).

The format is described in ``docs/store-format.md`` and :mod:`objaug.store.format`.
"""

from objaug.store.format import (
    FORMAT_VERSION,
    StoreError,
    StoreIncompleteError,
    StoreMismatchError,
    StoreVersionError,
)
from objaug.store.precompute import (
    ImageFolderFiles,
    PrecomputeResult,
    dataset_fingerprint,
    load_dataset,
    precompute,
)
from objaug.store.reader import ObjectStore, StoreBatch, StoreItem

__all__ = [
    "FORMAT_VERSION",
    "ImageFolderFiles",
    "ObjectStore",
    "PrecomputeResult",
    "StoreBatch",
    "StoreError",
    "StoreIncompleteError",
    "StoreItem",
    "StoreMismatchError",
    "StoreVersionError",
    "dataset_fingerprint",
    "load_dataset",
    "precompute",
]
