"""Object-aware RandomResizedCrop as a Kornia geometric augmentation (method.md section 3)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import torch
from kornia.augmentation import AugmentationSequential, GeometricAugmentationBase2D
from kornia.constants import DataKey, Resample
from kornia.geometry.boxes import Boxes
from kornia.geometry.transform import warp_affine
from torch import Tensor

from objaug.functional.crop import crop_and_resize, crop_matrix, default_valid, object_crop_params
from objaug.validation import (
    check_antialias,
    check_bool,
    check_box_layout,
    check_box_sampling,
    check_box_values,
    check_boxes,
    check_float,
    check_image_batch,
    check_int,
    check_pair,
    check_probability,
    check_same_device,
    check_size,
)
from objaug.validation_schedule import CheckSchedule

__all__ = ["RESAMPLE_MODES", "ObjectAwareRandomResizedCrop", "ObjectAwareSequential", "check_box_values"]

_F = TypeVar("_F", bound=Callable[..., Tensor])

#: The ``resample`` modes of the crop: Kornia's ``RandomResizedCrop`` modes (``kornia.constants.Resample``).
RESAMPLE_MODES: tuple[str, ...] = ("nearest", "bilinear", "bicubic")

# Kornia's private marker for matrix code that reads only the input's shape/dtype/device (it then builds
# transformation matrices lazily). There is no public equivalent; without it (older/newer kornia) the
# crop is only slower, never wrong. tests/test_pipeline.py::test_kornia_private_hooks_still_exist pins it.
try:
    from kornia.augmentation._2d.base import _input_metadata_only
except ImportError:  # pragma: no cover - older/newer kornia without the private marker
    def _input_metadata_only(method: _F) -> _F:
        return method


def _resample_mode(resample: object) -> str:
    """A Kornia resample value (``Resample.BILINEAR``, ``"BILINEAR"``, ``"bilinear"``, ``1``) as a lower-case name.

    Raises:
        TypeError: not a ``Resample``, a string or an int.
        ValueError: not one of :data:`RESAMPLE_MODES` (in any of Kornia's spellings).
    """
    if not isinstance(resample, Resample | str | int) or isinstance(resample, bool):
        raise TypeError(f"resample must be a kornia.constants.Resample, its name or its value (one of "
                        f"{RESAMPLE_MODES}), got {type(resample).__name__} {resample!r}.")
    try:
        mode = Resample.get(resample).name.lower()  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError, AttributeError):
        mode = None
    if mode not in RESAMPLE_MODES:
        raise ValueError(f"resample must be one of {RESAMPLE_MODES} (a kornia.constants.Resample, its name in any "
                         f"case, or its value), got {resample!r}.")
    return mode


class ObjectAwareRandomResizedCrop(GeometricAugmentationBase2D):
    """RandomResizedCrop inside a randomly chosen object box, batched on the device.

    Per image (Mo et al., NeurIPS 2021, section 3 of method.md): with probability ``box_p`` choose one usable
    box (``box_sampling="uniform"``, or ``"area"``-weighted), then draw a torchvision-style random resized
    crop *relative to the box* (area fraction in ``scale`` of the box's area, pixel aspect ratio in
    ``ratio``) that lies inside the box, and resize it to ``size``. With probability ``1 - box_p``, or when
    the image has no usable box (none valid, or only zero-area ones), the crop is an ordinary
    RandomResizedCrop of the whole image. The parameters come from
    :func:`objaug.functional.crop.object_crop_params` (the one crop recipe of every objaug crop: the same
    seed and settings give the same crops as :func:`objaug.engine.crop_view` and the Lightly transforms)
    and the whole batch is resampled in one kernel (:func:`objaug.functional.crop.crop_and_resize`); no
    Python loop over images, no host synchronisation outside the optional input checks (and Kornia's own
    gate when ``0 < p < 1``).

    Kornia conventions (as :class:`kornia.augmentation.RandomResizedCrop`):

    * ``p`` is Kornia's: the probability that the call crops at all, one draw for the whole batch (a crop
      changes the image size, so the batch is cropped or returned unchanged together); ``p=0`` returns the
      input unchanged. The probability of cropping *inside a box* is ``box_p``.
    * Input ``(B, C, H, W)``, ``(C, H, W)`` or ``(H, W)`` float (float16, bfloat16, float32, float64);
      ``keepdim=True`` gives the output the input's rank. For an unbatched input, boxes may be ``(K, 4)``.
    * ``crop(x, params)`` and ``crop(x, params=params)`` replay a draw (``crop._params``), also on a mask
      or a tensor of another resolution (the boxes are normalised); ``transform_matrix`` is the ``(B, 3, 3)``
      crop matrix in Kornia's pixel convention; :meth:`inverse` (and ``AugmentationSequential.inverse``)
      warps a crop back onto the input canvas (zero padding, ``padding_mode=`` to change it).
    * ``resample``: any of Kornia's spellings of ``"nearest"``, ``"bilinear"`` (default) or ``"bicubic"``.
    * Inside :class:`kornia.augmentation.AugmentationSequential`, masks, boxes and keypoints follow the crop
      (masks nearest by default, as Kornia does; pass ``extra_args={DataKey.MASK: {"resample": "bilinear"}}``
      for soft masks).

    Where an object-aware crop must differ from Kornia's:

    * It needs each image's boxes. Kornia's parameter generators see only the batch shape, and
      ``AugmentationSequential`` draws every child's parameters before it reads any annotation, so a
      ``"bbox_xyxy"`` input of the stock container cannot place the crops. Give the boxes through
      :meth:`forward` (``crop(images, boxes, valid)``), :meth:`forward_parameters` (``boxes=``/``valid=``),
      :class:`ObjectAwareSequential` (a drop-in ``AugmentationSequential`` whose ``"bbox_xyxy"`` input places
      the crops and is cropped with them), or :meth:`using_boxes` around a stock container. For plain
      whole-image crops pass ``(B, 0, 4)`` boxes.
    * ``scale <= 1``: the crop lies inside its box, so an area fraction above 1 is refused (``ValueError``).
    * The sampling grid is the pixel-edge one (``align_corners=False`` semantics, sub-pixel crop boxes, border
      padding); Kornia's default is ``align_corners=True``, integer crop boxes and zero padding.
    * Where no candidate fits, the fallback crop is centred in its region (torchvision's rule), not placed at
      random as Kornia does.

    Parameters (``self._params`` after a call):

    * ``crop_boxes`` ``(B, 4)`` float: the source crop, normalised xyxy (pixel-edge convention).
    * ``box_index`` ``(B,)`` long: the chosen box, ``-1`` where the whole image was used.
    * ``object`` ``(B,)`` bool: True where an object box was used.
    * ``fallback`` ``(B,)`` bool: True where no candidate fitted and the centre crop was used.
    * ``regions`` ``(B, 4)``: the region each crop was drawn in (``(0, 0, 1, 1)`` for the whole image;
      grown by ``min_box_pixels``).
    * ``batch_prob``, ``output_size``, ``forward_input_shape``: Kornia's bookkeeping (``output_size`` tells
      Kornia's containers the new image size). A replayed dict may also hold ``flip`` ``(B,)`` bool (e.g. one
      view's params from :class:`objaug.augment.pipeline.ObjectAwareAugment`): the crops are then mirrored.

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
        antialias: bilinear resampling only. ``True``: downscaled crops average ``ceil(s)**2`` bilinear
            samples per output pixel (``roi_align`` adaptive sampling, an area filter; what a user of
            torchvision's or PIL's antialiased RandomResizedCrop expects), upscaled crops are plain bilinear.
            ``False``: plain bilinear ``grid_sample``, no prefilter (as Kornia's ``RandomResizedCrop`` with
            ``align_corners=False``; Kornia's default ``align_corners=True`` samples a slightly different
            grid), aliasing when a large box is shrunk, cheapest. ``"auto"`` (default): ``True`` when a crop can
            be shrunk by more than 1.25x (static shapes, e.g. 512 -> 224), else ``False`` (e.g. 256 -> 224, at
            most 1.14x). ``"nearest"`` and ``"bicubic"`` never prefilter (``antialias=True`` is refused with
            them). See :func:`objaug.functional.crop.crop_and_resize`.
        resample: ``"bilinear"`` (default), ``"nearest"`` (label masks) or ``"bicubic"``, in any of
            Kornia's spellings (``Resample.BILINEAR``, ``"BILINEAR"``, ``"bilinear"``).
        box_p: probability of cropping inside a box (per image that has one); otherwise the whole image.
        attempts: candidates per image (torchvision: 10).
        min_box_pixels: after the box is chosen, a side of it shorter than this many pixels (of the input
            images) is grown around the box's centre to this size before the crop is drawn in it, so a
            10-pixel box is not zoomed into a blur; the object stays in view, with context. The choice
            (and the ``"area"`` weights) use the boxes as given. ``0`` (default): boxes are used as they are.
            See :func:`objaug.functional.crop.object_crop_params`.
        same_on_batch: share the random draws across the batch (Kornia's option).
        p: Kornia's probability of applying the crop at all (one draw per batch); ``0`` returns the input.
        keepdim: give the output the input's rank (Kornia's option).
        check_inputs: check box values (in [0, 1], x1 <= x2, y1 <= y2): one host read per checked call, every
            call on the CPU, on an accelerator the calls of ``check_schedule`` (default: the first 10, then every
            100th; :mod:`objaug.validation_schedule`). Set False on hot paths (the crop then compiles whole).

    Raises:
        ValueError: an option out of range (e.g. ``scale`` above 1, an unknown ``resample``).
        TypeError: a flag that is not a bool.

    Example:
        >>> crop = ObjectAwareRandomResizedCrop(224)
        >>> views = crop(images, boxes, valid)                  # (B, 3, 224, 224)
        >>> view_masks = crop(masks, crop._params)              # the same crops
        >>> back = crop.inverse(views)                          # (B, 3, H, W), zero outside the crops
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
        resample: str | int | Resample = "bilinear",
        box_p: float = 1.0,
        attempts: int = 10,
        min_box_pixels: int = 0,
        same_on_batch: bool = False,
        p: float = 1.0,
        keepdim: bool = False,
        check_inputs: bool = True,
    ) -> None:
        size_hw = check_size(size)
        scale_ = check_pair(scale, "scale", 0.0, 1.0, fix="Use e.g. scale=(0.08, 1.0); the crop lies inside "
                             "its box, so an area fraction above 1 is impossible.")
        ratio_ = check_pair(ratio, "ratio", 0.0, math.inf, fix="Use e.g. ratio=(3/4, 4/3) (width / height).")
        check_box_sampling(box_sampling)
        check_float(alpha, "alpha", low=0.0, low_open=True, why=" (Beta(alpha, alpha); 0.6 in ContrastiveCrop)")
        mode = _resample_mode(resample)
        check_int(attempts, "attempts", low=1, why=" (torchvision uses 10)")
        check_int(min_box_pixels, "min_box_pixels", low=0, why=" (smallest box side in pixels; 0 turns it off)")
        check_antialias(antialias)
        if antialias is True and mode != "bilinear":
            raise ValueError(f"antialias=True is a bilinear area filter; with resample={mode!r} use "
                             "antialias=False or 'auto'.")
        check_bool(center_suppressed, "center_suppressed")
        check_bool(same_on_batch, "same_on_batch")
        check_bool(keepdim, "keepdim")
        check_bool(check_inputs, "check_inputs")
        # As Kornia's RandomResizedCrop: a crop changes the sample shape, so ``p`` gates the whole batch.
        super().__init__(p=1.0, p_batch=check_probability(p, "p"), same_on_batch=same_on_batch, keepdim=keepdim)
        self.size = size_hw
        self.scale = scale_
        self.ratio = ratio_
        self.box_sampling = box_sampling
        self.center_suppressed = center_suppressed
        self.alpha = float(alpha)
        self.box_p = check_probability(box_p, "box_p")
        self.attempts = attempts
        self.min_box_pixels = min_box_pixels
        self.check_inputs = check_inputs
        self.check_schedule = CheckSchedule()
        self.flags = {
            "size": size_hw,
            "resample": Resample.get(mode),
            "antialias": antialias,
            "align_corners": False,
            "padding_mode": "zeros",
        }
        self._compute_matrix_lazily = True
        self._pending_boxes: tuple[Tensor, Tensor | None] | None = None

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(size={self.size}, scale={self.scale}, ratio={self.ratio}, "
                f"box_sampling={self.box_sampling!r}, center_suppressed={self.center_suppressed}, "
                f"alpha={self.alpha}, antialias={self.flags['antialias']}, "
                f"resample={self.flags['resample'].name.lower()!r}, box_p={self.box_p}, p={self.p_batch}, "
                f"min_box_pixels={self.min_box_pixels}, same_on_batch={self.same_on_batch}, keepdim={self.keepdim})")

    # ------------------------------------------------------------------ boxes for containers
    def set_boxes(self, boxes: Tensor | None, valid: Tensor | None = None) -> None:
        """Store boxes used by parameter draws that get no ``boxes=`` (e.g. inside a kornia container).

        They stay until replaced or cleared with ``set_boxes(None)``; prefer :meth:`using_boxes`.
        """
        self._pending_boxes = None if boxes is None else (boxes, valid)

    @contextlib.contextmanager
    def using_boxes(self, boxes: Tensor, valid: Tensor | None = None) -> Iterator[ObjectAwareRandomResizedCrop]:
        """Context manager: draws inside the block use these boxes, e.g. in a stock ``AugmentationSequential``.

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

        Raises:
            ValueError: no boxes, or boxes / valid of the wrong shape.
        """
        if boxes is None:
            if self._pending_boxes is None:
                raise ValueError(
                    "boxes is required: call crop(images, boxes, valid); inside a kornia container use "
                    "ObjectAwareSequential(crop, ..., data_keys=['input', 'bbox_xyxy']) or wrap the call in "
                    "`with crop.using_boxes(boxes, valid):`. For plain whole-image crops pass "
                    "boxes=torch.zeros(B, 0, 4)."
                )
            boxes, valid = self._pending_boxes
        if len(batch_shape) != 4:
            raise ValueError(f"batch_shape must be (B, C, H, W), got {tuple(batch_shape)}.")
        b, c, h, w = (int(s) for s in batch_shape)
        if isinstance(boxes, Tensor) and boxes.ndim == 2 and b == 1:  # one image's (K, 4) boxes
            boxes = boxes[None]
            valid = None if valid is None else valid[None]
        check_box_layout(boxes)
        boxes, valid = check_boxes(boxes, default_valid(boxes, valid), batch=b)
        check_same_device([("boxes", boxes), ("valid", valid)])
        if self.check_inputs and self.check_schedule.due(boxes):
            check_box_values(boxes, valid)
        # Kornia's gate first (it draws only when 0 < p < 1), as Kornia's own augmentations do.
        batch_prob = self.__batch_prob_generator__((b, c, h, w), self.p, self.p_batch, self.same_on_batch)
        params = object_crop_params(
            boxes, valid, (h, w), box_p=self.box_p, box_sampling=self.box_sampling, scale=self.scale,
            ratio=self.ratio, attempts=self.attempts, center_suppressed=self.center_suppressed, alpha=self.alpha,
            min_box_pixels=self.min_box_pixels, same_on_batch=self.same_on_batch)
        del params["flip"]  # no flip here (flip_prob=0): replayed dicts may carry one
        params.update({
            "batch_prob": batch_prob,
            # Kornia's bookkeeping stays on the CPU (its containers read it on the host).
            "output_size": torch.tensor(self.size, dtype=torch.long).expand(b, 2),
            "forward_input_shape": torch.tensor([b, c, h, w], dtype=torch.long),
        })
        return params

    # ------------------------------------------------------------------ kornia hooks
    def forward(  # type: ignore[override]
        self,
        input: Tensor,
        boxes: Tensor | Mapping[str, Tensor] | None = None,
        valid: Tensor | None = None,
        params: dict[str, Tensor] | None = None,
        **kwargs: Any,
    ) -> Tensor:
        """Crop ``input`` with boxes ``(B, K, 4)`` / valid ``(B, K)`` bool, or replay ``params``.

        Args:
            input: ``(B, C, H, W)``, ``(C, H, W)`` or ``(H, W)`` floating images (any range), any device.
            boxes: normalised xyxy boxes on the same device (``(K, 4)`` for an unbatched input); optional
                when ``params`` is given or boxes were set with :meth:`using_boxes`. A params dict here is
                read as ``params`` (Kornia's positional ``aug(x, params)``).
            valid: which boxes are real (default: all).
            params: replay these parameters (from ``self._params``) instead of drawing new ones.
            **kwargs: kornia's flag overrides (e.g. ``resample="nearest"``, ``antialias=False``).

        Returns:
            ``(B, C, *size)`` crops (with ``keepdim``, the input's rank), the input's dtype and device; the
            input itself when Kornia's ``p`` gate skips the batch.

        Raises:
            TypeError: ``input`` not a floating tensor.
            ValueError: missing or ill-shaped boxes, both boxes and params, or params without ``crop_boxes``.
        """
        if isinstance(boxes, Mapping):
            if params is not None or valid is not None:
                raise ValueError("Pass params once: crop(x, params) or crop(x, params=params).")
            params, boxes = dict(boxes), None
        if not isinstance(input, Tensor) or input.ndim not in (2, 3, 4):
            raise ValueError(f"input must be a (B, C, H, W), (C, H, W) or (H, W) tensor, got "
                             f"{getattr(input, 'shape', type(input).__name__)}.")
        # Kornia's promotion: (H, W) -> (1, 1, H, W), (C, H, W) -> (1, C, H, W).
        batched = check_image_batch(input.reshape((1,) * (4 - input.ndim) + tuple(input.shape)), "input")
        if params is None:
            if boxes is not None:
                check_same_device([("input", input), ("boxes", boxes)])
            params = self.forward_parameters(batched.shape, boxes, valid)
        else:
            if boxes is not None or valid is not None:
                raise ValueError("Pass either boxes/valid (draw new crops) or params= (replay), not both.")
            if "crop_boxes" not in params or params["crop_boxes"].shape != (batched.shape[0], 4):
                raise ValueError(
                    f"params must hold 'crop_boxes' of shape (B, 4) = ({batched.shape[0]}, 4) from a previous "
                    f"call (crop._params); got keys {sorted(params)}."
                )
        return super().forward(input, params=params, **kwargs)

    @_input_metadata_only
    def compute_transformation(self, input: Tensor, params: dict[str, Tensor], flags: dict[str, Any]) -> Tensor:
        # The forward input's size comes from the params, so the matrix is also right when ``input`` is a crop
        # (``inverse``) or a mask of another resolution.
        if "forward_input_shape" in params:
            hw = params["forward_input_shape"][-2:].to(device=input.device, dtype=torch.float64)
            in_size: tuple[Any, Any] = (hw[0], hw[1])
        else:
            in_size = (input.shape[-2], input.shape[-1])
        mat = crop_matrix(params["crop_boxes"].to(input.device), in_size, flags["size"], flip=params.get("flip"))
        return mat.to(device=input.device, dtype=input.dtype)

    def apply_transform(
        self,
        input: Tensor,
        params: dict[str, Tensor],
        flags: dict[str, Any],
        transform: Tensor | None = None,
    ) -> Tensor:
        mode = _resample_mode(flags.get("resample", "bilinear"))
        antialias = flags.get("antialias", "auto")
        return crop_and_resize(input, params["crop_boxes"], flags["size"], mode=mode,
                               antialias=antialias if antialias == "auto" else bool(antialias),
                               flip=params.get("flip"))

    def inverse_transform(
        self,
        input: Tensor,
        flags: dict[str, Any],
        transform: Tensor | None = None,
        size: tuple[int, int] | None = None,
    ) -> Tensor:
        """Warp crops back onto the input canvas: ``transform`` is the inverse crop matrix (crop -> canvas pixels).

        Outside the crop the canvas is ``padding_mode`` (``"zeros"`` by default, as Kornia's crops); inside,
        the crop is resampled on the pixel-edge grid (``align_corners=False``), so a crop that was not
        resized comes back exactly.
        """
        if not isinstance(size, tuple) or not isinstance(transform, Tensor):
            raise TypeError(f"inverse needs the input size and the transform matrix, got {size!r} and "
                            f"{type(transform).__name__}.")
        mode = _resample_mode(flags.get("resample", "bilinear"))
        return warp_affine(input, transform[:, :2, :].to(input), size, mode=mode,
                           padding_mode=flags.get("padding_mode", "zeros"), align_corners=False)


