"""The objaug solo-learn callback as a ``pytorch_lightning`` callback (see :mod:`.callback`)."""

from __future__ import annotations

from typing import Any

from ._hooks import callback_class
from ._setup import deprecated_alias, entry_point_wanted

__all__ = ["SoloObjectAwareCallback", "callbacks_factory"]

#: the callback class on ``pytorch_lightning.callbacks.Callback``.
SoloObjectAwareCallback = callback_class("pytorch_lightning")


def callbacks_factory() -> list[Any]:
    """Entry point of ``pytorch_lightning.callbacks_factory``: one inert-until-configured callback, or none."""
    return [SoloObjectAwareCallback(from_entry_point=True)] if entry_point_wanted() else []


def __getattr__(name: str) -> Any:
    return deprecated_alias(name, SoloObjectAwareCallback, __name__)
