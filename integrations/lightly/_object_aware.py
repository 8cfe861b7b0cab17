"""The per-image object-aware crop shared by objaug's Lightly transforms (the pipeline path).

Lightly augments one image at a time on the CPU, in DataLoader workers. This module brings the
object-aware crop of Mo et al. (method.md section 3) into that model without a second crop sampler:
:class:`PerImageObjectAwareCrop` is torchvision's v2 ``RandomResizedCrop`` whose parameters are drawn
by :func:`objaug.functional.crop.object_crop_params` (the crop recipe of every objaug crop) on a batch of
one, inside the image's object box, and rounded to whole pixels inside that box; the multi-view transform
chooses the box with that recipe's region step (:func:`objaug.functional.crop.sample_regions`). The same
seed and settings therefore give the same crop boxes as the batched crops, up to the rounding.

The two mixins turn Lightly's view transforms (``SimCLRViewTransform``, ``BYOLView1Transform``, ...)
and multi-view transforms (``SimCLRTransform``, ``MoCoV2Transform``, ``BYOLTransform``) into
object-aware ones: the multi-view transform picks one box per image (shared by all views, as the
reference code does) and hands it, with the optional soft mask, to every view; each view crops and
flips the image and the mask together, then applies Lightly's photometric transforms to the image.

Box conventions accepted (one image at a time):

* a float tensor ``(K, 4)`` of normalised ``(x1, y1, x2, y2)`` in ``[0, 1]`` (objaug's convention,
  e.g. from :func:`objaug.boxes.boxes_from_cam` or an ``ObjectStore``), with an optional ``(K,)``
  bool ``valid``; ``(0, 4)`` means "no object" (the whole image is used);
* a ``torchvision.tv_tensors.BoundingBoxes`` (any axis-aligned format, pixel coordinates, its
  ``canvas_size`` must be the image's size);
* a mapping with ``"boxes"`` (either of the above) and optionally ``"masks"``/``"mask"`` and
  ``"valid"`` (e.g. a torchvision detection target).

Masks: a ``(1, H, W)`` or ``(H, W)`` tensor (float in [0, 1], bool or uint8 0/255) or a
``tv_tensors.Mask``; instance masks ``(N, H, W)`` are merged by their maximum. Masks are cropped
bilinearly (soft masks stay soft) and returned as float32 ``(1, h, w)`` in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import PIL.Image
import torch
from lightly.transforms.multi_view_transform import MultiViewTransform
from lightly.transforms.rotation import RandomRotate, RandomRotateDegrees
from lightly.transforms.torchvision_v2_compatibility import torchvision_transforms as T
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from objaug.config import BoxConfig, ensure_config
from objaug.functional.crop import default_valid, effective_valid, object_crop_params, sample_regions
from objaug.objects import boxes_of_maps
from objaug.validation import (
    check_batch_values,
    check_bool,
    check_box_sampling,
    check_int,
    check_positive_float,
    check_probability,
)

from .objects import find_objects, input_size, normalized_xyxy, parse_objects

__all__ = [
    "ObjectAwareMultiViewTransform",
    "ObjectAwareViewMixin",
    "PerImageObjectAwareCrop",
    "check_input_size",
    "parse_objects",  # re-exported from .objects
]

# A box edge within this many pixels of a pixel edge counts as on it (float round-off of normalised boxes).
_EDGE_TOL = 1e-3


def _inner_span(lo: float, hi: float, size: int) -> tuple[int, int]:
    """Whole pixels [a, b) inside the normalised span [lo, hi] of an axis of ``size`` pixels.

    Falls back to the pixels the span touches when it contains no whole pixel (a sub-pixel box).
    """
    a = math.ceil(lo * size - _EDGE_TOL)
    b = math.floor(hi * size + _EDGE_TOL)
    a, b = max(a, 0), min(b, size)
    if b - a < 1:
        a = min(max(math.floor(lo * size), 0), size - 1)
        b = max(min(math.ceil(hi * size), size), a + 1)
    return a, b


def _crop_pixels(crop: Sequence[float], region: Sequence[float], h: int, w: int) -> dict[str, int]:
    """Round a normalised crop box to whole pixels that stay inside ``region``'s whole pixels."""
    out: dict[str, int] = {}
    for (lo, hi), (rlo, rhi), size, start, length in (
        ((crop[0], crop[2]), (region[0], region[2]), w, "left", "width"),
        ((crop[1], crop[3]), (region[1], region[3]), h, "top", "height"),
    ):
        ra, rb = _inner_span(rlo, rhi, size)
        a = min(max(round(lo * size), ra), rb - 1)
        b = min(max(round(hi * size), a + 1), rb)
        out[start], out[length] = a, b - a
    return out


