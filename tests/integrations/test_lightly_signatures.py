"""The object-aware Lightly transforms take Lightly's arguments (names, order, kinds, types, defaults) plus
objaug's keyword-only options, written out explicitly: a Lightly release that changes its arguments fails here."""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

import pytest

pytest.importorskip("lightly")

from lightly.transforms.byol_transform import BYOLTransform, BYOLView1Transform, BYOLView2Transform  # noqa: E402
from lightly.transforms.moco_transform import MoCoV2Transform  # noqa: E402
from lightly.transforms.simclr_transform import SimCLRTransform, SimCLRViewTransform  # noqa: E402

from objaug.integrations.lightly.byol_transform import (  # noqa: E402
    ObjectAwareBYOLTransform,
    ObjectAwareBYOLView1Transform,
    ObjectAwareBYOLView2Transform,
)
from objaug.integrations.lightly.moco_transform import ObjectAwareMoCoV2Transform  # noqa: E402
from objaug.integrations.lightly.simclr_transform import (  # noqa: E402
    ObjectAwareSimCLRTransform,
    ObjectAwareSimCLRViewTransform,
)

VIEW_OPTIONS = ["box_sampling", "center_suppressed", "alpha", "min_box_pixels"]
MULTI_VIEW_OPTIONS = ["box_p", "box_sampling", "return_masks", "box_config", "center_suppressed", "alpha",
                      "min_box_pixels"]

CASES = [
    (ObjectAwareSimCLRViewTransform, SimCLRViewTransform, VIEW_OPTIONS),
    (ObjectAwareSimCLRTransform, SimCLRTransform, MULTI_VIEW_OPTIONS),
    (ObjectAwareMoCoV2Transform, MoCoV2Transform, MULTI_VIEW_OPTIONS),
    (ObjectAwareBYOLView1Transform, BYOLView1Transform, VIEW_OPTIONS),
    (ObjectAwareBYOLView2Transform, BYOLView2Transform, VIEW_OPTIONS),
    (ObjectAwareBYOLTransform, BYOLTransform, ["box_p", "box_sampling", "return_masks", "box_config"]),
]


def canonical(annotation: Any) -> Any:
    """A type with ``typing`` aliases and ``X | Y`` folded (``Tuple[float, float]`` == ``tuple[float, float]``,
    ``Optional[Union[A, B]]`` == ``A | B | None``)."""
    origin = typing.get_origin(annotation)
    if origin is None:
        return annotation
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return ("union", frozenset(canonical(a) for a in args))
    return (origin, tuple(canonical(a) for a in args))


def parameters(cls: type) -> list[tuple[str, Any, Any, Any]]:
    """``cls.__init__``'s parameters but ``self``: (name, kind, default, canonical type)."""
    hints = typing.get_type_hints(cls.__init__)
    return [(name, p.kind, p.default, canonical(hints.get(name)))
            for name, p in inspect.signature(cls.__init__).parameters.items() if name != "self"]


@pytest.mark.parametrize(("ours", "lightly", "options"), CASES, ids=[c[0].__name__ for c in CASES])
def test_lightlys_arguments_then_objaugs_keyword_only_options(ours, lightly, options):
    ours_params = parameters(ours)
    n = len(ours_params) - len(options)
    assert [name for name, *_ in ours_params[n:]] == options
    assert all(kind is inspect.Parameter.KEYWORD_ONLY for _, kind, *_ in ours_params[n:])
    theirs = parameters(lightly)
    if ours is ObjectAwareBYOLTransform:  # the views' types are objaug's object-aware views
        assert [p[:3] for p in ours_params[:n]] == [p[:3] for p in theirs]
    else:
        assert ours_params[:n] == theirs


@pytest.mark.parametrize("cls", [c[0] for c in CASES], ids=[c[0].__name__ for c in CASES])
def test_an_unknown_keyword_is_a_type_error_naming_it(cls):
    with pytest.raises(TypeError, match="unexpected keyword argument 'min_sacle'"):
        cls(min_sacle=0.3)


@pytest.mark.parametrize("cls", [ObjectAwareSimCLRViewTransform, ObjectAwareSimCLRTransform,
                                 ObjectAwareMoCoV2Transform, ObjectAwareBYOLView1Transform])
def test_lightlys_arguments_are_passed_on(cls):
    t = cls(32, 0.0, min_scale=0.5, hf_prob=0.0, normalize=None)
    view = t if not hasattr(t, "transforms") else t.transforms[0]
    crop = view.crop
    assert tuple(crop.size) == (32, 32) and crop.scale == (0.5, 1.0)
    names = [type(op).__name__ for op in view.transform.transforms]
    assert "Normalize" not in names
