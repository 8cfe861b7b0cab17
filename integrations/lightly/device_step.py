"""The training-loop path: object-aware views of a batch, made on the device, for Lightly training loops.

Lightly's examples are plain PyTorch loops (``for batch in dataloader: x0, x1 = batch[0]; ...``).
:class:`ObjectAwareStep` takes the batch's *base* images instead (full frames in [0, 1], e.g. from a
dataset with ``transform=T.ToTensor()``) and returns the views, so the loop changes by a few lines::

    step = ObjectAwareStep(simclr_views(32), model=model)          # CAM from the online encoder
    for images, _ in dataloader:
        x0, x1 = step(images.to(device))                             # instead of batch[0]
        ...                                                          # the rest of the loop unchanged

Where the boxes come from, in this order:

1. ``boxes=``/``valid=``/``masks=`` passed to the call (e.g. precomputed, collated by
   :class:`objaug.integrations.lightly.dataset.ObjectAwareDataset`);
2. ``store=``: ``store.get_batch(indexes)`` (an :class:`objaug.store.ObjectStore` or any object with
   that method) for the batch's dataset ``indexes``;
3. ContraCAM on the batch (``model=`` or ``cam=``), computed online by the model being trained: the
   momentum encoder for MoCo / BYOL (``model=model.backbone_momentum,
   projector=model.projection_head_momentum``), the online encoder for SimCLR. Negatives: the
   batch itself plus, when ``criterion`` is Lightly's ``NTXentLoss`` with a memory bank, the bank
   (``criterion.memory_bank.bank``, (N, D)), or ``negatives=``.

The CAM pass leaves the training untouched: the model is run in eval mode (BatchNorm running
statistics are not updated) and restored exactly, the loss is never called (so the memory bank is
not updated), only the head is differentiated with ``torch.autograd.grad`` (no ``.grad`` is written on
any parameter), and the views are made under ``torch.no_grad``.

``schedule=ScheduleConfig(every_n_steps=N, start_step=S)`` (the decision for "every N steps"): the CAM runs on
every N-th call only, from call S on. On a
refresh call the batch's boxes are computed and stored **per sample, keyed by dataset index** in a
device-side cache of ``num_samples`` rows; on the other calls each sample reads its own cached boxes;
samples never refreshed yet get a whole-image crop (the plain RandomResizedCrop, like
ContrastiveCrop's warm-up). So ``indexes`` are required with ``N > 1``: reusing one batch's boxes for
another batch would crop other images' objects, so objaug refuses to do that. With views that have
``mixup=True`` the cache keeps each sample's mask too (uint8, ``cache_mask_size`` pixels a side).

Where the objects come from is an :class:`objaug.provider.ObjectProvider` (the same provider the solo-learn
adapter uses); the step is glue: validation, the provider, the views (:class:`ObjectAwareAugment`) and the
counts (:class:`objaug.stats.AugmentStats`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from objaug.augment.pipeline import ObjectAwareAugment, ViewConfig
from objaug.config import BoxConfig, CamConfig, ScheduleConfig
from objaug.constants import IMAGENET_NORMALIZE
from objaug.functional.crop import default_valid
from objaug.model_state import module_device
from objaug.objects import Objects, boxes_of_maps
from objaug.provider import ObjectProvider
from objaug.stats import AugmentStats
from objaug.validation import (
    check_batch_values,
    check_box_layout,
    check_boxes,
    check_image_batch,
    check_indexes,
    check_int,
    check_mask_batch,
    check_no_effect,
    check_same_device,
    check_views,
)

__all__ = ["ObjectAwareStep", "memory_bank_negatives"]


def _length(store: Any) -> int | None:
    """``len(store)`` when the store has one (the range of its indexes), else ``None``."""
    return len(store) if store is not None and hasattr(store, "__len__") else None


def memory_bank_negatives(criterion: object) -> Tensor | None:
    """The (N, D) memory bank of a Lightly loss (``NTXentLoss(memory_bank_size=(N, D))``), or ``None``.

    Reads ``criterion.memory_bank.bank`` (detached, the same storage: nothing is copied or updated).
    Returns ``None`` for a loss without a memory bank (size 0) or an object without one.
    """
    bank_module = getattr(criterion, "memory_bank", None)
    bank = getattr(bank_module, "bank", None)
    if not isinstance(bank, Tensor) or bank.ndim != 2 or bank.shape[0] == 0:
        return None
    return bank.detach()


def _augment_of(views: Sequence[ViewConfig] | ObjectAwareAugment | None, *, box_p: float | None,
                box_sampling: str | None, mixup: nn.Module | None, check_inputs: bool | None) -> ObjectAwareAugment:
    """The step's views: a ready ``ObjectAwareAugment`` (whose options are its own), or one built from configs."""
    check_views(views)
    given = {"box_p": box_p, "box_sampling": box_sampling, "mixup": mixup, "check_inputs": check_inputs}
    if isinstance(views, ObjectAwareAugment):
        set_here = [name for name, value in given.items() if value is not None]
        if set_here:
            raise ValueError(f"views is a ready ObjectAwareAugment, whose {', '.join(set_here)} are its own: set "
                             f"{', '.join(set_here)} on the ObjectAwareAugment, or pass a list of ViewConfig as views.")
        return views
    return ObjectAwareAugment(views, box_p=1.0 if box_p is None else box_p,  # type: ignore[arg-type]
                              box_sampling=box_sampling if box_sampling is not None else "uniform",  # type: ignore[arg-type]
                              mixup=mixup, check_inputs=True if check_inputs is None else check_inputs)


