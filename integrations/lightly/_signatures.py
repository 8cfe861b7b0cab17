"""Constructors of the object-aware Lightly transforms, written once from Lightly's own signatures.

Each object-aware transform takes exactly the arguments of the Lightly transform it extends (same names,
order and defaults: read from ``inspect.signature`` of Lightly's class, so a Lightly release that adds an
argument is followed) plus objaug's keyword-only options. :func:`view_init` builds the ``__init__`` of a
single-view transform, :func:`multi_view_init` that of a two-view transform whose views share one
configuration (SimCLR, MoCo v2).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from objaug.validation import check_int

from ._object_aware import ObjectAwareMultiViewTransform

__all__ = ["MULTI_VIEW_OPTIONS", "VIEW_OPTIONS", "multi_view_init", "view_init"]

#: objaug's keyword-only options of a single view, with their defaults.
VIEW_OPTIONS: dict[str, Any] = {"box_sampling": "uniform", "center_suppressed": False, "alpha": 0.6,
                                "min_box_pixels": 0}
#: objaug's keyword-only options of a multi-view transform, with their defaults.
MULTI_VIEW_OPTIONS: dict[str, Any] = {"box_p": 1.0, "box_sampling": "uniform", "return_masks": False,
                                      "box_kwargs": None, "center_suppressed": False, "alpha": 0.6,
                                      "min_box_pixels": 0}


def _signature(base_init: Callable[..., None], options: Mapping[str, Any]) -> inspect.Signature:
    """``base_init``'s parameters (without ``*args``/``**kwargs``) followed by ``options`` as keyword-only."""
    params = [p for p in inspect.signature(base_init).parameters.values()
              if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
    params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
               for name, default in options.items()]
    return inspect.Signature(params)


def _split(sig: inspect.Signature, options: Mapping[str, Any], args: tuple[Any, ...],
           kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Bind a call to ``sig``: (Lightly's arguments, objaug's options), defaults filled in."""
    bound = sig.bind(*args, **kwargs)
    bound.apply_defaults()
    values = dict(bound.arguments)
    values.pop("self")
    ours = {name: values.pop(name) for name in options}
    if "input_size" in values:  # Lightly accepts any value here
        check_int(values["input_size"], "input_size", low=1, why=" (the views' side in pixels)")
    return values, ours


def view_init(base: Any) -> Callable[..., None]:
    """The ``__init__`` of ``ObjectAware<base>``: ``base.__init__`` then the object-aware crop installed."""
    sig = _signature(base.__init__, VIEW_OPTIONS)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        lightly_args, ours = _split(sig, VIEW_OPTIONS, (self, *args), kwargs)
        base.__init__(self, **lightly_args)
        self._install_object_aware_crop(**ours)

    __init__.__signature__ = sig  # type: ignore[attr-defined]
    return __init__


def multi_view_init(base: Any, view: Any) -> Callable[..., None]:
    """The ``__init__`` of a two-view ``ObjectAware<base>`` whose two views are one ``view(**base's arguments)``."""
    sig = _signature(base.__init__, MULTI_VIEW_OPTIONS)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        lightly_args, ours = _split(sig, MULTI_VIEW_OPTIONS, (self, *args), kwargs)
        one = view(**lightly_args, box_sampling=ours["box_sampling"], center_suppressed=ours["center_suppressed"],
                   alpha=ours["alpha"], min_box_pixels=ours["min_box_pixels"])
        ObjectAwareMultiViewTransform.__init__(self, [one, one], box_p=ours["box_p"], box_sampling=ours["box_sampling"],
                                               return_masks=ours["return_masks"], box_kwargs=ours["box_kwargs"])

    __init__.__signature__ = sig  # type: ignore[attr-defined]
    return __init__
