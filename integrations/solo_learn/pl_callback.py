"""The objaug solo-learn callback as a ``pytorch_lightning`` callback (see :mod:`.callback`)."""

from __future__ import annotations

from typing import Any

from ._hooks import callback_class

__all__ = ["ObjectAwareCallback", "callbacks_factory"]

#: the callback class on ``pytorch_lightning.callbacks.Callback``.
ObjectAwareCallback = callback_class("pytorch_lightning")


def callbacks_factory() -> list[Any]:
    """Entry point of ``pytorch_lightning.callbacks_factory``: one inert-until-configured callback."""
    return [ObjectAwareCallback(from_entry_point=True)]

