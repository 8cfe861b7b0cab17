"""Object-aware MoCo v2 transform: Lightly's ``MoCoV2Transform`` with the object-aware crop."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightly.transforms.moco_transform import MoCoV2Transform
from lightly.transforms.utils import IMAGENET_NORMALIZE

from ._object_aware import ObjectAwareMultiViewTransform
from .simclr_transform import ObjectAwareSimCLRViewTransform

__all__ = ["ObjectAwareMoCoV2Transform"]


class ObjectAwareMoCoV2Transform(ObjectAwareMultiViewTransform, MoCoV2Transform):
    """Lightly's ``MoCoV2Transform`` with the object-aware crop (Mo et al., NeurIPS 2021).

    The query and key views crop inside the same object box (chosen per image), each with its own
    random resized crop (``min_scale`` 0.2 relative to the box), flip and colour augmentations. The
    paper's MoCo v2 setting; with ``return_masks=True`` the first view's mask serves background mixup
    of the query in the training loop.

    Input to this transform:
        ``transform(image, boxes, mask=None, *, valid=None)`` (see
        :class:`objaug.integrations.lightly.simclr_transform.ObjectAwareSimCLRTransform`).

    Output of this transform:
        List of 2 Tensors ``[query, key]``; with ``return_masks=True`` ``(views, masks)``.

    Applies the following augmentations by default:
        - Object-aware random resized crop
        - Random horizontal flip
        - Color jitter
        - Random gray scale
        - Gaussian blur
        - ImageNet normalization

    Args:
        input_size, cj_prob, cj_strength, cj_bright, cj_contrast, cj_sat, cj_hue, min_scale,
            random_gray_scale, gaussian_blur, sigmas, vf_prob, hf_prob, rr_prob, rr_degrees, normalize:
            Lightly's ``MoCoV2Transform`` arguments, with its defaults (weaker colour jitter than SimCLR's,
            ``min_scale`` 0.2); both views get them (see
            :class:`~objaug.integrations.lightly.simclr_transform.ObjectAwareSimCLRViewTransform`).
        p, box_sampling, return_masks, box_kwargs, center_suppressed, alpha: objaug's options, as in
            :class:`~objaug.integrations.lightly.simclr_transform.ObjectAwareSimCLRTransform`.
    """

    def __init__(
        self,
        input_size: int = 224,
        cj_prob: float = 0.8,
        cj_strength: float = 1.0,
        cj_bright: float = 0.4,
        cj_contrast: float = 0.4,
        cj_sat: float = 0.4,
        cj_hue: float = 0.1,
        min_scale: float = 0.2,
        random_gray_scale: float = 0.2,
        gaussian_blur: float = 0.5,
        sigmas: tuple[float, float] = (0.1, 2),
        vf_prob: float = 0.0,
        hf_prob: float = 0.5,
        rr_prob: float = 0.0,
        rr_degrees: float | tuple[float, float] | None = None,
        normalize: dict[str, list[float]] | None = IMAGENET_NORMALIZE,
        *,
        p: float = 1.0,
        box_sampling: str = "uniform",
        return_masks: bool = False,
        box_kwargs: Mapping[str, Any] | None = None,
        center_suppressed: bool = False,
        alpha: float = 0.6,
    ) -> None:
        view = ObjectAwareSimCLRViewTransform(
            input_size=input_size, cj_prob=cj_prob, cj_strength=cj_strength, cj_bright=cj_bright,
            cj_contrast=cj_contrast, cj_sat=cj_sat, cj_hue=cj_hue, min_scale=min_scale,
            random_gray_scale=random_gray_scale, gaussian_blur=gaussian_blur, sigmas=sigmas, vf_prob=vf_prob,
            hf_prob=hf_prob, rr_prob=rr_prob, rr_degrees=rr_degrees, normalize=normalize,
            box_sampling=box_sampling, center_suppressed=center_suppressed, alpha=alpha)
        ObjectAwareMultiViewTransform.__init__(self, [view, view], p=p, box_sampling=box_sampling,
                                               return_masks=return_masks, box_kwargs=box_kwargs)