def _check_negatives(negatives: object) -> None:
    if negatives is None:
        return
    if not (isinstance(negatives, Tensor) or callable(negatives)):
        raise TypeError(f"negatives must be an (N, D) tensor or a callable returning one, got "
                        f"{type(negatives).__name__}.")
    if isinstance(negatives, Tensor) and (negatives.ndim != 2 or not negatives.is_floating_point()):
        raise ValueError(f"negatives must be a floating (N, D) tensor, got {negatives.dtype} "
                         f"{tuple(negatives.shape)}.")


class ObjectAwareStep(nn.Module):
    """Base images in, object-aware views out, for the whole batch on its device.

    Args:
        views: the view configurations (default :func:`objaug.augment.views.simclr_views` at 224 px;
            use ``moco_v2_views`` / ``byol_views`` with your ``input_size``), or a ready
            :class:`objaug.augment.pipeline.ObjectAwareAugment` (then ``box_p``, ``box_sampling``, ``mixup``
            and ``check_inputs`` are its own and must not be given here).
        model: the model whose ContraCAM gives the boxes (split by :func:`objaug.split.split_model`:
            Lightly's ``nn.Sequential`` ResNet backbone, an object with ``backbone`` +
            ``projection_head``, a timm/torchvision ViT or Lightly's ``MaskedVisionTransformerTIMM``, ...).
            Kept by reference (not a submodule: it is neither moved nor saved with this object).
        projector: the projection head appended to ``model``'s head (e.g. ``model.projection_head``).
        cam: instead of ``model``, a ready ContraCAM (or any callable
            ``cam(normalized_images, negatives=None) -> (B, 1, h, w)`` in [0, 1]).
        cam_config: the CAM settings (:class:`objaug.config.CamConfig`: map source, iterations, ``mask_iters``,
            temperature, hard negatives, online bank, edges, ...) for ``model=``; with ``cam=`` only
            ``mask_iters`` and ``bank`` may be set (the other settings are the CAM's own).
        box_config: how boxes are read off the maps (:class:`objaug.config.BoxConfig`).
        schedule: when the CAM runs (:class:`objaug.config.ScheduleConfig`: every N calls, from call S); with
            ``every_n_steps > 1`` objects are cached per dataset index (``num_samples`` and ``indexes=``).
        criterion: a Lightly loss; if it has a memory bank (``NTXentLoss(memory_bank_size=(N, D))``) the
            bank is used as extra CAM negatives. Only read.
        negatives: explicit CAM negatives instead: an (N, D) tensor or a callable returning one (or None).
        store: a store with ``get_batch(indexes)`` returning ``(boxes (B, K, 4), valid (B, K)[, masks
            (B, 1, H, W)])`` for the dataset indexes (an ``objaug.store.ObjectStore``; read on its device,
            moved to the images' device).
        num_samples: the dataset size, for the per-sample cache (required with ``schedule.every_n_steps > 1``).
        cache_mask_size: side of the masks kept in the cache (uint8) when a view has ``mixup=True``.
        cam_size: run the CAM on the images resized to this size (int or (h, w)); ``None`` = full size.
            Boxes are normalised, so they apply to the full images; masks are resized back.
        cam_normalize: the normalisation the model expects (default ImageNet, as Lightly's transforms).
        image_size: the base images' size ``(H, W)`` (or an int): when given, the CAM is dry-run once at
            construction on two noise images of that size, so a model that cannot give a map (a 1x1 map, a
            ViT of another size, the attention source on a CNN) fails now rather than at the first step.
        box_p: probability of cropping inside a box (per image; default 1).
        box_sampling: ``"uniform"`` (the paper, default) or ``"area"``.
        mixup: the :class:`objaug.augment.mixup.BackgroundMixup` of views with ``mixup=True``.
        mixup_start_step: calls before the views with ``mixup=True`` are mixed (default 0: from the first
            call). Until then those views are made unmixed; the objects (and the cached masks) are found on the
            schedule as usual. E.g. half the run, to switch mixup on once the encoder recognises objects (the
            late start of ``docs/benchmarks.md``, protocol v3); needs a view with ``mixup=True``.
        check_inputs: check the batch's values before any work (default True): images finite and in [0, 1]
            (refuses [0, 255] images and images normalised already, naming the fix), given boxes normalised and
            ordered, masks in [0, 1], ``indexes`` in ``[0, num_samples)`` (or the store's length). One fused
            pass and one device synchronisation per checked call (:func:`objaug.validation.check_batch_values`):
            every call on the CPU; on an accelerator the calls of ``step.augment.check_schedule`` (a
            :class:`objaug.validation_schedule.CheckSchedule`: the first 10, then every 100th), so the other
            calls never wait for the device. ``False`` opts out. Shapes, dtypes and devices are always checked.

    Call: ``step(images, *, indexes=None, objects=None, boxes=None, valid=None, masks=None) -> list of views``.

    Attributes:
        augment: the :class:`~objaug.augment.pipeline.ObjectAwareAugment` (a submodule).
        provider: the :class:`~objaug.provider.ObjectProvider` (a submodule: schedule, cache, counters).
        calls: number of calls so far (drives the schedule).
        last_objects: the :class:`~objaug.objects.Objects` of the last call (for inspection).
        last_params: the last call's per-view parameter dicts (``crop_boxes``, ``flip``, ``object``,
            ``fallback``, ... and ``mixed`` for mixup views; see ``ObjectAwareAugment(...,
            return_params=True)``).
        stats: an :class:`objaug.stats.AugmentStats`: shares of views cropped in a found box, fallen back
            to the whole frame, mixed, boxes per image, CAM refreshes (device tensors, no host sync;
            ``step.stats.shares()``); it warns once when the boxed or mixed share stays near zero.
    """

    cam: Callable[..., Tensor] | None
    criterion: object
    negatives: Tensor | Callable[[], Tensor | None] | None

    def __init__(
        self,
        views: Sequence[ViewConfig] | ObjectAwareAugment | None = None,
        *,
        model: nn.Module | None = None,
        projector: nn.Module | None = None,
        cam: Callable[..., Tensor] | None = None,
        cam_config: CamConfig | None = None,
        box_config: BoxConfig | None = None,
        schedule: ScheduleConfig | None = None,
        criterion: object = None,
        negatives: Tensor | Callable[[], Tensor | None] | None = None,
        store: Any = None,
        num_samples: int | None = None,
        cache_mask_size: int = 32,
        cam_size: int | tuple[int, int] | None = None,
        cam_normalize: Mapping[str, Sequence[float]] | None = None,
        image_size: int | tuple[int, int] | None = None,
        box_p: float | None = None,
        box_sampling: str | None = None,
        mixup: nn.Module | None = None,
        mixup_start_step: int = 0,
        check_inputs: bool | None = None,
    ) -> None:
        super().__init__()
        self.augment = _augment_of(views, box_p=box_p, box_sampling=box_sampling, mixup=mixup,
                                   check_inputs=check_inputs)
        needs_masks = any(v.mixup for v in self.augment.views)
        self.mixup_start_step = check_int(mixup_start_step, "mixup_start_step", low=0)
        if self.mixup_start_step and not needs_masks:
            raise ValueError(f"mixup_start_step={mixup_start_step} has no effect: no view has mixup=True. Give a "
                             "view mixup=True (e.g. simclr_views(size, mixup=True)) or drop mixup_start_step.")
        self.provider = ObjectProvider(cam_config, box_config, schedule, store=store, num_samples=num_samples,
                                       cache_masks=needs_masks, mask_size=cache_mask_size, cam_size=cam_size,
                                       normalize=cam_normalize if cam_normalize is not None else IMAGENET_NORMALIZE)
        cam = self._cam_of(model, projector, cam, cam_config)
        if cam is None:  # the CAM's options would be accepted and ignored
            check_no_effect({"negatives": negatives, "criterion": criterion, "cam_size": cam_size,
                             "image_size": image_size}, why="there is no CAM (neither model= nor cam=)",
                            fix="pass model= (or cam=) to compute objects online, or drop them")
        _check_negatives(negatives)
        if cam is not None and self.provider.uses_cache and num_samples is None:
            raise ValueError(f"schedule.every_n_steps={self.provider.schedule.every_n_steps} caches each sample's "
                             "objects by dataset index: pass num_samples=len(dataset) (and indexes= on every call, "
                             "e.g. from ObjectAwareDataset(..., return_index=True)).")
        self.check_inputs = self.augment.check_inputs
        self.stats = AugmentStats()
        # References, not submodules: the model and loss stay where the user put them and are not saved here.
        object.__setattr__(self, "cam", cam)
        object.__setattr__(self, "criterion", criterion)
        object.__setattr__(self, "negatives", negatives)
        self.last_objects: Objects | None = None
        self.last_params: list[dict[str, Tensor]] = []
        if image_size is not None:
            self.check_setup(image_size)

    def _cam_of(self, model: nn.Module | None, projector: nn.Module | None, cam: Callable[..., Tensor] | None,
                cam_config: CamConfig | None) -> Callable[..., Tensor] | None:
        if model is not None and cam is not None:
            raise TypeError("Pass either model= (a ContraCAM is built with cam_config) or cam=, not both.")
        if projector is not None and model is None:
            raise TypeError("projector= needs model= (the encoder it belongs to).")
        if model is not None:
            if not isinstance(model, nn.Module):
                raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
            return self.provider.build_cam(model, projector=projector)
        if cam is None:
            if cam_config is not None:
                raise ValueError("cam_config was given but there is no CAM: pass model= (or cam=) too, or drop "
                                 "cam_config.")
            return None
        return self.provider.adopt_cam(cam, config_given=cam_config is not None)

    @classmethod
    def from_model(cls, module: nn.Module, views: Sequence[ViewConfig] | ObjectAwareAugment | None = None,
                   **kwargs: Any) -> ObjectAwareStep:
        """A step whose CAM uses a Lightly-style model's own encoder, found by attribute name.

        The encoder is ``module.backbone_momentum`` + ``module.projection_head_momentum`` when the
        module has a momentum branch (MoCo, BYOL: Lightly's examples' names), else ``module.backbone`` +
        ``module.projection_head`` (SimCLR). ``module.criterion``, if present, is passed as ``criterion``
        (its memory bank, if any, gives extra negatives). Any argument of the constructor can be given
        in ``kwargs`` and wins.

        Example (in a LightningModule's ``__init__``, after ``self.criterion`` is set):
            >>> self.objaug = ObjectAwareStep.from_model(self, moco_v2_views(32))

        Raises:
            TypeError: the module has neither ``backbone_momentum`` nor ``backbone``.
        """
        if "model" not in kwargs and "cam" not in kwargs:
            for backbone, head in (("backbone_momentum", "projection_head_momentum"),
                                   ("backbone", "projection_head")):
                encoder = getattr(module, backbone, None)
                if isinstance(encoder, nn.Module):
                    kwargs["model"] = encoder
                    projector = getattr(module, head, None)
                    if isinstance(projector, nn.Module):
                        kwargs.setdefault("projector", projector)
                    break
            else:
                raise TypeError(f"{type(module).__name__} has neither backbone_momentum nor backbone: pass "
                                "ObjectAwareStep(views, model=..., projector=...) explicitly.")
        if "criterion" not in kwargs and getattr(module, "criterion", None) is not None:
            kwargs["criterion"] = module.criterion
        return cls(views, **kwargs)

    def extra_repr(self) -> str:
        source = ("store" if self.provider.store is not None else
                  f"cam={type(self.cam).__name__}" if self.cam is not None else "objects per call")
        return f"{source}, schedule={self.provider.schedule}, num_samples={self.provider.num_samples}"

    @property
    def calls(self) -> int:
        """Number of calls so far (drives the schedule): the provider's ``batches_seen``."""
        return self.provider.batches_seen

    @property
    def store(self) -> Any:
        return self.provider.store

    def reset_cache(self) -> None:
        """Forget the cached per-sample objects and the online bank (e.g. after loading other weights)."""
        self.provider.release()

    def check_setup(self, image_size: int | tuple[int, int]) -> None:
        """Dry-run the CAM on two noise images of ``image_size`` (see the ``image_size`` argument)."""
        if self.cam is None:
            return
        hw = (image_size, image_size) if isinstance(image_size, int) else (int(image_size[0]), int(image_size[1]))
        split = getattr(self.cam, "split", None)
        model_device = module_device(split) if isinstance(split, nn.Module) else None
        self.provider.check_setup(self.cam, hw, device=model_device)

    # ------------------------------------------------------------------ sources of objects
    def _negatives(self) -> Tensor | None:
        neg = self.negatives
        bank = neg() if callable(neg) else neg
        if bank is None and self.criterion is not None:
            bank = memory_bank_negatives(self.criterion)
        return bank

    def find_objects(self, images: Tensor) -> Objects:
        """ContraCAM's objects of ``images`` ((B, 3, H, W) in [0, 1]) now, outside the schedule.

        Returns:
            :class:`~objaug.objects.Objects`: boxes of every refinement iteration's map, masks
            ``(B, 1, h, w)`` float32 in [0, 1] at ``cam_size`` (or the images' size). The model is left as found.
        """
        if self.cam is None:
            raise ValueError("No CAM: build ObjectAwareStep with model= (or cam=) to compute objects online.")
        bank = self._negatives()
        return self.provider.compute(self.cam, images, negatives=None if bank is None else bank.to(images.device))

    def _given(self, images: Tensor, objects: Objects | None, boxes: Tensor | None, valid: Tensor | None,
               masks: Tensor | None) -> Objects | None:
        """The objects passed with the call, checked (shapes, devices), or ``None``."""
        if objects is not None:
            if boxes is not None or valid is not None or masks is not None:
                raise ValueError("Pass the batch's objects either as objects= or as boxes=/valid=/masks=, not both.")
            if not isinstance(objects, Objects):
                raise TypeError(f"objects must be an objaug.objects.Objects, got {type(objects).__name__}.")
            boxes, valid, masks = objects.boxes, objects.valid, objects.masks
        if boxes is None:
            if valid is not None:
                raise ValueError("valid was given without boxes; pass boxes=(B, K, 4) too.")
            if masks is None:
                return None
            check_mask_batch(masks, "masks", like=images)
            check_same_device([("images", images), ("masks", masks)])
            return None if objects is None else objects
        check_box_layout(boxes)
        boxes, valid = check_boxes(boxes, default_valid(boxes, valid), batch=images.shape[0])
        tensors = [("images", images), ("boxes", boxes), ("valid", valid)]
        if masks is not None:
            check_mask_batch(masks, "masks", like=images)
            tensors.append(("masks", masks))
        check_same_device(tensors)
        return Objects.from_parts(boxes, valid, masks)

    # ------------------------------------------------------------------ call
    def forward(
        self,
        images: Tensor,
        *,
        indexes: Tensor | Sequence[int] | None = None,
        objects: Objects | None = None,
        boxes: Tensor | None = None,
        valid: Tensor | None = None,
        masks: Tensor | None = None,
    ) -> list[Tensor]:
        """Make the views of a batch.

        Args:
            images: (B, 3, H, W) float base images in [0, 1] (full frames), on the training device.
            indexes: (B,) dataset indexes (needed with a store and with a cache).
            objects: the batch's :class:`~objaug.objects.Objects` (skips the store and the CAM).
            boxes: (B, K, 4) normalised xyxy boxes instead of ``objects`` (skips the store and the CAM).
            valid: (B, K) bool (default: all valid).
            masks: (B, 1, H, W) soft masks in [0, 1] (for views with ``mixup=True``; with ``boxes`` or alone).

        Returns:
            One (B, 3, h, w) tensor per view, normalised per its :class:`ViewConfig`, no grad.

        Raises:
            ValueError / TypeError: bad shapes, dtypes or devices; no source of objects; missing indexes.
        """
        check_image_batch(images, "images", channels=3)
        b, device = images.shape[0], images.device
        if self.provider.cam_mean.device != device:
            self.to(device)
        given = self._given(images, objects, boxes, valid, masks)
        idx = None if indexes is None else check_indexes(indexes, b, device)
        if self.check_inputs and self.augment.check_schedule.due(images):  # one fused pass, one sync, first
            check_batch_values(images, masks=masks if given is None else given.masks,
                               boxes=None if given is None else given.boxes,
                               valid=None if given is None else given.valid, indexes=idx,
                               num_samples=self.provider.num_samples or _length(self.provider.store))
        if given is None and masks is not None:  # masks alone: boxes read off them with the step's box_config
            given = Objects.from_parts(*boxes_of_maps(masks, self.provider.box_config), masks)
        if given is None and self.cam is None and self.provider.store is None:
            raise ValueError("No source of objects: pass objects=/boxes=/masks= to the call, or build "
                             "ObjectAwareStep with store= or model= (online ContraCAM).")
        with torch.no_grad():
            mix = self.calls >= self.mixup_start_step  # the call's number, before the provider counts it
            found = self.provider.objects(images, indexes=idx, given=given, cam=self.cam,
                                          negatives=self._negatives)
            views, self.last_params = self.augment(images, objects=found, return_params=True, check=False, mix=mix)
        self.last_objects = found
        self._count(found)
        return views

    def _count(self, found: Objects | None) -> None:
        """Add the last call to :attr:`stats` (device tensors only)."""
        params = self.last_params
        obj = [pr for cfg, pr in zip(self.augment.views, params, strict=True) if cfg.object_crop]
        first = obj[0] if obj else params[0]
        self.stats.update(used=first["object"], regions=first["regions"], object_views=len(obj),
                          mixed=[pr["mixed"] for pr in params if "mixed" in pr],
                          boxes=None if found is None else found.boxes, valid=None if found is None else found.valid,
                          cam=found is not None and found.origin == "cam")

    def transform_batch(self, batch: Any, *, image_index: int = 0, index_position: int | None = None) -> Any:
        """Replace the base images of a collated batch by their views (for Lightning hooks/callbacks).

        Args:
            batch: a collated batch, a list or tuple ``(images, target, ...)``. A dict element holding
                ``"boxes"`` (and ``"valid"``/``"masks"``), as :class:`ObjectAwareDataset` appends, is
                used as the batch's objects.
            image_index: position of the (B, 3, H, W) images.
            index_position: position of the (B,) dataset indexes, if any (e.g. ``-1`` with
                ``ObjectAwareDataset(..., return_index=True)``).

        Returns:
            A list like ``batch`` with ``batch[image_index]`` replaced by the list of views, so Lightly's
            ``x0, x1 = batch[0]`` works unchanged.
        """
        if not isinstance(batch, list | tuple):
            raise TypeError(f"batch must be a list or tuple (images, target, ...), got {type(batch).__name__}.")
        items = list(batch)
        objects = next((x for x in items if isinstance(x, Mapping) and ("boxes" in x or "masks" in x)), None)
        kwargs: dict[str, Any] = {}
        if objects is not None:
            kwargs = {"boxes": objects.get("boxes"), "valid": objects.get("valid"), "masks": objects.get("masks")}
        indexes = None if index_position is None else items[index_position]
        items[image_index] = self(items[image_index], indexes=indexes, **kwargs)
        return items
