"""A per-dataset-index cache of objects on the device: boxes, validity and uint8 masks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from objaug.masks import masks_from_uint8, masks_to_uint8
from objaug.objects import Objects

__all__ = ["CacheSizeError", "IndexCache"]


class CacheSizeError(ValueError):
    """A dataset index at or beyond the per-index cache's rows: the size option is smaller than the dataset.

    The message names the size option (``IndexCache(size_option=...)``), so an adapter can add its own hint.
    """


class IndexCache:
    """Boxes (and masks) of every dataset sample, on the device, keyed by dataset index.

    Boxes are kept in ``box_dtype``, validity as bool, masks (optional) as uint8 at ``mask_size`` x
    ``mask_size`` (packed by :func:`objaug.masks.masks_to_uint8`). Rows never written read as "no box"
    (whole-image crops: the warm-up of ContrastiveCrop) and empty masks (never mixed).

    Args:
        size: number of rows (the dataset length).
        max_boxes: ``K``, boxes per row.
        device: where the rows live.
        box_dtype: dtype of the stored boxes (reads return float32).
        mask_size: side of the stored masks, ``None`` for no masks.
        size_option: the name of the option that set ``size``, as the user wrote it (``num_samples``,
            ``objaug.online.cache_size``): :class:`CacheSizeError` names it.
    """

    def __init__(self, size: int, max_boxes: int, *, device: torch.device | str | None = None,
                 box_dtype: torch.dtype = torch.float32, mask_size: int | None = None,
                 size_option: str = "num_samples") -> None:
        self.boxes = torch.zeros(size, max_boxes, 4, dtype=box_dtype, device=device)
        self.valid = torch.zeros(size, max_boxes, dtype=torch.bool, device=device)
        self.masks = None if mask_size is None else torch.zeros(size, 1, mask_size, mask_size, dtype=torch.uint8,
                                                                device=device)
        self.size_option = size_option
        self._checked = False

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def to(self, device: torch.device | str) -> IndexCache:
        """Move the rows to ``device`` (no copy when they are there already); returns ``self``."""
        self.boxes = self.boxes.to(device)
        self.valid = self.valid.to(device)
        if self.masks is not None:
            self.masks = self.masks.to(device)
        return self

    def fits(self, boxes: Tensor) -> bool:
        """Whether ``(B, K, 4)`` boxes fit the rows (same ``K``, same device)."""
        return self.boxes.shape[1] == boxes.shape[1] and self.boxes.device == boxes.device

    def small_masks(self, masks: Tensor) -> Tensor:
        """``(B, 1, h, w)`` masks area-resized to the cache's mask size, float32 (unchanged if already that size)."""
        assert self.masks is not None
        s = self.masks.shape[-1]
        return masks.float() if masks.shape[-2:] == (s, s) else F.interpolate(masks.float(), size=(s, s), mode="area")

    def check_indexes(self, indexes: Tensor) -> None:
        """Refuse indexes outside ``[0, len)``: checked on the first batch only (one host read), then trusted.

        Raises:
            CacheSizeError: an index beyond the rows (naming ``size_option``).
            ValueError: a negative index.
        """
        if self._checked:
            return
        low, top = int(indexes.min()), int(indexes.max())
        if low < 0:
            raise ValueError(f"Dataset indexes must be >= 0, got {low}.")
        if top >= len(self):
            raise CacheSizeError(f"{self.size_option}={len(self)} is too small for dataset index {top}: the cache "
                                 f"holds one row per dataset sample. Set {self.size_option} to the dataset length.")
        self._checked = True

    def write(self, indexes: Tensor, objects: Objects) -> None:
        """Store the rows ``indexes`` ((B,) long) of a batch's objects (masks packed when the cache keeps them)."""
        idx = indexes.long()
        self.boxes.index_copy_(0, idx, objects.boxes.to(self.boxes.dtype))
        self.valid.index_copy_(0, idx, objects.valid.bool())
        if self.masks is not None and objects.masks is not None:
            self.masks.index_copy_(0, idx, masks_to_uint8(self.small_masks(objects.masks)))

    def read(self, indexes: Tensor) -> Objects:
        """The rows ``indexes`` as :class:`~objaug.objects.Objects` (``origin="cache"``): float32 boxes, bool
        valid, ``(B, 1, s, s)`` float32 masks (``None`` without masks)."""
        idx = indexes.long()
        masks = None if self.masks is None else masks_from_uint8(self.masks.index_select(0, idx))
        return Objects(self.boxes.index_select(0, idx).float(), self.valid.index_select(0, idx), masks, "cache")
