"""Object-aware RandomResizedCrop as a Kornia geometric augmentation (method.md section 3)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch
from kornia.augmentation import GeometricAugmentationBase2D
from kornia.constants import Resample
from torch import Tensor

from objaug.functional.crop import (
    crop_and_resize,
    crop_matrix,
    grow_small_boxes,
    sample_regions,
    sample_resized_crop_boxes,
)
from objaug.validation import (
    check_box_layout,
    check_box_sampling,
    check_box_values,
    check_boxes,
    check_image_batch,
    check_int,
    check_pair,
    check_probability,
    check_same_device,
    check_size,
)
from objaug.validation_schedule import CheckSchedule

__all__ = ["ObjectAwareRandomResizedCrop", "check_box_values"]

_F = TypeVar("_F", bound=Callable[..., Tensor])

# Kornia's private marker for matrix code that reads only the input's shape/dtype/device (it then builds
# transformation matrices lazily). There is no public equivalent; without it (older/newer kornia) the
# crop is only slower, never wrong. tests/test_pipeline.py::test_kornia_private_hooks_still_exist pins it.
try:
    from kornia.augmentation._2d.base import _input_metadata_only
except ImportError:  # pragma: no cover - older/newer kornia without the private marker
    def _input_metadata_only(method: _F) -> _F:
        return method


class ObjectAwareRandomResizedCrop(GeometricAugmentationBase2D):
    """RandomResizedCrop inside a randomly chosen object box, batched on the device.

    Per image (Mo et al., NeurIPS 2021, section 3 of method.md): choose one usable box
    (``box_sampling="uniform"``, or ``"area"``-weighted), then draw a torchvision-style random resized
    crop *relative to the box* (area fraction in ``scale`` of the box's area, pixel aspect ratio in
    ``ratio``) that lies inside the box, and resize it to ``size``. With probability ``1 - p``, or when
    the image has no usable box (none valid, or only zero-area ones), the crop is an ordinary
    RandomResizedCrop of the whole image. Sampling is vectorised (``attempts`` candidates per image
    drawn at once, the first that fits taken, else torchvision's centre fallback) and the whole batch
    is resampled in one kernel (:func:`objaug.functional.crop.crop_and_resize`); no Python loop over
    images, no host synchronisation outside the optional input checks.

    Kornia integration: a :class:`kornia.augmentation.GeometricAugmentationBase2D` whose
    ``transform_matrix`` is the ``(B, 3, 3)`` crop matrix (kornia's pixel convention), so kornia
    ``Boxes``/keypoints follow it inside :class:`kornia.augmentation.AugmentationSequential`, and masks
    are cropped by the same parameters (nearest by default there, as kornia does for masks; pass
    ``extra_args={DataKey.MASK: {"resample": "bilinear"}}`` for soft masks). Kornia's parameter
    generators only see the batch shape, so the boxes come in through :meth:`forward` (``crop(images,
    boxes, valid)``), :meth:`forward_parameters` (``boxes=``/``valid=``), or, inside a container,
    :meth:`using_boxes` / :meth:`set_boxes`.

    Parameters (``self._params`` after a call; pass ``params=`` to replay them exactly, on a mask or
    another tensor of any resolution, or use :func:`objaug.functional.crop.apply_crop`):

    * ``crop_boxes`` ``(B, 4)`` float: the source crop, normalised xyxy (pixel-edge convention).
    * ``box_index`` ``(B,)`` long: the chosen box, ``-1`` where the whole image was used.
    * ``object`` ``(B,)`` bool: True where an object box was used.
    * ``fallback`` ``(B,)`` bool: True where no candidate fitted and the centre crop was used.
    * ``regions`` ``(B, 4)``: the box each crop was drawn in (``(0, 0, 1, 1)`` for the whole image).
    * ``batch_prob``, ``output_size``, ``forward_input_shape``: kornia's bookkeeping, on the CPU (every
      image is cropped; ``output_size`` tells kornia's containers the new image size).

    There is no flip here: compose with ``kornia.augmentation.RandomHorizontalFlip`` or use
    :class:`objaug.augment.pipeline.ObjectAwareAugment`, which folds the flip into the crop.

    Args:
        size: output ``(height, width)`` or an int.
        scale: area fraction range relative to the chosen box (or image), ``0 < min <= max <= 1``.
        ratio: crop width / height range in pixels (as torchvision).
        box_sampling: ``"uniform"`` (the paper) or ``"area"`` (probability proportional to box area).
        center_suppressed: ContrastiveCrop's centre-suppressed placement (Peng et al., CVPR 2022): the
            crop's offset inside the box along each axis is ``Beta(alpha, alpha)`` instead of uniform.
        alpha: that Beta parameter, > 0 (0.6 in ContrastiveCrop; 1 is uniform).
        antialias: ``True``: downscaled crops average ``ceil(s)**2`` bilinear samples per output pixel
            (``roi_align`` adaptive sampling, an area filter; what a user of torchvision's or PIL's
            antialiased RandomResizedCrop expects), upscaled crops are plain bilinear. ``False``: plain
            bilinear ``grid_sample`` (kornia's behaviour), aliasing when a large box is shrunk, cheapest.
            ``"auto"`` (default): ``True`` when a crop can be shrunk by more than 1.25x (static shapes,
            e.g. 512 -> 224), else ``False`` (e.g. 256 -> 224, at most 1.14x). See
            :func:`objaug.functional.crop.crop_and_resize`.
        resample: ``"bilinear"`` or ``"nearest"`` (label masks).
        p: probability of cropping inside a box (per image); otherwise the whole image is used.
        attempts: candidates per image (torchvision: 10).
        min_box_pixels: a box side shorter than this many pixels (of the input images) is grown around the
            box's centre to this size before the crop is drawn in it
            (:func:`objaug.functional.crop.grow_small_boxes`), so a 10-pixel box is not zoomed into a blur;
            the object stays in view, with context. ``0`` (default): boxes are used as they are.
        same_on_batch: share the random draws across the batch (kornia's option).
        check_inputs: check box values (in [0, 1], x1 <= x2, y1 <= y2): one host read per checked call, every
            call on the CPU, on an accelerator the calls of ``check_schedule`` (default: the first 10, then every
            100th; :mod:`objaug.validation_schedule`). Set False on hot paths (the crop then compiles whole).

    Example:
        >>> crop = ObjectAwareRandomResizedCrop(224)
        >>> views = crop(images, boxes, valid)                  # (B, 3, 224, 224)
        >>> view_masks = crop(masks, params=crop._params)       # the same crops
    """

    def __init__(
        self,
        size: int | tuple[int, int],
        *,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
        box_sampling: str = "uniform",
        center_suppressed: bool = False,
        alpha: float = 0.6,
        antialias: bool | str = "auto",
        resample: str = "bilinear",
        p: float = 1.0,
        attempts: int = 10,
        min_box_pixels: int = 0,
        same_on_batch: bool = False,
        check_inputs: bool = True,
    ) -> None:
        size_hw = check_size(size)
        scale_ = check_pair(scale, "scale", 0.0, 1.0, fix="Use e.g. scale=(0.08, 1.0); the crop lies inside "
                             "its box, so an area fraction above 1 is impossible.")
        ratio_ = check_pair(ratio, "ratio", 0.0, math.inf, fix="Use e.g. ratio=(3/4, 4/3) (width / height).")
        check_box_sampling(box_sampling)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
            raise ValueError(f"alpha must be a float > 0 (Beta(alpha, alpha); 0.6 in ContrastiveCrop), "
                             f"got {alpha!r}.")
        if resample not in ("bilinear", "nearest"):
            raise ValueError(f"resample must be 'bilinear' or 'nearest', got {resample!r}.")
        check_int(attempts, "attempts", low=1, why=" (torchvision uses 10)")
        check_int(min_box_pixels, "min_box_pixels", low=0, why=" (smallest box side in pixels; 0 turns it off)")
        if antialias not in (True, False, "auto"):
            raise ValueError(f"antialias must be True, False or 'auto', got {antialias!r}.")
        for flag_name, flag in (("center_suppressed", center_suppressed),
                                ("same_on_batch", same_on_batch), ("check_inputs", check_inputs)):
            if not isinstance(flag, bool):
                raise TypeError(f"{flag_name} must be a bool, got {type(flag).__name__}.")
        # Kornia's own ``p`` gates whether a sample is transformed at all; a crop changes the shape, so
        # every image is cropped (p=1 there) and our ``p`` is the probability of using a box.
        super().__init__(p=1.0, same_on_batch=same_on_batch, keepdim=False)
        self.size = size_hw
        self.scale = scale_
        self.ratio = ratio_
        self.box_sampling = box_sampling
        self.center_suppressed = center_suppressed
        self.alpha = float(alpha)
        self.object_prob = check_probability(p, "p")
        self.attempts = attempts
        self.min_box_pixels = min_box_pixels
        self.check_inputs = check_inputs
        self.check_schedule = CheckSchedule()
        self.flags = {
            "size": size_hw,
            "resample": Resample.get(resample),
            "antialias": antialias,
            "align_corners": False,
        }
        self._compute_matrix_lazily = True
        self._pending_boxes: tuple[Tensor, Tensor | None] | None = None

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(size={self.size}, scale={self.scale}, ratio={self.ratio}, "
                f"box_sampling={self.box_sampling!r}, center_suppressed={self.center_suppressed}, "
                f"alpha={self.alpha}, antialias={self.flags['antialias']}, "
                f"resample={self.flags['resample'].name.lower()!r}, p={self.object_prob})")

    # ------------------------------------------------------------------ boxes for containers
    def set_boxes(self, boxes: Tensor | None, valid: Tensor | None = None) -> None:
        """Store boxes used by parameter draws that get no ``boxes=`` (e.g. inside a kornia container).

        They stay until replaced or cleared with ``set_boxes(None)``; prefer :meth:`using_boxes`.
        """
        self._pending_boxes = None if boxes is None else (boxes, valid)

    @contextlib.contextmanager
    def using_boxes(self, boxes: Tensor, valid: Tensor | None = None) -> Iterator[ObjectAwareRandomResizedCrop]:
        """Context manager: draws inside the block use these boxes, e.g. in ``AugmentationSequential``.

        Example:
            >>> seq = K.AugmentationSequential(crop, K.ColorJitter(0.4, 0.4, 0.4, 0.1),
            ...                                data_keys=["input", "mask"])
            >>> with crop.using_boxes(boxes, valid):
            ...     views, view_masks = seq(images, masks)
        """
        previous = self._pending_boxes
        self.set_boxes(boxes, valid)
        try:
            yield self
        finally:
            self._pending_boxes = previous

    # ------------------------------------------------------------------ parameters
    def forward_parameters(  # type: ignore[override]
        self,
        batch_shape: tuple[int, ...] | torch.Size,
        boxes: Tensor | None = None,
        valid: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Draw crop parameters for a ``(B, C, H, W)`` batch with ``(B, K, 4)`` boxes, ``(B, K)`` valid.

        ``boxes`` defaults to those set with :meth:`using_boxes`/:meth:`set_boxes`; ``valid`` to all True.
        Pass a ``(B, 0, 4)`` tensor for plain whole-image RandomResizedCrops.
        """
        if boxes is None:
            if self._pending_boxes is None:
                raise ValueError(
                    "boxes is required: call crop(images, boxes, valid), or inside a kornia container wrap "
                    "the call in `with crop.using_boxes(boxes, valid):`. For plain whole-image crops pass "
                    "boxes=torch.zeros(B, 0, 4)."
                )
            boxes, valid = self._pending_boxes
        if len(batch_shape) != 4:
            raise ValueError(f"batch_shape must be (B, C, H, W), got {tuple(batch_shape)}.")
        b, _, h, w = (int(s) for s in batch_shape)
        check_box_layout(boxes)
        if valid is None:
            valid = torch.ones(boxes.shape[:2], dtype=torch.bool, device=boxes.device)
        boxes, valid = check_boxes(boxes, valid, batch=b)
        check_same_device([("boxes", boxes), ("valid", valid)])
        if self.check_inputs and self.check_schedule.due(boxes):
            check_box_values(boxes, valid)
        boxes = grow_small_boxes(boxes, min_pixels=self.min_box_pixels, image_size=(h, w))
        regions, box_index, used = sample_regions(boxes, valid, mode=self.box_sampling, p=self.object_prob,
                                                   same_on_batch=self.same_on_batch)
        crop_boxes, fallback = sample_resized_crop_boxes(
            regions, (h, w), scale=self.scale, ratio=self.ratio, attempts=self.attempts,
            center_suppressed=self.center_suppressed, alpha=self.alpha, same_on_batch=self.same_on_batch)
        return {
            "crop_boxes": crop_boxes,
            "box_index": box_index,
            "object": used,
            "fallback": fallback,
            "regions": regions,
            # Kornia's bookkeeping stays on the CPU (its containers read it with .item()/.any()).
            "batch_prob": torch.ones(b, dtype=torch.bool),
            "output_size": torch.tensor(self.size, dtype=torch.long).expand(b, 2),
            "forward_input_shape": torch.tensor([b, int(batch_shape[1]), h, w], dtype=torch.long),
        }

    # ------------------------------------------------------------------ kornia hooks
    def forward(  # type: ignore[override]
        self,
        input: Tensor,
        boxes: Tensor | None = None,
        valid: Tensor | None = None,
        params: dict[str, Tensor] | None = None,
        **kwargs: Any,
    ) -> Tensor:
        """Crop ``input`` ``(B, C, H, W)`` float with boxes ``(B, K, 4)`` / valid ``(B, K)`` bool.

        Args:
            input: floating images (any range), any device.
            boxes: normalised xyxy boxes on the same device; optional when ``params`` is given or boxes
                were set with :meth:`using_boxes`.
            valid: which boxes are real (default: all).
            params: replay these parameters (from ``self._params``) instead of drawing new ones.
            **kwargs: kornia's flag overrides (e.g. ``resample="nearest"``, ``antialias=False``).

        Returns:
            ``(B, C, *size)`` crops, the input's dtype and device.
        """
        check_image_batch(input, "input")
        if params is None:
            if boxes is not None:
                check_same_device([("input", input), ("boxes", boxes)])
            params = self.forward_parameters(input.shape, boxes, valid)
        else:
            if boxes is not None or valid is not None:
                raise ValueError("Pass either boxes/valid (draw new crops) or params= (replay), not both.")
            if "crop_boxes" not in params or params["crop_boxes"].shape != (input.shape[0], 4):
                raise ValueError(
                    f"params must hold 'crop_boxes' of shape (B, 4) = ({input.shape[0]}, 4) from a previous "
                    f"call (crop._params); got keys {sorted(params)}."
                )
        return super().forward(input, params=params, **kwargs)

    @_input_metadata_only
    def compute_transformation(self, input: Tensor, params: dict[str, Tensor], flags: dict[str, Any]) -> Tensor:
        mat = crop_matrix(params["crop_boxes"], (input.shape[-2], input.shape[-1]), flags["size"])
        return mat.to(device=input.device, dtype=input.dtype)

    def apply_transform(
        self,
        input: Tensor,
        params: dict[str, Tensor],
        flags: dict[str, Any],
        transform: Tensor | None = None,
    ) -> Tensor:
        resample = flags.get("resample", "bilinear")
        mode = Resample.get(resample).name.lower() if not isinstance(resample, str) else resample.lower()
        if mode not in ("bilinear", "nearest"):
            raise ValueError(f"{type(self).__name__} supports resample 'bilinear' or 'nearest', got {mode!r}.")
        antialias = flags.get("antialias", "auto")
        return crop_and_resize(input, params["crop_boxes"], flags["size"], mode=mode,
                               antialias=antialias if antialias == "auto" else bool(antialias))
