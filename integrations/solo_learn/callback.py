"""The objaug callback for solo-learn, as a ``lightning.pytorch`` callback, and its entry-point factory.

``pyproject.toml`` registers :func:`callbacks_factory` in the ``lightning.pytorch.callbacks_factory``
entry-point group (and :mod:`.pl_callback`'s in ``pytorch_lightning.callbacks_factory``). The factory adds
one ``SoloObjectAwareCallback`` to a Trainer when solo-learn has been imported (or ``OBJAUG_SOLO_LEARN=1``;
see :func:`._setup.entry_point_wanted`); it stays inert unless the module's ``cfg.objaug.enabled`` is true.
One implementation serves both packages (:func:`objaug.integrations.solo_learn._hooks.callback_class` puts it
on either package's ``Callback``).
"""

from __future__ import annotations

from ._hooks import callback_class
from ._setup import entry_point_factory

__all__ = ["SoloObjectAwareCallback", "callbacks_factory"]

#: the callback class on ``lightning.pytorch.callbacks.Callback``.
SoloObjectAwareCallback = callback_class("lightning.pytorch")
#: entry point of ``lightning.pytorch.callbacks_factory`` (registered in ``pyproject.toml``).
callbacks_factory = entry_point_factory(SoloObjectAwareCallback)
