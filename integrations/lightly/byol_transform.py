"""Object-aware BYOL transforms: Lightly's ``BYOLTransform`` and its two views with the object-aware crop."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightly.transforms.byol_transform import BYOLTransform, BYOLView1Transform, BYOLView2Transform

from ._object_aware import ObjectAwareMultiViewTransform, ObjectAwareViewMixin
from ._signatures import view_init

__all__ = ["ObjectAwareBYOLTransform", "ObjectAwareBYOLView1Transform", "ObjectAwareBYOLView2Transform"]


class ObjectAwareBYOLView1Transform(ObjectAwareViewMixin, BYOLView1Transform):
    """Lightly's ``BYOLView1Transform`` (blur 1.0, no solarisation) with the object-aware crop.

    Args: those of ``lightly.transforms.BYOLView1Transform`` (same defaults), plus the keyword-only
        ``box_sampling``, ``center_suppressed``, ``alpha``, ``min_box_pixels`` (see
        :class:`~objaug.integrations.lightly.simclr_transform.ObjectAwareSimCLRViewTransform`).
    """

    __init__ = view_init(BYOLView1Transform)

class ObjectAwareBYOLView2Transform(ObjectAwareViewMixin, BYOLView2Transform):
    """Lightly's ``BYOLView2Transform`` (blur 0.1, solarisation 0.2) with the object-aware crop.

    Args: those of ``lightly.transforms.BYOLView2Transform`` (same defaults), plus the keyword-only
        ``box_sampling``, ``center_suppressed``, ``alpha``, ``min_box_pixels``.
    """

    __init__ = view_init(BYOLView2Transform)

class ObjectAwareBYOLTransform(ObjectAwareMultiViewTransform, BYOLTransform):
    """Lightly's ``BYOLTransform`` with the object-aware crop (Mo et al., NeurIPS 2021).

    Both views crop inside the same object box (chosen per image); view 1 and view 2 keep BYOL's
    asymmetric blur and solarisation.

    Input to this transform:
        ``transform(image, boxes, mask=None, *, valid=None)`` (see
        :class:`objaug.integrations.lightly.simclr_transform.ObjectAwareSimCLRTransform`).

    Output of this transform:
        List of 2 Tensors; with ``return_masks=True`` ``(views, masks)``.

    Args:
        view_1_transform: an :class:`ObjectAwareBYOLView1Transform` (default: its defaults).
        view_2_transform: an :class:`ObjectAwareBYOLView2Transform` (default: its defaults).
        box_p, box_sampling, return_masks, box_kwargs: keyword-only, see
            :class:`~objaug.integrations.lightly._object_aware.ObjectAwareMultiViewTransform`.

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
        box_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        view_1 = view_1_transform if view_1_transform is not None else ObjectAwareBYOLView1Transform()
        view_2 = view_2_transform if view_2_transform is not None else ObjectAwareBYOLView2Transform()
        for name, view in (("view_1_transform", view_1), ("view_2_transform", view_2)):
            if not isinstance(view, ObjectAwareViewMixin):
                raise TypeError(f"{name} must be an objaug object-aware view (ObjectAwareBYOLView1Transform / "
                                f"ObjectAwareBYOLView2Transform, same arguments as Lightly's), got "
                                f"{type(view).__name__}.")
        ObjectAwareMultiViewTransform.__init__(self, [view_1, view_2], box_p=box_p, box_sampling=box_sampling,
                                               return_masks=return_masks, box_kwargs=box_kwargs)
