"""The objaug solo-learn callback as a ``pytorch_lightning`` callback (see :mod:`.callback`)."""

from __future__ import annotations

from ._hooks import callback_class
from ._setup import entry_point_factory

__all__ = ["SoloObjectAwareCallback", "callbacks_factory"]

#: the callback class on ``pytorch_lightning.callbacks.Callback``.
SoloObjectAwareCallback = callback_class("pytorch_lightning")
#: entry point of ``pytorch_lightning.callbacks_factory`` (registered in ``pyproject.toml``).
callbacks_factory = entry_point_factory(SoloObjectAwareCallback)
