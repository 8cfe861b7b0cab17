"""One provider of objects for training loops: given with the batch, from a store, or online ContraCAM.

Both training adapters (the Lightly :class:`objaug.integrations.lightly.ObjectAwareStep` and the solo-learn
callback) ask an :class:`ObjectProvider` for each batch's :class:`objaug.objects.Objects`; a third adapter is a
thin file around the same calls. Nothing here loops over samples; the only host reads are the first batch's
index check of the cache and a store's index read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from objaug.config import BoxConfig, CamConfig, ScheduleConfig, ensure_config
from objaug.constants import IMAGENET_NORMALIZE
from objaug.objects import Objects, find_objects
from objaug.validation import (
    check_bool,
    check_device,
    check_int,
    check_normalize,
    check_optional_int,
    check_optional_size,
)

from .cache import IndexCache
from .store import read_store

__all__ = ["ObjectProvider", "check_cam_setup"]


def check_cam_setup(cam: Callable[..., Any], images: Tensor) -> None:
    """Run ``cam`` once on ``images`` (a dry run at set-up), so a model/source mismatch fails before training.

    Catches what only a forward shows: a map of 1x1 (images too small for the encoder's stride), a ViT given
    images of a size it cannot take, an encoder that is not spatial. ``ValueError``/``TypeError`` from objaug
    pass through; any other exception from the model is re-raised as ``ValueError`` naming the image size.
    """
    try:
        with torch.no_grad():
            cam(images)
    except (ValueError, TypeError):
        raise
    except Exception as err:  # the model's own refusal (e.g. timm's AssertionError on the image size)
        size = "x".join(str(s) for s in images.shape[-2:])
        raise ValueError(f"The CAM's model cannot run on {size} images ({type(err).__name__}: {err}). Use the image "
                         "size the model was built for (a ViT's img_size, a multiple of its patch size).") from err


class ObjectProvider(nn.Module):
    """Where each training batch's objects come from, with the CAM refresh schedule and a per-index cache.

    Per batch, in this order: objects given with the batch; else a store's ``get_batch(indexes)``; else, on a
    refresh batch of the schedule, ContraCAM on the batch (:func:`objaug.objects.find_objects` with the
    configs), written to the per-index cache when the CAM does not run every batch; else the cached objects of
    the batch's indexes (rows never written read as "no box", empty masks); else no objects (whole frames).

    Args:
        cam_config: the CAM settings (:class:`~objaug.config.CamConfig`).
        box_config: the box settings (:class:`~objaug.config.BoxConfig`).
        schedule: when the CAM runs (:class:`~objaug.config.ScheduleConfig`).
        store: a store with ``get_batch(indexes)`` (e.g. :class:`objaug.store.ObjectStore`), or ``None``.
        num_samples: the dataset length: rows of the cache (needed when ``schedule.every_n_steps > 1``; may be
            given later through :meth:`allocate`).
        cache: keep a per-index cache between refreshes (``False``: whole frames between refreshes).
        cache_masks: keep uint8 masks in the cache too (needed for background mixup between refreshes).
        mask_size: side of the cached masks.
        box_dtype: dtype of the cached boxes.
        cam_size: run the CAM on images resized to this size (int or ``(h, w)``, kept as ``(h, w)``); ``None``:
            as given.
        normalize: ``{"mean", "std"}`` applied to [0, 1] images before the CAM (default ImageNet); ``None``:
            the images are normalised already.
        size_option: the name under which the adapter's user sets the cache's length (``num_samples`` for the
            Lightly step, ``objaug.online.cache_size`` for solo-learn): errors about it name it.

    Attributes:
        batches_seen: batches served so far; refreshes: batches on which the CAM ran.
        cache: the :class:`IndexCache` or ``None``.
    """

    cam_mean: Tensor
    cam_std: Tensor

    def __init__(self, cam_config: CamConfig | None = None, box_config: BoxConfig | None = None,
                 schedule: ScheduleConfig | None = None, *, store: Any = None, num_samples: int | None = None,
                 cache: bool = True, cache_masks: bool = False, mask_size: int = 32,
                 box_dtype: torch.dtype = torch.float32, cam_size: int | Sequence[int] | None = None,
                 normalize: Mapping[str, Sequence[float]] | None = IMAGENET_NORMALIZE,
                 size_option: str = "num_samples") -> None:
        super().__init__()
        self.cam_config = ensure_config(cam_config, CamConfig, "cam_config")
        self.box_config = ensure_config(box_config, BoxConfig, "box_config")
        self.schedule = ensure_config(schedule, ScheduleConfig, "schedule")
        if store is not None and not callable(getattr(store, "get_batch", None)):
            raise TypeError(f"store must have a get_batch(indexes) method (e.g. objaug.ObjectStore), got "
                            f"{type(store).__name__}.")
        check_bool(cache, "cache")
        check_bool(cache_masks, "cache_masks")
        check_optional_int(num_samples, "num_samples", low=1, none="the length given to allocate()",
                           why=" (the dataset length)")
        check_int(mask_size, "mask_size", low=4, why=" (side of the cached masks)")
        self.store = store
        self.num_samples = num_samples
        self.size_option = size_option
        self.keeps_cache = cache
        self.cache_masks = cache_masks
        self.mask_size = mask_size
        self.box_dtype = box_dtype
        self.cam_size = check_optional_size(cam_size, "cam_size", none="the images' own size")
        norm = check_normalize(normalize)
        self.normalizes = norm is not None
        if norm is None:
            norm = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}
        self.register_buffer("cam_mean", torch.tensor(norm["mean"], dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("cam_std", torch.tensor(norm["std"], dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)
        self.cache: IndexCache | None = None
        self.bank: Tensor | None = None
        self.batches_seen = 0
        self.refreshes = 0

    def extra_repr(self) -> str:
        source = "store" if self.store is not None else "online CAM / given"
        return (f"{source}, {self.cam_config}, {self.box_config}, {self.schedule}, cache={self.uses_cache}, "
                f"cache_masks={self.cache_masks}")

    # ------------------------------------------------------------------ schedule and cache
    @property
    def uses_cache(self) -> bool:
        """Whether objects are cached per dataset index between CAM refreshes."""
        return self.store is None and self.keeps_cache and self.schedule.every_n_steps > 1

    def due(self) -> bool:
        """Whether the current batch (number ``batches_seen``) is a CAM refresh batch."""
        s = self.batches_seen - self.schedule.start_step
        return s >= 0 and s % self.schedule.every_n_steps == 0

    def allocate(self, size: int | None = None, device: torch.device | str | None = None) -> IndexCache:
        """Create (or replace) the cache: ``size`` rows (default ``num_samples``) of ``box_config.max_boxes`` boxes."""
        size = size if size is not None else self.num_samples
        if size is None:
            raise ValueError(f"The per-index cache needs the dataset length: set {self.size_option} to "
                             "len(dataset).")
        self.num_samples = int(size)
        self.cache = IndexCache(int(size), self.box_config.max_boxes, device=device, box_dtype=self.box_dtype,
                                mask_size=self.mask_size if self.cache_masks else None,
                                size_option=self.size_option)
        return self.cache

    def release(self) -> None:
        """Forget the cache and the online bank (e.g. after loading other weights, or at the end of training)."""
        self.cache = None
        self.bank = None

    # ------------------------------------------------------------------ the CAM
    def build_cam(self, model: nn.Module | None = None, *, projector: nn.Module | None = None,
                  encoder: nn.Module | None = None, head: nn.Module | None = None) -> Any:
        """A :class:`objaug.ContraCAM` of ``model`` (+ ``projector``) with :attr:`cam_config` (no finiteness check)."""
        return self.cam_config.build(model, encoder=encoder, head=head, projector=projector, check_finite=False)

    def adopt_cam(self, cam: Callable[..., Any], *, config_given: bool) -> Callable[..., Any]:
        """Check a ready CAM (a :class:`objaug.ContraCAM` or any ``cam(x, negatives=None)``) against :attr:`cam_config`.

        A ready CAM's map settings are its own: of the config only ``mask_iters`` (needs a ContraCAM's
        per-iteration maps) and ``bank`` (the provider's online bank) apply to it. The one rule of every door that
        takes ``cam=`` and ``cam_config=`` together (``ObjectAwareAugment``, ``ObjectAwareStep``).

        Args:
            cam: the ready CAM.
            config_given: whether the caller passed ``cam_config`` (the defaults are never an error).

        Returns:
            ``cam``.

        Raises:
            TypeError: ``cam`` is not callable.
            ValueError: ``mask_iters`` without a ContraCAM, or other CAM options set beside a ready CAM.
        """
        from objaug.contracam import ContraCAM

        if not callable(cam):
            raise TypeError(f"cam must be callable as cam(images, negatives=None) (or pass the model), got "
                            f"{type(cam).__name__}.")
        if not config_given:
            return cam
        config = self.cam_config
        if config.mask_iters is not None and not isinstance(cam, ContraCAM):
            raise ValueError("cam_config.mask_iters needs cam= to be an objaug.ContraCAM (its per-iteration maps), "
                             f"got {type(cam).__name__}. Drop mask_iters, or pass the model or a ContraCAM.")
        if dataclasses.replace(config, mask_iters=None, bank=0) != CamConfig():
            raise ValueError("cam_config sets CAM options, but cam is a ready CAM whose options are its own: pass the "
                             "model with cam_config, or set the options on the ContraCAM (only mask_iters and bank "
                             "may be given with a ready CAM).")
        return cam

    def cam_input(self, images: Tensor) -> Tensor:
        """``images`` resized to ``cam_size`` (bilinear, antialiased) and normalised for the CAM's model."""
        x = images
        if self.cam_size is not None and tuple(x.shape[-2:]) != self.cam_size:
            x = F.interpolate(x, size=self.cam_size, mode="bilinear", align_corners=False, antialias=True)
        if self.normalizes:
            x = (x - self.cam_mean.to(x)) / self.cam_std.to(x)
        return x

    def check_setup(self, cam: Callable[..., Any], image_size: tuple[int, int], *,
                    device: torch.device | str | None = None) -> None:
        """Dry-run ``cam`` on two noise images of ``image_size`` (before the CAM's resize), so mistakes fail now."""
        generator = torch.Generator().manual_seed(0)
        images = torch.rand(2, 3, *image_size, generator=generator).to(device)
        check_cam_setup(cam, self.cam_input(images))

    def compute(self, cam: Callable[..., Any], images: Tensor, *, negatives: Tensor | None = None) -> Objects:
        """The objects of ``images`` by ``cam`` (:func:`objaug.objects.find_objects`), with the online bank.

        Args:
            cam: a ContraCAM (e.g. :meth:`build_cam`) or any ``cam(x, negatives=None) -> (B, 1, h, w)``.
            images: ``(B, 3, H, W)`` in [0, 1] (or normalised, with ``normalize=None``).
            negatives: extra ``(N, D)`` negatives (a memory bank, other ranks' embeddings).

        Returns:
            :class:`~objaug.objects.Objects` (``origin="cam"``), masks at the CAM's size.
        """
        x = self.cam_input(images)
        negatives = self._with_bank(negatives)
        objects = find_objects(cam, x, self.box_config, negatives=negatives, mask_iters=self.cam_config.mask_iters)
        embed = getattr(cam, "embed", None)
        if self.cam_config.bank > 0 and callable(embed):
            self._push_bank(embed(x))
        return objects

    def _with_bank(self, negatives: Tensor | None) -> Tensor | None:
        if self.bank is None:
            return negatives
        if negatives is None:
            return self.bank
        return torch.cat([negatives.to(self.bank), self.bank])

    def _push_bank(self, embeddings: Tensor) -> None:
        """Newest first, at most ``cam_config.bank`` rows (a FIFO queue of earlier CAM batches' embeddings)."""
        rows = embeddings.detach()
        if self.bank is not None and self.bank.shape[1] == rows.shape[1] and self.bank.device == rows.device:
            rows = torch.cat([rows, self.bank.to(rows.dtype)])
        self.bank = rows[: self.cam_config.bank]

    # ------------------------------------------------------------------ per batch
    def objects(self, images: Tensor, *, indexes: Tensor | None = None, given: Objects | None = None,
                cam: Callable[..., Any] | None = None, negatives: Tensor | Callable[[], Tensor | None] | None = None,
                gather: Callable[[Tensor], Tensor] | None = None) -> Objects:
        """The objects of one training batch (and count it).

        Args:
            images: ``(B, 3, H, W)`` the batch's images (see :meth:`compute`), on the training device.
            indexes: ``(B,)`` dataset indexes (needed with a store and with the cache).
            given: objects passed with the batch (they win).
            cam: the CAM of the model being trained (online source); ``None``: no online CAM.
            negatives: extra CAM negatives, or a callable returning them (called on refresh batches only).
            gather: DDP all-gather ``(B, ...) -> (W, B, ...)``: a refresh batch's objects are then written to
                every rank's cache.

        Returns:
            :class:`~objaug.objects.Objects` on the images' device; ``origin`` says which source served them.
        """
        b, device = images.shape[0], images.device
        if given is not None:
            result = given
        elif self.store is not None:
            if indexes is None:
                raise ValueError("A store needs the batch's dataset indexes: pass indexes= (e.g. "
                                 "ObjectAwareDataset(..., return_index=True) puts them in the batch).")
            result = read_store(self.store, indexes, device)
        elif cam is not None and self.due():
            bank = negatives() if callable(negatives) else negatives
            if bank is not None and (not isinstance(bank, Tensor) or bank.ndim != 2):
                raise TypeError(f"negatives must be an (N, D) tensor (or a callable returning one, or None), got "
                                f"{type(bank).__name__} {getattr(bank, 'shape', bank)!r}.")
            if bank is not None:
                check_device(bank, "negatives", device)
            result = self.compute(cam, images, negatives=None if bank is None else bank.detach().to(device))
            if self.uses_cache:
                self._remember(indexes, result, gather)
        elif self.uses_cache and self.cache is not None:
            result = self._recall(indexes, device)
        else:
            result = Objects.none(b, device)
        self.batches_seen += 1
        self.refreshes += int(result.origin == "cam")
        return result

    def _need_indexes(self, indexes: Tensor | None) -> Tensor:
        if indexes is None:
            raise ValueError(f"schedule.every_n_steps={self.schedule.every_n_steps} caches objects per sample by "
                             "dataset index: pass indexes= (B,) on every call (ObjectAwareDataset(..., "
                             "return_index=True)), or run the CAM on every batch (every_n_steps=1).")
        return indexes

    def _remember(self, indexes: Tensor | None, objects: Objects, gather: Callable[[Tensor], Tensor] | None) -> None:
        idx = self._need_indexes(indexes).to(objects.boxes.device)
        if self.cache is None or not self.cache.fits(objects.boxes):
            self.allocate(self.num_samples, objects.boxes.device)
        assert self.cache is not None
        if gather is not None:
            idx, objects = self._gathered(gather, idx, objects)
        self.cache.check_indexes(idx)
        self.cache.write(idx, objects)

    def _gathered(self, gather: Callable[[Tensor], Tensor], indexes: Tensor,
                  objects: Objects) -> tuple[Tensor, Objects]:
        """Every rank's rows of this batch (masks shrunk to the cache's size before the all-gather)."""
        assert self.cache is not None
        masks = objects.masks
        if masks is not None and self.cache.masks is not None:
            masks = self.cache.small_masks(masks)
        idx_all = gather(indexes.long()).reshape(-1)
        boxes = gather(objects.boxes.float()).reshape(-1, *objects.boxes.shape[1:])
        valid = gather(objects.valid.float()).reshape(-1, *objects.valid.shape[1:]) > 0.5
        masks_all = None if masks is None else gather(masks.float()).reshape(-1, *masks.shape[1:])
        return idx_all, Objects(boxes, valid, masks_all, "cam")

    def _recall(self, indexes: Tensor | None, device: torch.device) -> Objects:
        assert self.cache is not None
        idx = self._need_indexes(indexes).to(self.cache.boxes.device)
        self.cache.check_indexes(idx)
        return self.cache.read(idx).to(device)