class ObjectAwareSequential(AugmentationSequential):
    """``kornia.augmentation.AugmentationSequential`` whose ``"bbox_xyxy"`` input places the object-aware crops.

    A stock container draws every child's parameters from the batch shape before it reads any annotation,
    so its box input cannot tell :class:`ObjectAwareRandomResizedCrop` where the objects are. This subclass
    takes the ``"bbox_xyxy"`` argument (Kornia's ``xyxy_plus`` pixel boxes, ``(B, N, 4)``, or ``(N, 4)`` for
    one image, or a ``kornia.geometry.boxes.Boxes``) as the object boxes of every
    :class:`ObjectAwareRandomResizedCrop` child, then runs the stock container: the crops are placed in the
    boxes, and the boxes come out in the crops' coordinates like any annotation. Everything else is
    Kornia's (``params=`` replay, ``inverse``, masks, ``extra_args``); with ``params=`` nothing is drawn.

    Only a crop that sees the input frame can use its boxes: an object-aware crop after another geometric
    augmentation is refused at construction. Dict inputs and the ``"bbox"`` / ``"bbox_xywh"`` keys are
    not read (use ``"bbox_xyxy"``, or :meth:`ObjectAwareRandomResizedCrop.using_boxes`).

    Example:
        >>> crop = ObjectAwareRandomResizedCrop(224)
        >>> seq = ObjectAwareSequential(crop, K.ColorJitter(0.4, 0.4, 0.4, 0.1),
        ...                             data_keys=["input", "mask", "bbox_xyxy"])
        >>> views, view_masks, view_boxes = seq(images, masks, boxes_xyxy)

    Raises:
        ValueError: an object-aware crop after another geometric augmentation.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        geometric_before = False
        self._object_crops: list[ObjectAwareRandomResizedCrop] = []
        for module in self.children():
            if isinstance(module, ObjectAwareRandomResizedCrop):
                if geometric_before:
                    raise ValueError("ObjectAwareSequential: an ObjectAwareRandomResizedCrop must come before every "
                                     "other geometric augmentation (its boxes are in the input frame).")
                self._object_crops.append(module)
            elif isinstance(module, GeometricAugmentationBase2D):
                geometric_before = True

    def forward(  # type: ignore[override]
        self,
        *args: Any,
        params: Any = None,
        data_keys: Any = None,
    ) -> Any:
        """Run the container with the ``"bbox_xyxy"`` argument as the object crops' boxes (see the class docs)."""
        keys = [DataKey.get(k) for k in (self.data_keys or [] if data_keys is None else data_keys)]
        if (params is not None or not self._object_crops or DataKey.BBOX_XYXY not in keys
                or DataKey.INPUT not in keys or len(args) != len(keys)):
            return super().forward(*args, params=params, data_keys=data_keys)
        image = args[keys.index(DataKey.INPUT)]
        boxes = _normalized_boxes(args[keys.index(DataKey.BBOX_XYXY)], image.shape[-2:])
        with contextlib.ExitStack() as stack:
            for crop in self._object_crops:
                stack.enter_context(crop.using_boxes(boxes))
            return super().forward(*args, params=params, data_keys=data_keys)


def _normalized_boxes(boxes: Tensor | Boxes, image_hw: tuple[int, int] | torch.Size) -> Tensor:
    """Kornia ``bbox_xyxy`` boxes (``xyxy_plus``: inclusive pixel extent) as objaug's normalised xyxy ``(B, N, 4)``."""
    if not isinstance(boxes, Boxes):
        boxes = Boxes.from_tensor(boxes, mode="xyxy_plus")
    edges = boxes.to_tensor("xyxy")  # exclusive extent: pixel edges
    if not isinstance(edges, Tensor):
        raise TypeError("ObjectAwareSequential needs the bbox_xyxy boxes as one (B, N, 4) tensor (pad every image "
                        "to the same N by repeating a box), got a list of per-image boxes.")
    h, w = int(image_hw[0]), int(image_hw[1])
    scale = torch.tensor([w, h, w, h], dtype=edges.dtype, device=edges.device)
    out = (edges / scale).clamp(0.0, 1.0)
    return out if out.ndim == 3 else out[None]
