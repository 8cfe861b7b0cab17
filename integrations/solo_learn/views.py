"""The tensor work of the solo-learn callback: boxes/masks in, re-cropped (and mixed) views out.

Nothing here imports Lightning; :class:`SoloObjectAware` is driven by the callback
(:mod:`objaug.integrations.solo_learn.callback`) and can be used directly on solo-learn batches
``[indexes, [X_1..X_n], targets]``.

Order of operations per training batch (all on the batch's device, batched, no host sync except
where noted):

1. boxes and soft masks for the batch's images: read from a store by the batch's indexes (one small
   device-to-host copy of the indexes), or computed by ContraCAM on one delivered full-frame view
   (``source: online``), or read from the per-index cache filled on earlier CAM batches;
2. per image, one box is drawn (shared by all re-cropped views of that image, as in the paper); with
   probability ``crop.box_p`` the crop region is that box, otherwise the whole frame;
3. per re-cropped view, an independent RandomResizedCrop inside the region (``crop.scale`` relative to
   the region) plus a horizontal flip, resampled to the view's own size;
4. on the mixup views, the masks are cropped and flipped with the same parameters and background
   mixup is applied to the cropped view.

solo-learn delivers the views already colour-augmented and normalised, so steps 3-4 act on augmented
frames: the colour augmentation happens *before* the crop (per-pixel operations commute with a crop;
blur and equalisation do not exactly), and the crop is resampled from the delivered resolution
(``crop_size``) rather than from the original image. See ``docs/solo-learn.md``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from objaug.augment.mixup import BackgroundMixup
from objaug.contracam import ContraCAM
from objaug.engine import ObjectSource, boxes_from_maps, choose_regions, crop_view, read_store
from objaug.stats import AugmentStats

from .batch import BoxStore, load_store, pick_cam_model, views_of
from .config import ObjaugConfig, ObjaugConfigError

__all__ = ["BoxStore", "SoloObjectAware", "load_store", "pick_cam_model", "views_of"]


class SoloObjectAware(nn.Module):
    """Object-aware re-cropping and background mixup of solo-learn views, on the device.

    Glue over :mod:`objaug.engine`: the box source's state (counters, refresh schedule, per-index cache)
    is an :class:`objaug.engine.ObjectSource`, the store read is :func:`objaug.engine.read_store`, the
    per-view crop is :func:`objaug.engine.crop_view`.

    Args:
        config: the validated ``objaug`` block.
        store: the object store for ``source: store`` (anything with ``get_batch``).

    Attributes:
        source: the :class:`~objaug.engine.ObjectSource` (``batches_seen``, ``refreshes``, ``last_info``).
        last_info: after each batch, a dict of tensors about the batch (``"object"``: (B,) bool,
            images cropped inside a box; ``"regions"``: (B, 4); ``"crop_boxes"``/``"flip"``: per view;
            ``"mixed"``: per mixup view (B,) bool; ``"cam"``: True if a CAM was computed).
    """

    def __init__(self, config: ObjaugConfig, *, store: BoxStore | None = None) -> None:
        super().__init__()
        self.config = config
        self.store = store
        mix = config.mixup
        self.mixers = nn.ModuleDict()
        if mix.enabled:
            for v in mix.views:
                self.mixers[str(v)] = BackgroundMixup(p=mix.p, threshold=mix.threshold,
                                                      fallback_mass=mix.fallback_mass, queue_size=mix.queue_size,
                                                      source=mix.source, check_inputs=False)  # type: ignore[arg-type]
        self.source = ObjectSource(every_n_steps=config.online.every_n_steps, start_step=config.online.start_step)
        self.stats = AugmentStats()  # what objaug did, on the device (logged by the callback)
        self._index_checked = False

    # ------------------------------------------------------------------ read-only views of the state
    @property
    def batches_seen(self) -> int:
        return self.source.batches_seen

    @property
    def last_info(self) -> dict[str, Any]:
        return self.source.last_info

    @property
    def cache_boxes(self) -> Tensor | None:
        return None if self.source.cache is None else self.source.cache.boxes

    @property
    def cache_valid(self) -> Tensor | None:
        return None if self.source.cache is None else self.source.cache.valid

    @property
    def cache_masks(self) -> Tensor | None:
        return None if self.source.cache is None else self.source.cache.masks

    # ------------------------------------------------------------------ sources
    def cam_due(self) -> bool:
        """Whether the current batch gets a fresh CAM (``source: online``)."""
        return self.source.cam_due()

    @property
    def uses_cache(self) -> bool:
        o = self.config.online
        return self.config.source == "online" and o.every_n_steps > 1 and o.cache == "index"

    def allocate_cache(self, size: int, device: torch.device) -> None:
        """Create the per-index cache: boxes (float16), valid (bool) and, with mixup, masks (uint8)."""
        mask_size = self.config.online.cache_mask_size if self.config.mixup.enabled else None
        self.source.allocate(size, self.config.boxes.max_boxes, device=device, box_dtype=torch.float16,
                             mask_size=mask_size)

    def release_cache(self) -> None:
        """Drop the per-index cache (end of training)."""
        self.source.release()

    def _check_indexes(self, indexes: Tensor, size: int) -> None:
        if self._index_checked:
            return
        top = int(indexes.max())  # one host sync, on the first batch only
        if int(indexes.min()) < 0 or top >= size:
            raise ObjaugConfigError(
                f"objaug.online.cache_size={size} is too small: the batch holds dataset index {top}. Set "
                "objaug.online.cache_size to the dataset length (or leave it null to use "
                "len(train_dataloader.dataset))."
            )
        self._index_checked = True

    def cache_write(self, indexes: Tensor, boxes: Tensor, valid: Tensor, masks: Tensor | None) -> None:
        assert self.source.cache is not None
        self._check_indexes(indexes, len(self.source.cache))
        self.source.remember(indexes, boxes, valid, masks)

    def cache_read(self, indexes: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        assert self.source.cache is not None
        self._check_indexes(indexes, len(self.source.cache))
        return self.source.recall(indexes)

    def store_lookup(self, indexes: Tensor, device: torch.device) -> tuple[Tensor, Tensor, Tensor | None]:
        """Boxes, valid and masks of the batch from the store, moved to ``device``."""
        if self.store is None:
            raise RuntimeError("objaug.source is 'store' but no store was opened.")
        boxes, valid, masks = read_store(self.store, indexes, device)
        if masks is None and self.config.mixup.enabled:
            raise ValueError(f"objaug.mixup.enabled needs masks, but {type(self.store).__name__}.get_batch returned "
                             "masks=None. Build the store with masks, or set objaug.mixup.enabled: false.")
        return boxes, valid, masks

    def compute_cam(
        self,
        backbone: nn.Module,
        projector: nn.Module | None,
        images: Tensor,
        *,
        context: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
        channels_last: bool = False,
        gather: Callable[[Tensor], Tensor] | None = None,
        rank: int = 0,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """ContraCAM maps of ``images`` and the boxes found in them.

        The split (encoder, head) is rebuilt from the module's current attributes on every call, so
        later module swaps (SyncBatchNorm conversion, DDP set-up) are seen. ContraCAM puts the model in
        eval mode (BatchNorm running statistics are used and not updated) and restores it exactly.

        Args:
            backbone, projector: the method's modules (see :func:`pick_cam_model`).
            images: (B, C, H, W) full-frame normalised view.
            context: the trainer's precision context (autocast for ``16-mixed``/``bf16-mixed``).
            channels_last: feed the model a channels_last copy (solo-learn converts its model).
            gather: DDP all-gather ``(B, D) -> (W, B, D)``; with it, the other ranks' embeddings are
                added as negatives (one extra no-grad forward).
            rank: this process's rank (its own slice is left out of the gathered negatives).

        Returns:
            ``(maps, boxes, valid)``: (B, 1, H, W) float32 in [0, 1], (B, K, 4), (B, K).
        """
        o, bx = self.config.online, self.config.boxes
        cam = ContraCAM(backbone, projector=projector, iters=o.iters, temperature=o.temperature,
                        expand_res=o.expand_res, check_finite=False,
                        source="attention" if o.map_source == "attention" else "gradcam")
        x = images.detach()
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        negatives = None
        with context():
            if gather is not None:
                z = cam.embed(x)
                everyone = gather(z)
                if everyone.ndim == 3 and everyone.shape[0] > 1:
                    keep = torch.arange(everyone.shape[0], device=everyone.device) != rank
                    negatives = everyone[keep].reshape(-1, everyone.shape[-1]).to(z.dtype)
            maps, steps = cam(x, negatives, return_steps=True)
        maps = maps.float()
        # refined boxes: each iteration's own objects (boxes of the union merge neighbouring objects)
        boxes, valid = boxes_from_maps(steps, map_size=bx.map_size, threshold=bx.threshold, min_area=bx.min_area,
                                       margin=bx.margin, max_boxes=bx.max_boxes)
        return maps, boxes, valid

    # ------------------------------------------------------------------ augmentation
    @torch.no_grad()
    def recrop(self, views: list[Tensor], boxes: Tensor | None, valid: Tensor | None,
               masks: Tensor | None) -> dict[str, Any]:
        """Re-crop ``views[v]`` for v in ``config.views`` in place (list items replaced), then mix.

        Args:
            views: solo-learn's list X (modified in place).
            boxes, valid: (B, K, 4) normalised xyxy and (B, K) bool, or None (whole-frame crops only).
            masks: (B, 1, h, w) soft masks of the full frame in [0, 1] (any h, w), or None (no mixup).

        Returns:
            The batch's info (see ``last_info``).
        """
        c = self.config.crop
        first = views[self.config.views[0]]
        b, device = first.shape[0], first.device
        regions, use = choose_regions(boxes, valid, b, device, p=c.box_p, mode=c.box_sampling)
        info: dict[str, Any] = {"crop_boxes": {}, "flip": {}, "mixed": {}, "object": use, "regions": regions}
        for v in self.config.views:
            x = views[v]
            if x.shape[0] != b:
                raise ValueError(f"objaug: view {v} has batch size {x.shape[0]}, view {self.config.views[0]} has {b}.")
            key = str(v)
            mix = key in self.mixers and masks is not None
            cut = crop_view(x, regions, (int(x.shape[-2]), int(x.shape[-1])), scale=c.scale, ratio=c.ratio,
                            flip_prob=c.flip_prob, attempts=c.attempts, center_suppressed=c.center_suppressed,
                            alpha=c.alpha, antialias=c.antialias, min_box_pixels=c.min_box_pixels,
                            masks=masks.to(device=device, dtype=torch.float32) if mix and masks is not None else None)
            out = cut.image
            if mix and cut.masks is not None:
                out, mixed = self.mixers[key](out, cut.masks.clamp_(0.0, 1.0).to(out.dtype))
                info["mixed"][v] = mixed
            views[v] = out
            info["crop_boxes"][v], info["flip"][v] = cut.crop_boxes, cut.flip
        return info

    def cache_write_gathered(self, gather: Callable[[Tensor], Tensor], indexes: Tensor, boxes: Tensor,
                             valid: Tensor, masks: Tensor | None) -> None:
        """DDP: write every rank's boxes/masks of this batch to the cache (``gather``: ``(B, ...) -> (W, B, ...)``).

        Masks are shrunk to the cache's size before the all-gather (less traffic).
        """
        cache = self.source.cache
        if masks is not None and cache is not None and cache.masks is not None:
            masks = cache.small_masks(masks)
        idx_all = gather(indexes.long()).reshape(-1)
        boxes_all = gather(boxes.float()).reshape(-1, *boxes.shape[1:])
        valid_all = gather(valid.float()).reshape(-1, *valid.shape[1:]) > 0.5
        masks_all = None if masks is None else gather(masks.float()).reshape(-1, *masks.shape[1:])
        self.cache_write(idx_all, boxes_all, valid_all, masks_all)

    def step(self, views: list[Tensor], indexes: Tensor, *,
             compute: Callable[[], tuple[Tensor, Tensor, Tensor]] | None = None,
             gather: Callable[[Tensor], Tensor] | None = None) -> None:
        """One training batch: the objects from the store, a fresh CAM or the cache, then :meth:`recrop`.

        Args:
            views: solo-learn's list X (modified in place).
            indexes: (B,) dataset indexes of the batch.
            compute: on a CAM batch, returns ``(maps, boxes, valid)`` (see :meth:`compute_cam`).
            gather: DDP all-gather; with it a CAM batch's objects are written to every rank's cache
                (:meth:`cache_write_gathered`), else to this process's (:meth:`cache_write`).
        """
        boxes: Tensor | None = None
        valid: Tensor | None = None
        masks: Tensor | None = None
        cam = False
        if self.config.source == "store":
            boxes, valid, masks = self.store_lookup(indexes, views[self.config.views[0]].device)
        elif self.cam_due():
            assert compute is not None
            maps, boxes, valid = compute()
            masks = maps if self.config.mixup.enabled else None
            cam = True
            if self.uses_cache:
                if gather is None:
                    self.cache_write(indexes, boxes, valid, masks)
                else:
                    self.cache_write_gathered(gather, indexes, boxes, valid, masks)
        elif self.uses_cache:
            boxes, valid, masks = self.cache_read(indexes)
        info = self.recrop(views, boxes, valid, masks)
        self.stats.update(used=info["object"], regions=info["regions"], object_views=len(self.config.views),
                          mixed=list(info["mixed"].values()), boxes=boxes, valid=valid, cam=cam)
        self.source.finish(info, cam=cam)
