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
from objaug.config import ScheduleConfig
from objaug.engine import choose_regions, crop_view
from objaug.objects import Objects
from objaug.provider import CacheSizeError, ObjectProvider
from objaug.stats import AugmentStats

from .batch import BoxStore, load_store, pick_cam_model, views_of
from .config import ObjaugConfig, ObjaugConfigError

__all__ = ["BoxStore", "SoloObjectAware", "load_store", "pick_cam_model", "views_of"]


class SoloObjectAware(nn.Module):
    """Object-aware re-cropping and background mixup of solo-learn views, on the device.

    Glue: the objects come from an :class:`objaug.provider.ObjectProvider` (the same provider as Lightly's
    ``ObjectAwareStep``: store, online ContraCAM with the refresh schedule and a per-index cache of boxes and
    uint8 masks), the per-view crop is :func:`objaug.engine.crop_view`.

    Args:
        config: the validated ``objaug`` block.
        store: the object store for ``source: store`` (anything with ``get_batch``).

    Attributes:
        provider: the :class:`~objaug.provider.ObjectProvider` (``batches_seen``, ``refreshes``, the cache).
        last_info: after each batch, a dict of tensors about the batch (``"object"``: (B,) bool,
            images cropped inside a box; ``"regions"``: (B, 4); ``"crop_boxes"``/``"flip"``: per view;
            ``"mixed"``: per mixup view (B,) bool; ``"cam"``: True if a CAM was computed).
        last_objects: the :class:`~objaug.objects.Objects` of the last batch (``origin`` says where from).
    """

    def __init__(self, config: ObjaugConfig, *, store: BoxStore | None = None) -> None:
        super().__init__()
        self.config = config
        mix = config.mixup
        self.mixers = nn.ModuleDict()
        if mix.enabled:
            for v in mix.views:
                self.mixers[str(v)] = BackgroundMixup(p=mix.p, threshold=mix.threshold,
                                                      fallback_mass=mix.fallback_mass, queue_size=mix.queue_size,
                                                      source=mix.source, check_inputs=False)  # type: ignore[arg-type]
        o = config.online
        online = config.source == "online"
        self.provider = ObjectProvider(o.cam, config.boxes, o.schedule if online else ScheduleConfig(),
                                       store=store if config.source == "store" else None,
                                       cache=online and o.cache == "index", cache_masks=mix.enabled,
                                       mask_size=o.cache_mask_size, box_dtype=torch.float16, normalize=None,
                                       size_option="objaug.online.cache_size")
        self.stats = AugmentStats()  # what objaug did, on the device (logged by the callback)
        self.last_info: dict[str, Any] = {}
        self.last_objects: Objects | None = None

    # ------------------------------------------------------------------ read-only views of the state
    @property
    def store(self) -> Any:
        return self.provider.store

    @property
    def batches_seen(self) -> int:
        return self.provider.batches_seen

    @property
    def cache_boxes(self) -> Tensor | None:
        return None if self.provider.cache is None else self.provider.cache.boxes

    @property
    def cache_valid(self) -> Tensor | None:
        return None if self.provider.cache is None else self.provider.cache.valid

    @property
    def cache_masks(self) -> Tensor | None:
        return None if self.provider.cache is None else self.provider.cache.masks

    @property
    def uses_cache(self) -> bool:
        return self.provider.uses_cache

    def cam_due(self) -> bool:
        """Whether the current batch gets a fresh CAM (``source: online``)."""
        return self.config.source == "online" and self.provider.due()

    def allocate_cache(self, size: int, device: torch.device) -> None:
        """Create the per-index cache: boxes (float16), valid (bool) and, with mixup, masks (uint8)."""
        self.provider.allocate(size, device)

    def release_cache(self) -> None:
        """Drop the per-index cache (end of training)."""
        self.provider.release()

    # ------------------------------------------------------------------ the CAM
    def build_cam(self, backbone: nn.Module, projector: nn.Module | None) -> Any:
        """A ContraCAM of the method's modules with ``objaug.online``'s settings (rebuilt per CAM batch, so later
        module swaps such as SyncBatchNorm or DDP wrapping are seen)."""
        return self.provider.build_cam(backbone, projector=projector)

    @staticmethod
    def gathered_negatives(cam: Any, images: Tensor, gather: Callable[[Tensor], Tensor], rank: int) -> Tensor | None:
        """DDP: the other ranks' embeddings of their CAM images (one extra no-grad forward), as ``(N, D)``."""
        z = cam.embed(images)
        everyone = gather(z)
        if everyone.ndim != 3 or everyone.shape[0] < 2:
            return None
        keep = torch.arange(everyone.shape[0], device=everyone.device) != rank
        return everyone[keep].reshape(-1, everyone.shape[-1]).to(z.dtype)

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

    def step(self, views: list[Tensor], indexes: Tensor, *, cam: Any = None, cam_view: int | None = None,
             context: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
             channels_last: bool = False, negatives: Callable[[], Tensor | None] | None = None,
             gather: Callable[[Tensor], Tensor] | None = None) -> None:
        """One training batch: the provider's objects (store, a fresh CAM or the cache), then :meth:`recrop`.

        Args:
            views: solo-learn's list X (modified in place).
            indexes: (B,) dataset indexes of the batch.
            cam: on a CAM batch, the ContraCAM of the model being trained (:meth:`build_cam`); ``None`` otherwise.
            cam_view: the view the CAM runs on (default ``objaug.online.view`` or ``objaug.views[0]``).
            context: the trainer's precision context (autocast for ``16-mixed``/``bf16-mixed``).
            channels_last: feed the model a channels_last copy (solo-learn converts its model).
            negatives: on a CAM batch, returns extra negatives (e.g. :meth:`gathered_negatives`).
            gather: DDP all-gather; with it a CAM batch's objects are written to every rank's cache.
        """
        if cam_view is None:
            cam_view = self.config.online.view if self.config.online.view is not None else self.config.views[0]
        x = views[cam_view].detach()
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        mixing = self.config.mixup.enabled and self.batches_seen >= self.config.mixup.start_step
        try:
            with context():
                found = self.provider.objects(x, indexes=indexes, cam=cam, negatives=negatives, gather=gather)
        except CacheSizeError as err:
            raise ObjaugConfigError(f"{err} (Or leave objaug.online.cache_size null: len(train_dataloader.dataset) "
                                    "is used.)") from None
        if found.origin == "store" and found.masks is None and self.config.mixup.enabled:
            raise ValueError(f"objaug.mixup.enabled needs masks, but {type(self.store).__name__}.get_batch returned "
                             "masks=None. Build the store with masks, or set objaug.mixup.enabled: false.")
        info = self.recrop(views, found.boxes, found.valid, found.masks if mixing else None)
        cam_ran = found.origin == "cam"
        self.stats.update(used=info["object"], regions=info["regions"], object_views=len(self.config.views),
                          mixed=list(info["mixed"].values()), boxes=found.boxes, valid=found.valid, cam=cam_ran)
        info["cam"] = cam_ran
        self.last_info = info
        self.last_objects = found
