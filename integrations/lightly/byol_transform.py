"""Object-aware BYOL transforms: Lightly's ``BYOLTransform`` and its two views with the object-aware crop."""

from __future__ import annotations

from lightly.transforms.byol_transform import BYOLTransform, BYOLView1Transform, BYOLView2Transform
from lightly.transforms.utils import IMAGENET_NORMALIZE

from objaug.config import BoxConfig

from ._object_aware import ObjectAwareMultiViewTransform, ObjectAwareViewMixin, check_input_size

__all__ = ["ObjectAwareBYOLTransform", "ObjectAwareBYOLView1Transform", "ObjectAwareBYOLView2Transform"]


class ObjectAwareBYOLView1Transform(ObjectAwareViewMixin, BYOLView1Transform):
    """Lightly's ``BYOLView1Transform`` with the object-aware crop: BYOL's first view (blur 1.0, no solarisation).

    Input to this transform:
        PIL Image or (C, H, W) tensor, optionally with the image's boxes and mask (see
        :class:`objaug.integrations.lightly._object_aware.ObjectAwareViewMixin`).

    Output of this transform:
        Tensor (C, input_size, input_size), or ``(view, view_mask)`` when a mask is given.

    Applies the following augmentations by default:
        - Object-aware random resized crop (scale relative to the chosen box)
        - Random horizontal flip
        - Color jitter
        - Random gray scale
        - Gaussian blur
        - ImageNet normalization

    Args:
        input_size: Size of the output view in pixels (an int >= 1).
        cj_prob: Probability that color jitter is applied.
        cj_strength: Strength of the color jitter. `cj_bright`, `cj_contrast`, `cj_sat`, and `cj_hue` are
            multiplied by this value. For datasets with small images, such as CIFAR, Lightly recommends 0.5.
        cj_bright: How much to jitter brightness.
        cj_contrast: How much to jitter contrast.
        cj_sat: How much to jitter saturation.
        cj_hue: How much to jitter hue.
        min_scale: Minimum area of the random crop, relative to the chosen object box (the whole image
            when there is none).
        random_gray_scale: Probability of conversion to grayscale.
        gaussian_blur: Probability of Gaussian blur.
        solarization_prob: Probability of solarization.
        sigmas: Tuple of min and max value from which the std of the gaussian kernel is sampled.
        vf_prob: Probability that vertical flip is applied.
        hf_prob: Probability that horizontal flip is applied.
        rr_prob: Probability that random rotation is applied.
        rr_degrees: Range of degrees to select from for random rotation. If None, images are rotated by
            90 degrees; a (min, max) tuple rotates by a random angle in [min, max]; a single number by a
            random angle in [-rr_degrees, +rr_degrees]. All rotations are counter-clockwise.
        normalize: Dictionary with 'mean' and 'std' for torchvision.transforms.Normalize (None: none).
        box_sampling: ``"uniform"`` (the paper) or ``"area"``: how one box is chosen when several reach the
            view.
        center_suppressed: ContrastiveCrop's placement of the crop inside the box, Beta(alpha, alpha).
        alpha: that Beta parameter (> 0).
        min_box_pixels: a side of the chosen box shorter than this many pixels is grown to it before the crop
            is drawn (``0``: boxes as given; :func:`objaug.functional.crop.object_crop_params`).
    """

    def __init__(
        self,
        input_size: int = 224,
        cj_prob: float = 0.8,
        cj_strength: float = 1.0,
        cj_bright: float = 0.4,
        cj_contrast: float = 0.4,
        cj_sat: float = 0.2,
        cj_hue: float = 0.1,
        min_scale: float = 0.08,
        random_gray_scale: float = 0.2,
        gaussian_blur: float = 1.0,
        solarization_prob: float = 0.0,
        sigmas: tuple[float, float] = (0.1, 2),
        vf_prob: float = 0.0,
        hf_prob: float = 0.5,
        rr_prob: float = 0.0,
        rr_degrees: float | tuple[float, float] | None = None,
        normalize: dict[str, list[float]] | None = IMAGENET_NORMALIZE,
        *,
        box_sampling: str = "uniform",
        center_suppressed: bool = False,
        alpha: float = 0.6,
        min_box_pixels: int = 0,
    ) -> None:
        check_input_size(input_size)
        BYOLView1Transform.__init__(
            self, input_size=input_size, cj_prob=cj_prob, cj_strength=cj_strength, cj_bright=cj_bright,
            cj_contrast=cj_contrast, cj_sat=cj_sat, cj_hue=cj_hue, min_scale=min_scale,
            random_gray_scale=random_gray_scale, gaussian_blur=gaussian_blur, solarization_prob=solarization_prob,
            sigmas=sigmas, vf_prob=vf_prob, hf_prob=hf_prob, rr_prob=rr_prob, rr_degrees=rr_degrees,
            normalize=normalize)
        self._install_object_aware_crop(box_sampling=box_sampling, center_suppressed=center_suppressed, alpha=alpha,
                                        min_box_pixels=min_box_pixels)


