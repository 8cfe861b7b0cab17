"""The objaug callback for solo-learn, as a ``lightning.pytorch`` callback, and its entry-point factory.

``pyproject.toml`` registers :func:`callbacks_factory` in the ``lightning.pytorch.callbacks_factory``
entry-point group, so every ``lightning.pytorch.Trainer`` (solo-learn's ``main_pretrain.py`` included)
gets one :class:`ObjectAwareCallback`; it stays inert unless the module's ``cfg.objaug.enabled`` is true.
Importing this module imports Lightning and objaug's small config module only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lightning.pytorch.callbacks import Callback

from ._hooks import ObjectAwareHooks
from .config import ObjaugConfig

if TYPE_CHECKING:
    from .views import BoxStore

__all__ = ["ObjectAwareCallback", "callbacks_factory"]


class ObjectAwareCallback(ObjectAwareHooks, Callback):
    __doc__ = ObjectAwareHooks.__doc__

    def __init__(
        self,
        config: Mapping[str, Any] | ObjaugConfig | None = None,
        *,
        store: BoxStore | None = None,
        from_entry_point: bool = False,
    ) -> None:
        Callback.__init__(self)
        ObjectAwareHooks.__init__(self, config, store=store, from_entry_point=from_entry_point)


def callbacks_factory() -> list[Callback]:
    """Entry point of ``lightning.pytorch.callbacks_factory``: one inert-until-configured callback."""
    return [ObjectAwareCallback(from_entry_point=True)]