class PerImageObjectAwareCrop(T.RandomResizedCrop):
    """torchvision v2 ``RandomResizedCrop`` inside an object box, for one image (CPU, DataLoader workers).

    A drop-in replacement of the ``RandomResizedCrop`` in Lightly's view transforms. The crop
    parameters come from :func:`objaug.functional.crop.object_crop_params` with ``B = 1`` (the recipe of the
    batched :class:`objaug.augment.crop.ObjectAwareRandomResizedCrop` and :func:`objaug.engine.crop_view`):
    the box is one of the ``tv_tensors.BoundingBoxes`` in the sample (drawn with ``box_sampling`` when
    there are several; a single usable box, e.g. the one an :class:`ObjectAwareMultiViewTransform` chose,
    is taken without a draw), grown to ``min_box_pixels`` when smaller, a torchvision-style random
    resized crop is drawn relative to it (area fraction in ``scale`` of the box's area, pixel aspect
    ratio in ``ratio``, ``attempts`` candidates then a centre fallback), and its sub-pixel box is rounded
    to whole pixels that lie inside the (grown) box (so no pixel outside it reaches the view). Then
    ``torchvision.transforms.v2.functional.resized_crop`` crops and resizes every image, mask and box
    of the sample with those parameters. The flip stays Lightly's own ``RandomHorizontalFlip``.

    Without ``BoundingBoxes`` in the sample (e.g. an image alone, as Lightly's
    ``plot_augmented_images`` passes it) the region is the whole image: the crop is then an ordinary
    RandomResizedCrop, which is also the paper's rule for images without an object.

    Args:
        size: output size (int or (h, w)).
        scale: area fraction range, relative to the chosen box.
        ratio: width / height range in pixels.
        interpolation: as torchvision's (bilinear by default).
        antialias: as torchvision's (True by default).
        box_sampling: ``"uniform"`` (the paper) or ``"area"``, when the sample holds several boxes.
        center_suppressed: ContrastiveCrop's Beta(alpha, alpha) placement of the crop inside the box.
        alpha: that Beta parameter.
        attempts: candidate crops per image (torchvision: 10).
        min_box_pixels: a side of the chosen box shorter than this many pixels of the image is grown
            around the box's centre to this size before the crop is drawn in it (``0``: boxes as given);
            see :func:`objaug.functional.crop.object_crop_params`.
    """

    def __init__(
        self,
        size: int | Sequence[int],
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
        interpolation: Any = "bilinear",
        antialias: bool | None = True,
        *,
        box_sampling: str = "uniform",
        center_suppressed: bool = False,
        alpha: float = 0.6,
        attempts: int = 10,
        min_box_pixels: int = 0,
    ) -> None:
        super().__init__(size, scale=scale, ratio=ratio, interpolation=interpolation, antialias=antialias)
        if not 0.0 < float(scale[0]) <= float(scale[1]) <= 1.0:
            raise ValueError(f"scale must satisfy 0 < min <= max <= 1 (relative to the box), got {scale!r}.")
        if not 0.0 < float(ratio[0]) <= float(ratio[1]):
            raise ValueError(f"ratio must satisfy 0 < min <= max, got {ratio!r}.")
        check_positive_float(alpha, "alpha")
        check_int(attempts, "attempts", low=1)
        check_int(min_box_pixels, "min_box_pixels", low=0, why=" (smallest box side in pixels; 0 turns it off)")
        self.box_sampling = check_box_sampling(box_sampling)
        self.center_suppressed = check_bool(center_suppressed, "center_suppressed")
        self.alpha = float(alpha)
        self.attempts = attempts
        self.min_box_pixels = min_box_pixels

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = input_size(flat_inputs)
        found = [normalized_xyxy(x) for x in flat_inputs if isinstance(x, tv_tensors.BoundingBoxes)]
        boxes = torch.cat(found)[None] if found else torch.zeros(1, 0, 4)  # (1, K, 4)
        box_index = None  # several boxes: drawn (box_sampling)
        if boxes.shape[1] <= 1:  # none, or the one region: no choice to draw
            usable = effective_valid(boxes, default_valid(boxes, None)).any(1)
            box_index = torch.where(usable, 0, -1)
        params = object_crop_params(
            boxes, None, (h, w), box_sampling=self.box_sampling, box_index=box_index,
            scale=(float(self.scale[0]), float(self.scale[1])), ratio=(float(self.ratio[0]), float(self.ratio[1])),
            attempts=self.attempts, center_suppressed=self.center_suppressed, alpha=self.alpha,
            min_box_pixels=self.min_box_pixels)
        return _crop_pixels(params["crop_boxes"][0].tolist(), params["regions"][0].tolist(), h, w)