class ObjectAwareBYOLView2Transform(ObjectAwareViewMixin, BYOLView2Transform):
    """Lightly's ``BYOLView2Transform`` with the object-aware crop: BYOL's second view (blur 0.1, solarisation 0.2).

    Input to this transform:
        PIL Image or (C, H, W) tensor, optionally with the image's boxes and mask (see
        :class:`objaug.integrations.lightly._object_aware.ObjectAwareViewMixin`).

    Output of this transform:
        Tensor (C, input_size, input_size), or ``(view, view_mask)`` when a mask is given.

    Applies the following augmentations by default:
        - Object-aware random resized crop (scale relative to the chosen box)
        - Random horizontal flip
        - Color jitter
        - Random gray scale
        - Gaussian blur
        - Solarization
        - ImageNet normalization

    Args:
        input_size: Size of the output view in pixels (an int >= 1).
        cj_prob: Probability that color jitter is applied.
        cj_strength: Strength of the color jitter. `cj_bright`, `cj_contrast`, `cj_sat`, and `cj_hue` are
            multiplied by this value. For datasets with small images, such as CIFAR, Lightly recommends 0.5.
        cj_bright: How much to jitter brightness.
        cj_contrast: How much to jitter contrast.
        cj_sat: How much to jitter saturation.
        cj_hue: How much to jitter hue.
        min_scale: Minimum area of the random crop, relative to the chosen object box (the whole image
            when there is none).
        random_gray_scale: Probability of conversion to grayscale.
        gaussian_blur: Probability of Gaussian blur.
        solarization_prob: Probability of solarization.
        sigmas: Tuple of min and max value from which the std of the gaussian kernel is sampled.
        vf_prob: Probability that vertical flip is applied.
        hf_prob: Probability that horizontal flip is applied.
        rr_prob: Probability that random rotation is applied.
        rr_degrees: Range of degrees to select from for random rotation. If None, images are rotated by
            90 degrees; a (min, max) tuple rotates by a random angle in [min, max]; a single number by a
            random angle in [-rr_degrees, +rr_degrees]. All rotations are counter-clockwise.
        normalize: Dictionary with 'mean' and 'std' for torchvision.transforms.Normalize (None: none).
        box_sampling: ``"uniform"`` (the paper) or ``"area"``: how one box is chosen when several reach the
            view.
        center_suppressed: ContrastiveCrop's placement of the crop inside the box, Beta(alpha, alpha).
        alpha: that Beta parameter (> 0).
        min_box_pixels: a side of the chosen box shorter than this many pixels is grown to it before the crop
            is drawn (``0``: boxes as given; :func:`objaug.functional.crop.object_crop_params`).
    """

    def __init__(
        self,
        input_size: int = 224,
        cj_prob: float = 0.8,
        cj_strength: float = 1.0,
        cj_bright: float = 0.4,
        cj_contrast: float = 0.4,
        cj_sat: float = 0.2,
        cj_hue: float = 0.1,
        min_scale: float = 0.08,
        random_gray_scale: float = 0.2,
        gaussian_blur: float = 0.1,
        solarization_prob: float = 0.2,
        sigmas: tuple[float, float] = (0.1, 2),
        vf_prob: float = 0.0,
        hf_prob: float = 0.5,
        rr_prob: float = 0.0,
        rr_degrees: float | tuple[float, float] | None = None,
        normalize: dict[str, list[float]] | None = IMAGENET_NORMALIZE,
        *,
        box_sampling: str = "uniform",
        center_suppressed: bool = False,
        alpha: float = 0.6,
        min_box_pixels: int = 0,
    ) -> None:
        check_input_size(input_size)
        BYOLView2Transform.__init__(
            self, input_size=input_size, cj_prob=cj_prob, cj_strength=cj_strength, cj_bright=cj_bright,
            cj_contrast=cj_contrast, cj_sat=cj_sat, cj_hue=cj_hue, min_scale=min_scale,
            random_gray_scale=random_gray_scale, gaussian_blur=gaussian_blur, solarization_prob=solarization_prob,
            sigmas=sigmas, vf_prob=vf_prob, hf_prob=hf_prob, rr_prob=rr_prob, rr_degrees=rr_degrees,
            normalize=normalize)
        self._install_object_aware_crop(box_sampling=box_sampling, center_suppressed=center_suppressed, alpha=alpha,
                                        min_box_pixels=min_box_pixels)


