"""The objaug callback for solo-learn, as a ``pytorch_lightning`` callback, and its entry-point factory.

``pyproject.toml`` registers :func:`callbacks_factory` in the ``pytorch_lightning.callbacks_factory``
entry-point group, so every ``pytorch_lightning.Trainer`` gets one :class:`ObjectAwareCallback`; it stays
inert unless the module's ``cfg.objaug.enabled`` is true.
Importing this module imports pytorch_lightning and objaug's small config module only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pytorch_lightning.callbacks import Callback

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
    """Entry point of ``pytorch_lightning.callbacks_factory``: one inert-until-configured callback."""
    return [ObjectAwareCallback(from_entry_point=True)]
