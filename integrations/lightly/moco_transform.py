"""Object-aware MoCo v2 transform: Lightly's ``MoCoV2Transform`` with the object-aware crop."""

from __future__ import annotations

from lightly.transforms.moco_transform import MoCoV2Transform

from ._object_aware import ObjectAwareMultiViewTransform
from ._signatures import multi_view_init
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

    Applies the following augmentations by default: those of
    :class:`~objaug.integrations.lightly.simclr_transform.ObjectAwareSimCLRTransform` (object-aware random
    resized crop, horizontal flip, colour jitter, gray scale, Gaussian blur, ImageNet normalisation).

    Args: those of ``lightly.transforms.MoCoV2Transform`` (same names and defaults), plus the
        keyword-only ``box_p``, ``box_sampling``, ``return_masks``, ``box_kwargs``, ``center_suppressed``,
        ``alpha``, ``min_box_pixels`` of
        :class:`~objaug.integrations.lightly.simclr_transform.ObjectAwareSimCLRTransform`.
    """

    __init__ = multi_view_init(MoCoV2Transform, ObjectAwareSimCLRViewTransform)