class ObjectAwareBYOLTransform(ObjectAwareMultiViewTransform, BYOLTransform):
    """Lightly's ``BYOLTransform`` with the object-aware crop (Mo et al., NeurIPS 2021).

    Both views crop inside the same object box (chosen per image); view 1 and view 2 keep BYOL's
    asymmetric blur and solarisation.

    Input to this transform:
        ``transform(image, boxes, mask=None, *, valid=None)`` (see
        :class:`objaug.integrations.lightly.simclr_transform.ObjectAwareSimCLRTransform`).

    Output of this transform:
        List of 2 Tensors; with ``return_masks=True`` ``(views, masks)``.

    Applies the following augmentations by default:
        - Object-aware random resized crop
        - Random horizontal flip
        - Color jitter
        - Random gray scale
        - Gaussian blur
        - Solarization
        - ImageNet normalization

    Args:
        view_1_transform: an :class:`ObjectAwareBYOLView1Transform` (default: its defaults).
        view_2_transform: an :class:`ObjectAwareBYOLView2Transform` (default: its defaults).
        box_p: probability of cropping inside the box (per image; 1.0 as the paper).
        box_sampling: ``"uniform"`` (the paper) or ``"area"``.
        return_masks: also return the views' masks (for background mixup in the training loop).
        box_config: how boxes are read off a mask given without boxes (:class:`objaug.config.BoxConfig`).

    Raises:
        TypeError: a view is Lightly's own ``BYOLView1Transform``/``BYOLView2Transform`` (which crops the
            whole image): use the ``ObjectAware`` views with the same arguments.
    """

    def __init__(
        self,
        view_1_transform: ObjectAwareBYOLView1Transform | None = None,
        view_2_transform: ObjectAwareBYOLView2Transform | None = None,
        *,
        box_p: float = 1.0,
        box_sampling: str = "uniform",
        return_masks: bool = False,
        box_config: BoxConfig | None = None,
    ) -> None:
        view_1 = view_1_transform if view_1_transform is not None else ObjectAwareBYOLView1Transform()
        view_2 = view_2_transform if view_2_transform is not None else ObjectAwareBYOLView2Transform()
        for name, view in (("view_1_transform", view_1), ("view_2_transform", view_2)):
            if not isinstance(view, ObjectAwareViewMixin):
                raise TypeError(f"{name} must be an objaug object-aware view (ObjectAwareBYOLView1Transform / "
                                f"ObjectAwareBYOLView2Transform, same arguments as Lightly's), got "
                                f"{type(view).__name__}.")
        ObjectAwareMultiViewTransform.__init__(self, [view_1, view_2], box_p=box_p, box_sampling=box_sampling,
                                               return_masks=return_masks, box_config=box_config)
