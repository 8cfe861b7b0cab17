"""Reading a dataset for the precompute: the decoding wrapper of its DataLoader and the CAM bank.

:class:`_Prepared` turns any map-style dataset (the contract of :mod:`objaug.store.precompute`) into
``(index, normalised image, ok, error)`` items that never raise, so bad samples are skipped, counted and
listed; :func:`embed_bank` uses the same decoding to embed a spread of samples as ContraCAM negatives.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from objaug.contracam import ContraCAM
from objaug.store.datasets import error_text, load_image
from objaug.validation import check_int

__all__ = ["check_input_options", "embed_bank", "prepared_loader", "spread_indexes"]


def check_input_options(*, batch_size: object, image_size: object, mean: object, std: object) -> None:
    """Refuse impossible input settings before any image is read (``ValueError`` naming the argument).

    Args:
        batch_size: images per ContraCAM batch, an int >= 2: each image is contrasted with the others of its
            batch, and the batches are cut near-equal, never of one image, so a batch size of 1 could only be
            raised silently (it is refused instead).
        image_size: side the images are resized to, an int >= 8.
        mean, std: per-channel normalisation, 3 numbers each (``std`` > 0).
    """
    check_int(batch_size, "batch_size", low=2, why=" (ContraCAM contrasts each image with the others of its batch)")
    check_int(image_size, "image_size", low=8)
    for name, values in (("mean", mean), ("std", std)):
        try:
            numbers = [float(v) for v in values]  # type: ignore[attr-defined]
        except (TypeError, ValueError):
            numbers = []
        if len(numbers) != 3:
            raise ValueError(f"{name} must hold 3 numbers (one per channel), got {values!r}.")
        if name == "std" and min(numbers) <= 0:
            raise ValueError(f"std must hold 3 numbers > 0, got {values!r}.")


def spread_indexes(length: int, size: int) -> list[int]:
    """``size`` indexes spread evenly over ``range(length)``: ``round(linspace(0, length - 1, size))``.

    All of them when ``size >= length``; sorted, without repeats. The samples of a bank of negatives.
    """
    return torch.linspace(0, length - 1, min(size, length)).round().long().unique().tolist()


class _Prepared(Dataset):
    """Wraps a dataset: item i -> (i, normalised (3, S, S) image, ok, error message); never raises."""

    def __init__(self, dataset: Any, size: int, mean: Sequence[float], std: Sequence[float]) -> None:
        self.dataset = dataset
        self.size = size
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[int, Tensor, bool, str]:
        try:
            x = load_image(self.dataset, index, self.size)
            if not bool(torch.isfinite(x).all()):
                raise ValueError("the image has NaN or infinite values")
            return index, (x - self.mean) / self.std, True, ""
        except Exception as e:  # noqa: BLE001 - bad samples are skipped, counted and listed, never fatal
            # no memory addresses ("<... at 0x7f...>") in the message: the store must be reproducible
            msg = error_text(e)
            return index, torch.zeros(3, self.size, self.size), False, msg[:300]


def _collate(items: list[tuple[int, Tensor, bool, str]]) -> tuple[Tensor, Tensor, Tensor, list[str]]:
    idx = torch.tensor([it[0] for it in items], dtype=torch.int64)
    images = torch.stack([it[1] for it in items])
    ok = torch.tensor([it[2] for it in items], dtype=torch.bool)
    return idx, images, ok, [it[3] for it in items]


def prepared_loader(dataset: Any, batches: Sequence[list[int]], *, image_size: int, mean: Sequence[float],
                    std: Sequence[float], device: torch.device | str = "cpu",
                    num_workers: int | None = None) -> DataLoader:
    """A DataLoader of ``(indexes (b,) int64, images (b, 3, S, S) float32 normalised, ok (b,) bool, errors)`` for
    the given index ``batches`` of ``dataset``; decoding never raises (a bad sample has ``ok`` False).
    ``num_workers`` defaults to ``min(8, cpu_count - 1)``; memory is pinned for a CUDA ``device``."""
    if num_workers is None:
        num_workers = max(0, min(8, (os.cpu_count() or 1) - 1))
    return DataLoader(_Prepared(dataset, image_size, mean, std), batch_sampler=batches, num_workers=num_workers,
                      collate_fn=_collate, pin_memory=torch.device(device).type == "cuda",
                      prefetch_factor=4 if num_workers > 0 else None)


def embed_bank(dataset: Any, cam: ContraCAM, size: int, *, image_size: int, mean: Sequence[float],
               std: Sequence[float], batch_size: int = 64, device: torch.device | str = "cpu",
               num_workers: int | None = None) -> Tensor:
    """Embeddings of ``size`` samples spread evenly over ``dataset``: a bank of ContraCAM negatives.

    The samples are :func:`spread_indexes` of the dataset (all of them when ``size >= N``), decoded and
    normalised as the precompute does; unreadable ones are left out. Deterministic, so every rank of a
    distributed precompute and every resumed run gets the same bank.

    Args:
        dataset: a map-style dataset (the precompute's contract).
        cam: the :class:`~objaug.contracam.ContraCAM` whose model embeds (:meth:`ContraCAM.embed`).
        size: number of samples, >= 1.
        image_size, mean, std: the precompute's resizing and normalisation.
        batch_size: images per forward.
        device: where the model runs.
        num_workers: DataLoader workers (default ``min(8, cpu_count - 1)``).

    Returns:
        (M, D) float32 unit-norm embeddings on ``device``, M <= ``size`` readable samples.
    """
    idx = spread_indexes(len(dataset), size)
    batches = [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]
    loader = prepared_loader(dataset, batches, image_size=image_size, mean=mean, std=std, device=device,
                             num_workers=num_workers)
    out = [cam.embed(images[ok].to(device)) for _, images, ok, _ in loader if bool(ok.any())]
    if not out:
        raise ValueError("no sample of the bank could be read (every one failed to load).")
    return torch.cat(out).float()
