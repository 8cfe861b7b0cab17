"""The training-time engine: where each batch's boxes and masks come from, and the re-crop of the views.

Both training adapters (:class:`objaug.integrations.lightly.ObjectAwareStep` and the solo-learn callback's
:class:`objaug.integrations.solo_learn.views.SoloObjectAware`) are thin glue over the pieces here:

* :class:`ObjectSource`: the state of the box source over training. Its own counters (batches seen, CAM
  refreshes, the last batch's info), the refresh schedule (online CAM every N steps after a warm-up of
  ``start_step`` batches) and a per-dataset-index cache of boxes (and uint8 masks) filled on refresh
  batches and read on the others. The adapters call its methods; they never set its counters.
* :func:`read_store`: one batch of a store's ``get_batch(indexes)``, validated once, on the device.
* :func:`boxes_from_maps`: the boxes of CAM maps (optionally on a downsampled copy).
* :func:`choose_regions` and :func:`crop_view`: the per-image region (a box or the whole frame) and the
  per-view RandomResizedCrop + flip inside it, shared with :class:`objaug.augment.pipeline.ObjectAwareAugment`.

Nothing here syncs with the host or loops over samples; all work stays on the batch's device.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from objaug.boxes import boxes_from_cam, boxes_from_steps
from objaug.constants import IMAGENET_NORMALIZE
from objaug.functional.crop import (
    crop_and_resize,
    full_image_boxes,
    object_crop_params,
    sample_regions,
)
from objaug.masks import masks_from_uint8, masks_to_uint8

__all__ = ["CroppedView", "IndexCache", "ObjectSource", "boxes_from_maps", "cam_maps", "choose_regions", "crop_view",
           "read_store", "register_cam_normalization", "unpack_objects"]


# ---------------------------------------------------------------------- the store
def unpack_objects(result: object, *, name: str = "store.get(index)") -> tuple[Any, Any, Any]:
    """Read ``(boxes, valid, masks)`` from what an object store returned.

    Accepts a tuple/list ``(boxes, valid)`` or ``(boxes, valid, masks)``, a mapping with keys ``boxes``,
    ``valid`` and ``masks``/``mask``, or an object with those attributes (``masks`` may be missing or
    ``None``).

    Raises:
        TypeError: none of these shapes.
    """
    if isinstance(result, (tuple, list)):
        if len(result) == 2:
            return result[0], result[1], None
        if len(result) == 3:
            return result[0], result[1], result[2]
    elif isinstance(result, Mapping):
        if "boxes" in result:
            return result["boxes"], result.get("valid"), result.get("masks", result.get("mask"))
    elif hasattr(result, "boxes"):
        masks = getattr(result, "masks", getattr(result, "mask", None))
        return result.boxes, getattr(result, "valid", None), masks  # type: ignore[attr-defined]
    raise TypeError(f"{name} must return (boxes, valid[, masks]), a mapping or an object with boxes/valid/masks, "
                    f"got {type(result).__name__}.")


def _float_masks(masks: Tensor) -> Tensor:
    """uint8 masks as ``q / 255`` (:func:`objaug.masks.masks_from_uint8`), other dtypes as float32."""
    return masks_from_uint8(masks) if masks.dtype == torch.uint8 else masks.float()


def read_store(store: Any, indexes: Tensor, device: torch.device) -> tuple[Tensor, Tensor, Tensor | None]:
    """One batch of a store, checked once and moved to ``device``.

    Args:
        store: anything with ``get_batch(indexes)`` returning ``(boxes, valid[, masks])`` (or a mapping /
            object with those names, see :func:`unpack_objects`), e.g. :class:`objaug.store.ObjectStore`.
        indexes: ``(B,)`` integer dataset indexes (read on the host: one small device-to-host copy).
        device: where the result goes.

    Returns:
        ``(boxes, valid, masks)``: ``(B, K, 4)`` float32 normalised xyxy, ``(B, K)`` bool (all valid when the
        store gives none), ``(B, 1, h, w)`` float32 in [0, 1] (uint8 masks unpacked as ``q / 255``) or ``None``.

    Raises:
        TypeError: the store's result has none of the accepted forms.
        ValueError: boxes, valid or masks of the wrong shape.
    """
    name = f"{type(store).__name__}.get_batch(indexes)"
    boxes, valid, masks = unpack_objects(store.get_batch(indexes.detach().to("cpu")), name=name)
    b = indexes.shape[0]
    if not isinstance(boxes, Tensor) or boxes.ndim != 3 or boxes.shape[0] != b or boxes.shape[-1] != 4:
        raise ValueError(f"the store's boxes must be a (B={b}, K, 4) tensor, got "
                         f"{getattr(boxes, 'shape', type(boxes).__name__)}.")
    if valid is None:
        valid = torch.ones(boxes.shape[:2], dtype=torch.bool)
    if not isinstance(valid, Tensor) or tuple(valid.shape) != tuple(boxes.shape[:2]):
        raise ValueError(f"the store's valid must be a (B, K) = {tuple(boxes.shape[:2])} tensor.")
    if masks is not None:
        if not isinstance(masks, Tensor) or masks.ndim != 4 or masks.shape[:2] != (b, 1):
            raise ValueError(f"the store's masks must be a (B={b}, 1, h, w) tensor or None, got "
                             f"{getattr(masks, 'shape', type(masks).__name__)}.")
        masks = _float_masks(masks.to(device, non_blocking=True))
    return (boxes.to(device, torch.float32, non_blocking=True), valid.to(device, non_blocking=True).bool(), masks)


# ---------------------------------------------------------------------- CAM input and maps -> boxes
def register_cam_normalization(module: nn.Module, normalize: Mapping[str, Sequence[float]] | None = None) -> None:
    """Give ``module`` the non-persistent ``(1, 3, 1, 1)`` float32 buffers ``cam_mean`` / ``cam_std``.

    Args:
        module: the module normalising images for its CAM (moved by ``module.to(device)``, not saved).
        normalize: ``{"mean": (3,), "std": (3,)}`` the CAM's model expects (default ImageNet).
    """
    norm = normalize if normalize is not None else IMAGENET_NORMALIZE
    module.register_buffer("cam_mean", torch.tensor(norm["mean"], dtype=torch.float32).view(1, 3, 1, 1),
                           persistent=False)
    module.register_buffer("cam_std", torch.tensor(norm["std"], dtype=torch.float32).view(1, 3, 1, 1),
                           persistent=False)



def cam_maps(cam: Callable[..., Any], images: Tensor, mean: Tensor, std: Tensor, *,
             size: int | tuple[int, int] | None = None, negatives: Tensor | None = None,
             return_steps: bool = False) -> Any:
    """The CAM of a batch of base images: optionally resized, normalised, then ``cam(x, negatives=...)``.

    Args:
        cam: a :class:`objaug.ContraCAM` (or any ``cam(images, negatives=None) -> (B, 1, h, w)``).
        images: ``(B, 3, H, W)`` in [0, 1].
        mean, std: ``(1, 3, 1, 1)`` normalisation the CAM's model expects.
        size: run the CAM at this size (int or ``(h, w)``, bilinear with antialiasing); ``None``: ``(H, W)``.
        negatives: extra ``(N, D)`` CAM negatives.
        return_steps: also return the per-iteration maps (a ContraCAM only).

    Returns:
        ``(B, 1, h, w)`` maps in [0, 1] (and the steps with ``return_steps``).
    """
    x = images
    if size is not None:
        hw = (size, size) if isinstance(size, int) else tuple(size)
        x = F.interpolate(x, size=hw, mode="bilinear", align_corners=False, antialias=True)
    x = (x - mean.to(x)) / std.to(x)
    if return_steps:
        return cam(x, negatives=negatives, return_steps=True)
    return cam(x, negatives=negatives)


def boxes_from_maps(maps: Tensor | Sequence[Tensor], *, map_size: int | None = None,
                    **box_kwargs: Any) -> tuple[Tensor, Tensor]:
    """Boxes of CAM maps: :func:`objaug.boxes.boxes_from_cam`, or per iteration for a refined ContraCAM.

    Args:
        maps: ``(B, 1, h, w)`` CAM maps (any floating dtype; read as float32), or the list of a refined
            ContraCAM's per-iteration maps (``return_steps=True``): then each iteration's own boxes
            (:func:`objaug.boxes.boxes_from_steps`; boxes of the union merge neighbouring objects).
        map_size: find the boxes on an area-downsampled ``map_size`` x ``map_size`` copy when the maps are
            larger (boxes are normalised, so they apply to the full maps); ``None``: the maps as they are.
        box_kwargs: :func:`~objaug.boxes.boxes_from_cam` arguments.

    Returns:
        ``(boxes, valid)``: ``(B, K, 4)`` normalised xyxy, ``(B, K)`` bool.
    """
    steps = [maps] if isinstance(maps, Tensor) else list(maps)
    small = []
    for m in steps:
        m = m.float()
        if map_size is not None and max(m.shape[-2:]) > map_size:
            m = F.interpolate(m, size=(map_size, map_size), mode="area")
        small.append(m)
    kwargs = {"check_inputs": False, **box_kwargs}  # ContraCAM's maps: in [0, 1] by construction
    if len(small) == 1:
        return boxes_from_cam(small[0], **kwargs)
    return boxes_from_steps(small, **kwargs)


# ---------------------------------------------------------------------- the per-index cache
class IndexCache:
    """Boxes (and masks) of every dataset sample, on the device, keyed by dataset index.

    Boxes are kept in ``box_dtype``, validity as bool, masks (optional) as uint8 at ``mask_size`` x
    ``mask_size`` (packed by :func:`objaug.masks.masks_to_uint8`). Rows never written read as "no box"
    (whole-image crops: the warm-up of ContrastiveCrop) and empty masks.

    Args:
        size: number of rows (the dataset length).
        max_boxes: ``K``, boxes per row.
        device: where the rows live.
        box_dtype: dtype of the stored boxes (reads return float32).
        mask_size: side of the stored masks, ``None`` for no masks.
    """

    def __init__(self, size: int, max_boxes: int, *, device: torch.device | str | None = None,
                 box_dtype: torch.dtype = torch.float32, mask_size: int | None = None) -> None:
        self.boxes = torch.zeros(size, max_boxes, 4, dtype=box_dtype, device=device)
        self.valid = torch.zeros(size, max_boxes, dtype=torch.bool, device=device)
        self.masks = None if mask_size is None else torch.zeros(size, 1, mask_size, mask_size, dtype=torch.uint8,
                                                                device=device)

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

    def write(self, indexes: Tensor, boxes: Tensor, valid: Tensor, masks: Tensor | None = None) -> None:
        """Store the rows ``indexes`` ((B,) long): ``(B, K, 4)`` boxes, ``(B, K)`` valid, ``(B, 1, h, w)`` masks."""
        idx = indexes.long()
        self.boxes.index_copy_(0, idx, boxes.to(self.boxes.dtype))
        self.valid.index_copy_(0, idx, valid.bool())
        if self.masks is not None and masks is not None:
            self.masks.index_copy_(0, idx, masks_to_uint8(self.small_masks(masks)))

    def read(self, indexes: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """The rows ``indexes``: ``(B, K, 4)`` float32 boxes, ``(B, K)`` bool, ``(B, 1, s, s)`` float32 masks
        (or ``None`` without masks)."""
        idx = indexes.long()
        masks = None if self.masks is None else masks_from_uint8(self.masks.index_select(0, idx))
        return self.boxes.index_select(0, idx).float(), self.valid.index_select(0, idx), masks


# ---------------------------------------------------------------------- the source's state
class ObjectSource:
    """The box source's state over training: counters, the CAM refresh schedule and the per-index cache.

    Per batch, an adapter asks :meth:`cam_due` (or :meth:`needs_cam`), computes or reads the objects,
    then calls :meth:`finish` once with the batch's info; :meth:`remember` / :meth:`recall` write and
    read the cache.

    Args:
        every_n_steps: the CAM runs on every N-th batch (1 = every batch).
        start_step: batches before the first CAM (warm-up: those batches read the empty cache, i.e.
            whole-image crops).

    Attributes:
        batches_seen: batches finished so far.
        refreshes: batches on which the CAM ran.
        last_info: the info dict of the last finished batch.
        cache: the :class:`IndexCache`, or ``None`` before :meth:`allocate` / after :meth:`release`.
    """

    def __init__(self, *, every_n_steps: int = 1, start_step: int = 0) -> None:
        self.every_n_steps = int(every_n_steps)
        self.start_step = int(start_step)
        self.batches_seen = 0
        self.refreshes = 0
        self.last_info: dict[str, Any] = {}
        self.cache: IndexCache | None = None

    def cam_due(self) -> bool:
        """Whether the current batch (number ``batches_seen``) is a CAM refresh batch."""
        s = self.batches_seen - self.start_step
        return s >= 0 and s % self.every_n_steps == 0

    def needs_cam(self) -> bool:
        """A refresh batch, or a batch before any cache row exists (the cache is filled on first use)."""
        return self.cam_due() or self.cache is None

    def allocate(self, size: int, max_boxes: int, *, device: torch.device | str | None = None,
                 box_dtype: torch.dtype = torch.float32, mask_size: int | None = None) -> IndexCache:
        """Create (or replace) the cache; see :class:`IndexCache`."""
        self.cache = IndexCache(size, max_boxes, device=device, box_dtype=box_dtype, mask_size=mask_size)
        return self.cache

    def release(self) -> None:
        """Forget the cache (e.g. after loading other weights, or at the end of training)."""
        self.cache = None

    def remember(self, indexes: Tensor, boxes: Tensor, valid: Tensor, masks: Tensor | None = None) -> None:
        """Write a refresh batch's objects to the cache (allocated first: see :meth:`allocate`)."""
        assert self.cache is not None, "ObjectSource.remember needs a cache: call allocate() first."
        self.cache.write(indexes, boxes, valid, masks)

    def recall(self, indexes: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """The cached objects of ``indexes`` (see :meth:`IndexCache.read`)."""
        assert self.cache is not None, "ObjectSource.recall needs a cache: call allocate() first."
        return self.cache.read(indexes)

    def finish(self, info: Mapping[str, Any] | None = None, *, cam: bool = False) -> None:
        """End the current batch: count it (and its CAM refresh) and keep its info."""
        self.last_info = dict(info or {})
        self.last_info["cam"] = cam
        self.refreshes += int(cam)
        self.batches_seen += 1


# ---------------------------------------------------------------------- regions and views
def choose_regions(boxes: Tensor | None, valid: Tensor | None, batch: int, device: torch.device, *,
                   p: float = 1.0, mode: str = "uniform") -> tuple[Tensor, Tensor]:
    """Each image's crop region: one of its boxes with probability ``p``, else the whole frame.

    :func:`objaug.functional.crop.sample_regions`; without boxes (``None`` or ``K = 0``) no random number
    is drawn and every region is the whole frame.

    Returns:
        ``(regions, used)``: ``(B, 4)`` float32 normalised xyxy, ``(B,)`` bool (cropped in a box).
    """
    if boxes is None or valid is None or boxes.shape[1] == 0:
        return full_image_boxes(batch, device=device), torch.zeros(batch, dtype=torch.bool, device=device)
    regions, _, used = sample_regions(boxes, valid, mode=mode, p=p)
    return regions, used


@dataclass
class CroppedView:
    """One view cut by :func:`crop_view`: ``image`` (B, C, h, w), ``masks`` (B, 1, h, w) or None,
    ``crop_boxes`` (B, 4) normalised xyxy, ``fallback`` (B,) bool, ``flip`` (B,) bool."""

    image: Tensor
    masks: Tensor | None
    crop_boxes: Tensor
    fallback: Tensor
    flip: Tensor


def crop_view(images: Tensor, regions: Tensor, size: tuple[int, int], *, scale: tuple[float, float],
              ratio: tuple[float, float], flip_prob: float, masks: Tensor | None = None, attempts: int = 10,
              center_suppressed: bool = False, alpha: float = 0.6, antialias: bool | str = "auto",
              min_box_pixels: int = 0) -> CroppedView:
    """A RandomResizedCrop inside each image's region, plus a horizontal flip, for the whole batch.

    :func:`objaug.functional.crop.object_crop_params` with the regions as each image's chosen box (steps 2-4:
    ``min_box_pixels`` growth, the crop, the flip), then :func:`objaug.functional.crop.crop_and_resize`.

    Args:
        images: ``(B, C, H, W)`` frames; ``regions``: ``(B, 4)`` normalised xyxy (e.g. from :func:`choose_regions`).
        size: the view's ``(h, w)``.
        scale, ratio, attempts, center_suppressed, alpha, min_box_pixels, flip_prob: see
            :func:`objaug.functional.crop.object_crop_params` (``scale`` relative to the region).
        masks: ``(B, 1, H', W')`` soft masks of the frames, cropped and flipped with the images.
        antialias: see :func:`objaug.functional.crop.crop_and_resize`.

    Returns:
        The :class:`CroppedView`.
    """
    b = images.shape[0]
    hw = (int(images.shape[-2]), int(images.shape[-1]))
    params = object_crop_params(regions[:, None], None, hw, box_index=regions.new_zeros(b, dtype=torch.long),
                                scale=scale, ratio=ratio, attempts=attempts, center_suppressed=center_suppressed,
                                alpha=alpha, min_box_pixels=min_box_pixels, flip_prob=flip_prob)
    crop_boxes, flip = params["crop_boxes"], params["flip"]
    out = crop_and_resize(images, crop_boxes, size, antialias=antialias, flip=flip)
    view_masks = None
    if masks is not None:
        view_masks = crop_and_resize(masks, crop_boxes, size, antialias=antialias, flip=flip)
    return CroppedView(out, view_masks, crop_boxes, params["fallback"], flip)
