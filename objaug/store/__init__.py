"""Precomputed object stores: ContraCAM boxes and soft masks for whole datasets, on disk.

* :func:`precompute` writes a store (resumable, sharded, multi-process with ``torch.distributed``).
* :class:`ObjectStore` reads one by dataset index (memory-mapped, safe in DataLoader workers).
* :func:`load_cam_boxes` reads the ``boxes.json`` of ``objaug cam`` as ``(N, K, 4)`` boxes.

Modules: :mod:`~objaug.store.format` (layout, manifest, mask codec), :mod:`~objaug.store.writer`,
:mod:`~objaug.store.reader`, :mod:`~objaug.store.datasets` (image folder, dataset specs, decoding,
fingerprints), :mod:`~objaug.store.distributed` (the process group), :mod:`~objaug.store.resume` (what a
resumed run must match) and :mod:`~objaug.store.precompute` (the run loop).

The format is described in ``docs/store-format.md`` and :mod:`objaug.store.format`.
"""

from objaug.store.cam_boxes import CamBoxes, load_cam_boxes
from objaug.store.datasets import ImageFolderFiles, dataset_fingerprint, load_dataset
from objaug.store.format import (
    FORMAT_VERSION,
    StoreError,
    StoreIncompleteError,
    StoreMismatchError,
    StoreVersionError,
)
from objaug.store.precompute import PrecomputeResult, precompute
from objaug.store.reader import ObjectStore, StoreBatch, StoreItem

__all__ = [
    "FORMAT_VERSION",
    "CamBoxes",
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
    "load_cam_boxes",
    "load_dataset",
    "precompute",
]
