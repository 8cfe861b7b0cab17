"""solo-learn's side of the callback: its batch structure, the method's CAM model and the object store.

:func:`views_of` checks solo-learn's training batch ``[indexes, [X_1..X_n], targets]``,
:func:`pick_cam_model` finds the (backbone, projector) pair ContraCAM uses, :func:`load_store` opens the
store named by ``objaug.store``. Re-exported by :mod:`.views`.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from torch import Tensor, nn

from .config import ObjaugConfig, ObjaugConfigError

__all__ = ["BoxStore", "load_store", "pick_cam_model", "views_of"]


class BoxStore(Protocol):
    """What ``source: store`` needs: boxes, validity and masks for a batch of dataset indexes."""

    def get_batch(self, indexes: Tensor) -> tuple[Tensor, Tensor, Tensor | None]: ...


def load_store(config: ObjaugConfig) -> BoxStore:
    """Open the store named by ``objaug.store.cls`` (``module:Name``) at ``objaug.store.path``."""
    module_name, _, attr = config.store.cls.partition(":")
    try:
        factory: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            factory = getattr(factory, part)
    except (ImportError, AttributeError) as err:
        raise ObjaugConfigError(f"objaug.store.cls={config.store.cls!r} cannot be imported ({err}). Give "
                                "'package.module:Name' of a class/function taking the store path.") from err
    store = factory(config.store.path)
    if not callable(getattr(store, "get_batch", None)):
        raise ObjaugConfigError(f"objaug.store.cls={config.store.cls!r} returned a {type(store).__name__} without a "
                                "get_batch(indexes) method.")
    return store


def pick_cam_model(pl_module: Any, which: str) -> tuple[nn.Module, nn.Module | None, str]:
    """The (backbone, projector, name) pair ContraCAM uses, per ``objaug.online.model``.

    Raises:
        ObjaugConfigError: the module lacks the requested attributes.
    """
    has_momentum = isinstance(getattr(pl_module, "momentum_backbone", None), nn.Module)
    if which == "auto":
        which = "momentum" if has_momentum else "online"
    prefix = "momentum_" if which == "momentum" else ""
    backbone = getattr(pl_module, prefix + "backbone", None)
    projector = getattr(pl_module, prefix + "projector", None)
    if not isinstance(backbone, nn.Module):
        raise ObjaugConfigError(
            f"objaug.online.model={which!r} needs the method's `{prefix}backbone`, which "
            f"{type(pl_module).__name__} does not have. Allowed: 'online' (backbone + projector), 'momentum' "
            "(momentum_backbone + momentum_projector, BYOL/MoCo-style methods) or 'auto'."
        )
    if projector is not None and not isinstance(projector, nn.Module):
        projector = None
    return backbone, projector, which


def views_of(batch: Any) -> list[Tensor]:
    """Check solo-learn's batch structure and return the (mutable) list of views inside it.

    A tuple of views inside a list batch is replaced by a list (so items can be assigned).
    """
    if not isinstance(batch, list | tuple) or len(batch) != 3:
        raise TypeError(
            "objaug expects solo-learn's training batch [indexes, [X_1..X_n], targets]; got "
            f"{type(batch).__name__} of length {len(batch) if isinstance(batch, list | tuple) else '?'}."
        )
    views = batch[1]
    if isinstance(views, Tensor):
        views = [views]
    if isinstance(views, tuple):
        if not isinstance(batch, list):
            raise TypeError("objaug rewrites the views in place: the batch must be a list (solo-learn's default "
                            "collate), got a tuple of a tuple.")
        views = list(views)
    if isinstance(batch, list):
        batch[1] = views
    elif batch[1] is not views:
        raise TypeError("objaug rewrites the views in place: the batch must be a list (solo-learn's default "
                        "collate); got a tuple whose views are not a list.")
    if not isinstance(views, list) or not all(isinstance(x, Tensor) and x.ndim == 4 for x in views):
        raise TypeError("objaug expects the views X of the batch to be a list of (B, C, H, W) tensors.")
    return views
