"""Object-aware SimCLR transforms: Lightly's ``SimCLRTransform`` with the object-aware crop."""

from __future__ import annotations

from lightly.transforms.simclr_transform import SimCLRTransform, SimCLRViewTransform

from ._object_aware import ObjectAwareMultiViewTransform, ObjectAwareViewMixin
from ._signatures import multi_view_init, view_init

__all__ = ["ObjectAwareSimCLRTransform", "ObjectAwareSimCLRViewTransform"]


class ObjectAwareSimCLRViewTransform(ObjectAwareViewMixin, SimCLRViewTransform):
    """Lightly's ``SimCLRViewTransform`` whose random resized crop lies inside an object box.

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

    Args: those of ``lightly.transforms.SimCLRViewTransform`` (same defaults), plus the keyword-only
        ``box_sampling`` (``"uniform"`` or ``"area"``, when several boxes reach the view), and
        ``center_suppressed`` / ``alpha`` (ContrastiveCrop's Beta(alpha, alpha) crop placement) and
        ``min_box_pixels`` (small boxes grown to this many pixels first).
    """

    __init__ = view_init(SimCLRViewTransform)

class ObjectAwareSimCLRTransform(ObjectAwareMultiViewTransform, SimCLRTransform):
    """Lightly's ``SimCLRTransform`` with the object-aware crop (Mo et al., NeurIPS 2021).

    Both views crop inside the same object box of the image (chosen per image), each with its own
    random resized crop (scale relative to the box), flip and colour augmentations.

    Input to this transform:
        ``transform(image, boxes, mask=None, *, valid=None)``: a PIL Image or (C, H, W) tensor with
        its boxes, ``(K, 4)`` normalised xyxy (or ``tv_tensors.BoundingBoxes``, or a target dict) and an
        optional soft mask ``(1, H, W)``. :class:`objaug.integrations.lightly.dataset.ObjectAwareDataset`
        makes the call for any Lightly or torchvision dataset. An image alone raises ``ValueError``.

    Output of this transform:
        List of 2 Tensors (C, input_size, input_size); with ``return_masks=True`` the tuple
        ``(views, masks)`` with one (1, input_size, input_size) mask per view.

    Applies the following augmentations by default:
        - Object-aware random resized crop
        - Random horizontal flip
        - Color jitter
        - Random gray scale
        - Gaussian blur
        - ImageNet normalization

    Args: those of ``lightly.transforms.SimCLRTransform`` (same names and defaults), plus keyword-only:
        box_p: probability of cropping inside the box (per image; 1.0 as the paper).
        box_sampling: ``"uniform"`` (the paper) or ``"area"``.
        return_masks: also return the views' masks (for background mixup in the training loop).
        box_kwargs: ``objaug.boxes.boxes_from_cam`` arguments, used when only a mask is given.
        center_suppressed, alpha: ContrastiveCrop's crop placement inside the box.
        min_box_pixels: a box side shorter than this many pixels is grown to it before the crop is drawn
            (``0``: boxes as given; see :func:`objaug.functional.crop.object_crop_params`).
    """

    __init__ = multi_view_init(SimCLRTransform, ObjectAwareSimCLRViewTransform)
