"""Lazy package exports: a package's public names, imported on first use.

Used by ``objaug``, ``objaug.integrations.lightly`` and ``objaug.integrations.solo_learn`` so that
importing a package stays cheap (no kornia, Lightly or Lightning until a name that needs them is used)::

    __getattr__, __dir__ = lazy_exports(__name__, globals(), {"ContraCAM": "objaug.contracam", ...})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, namespace: dict[str, Any],
                 exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of a package with lazily imported names.

    Args:
        package: the package's ``__name__`` (for relative module names and error messages).
        namespace: the package's ``globals()`` (an imported name is cached there; ``__all__`` is read there).
        exports: public name -> module holding it (absolute, or relative to ``package`` when it starts
            with ``"."``).

    Returns:
        ``(__getattr__, __dir__)`` to assign at the package's module level.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(namespace.get("__all__", ())))

    return __getattr__, __dir__
