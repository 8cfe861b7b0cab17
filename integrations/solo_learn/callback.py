"""The objaug callback for solo-learn, as a ``lightning.pytorch`` callback, and its entry-point factory.

``pyproject.toml`` registers :func:`callbacks_factory` in the ``lightning.pytorch.callbacks_factory``
entry-point group (and :mod:`.pl_callback`'s in ``pytorch_lightning.callbacks_factory``), so every
Trainer of either package (solo-learn's ``main_pretrain.py`` included) gets one ``ObjectAwareCallback``; it
stays inert unless the module's ``cfg.objaug.enabled`` is true. One implementation serves both packages
(:func:`objaug.integrations.solo_learn._hooks.callback_class` puts it on either package's ``Callback``);
``ObjectAwareCallback`` here is the ``lightning.pytorch`` one (:mod:`.pl_callback` has the other).
"""

from __future__ import annotations

from typing import Any

from ._hooks import callback_class

__all__ = ["ObjectAwareCallback", "callbacks_factory"]

#: the callback class on ``lightning.pytorch.callbacks.Callback``.
ObjectAwareCallback = callback_class("lightning.pytorch")


def callbacks_factory() -> list[Any]:
    """Entry point of ``lightning.pytorch.callbacks_factory``: one inert-until-configured callback."""
    return [ObjectAwareCallback(from_entry_point=True)]

