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

``refresh_every=N`` (the decision for "every N steps"): the CAM runs on every N-th call only. On a
refresh call the batch's boxes are computed and stored **per sample, keyed by dataset index** in a
device-side cache of ``num_samples`` rows; on the other calls each sample reads its own cached boxes;
samples never refreshed yet get a whole-image crop (the plain RandomResizedCrop, like
ContrastiveCrop's warm-up). So ``indexes`` are required with ``N > 1``: reusing one batch's boxes for
another batch would crop other images' objects, so objaug refuses to do that. Background-mixup masks
are not cached (a full-resolution mask per sample would not fit on the device): views with
``mixup=True`` need ``refresh_every=1``, a store with masks, or ``masks=``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from objaug.augment.pipeline import ObjectAwareAugment, ViewConfig
from objaug.contracam import ContraCAM
from objaug.engine import ObjectSource, boxes_from_maps, cam_maps, read_store, register_cam_normalization
from objaug.stats import AugmentStats
from objaug.validation import (
    check_batch_values,
    check_box_layout,
    check_boxes,
    check_image_batch,
    check_indexes,
    check_int,
    check_mask_batch,
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


class ObjectAwareStep(nn.Module):
    """Base images in, object-aware views out, for the whole batch on its device.

    Args:
        views: the view configurations (default :func:`objaug.augment.presets.simclr_views` at 224 px;
            use ``moco_v2_views`` / ``byol_views`` with your ``input_size``), or a ready
            :class:`objaug.augment.pipeline.ObjectAwareAugment` (then ``p``, ``box_sampling``, ``mixup``
            and ``check_inputs`` are its own).
        model: the model whose ContraCAM gives the boxes (split by :func:`objaug.split.split_model`:
            Lightly's ``nn.Sequential`` ResNet backbone, an object with ``backbone`` +
            ``projection_head``, a timm/torchvision ViT or Lightly's ``MaskedVisionTransformerTIMM``, ...).
            Kept by reference (not a submodule: it is neither moved nor saved with this object).
        projector: the projection head appended to ``model``'s head (e.g. ``model.projection_head``).
        cam: instead of ``model``, a ready ContraCAM (or any callable
            ``cam(normalized_images, negatives=None) -> (B, 1, h, w)`` in [0, 1]).
        criterion: a Lightly loss; if it has a memory bank (``NTXentLoss(memory_bank_size=(N, D))``) the
            bank is used as extra CAM negatives. Only read.
        negatives: explicit CAM negatives instead: an (N, D) tensor or a callable returning one (or None).
        store: a store with ``get_batch(indexes)`` returning ``(boxes (B, K, 4), valid (B, K)[, masks
            (B, 1, H, W)])`` for the dataset indexes (an ``objaug.store.ObjectStore``; read on its device,
            moved to the images' device).
        refresh_every: run the CAM on every N-th call (1 = every call); see the module docs.
        num_samples: the dataset size, for the per-sample box cache (required with ``refresh_every > 1``).
        cam_iters: ContraCAM refinement iterations T when built from ``model`` (1 = one forward, the paper's
            setting for masks; 10 for its offline boxes).
        mask_iters: the mixup masks from the union of only the first ``mask_iters`` of the ``cam_iters``
            maps (one ContraCAM call gives both), while boxes use all of them: the paper's split is
            ``cam_iters=10, mask_iters=1``. ``None`` (default): masks and boxes from the same maps. Needs a
            ContraCAM (``model=``, or ``cam=`` a :class:`objaug.ContraCAM`).
        cam_size: run the CAM on the images resized to this size (int or (h, w)); ``None`` = full size.
            Boxes are normalised, so they apply to the full images; masks are resized back.
        cam_normalize: the normalisation the model expects (default ImageNet, as Lightly's transforms).
        box_kwargs: :func:`objaug.boxes.boxes_from_cam` arguments (threshold 0.5, min_area 0.01,
            margin 0.2, max_boxes 4 by default).
        p: probability of cropping inside a box (per image).
        box_sampling: ``"uniform"`` (the paper) or ``"area"``.
        mixup: the :class:`objaug.augment.mixup.BackgroundMixup` of views with ``mixup=True``.
        check_inputs: check the batch's values before any work: images finite and in [0, 1] (refuses
            [0, 255] images and images normalised already, e.g. ``Normalize`` left in the DataLoader
            transform, naming the fix), given boxes normalised and ordered, masks in [0, 1], ``indexes`` in
            ``[0, num_samples)`` (or the store's length). One fused pass and one device synchronisation
            per call (:func:`objaug.validation.check_batch_values`; 3 ms, 0.4 % of a 64-image CPU step, measured by
            benchmarks/check_cost.py); ``False`` opts out. Shapes, dtypes and devices are always checked.

    Call: ``step(images, *, indexes=None, boxes=None, valid=None, masks=None) -> list of views``.

    Attributes:
        augment: the :class:`~objaug.augment.pipeline.ObjectAwareAugment` (a submodule: ``step.to(device)``
            moves its buffers).
        calls: number of calls so far (drives ``refresh_every``).
        last_boxes: ``(boxes, valid)`` used by the last call (for inspection).
        last_params: the last call's per-view parameter dicts (``crop_boxes``, ``flip``, ``object``,
            ``fallback``, ... and ``mixed`` for mixup views; see ``ObjectAwareAugment(...,
            return_params=True)``).
        stats: an :class:`objaug.stats.AugmentStats`: shares of views cropped in a found box, fallen back
            to the whole frame, mixed, boxes per image, CAM refreshes (device tensors, no host sync;
            ``step.stats.shares()``); it warns once when the boxed or mixed share stays near zero.
    """

    def __init__(
        self,
        views: Sequence[ViewConfig] | ObjectAwareAugment | None = None,
        *,
        model: nn.Module | None = None,
        projector: nn.Module | None = None,
        cam: Callable[..., Tensor] | None = None,
        criterion: object = None,
        negatives: Tensor | Callable[[], Tensor | None] | None = None,
        store: Any = None,
        refresh_every: int = 1,
        num_samples: int | None = None,
        cam_iters: int = 1,
        mask_iters: int | None = None,
        cam_size: int | tuple[int, int] | None = None,
        cam_normalize: Mapping[str, Sequence[float]] | None = None,
        box_kwargs: Mapping[str, Any] | None = None,
        p: float = 1.0,
        box_sampling: str = "uniform",
        mixup: nn.Module | None = None,
        check_inputs: bool = True,
    ) -> None:
        super().__init__()
        check_views(views)
        if isinstance(views, ObjectAwareAugment):
            augment = views
        else:
            augment = ObjectAwareAugment(views, box_p=p, box_sampling=box_sampling,  # type: ignore[arg-type]
                                         box_kwargs=box_kwargs, mixup=mixup, check_inputs=check_inputs)
        self.augment = augment
        if model is not None and cam is not None:
            raise TypeError("Pass either model= (a ContraCAM is built) or cam=, not both.")
        if projector is not None and model is None:
            raise TypeError("projector= needs model= (the encoder it belongs to).")
        if cam is not None and not callable(cam):
            raise TypeError(f"cam must be callable as cam(images, negatives=None), got {type(cam).__name__}.")
        if model is not None:
            check_int(cam_iters, "cam_iters", low=1, why=" (ContraCAM's refinement iterations)")
            cam = ContraCAM(model, projector=projector, iters=cam_iters, check_finite=False)  # checked here
        if mask_iters is not None:
            if not isinstance(cam, ContraCAM):
                raise TypeError("mask_iters needs a ContraCAM (model=, or cam=ContraCAM(...)): the masks come from "
                                "its per-iteration maps (return_steps=True).")
            if isinstance(mask_iters, bool) or not isinstance(mask_iters, int) or not 1 <= mask_iters <= cam.iters:
                raise ValueError(f"mask_iters must be an int in [1, {cam.iters}] (the CAM's iterations), got "
                                 f"{mask_iters!r}.")
        self.mask_iters = mask_iters
        if store is not None and not callable(getattr(store, "get_batch", None)):
            raise TypeError(f"store must have a get_batch(indexes) method, got {type(store).__name__}.")
        check_int(refresh_every, "refresh_every", low=1, why=" (the CAM runs on every N-th call)")
        if negatives is not None and not (isinstance(negatives, Tensor) or callable(negatives)):
            raise TypeError(f"negatives must be an (N, D) tensor or a callable returning one, got "
                            f"{type(negatives).__name__}.")
        if isinstance(negatives, Tensor) and (negatives.ndim != 2 or not negatives.is_floating_point()):
            raise ValueError(f"negatives must be a floating (N, D) tensor, got {negatives.dtype} "
                             f"{tuple(negatives.shape)}.")
        uses_cache = cam is not None and refresh_every > 1
        if uses_cache:
            if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
                raise ValueError("refresh_every > 1 caches each sample's boxes by dataset index: pass "
                                 "num_samples=len(dataset) (and indexes= on every call, e.g. from "
                                 f"ObjectAwareDataset(..., return_index=True)); got num_samples={num_samples!r}.")
            if any(v.mixup for v in augment.views) and store is None:
                raise ValueError("A view has mixup=True, which needs a mask per image on every step, but masks are "
                                 "not cached between CAM refreshes: use refresh_every=1, a store with masks, or "
                                 "pass masks= on every call.")
        self.box_kwargs = dict(box_kwargs or {})
        if self.box_kwargs:
            from objaug.boxes import boxes_from_cam

            boxes_from_cam(torch.zeros(1, 1, 4, 4), **self.box_kwargs)  # validates the arguments now
        self.refresh_every = refresh_every
        self.num_samples = num_samples
        self.cam_size = cam_size
        self.check_inputs = augment.check_inputs if isinstance(views, ObjectAwareAugment) else bool(check_inputs)
        self.stats = AugmentStats()
        # References, not submodules: the model and loss stay where the user put them and are not saved here.
        object.__setattr__(self, "cam", cam)
        object.__setattr__(self, "criterion", criterion)
        object.__setattr__(self, "negatives", negatives)
        object.__setattr__(self, "store", store)
        register_cam_normalization(self, cam_normalize)
        self.source = ObjectSource(every_n_steps=refresh_every)
        self._refreshed = False
        self.last_boxes: tuple[Tensor, Tensor] | None = None
        self.last_params: list[dict[str, Tensor]] = []

    cam: Callable[..., Tensor] | None
    criterion: object
    negatives: Tensor | Callable[[], Tensor | None] | None
    store: Any
    cam_mean: Tensor
    cam_std: Tensor

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
        source = ("store" if self.store is not None else
                  f"cam={type(self.cam).__name__}" if self.cam is not None else "boxes per call")
        return f"{source}, refresh_every={self.refresh_every}, num_samples={self.num_samples}"

    @property
    def calls(self) -> int:
        """Number of calls so far (drives ``refresh_every``): the engine's ``batches_seen``."""
        return self.source.batches_seen

    def reset_cache(self) -> None:
        """Forget the cached per-sample boxes (e.g. after loading other weights)."""
        self.source.release()

    # ------------------------------------------------------------------ sources of boxes
    def _negatives(self, device: torch.device) -> Tensor | None:
        neg = self.negatives
        bank = neg() if callable(neg) else neg
        if bank is None and self.criterion is not None:
            bank = memory_bank_negatives(self.criterion)
        return None if bank is None else bank.detach().to(device, non_blocking=True)

    def cam_maps(self, images: Tensor, *, return_steps: bool = False) -> Any:
        """ContraCAM maps of ``images`` ((B, 3, H, W) in [0, 1]): (B, 1, h, w) float32 in [0, 1].

        ``(h, w)`` is ``cam_size`` or ``(H, W)``. The model is left exactly as found. With ``return_steps``
        (a ContraCAM only): ``(maps, per-iteration maps)``.
        """
        if self.cam is None:
            raise ValueError("No CAM: build ObjectAwareStep with model= (or cam=) to compute boxes online.")
        return cam_maps(self.cam, images, self.cam_mean, self.cam_std, size=self.cam_size,
                        negatives=self._negatives(images.device), return_steps=return_steps)

    def _refined_steps(self, images: Tensor) -> tuple[Tensor, Tensor | list[Tensor]]:
        """``(maps, steps)``: a ContraCAM's per-iteration maps (boxes per iteration), else ``(maps, maps)``."""
        if isinstance(self.cam, ContraCAM) and (self.cam.iters > 1 or self.mask_iters is not None):
            maps, steps = self.cam_maps(images, return_steps=True)
            return maps, list(steps)
        maps = self.cam_maps(images)
        return maps, maps

    def _boxes_from_maps(self, maps: Tensor | list[Tensor]) -> tuple[Tensor, Tensor]:
        return boxes_from_maps(maps, **self.box_kwargs)

    def _cached(self, images: Tensor, indexes: Tensor) -> tuple[Tensor, Tensor]:
        assert self.num_samples is not None
        if self.source.cache is not None:
            self.source.cache.to(images.device)  # follows the step across .to(device), as a buffer would
        if self.source.needs_cam():
            boxes, valid = self._boxes_from_maps(self._refined_steps(images)[1])
            if self.source.cache is None or not self.source.cache.fits(boxes):
                self.source.allocate(self.num_samples, boxes.shape[1], device=boxes.device, box_dtype=boxes.dtype)
            self.source.remember(indexes, boxes, valid)
            self._refreshed = True
            return boxes, valid
        boxes, valid, _ = self.source.recall(indexes)
        return boxes, valid

    # ------------------------------------------------------------------ call
    def forward(
        self,
        images: Tensor,
        *,
        indexes: Tensor | Sequence[int] | None = None,
        boxes: Tensor | None = None,
        valid: Tensor | None = None,
        masks: Tensor | None = None,
    ) -> list[Tensor]:
        """Make the views of a batch.

        Args:
            images: (B, 3, H, W) float base images in [0, 1] (full frames), on the training device.
            indexes: (B,) dataset indexes (needed with a store and with ``refresh_every > 1``).
            boxes: (B, K, 4) normalised xyxy boxes (skips the store and the CAM).
            valid: (B, K) bool (default: all valid).
            masks: (B, 1, H, W) soft masks in [0, 1] (for views with ``mixup=True``; also give boxes from
                them when ``boxes`` is missing).

        Returns:
            One (B, 3, h, w) tensor per view, normalised per its :class:`ViewConfig`, no grad.

        Raises:
            ValueError / TypeError: bad shapes, dtypes or devices; no source of boxes; missing indexes.
        """
        check_image_batch(images, "images", channels=3)
        b = images.shape[0]
        device = images.device
        self._refreshed = False
        if self.cam_mean.device != device:
            self.to(device)
        idx = None if indexes is None else check_indexes(indexes, b, device)
        if boxes is not None:
            check_box_layout(boxes)
            if valid is None:
                valid = torch.ones(boxes.shape[:2], dtype=torch.bool, device=boxes.device)
            boxes, valid = check_boxes(boxes, valid, batch=b)
        if masks is not None:
            check_mask_batch(masks, "masks", like=images)
        if self.check_inputs:  # one fused pass, one synchronisation, before any work
            check_batch_values(images, masks=masks, boxes=boxes, valid=valid, indexes=idx,
                               num_samples=self.num_samples if self.num_samples is not None else _length(self.store))
        need_masks = any(v.mixup for v in self.augment.views)
        with torch.no_grad():
            if boxes is None and masks is None:
                if self.store is not None:
                    if indexes is None:
                        raise ValueError("A store needs the batch's dataset indexes: call step(images, indexes=...) "
                                         "(ObjectAwareDataset(..., return_index=True) puts them in the batch).")
                    store_idx = indexes if isinstance(indexes, Tensor) else torch.tensor(list(indexes))
                    boxes, valid, masks = read_store(self.store, store_idx, device)
                    if masks is not None and masks.shape[-2:] != images.shape[-2:]:
                        masks = F.interpolate(masks, size=images.shape[-2:], mode="bilinear",
                                              align_corners=False).clamp_(0.0, 1.0)
                    if masks is not None:
                        masks = masks.to(images.dtype)
                elif self.cam is not None:
                    if self.refresh_every > 1:
                        if idx is None:
                            raise ValueError(
                                "refresh_every > 1 caches boxes per sample by dataset index: pass indexes= (B,) on "
                                "every call (ObjectAwareDataset(..., return_index=True)), or use refresh_every=1.")
                        boxes, valid = self._cached(images, idx)
                    else:
                        maps, steps = self._refined_steps(images)
                        mask_maps = maps
                        if need_masks and self.mask_iters is not None:
                            assert isinstance(steps, list)
                            mask_maps = torch.stack(steps[:self.mask_iters]).amax(dim=0)  # their union
                        boxes, valid = self._boxes_from_maps(steps)
                        self._refreshed = True
                        if need_masks:
                            masks = mask_maps if mask_maps.shape[-2:] == images.shape[-2:] else F.interpolate(
                                mask_maps, size=images.shape[-2:], mode="bilinear", align_corners=False).clamp(0, 1)
                            masks = masks.to(images.dtype)
                else:
                    raise ValueError("No source of boxes: pass boxes=/masks= to the call, or build ObjectAwareStep "
                                     "with store= or model= (online ContraCAM).")
            if boxes is not None and valid is None:  # read from the store without validity
                valid = torch.ones(boxes.shape[:2], dtype=torch.bool, device=boxes.device)
            if boxes is not None and valid is not None:
                self.last_boxes = (boxes, valid)
            views, self.last_params = self.augment(images, boxes, valid, masks, return_params=True, check=False)
            self._count(boxes, valid)
        self.source.finish(cam=self._refreshed)
        return views

    def _count(self, boxes: Tensor | None, valid: Tensor | None) -> None:
        """Add the last call to :attr:`stats` (device tensors only)."""
        params = self.last_params
        obj = [pr for cfg, pr in zip(self.augment.views, params, strict=True) if cfg.object_crop]
        first = obj[0] if obj else params[0]
        self.stats.update(used=first["object"], regions=first["regions"], object_views=len(obj),
                          mixed=[pr["mixed"] for pr in params if "mixed" in pr], boxes=boxes, valid=valid,
                          cam=self._refreshed)

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