# ---------------------------------------------------------------------------------------------------- inputs
def check_input_size(input_size: int) -> None:
    """Lightly accepts any ``input_size``; an object-aware view needs an int >= 1 (its side in pixels)."""
    check_int(input_size, "input_size", low=1, why=" (the views' side in pixels)")


def _check_image(image: Any) -> None:
    """A floating tensor image must hold values in [0, 1] (what torchvision's ops assume); PIL and integer
    tensors are converted by the pipeline itself. One ``aminmax`` of one image, on the CPU workers."""
    if isinstance(image, Tensor) and image.is_floating_point() and image.ndim in (3, 4):
        check_batch_values(image if image.ndim == 4 else image.unsqueeze(0), name="image")


def _to_tv_image(image: Any) -> Any:
    """PIL stays PIL; a plain tensor becomes a ``tv_tensors.Image`` (so a mask Image beside it is not
    mistaken for the image by torchvision's pure-tensor heuristic)."""
    if isinstance(image, Tensor) and not isinstance(image, tv_tensors.Image):
        return tv_tensors.Image(image)
    return image


class ObjectAwareViewMixin:
    """Makes a Lightly view transform object-aware (mixed into ``SimCLRViewTransform`` & co.).

    The subclass calls :meth:`_install_object_aware_crop` after Lightly's ``__init__``: the
    ``RandomResizedCrop`` of ``self.transform`` (a torchvision ``Compose``) is replaced by a
    :class:`PerImageObjectAwareCrop` with the same size, scale, ratio and interpolation. ``self.transform``
    stays the view's whole pipeline, so Lightly's ``plot_augmented_images`` works (on images alone the
    crop uses the whole image).

    Calling the view:

    * ``view(image)``: ``self.transform(image)`` (whole-image crop, Lightly's behaviour);
    * ``view(image, boxes)``: crop inside one of ``boxes`` (see the module docs for the formats);
    * ``view(image, boxes, mask)`` with plain tensors: also crop and flip ``mask`` with the image; returns
      ``(view, view_mask)``;
    * a torchvision v2 sample (``tv_tensors.BoundingBoxes`` / ``tv_tensors.Mask`` anywhere in the arguments,
      e.g. ``view(image, target_dict)`` inside Lightly's ``MultiViewTransformV2``): v2's contract, the same
      structure back with the image replaced by the view and the boxes and masks transformed with it.
    """

    transform: Any
    accepts_objects: ClassVar[bool] = True

    def _install_object_aware_crop(self, *, box_sampling: str = "uniform", center_suppressed: bool = False,
                                   alpha: float = 0.6, min_box_pixels: int = 0) -> None:
        ops = list(self.transform.transforms)
        found = [i for i, op in enumerate(ops) if type(op) is T.RandomResizedCrop]
        if len(found) != 1:
            raise TypeError(f"{type(self).__name__}: expected exactly one RandomResizedCrop in the Lightly view "
                            f"pipeline, found {len(found)}; this Lightly version is not supported.")
        old = ops[found[0]]
        ops[found[0]] = PerImageObjectAwareCrop(
            old.size, scale=tuple(old.scale), ratio=tuple(old.ratio), interpolation=old.interpolation,
            antialias=old.antialias, box_sampling=box_sampling, center_suppressed=center_suppressed, alpha=alpha,
            min_box_pixels=min_box_pixels)
        self.transform.transforms = ops
        # The leading geometric ops are applied to the image and the mask together; the rest (colour,
        # blur, solarisation, ToTensor, Normalize) to the image only.
        geometric = (PerImageObjectAwareCrop, T.RandomHorizontalFlip, T.RandomVerticalFlip, RandomRotate,
                     RandomRotateDegrees)
        n = 0
        while n < len(ops) and isinstance(ops[n], geometric):
            n += 1
        if n == 0 or not isinstance(ops[0], PerImageObjectAwareCrop):
            raise TypeError(f"{type(self).__name__}: the crop must be the first op of the view pipeline.")
        self._n_geometric = n

    @property
    def crop(self) -> PerImageObjectAwareCrop:
        """The view's object-aware crop."""
        return self.transform.transforms[0]  # type: ignore[no-any-return]

    def _geometric(self, image: Any, region: tv_tensors.BoundingBoxes, mask: Tensor | None) -> tuple[Any, Any]:
        sample: tuple[Any, ...] = (image, region) if mask is None else (image, region, tv_tensors.Image(mask))
        for op in self.transform.transforms[: self._n_geometric]:
            sample = _geometric_op(op, sample)
        return sample[0], (sample[2] if mask is not None else None)

    def _apply(self, image: Any, region: tv_tensors.BoundingBoxes, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Crop/flip ``image`` (and ``mask``) inside ``region``, then the photometric ops on the image.

        Args:
            image: PIL image or ``tv_tensors.Image``.
            region: the box(es) to crop in (pixel coordinates); empty for the whole image.
            mask: ``(1, H, W)`` float mask or None.

        Returns:
            ``(view (C, h, w) float tensor, view_mask (1, h, w) float32 in [0, 1] or None)``.
        """
        x, m = self._geometric(_to_tv_image(image), region, mask)
        for op in self.transform.transforms[self._n_geometric:]:
            x = op(x)
        view = x.as_subclass(Tensor) if isinstance(x, Tensor) else x
        out_mask = None if m is None else m.as_subclass(Tensor).float().clamp(0.0, 1.0)
        return view, out_mask

    def __call__(self, image: Any, boxes: Any = None, mask: Any = None, *more: Any) -> Any:
        """Transform one image into a view (see the class docs).

        With ``tv_tensors`` in the sample (``BoundingBoxes``, ``Mask``; anywhere in nested lists, tuples or
        dicts) or a structure as the only argument, the view follows torchvision v2's contract (as inside
        Lightly's ``MultiViewTransformV2``): it returns the same structure with the image replaced by the
        view, the ``BoundingBoxes`` and ``Mask`` cropped and flipped with it (masks keep their dtype: label
        masks stay labels) and every other leaf unchanged; the crop lies inside one of the boxes (chosen per
        view), or is a whole-image crop without boxes.

        Returns:
            The view ``(C, h, w)`` tensor, or ``(view, view_mask)`` when a plain mask tensor was given, or the
            transformed structure (see above).
        """
        inputs = _given(image, boxes, mask, *more)
        if more or isinstance(image, tuple | list | Mapping) or _holds_tv_objects(inputs[1:]):
            return self._call_v2(inputs)
        _check_image(image)
        if boxes is None and mask is None:
            return self.transform(image)
        size, norm, ok, m = parse_objects(image, boxes, mask)
        region = _region_boxes(norm if norm is None or ok is None else norm[ok], size)
        view, view_mask = self._apply(image, region, m)
        return view if view_mask is None else (view, view_mask)


    def _call_v2(self, inputs: tuple[Any, ...]) -> Any:
        """torchvision v2's contract: the same structure out, image -> view, boxes and masks transformed."""
        from torch.utils._pytree import tree_flatten, tree_unflatten

        flat, spec = tree_flatten(inputs if len(inputs) > 1 else inputs[0])
        index = _image_index(flat)
        _check_image(flat[index])
        objects = [i for i, x in enumerate(flat) if isinstance(x, tv_tensors.BoundingBoxes | tv_tensors.Mask)]
        input_size([flat[index], *(flat[i] for i in objects)])  # one (H, W) for the image and its objects
        sample = (_to_tv_image(flat[index]), *(flat[i] for i in objects))
        for op in self.transform.transforms[: self._n_geometric]:
            sample = _geometric_op(op, sample)
        x = sample[0]
        for op in self.transform.transforms[self._n_geometric:]:
            x = op(x)
        flat[index] = x.as_subclass(Tensor) if isinstance(x, Tensor) else x
        for i, out in zip(objects, sample[1:], strict=True):
            flat[i] = out
        return tree_unflatten(flat, spec)


def _given(*args: Any) -> tuple[Any, ...]:
    """The positional arguments of a call, without the trailing ``None`` defaults."""
    n = len(args)
    while n > 1 and args[n - 1] is None:
        n -= 1
    return args[:n]


def _holds_tv_objects(items: Sequence[Any]) -> bool:
    from torch.utils._pytree import tree_flatten

    return any(isinstance(x, tv_tensors.BoundingBoxes | tv_tensors.Mask) for x in tree_flatten(list(items))[0])


def _image_index(flat: Sequence[Any]) -> int:
    """The image of a flattened v2 sample: the first PIL image or ``tv_tensors.Image``, else the first plain
    ``(C, H, W)`` tensor (torchvision's rule)."""
    for i, x in enumerate(flat):
        if isinstance(x, PIL.Image.Image | tv_tensors.Image):
            return i
    for i, x in enumerate(flat):
        if isinstance(x, Tensor) and not isinstance(x, tv_tensors.TVTensor) and x.ndim == 3:
            return i
    raise TypeError("No image (PIL, tv_tensors.Image or a (C, H, W) tensor) was found in the sample.")


def _geometric_op(op: Any, sample: tuple[Any, ...]) -> tuple[Any, ...]:
    """One geometric op of a view pipeline applied jointly to ``(image, boxes/masks...)``."""
    if isinstance(op, RandomRotate):
        return tuple(TF.rotate(x, op.angle) for x in sample) if float(torch.rand(())) < op.prob else sample
    if isinstance(op, RandomRotateDegrees):
        joint: Any = op.transform  # a v2 RandomApply([RandomRotation]): transforms the sample jointly
        return tuple(joint(*sample))
    out = op(*sample)
    return tuple(out) if len(sample) > 1 else (out,)


def _region_boxes(boxes: Tensor | None, size: tuple[int, int]) -> tv_tensors.BoundingBoxes:
    h, w = size
    data = torch.zeros(0, 4) if boxes is None else boxes.reshape(-1, 4) * torch.tensor([w, h, w, h])
    return tv_tensors.BoundingBoxes(data, format="XYXY", canvas_size=(h, w))


class ObjectAwareMultiViewTransform(MultiViewTransform):
    """Lightly's ``MultiViewTransform`` for object-aware views: one box per image, shared by all views.

    Called per image (in DataLoader workers) as ``transform(image, boxes, mask=None, valid=None)``
    (also on torchvision v2 samples, as Lightly's ``MultiViewTransformV2`` passes them:
    ``transform(image, tv_tensors.BoundingBoxes, tv_tensors.Mask)``, ``transform(image, target)`` or
    ``transform((image, target))`` with the ``BoundingBoxes`` (any axis-aligned format) and ``Mask`` (an
    integer ``Mask`` is a label mask: every non-zero label is object) anywhere in ``target``; see
    :func:`~objaug.integrations.lightly.objects.find_objects`):

    1. one usable box is chosen (uniformly, or by area) and used with probability ``box_p``; images with
       no usable box (``(0, 4)`` boxes, all invalid or of zero area) use the whole image (the region step
       of :func:`objaug.functional.crop.object_crop_params`, with ``B = 1``);
    2. every view crops inside that box (its own random resized crop, grown to its ``min_box_pixels``
       first, and flip), crops the mask with the same parameters, and applies its photometric transforms.

    If only a mask is given, the boxes are derived from it with :func:`objaug.boxes.boxes_from_cam`
    (``box_config``). An image alone (no boxes, no mask) raises ``ValueError``: the object-aware crop
    needs each image's boxes; wrap the dataset with
    :class:`objaug.integrations.lightly.dataset.ObjectAwareDataset`.

    Args:
        transforms: object-aware view transforms (``ObjectAwareSimCLRViewTransform``,
            ``ObjectAwareBYOLView1Transform``, ...).
        box_p: probability of cropping inside the box, per image (1.0 = always, the paper).
        box_sampling: ``"uniform"`` (the paper) or ``"area"``.
        return_masks: also return the views' masks (for background mixup in the training loop); needs a
            mask per image.
        box_config: how boxes are read off the mask when only a mask is given (:class:`objaug.config.BoxConfig`).

    Returns (on call):
        The list of views (``(C, h, w)`` tensors), or with ``return_masks`` a tuple
        ``(views, masks)`` with one ``(1, h, w)`` float32 mask per view.
    """

    accepts_objects: ClassVar[bool] = True

    def __init__(
        self,
        transforms: Sequence[Any],
        *,
        box_p: float = 1.0,
        box_sampling: str = "uniform",
        return_masks: bool = False,
        box_config: BoxConfig | None = None,
    ) -> None:
        transforms = list(transforms)
        bad = [type(t).__name__ for t in transforms if not isinstance(t, ObjectAwareViewMixin)]
        if not transforms or bad:
            raise TypeError(
                "transforms must be objaug object-aware view transforms (e.g. ObjectAwareSimCLRViewTransform, "
                f"ObjectAwareBYOLView1Transform), got {bad or 'none'}; Lightly's own view transforms crop the "
                "whole image."
            )
        MultiViewTransform.__init__(self, transforms)
        self.box_p = check_probability(box_p, "box_p")
        self.box_sampling = check_box_sampling(box_sampling)
        self.return_masks = check_bool(return_masks, "return_masks")
        self.box_config = ensure_config(box_config, BoxConfig, "box_config")

    def __call__(  # type: ignore[override]
        self, image: Any, boxes: Any = None, mask: Any = None, *more: Any, valid: Any = None
    ) -> list[Tensor] | tuple[list[Tensor], list[Tensor]]:
        if more or isinstance(image, tuple | list) or _holds_tv_objects((boxes, mask)):
            # a torchvision v2 sample: (image, target), ((image, target),), tv_tensors anywhere in the target
            image, boxes, mask = find_objects(_given(image, boxes, mask, *more))
        _check_image(image)
        size, norm, ok, m = parse_objects(image, boxes, mask, valid)
        if norm is None and m is None:
            raise ValueError(
                f"{type(self).__name__} needs each image's object boxes (or a mask), but got an image alone. "
                "Wrap the dataset: ObjectAwareDataset(dataset, boxes=..., transform=transform) (from "
                "objaug.integrations.lightly.dataset; boxes from an ObjectStore or a tensor), or call "
                "transform(image, boxes). For an image without objects pass torch.zeros(0, 4)."
            )
        if self.return_masks and m is None:
            raise ValueError("return_masks=True needs a mask per image (for background mixup), but none was given; "
                             "attach masks in ObjectAwareDataset(..., masks=...) or use a store with masks.")
        if norm is None:
            assert m is not None
            b, v = boxes_of_maps(m[None], self.box_config)
            norm, ok = b[0], v[0]
        assert ok is not None
        regions, _, used = sample_regions(norm[None], ok[None], mode=self.box_sampling, p=self.box_p)
        tv_region = _region_boxes(regions if bool(used[0]) else None, size)
        image = _to_tv_image(image)
        views: list[Tensor] = []
        masks: list[Tensor] = []
        for view_transform in self.transforms:
            view, view_mask = view_transform._apply(image, tv_region, m)
            views.append(view)
            if view_mask is not None:
                masks.append(view_mask)
        return (views, masks) if self.return_masks else views
