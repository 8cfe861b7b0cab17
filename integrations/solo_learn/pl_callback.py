"""The objaug solo-learn callback as a ``pytorch_lightning`` callback (see :mod:`.callback`)."""

from __future__ import annotations

from ._hooks import callback_class
from ._setup import deprecated_alias, entry_point_factory

__all__ = ["SoloObjectAwareCallback", "callbacks_factory"]

#: the callback class on ``pytorch_lightning.callbacks.Callback``; its entry point (``pytorch_lightning``'s
#: ``callbacks_factory`` group) and the deprecated ``ObjectAwareCallback`` name.
SoloObjectAwareCallback = callback_class("pytorch_lightning")
callbacks_factory = entry_point_factory(SoloObjectAwareCallback)
__getattr__ = deprecated_alias(SoloObjectAwareCallback, __name__)
