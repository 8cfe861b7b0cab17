"""Lazy package exports (a package's public names, imported on first use) and aliases of moved modules.

Used by ``objaug``, ``objaug.integrations.lightly`` and ``objaug.integrations.solo_learn`` so that
importing a package stays cheap (no kornia, Lightly or Lightning until a name that needs them is used)::

    __getattr__, __dir__ = lazy_exports(__name__, globals(), {"ContraCAM": "objaug.contracam", ...})
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["alias_modules", "lazy_exports"]


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


class _ModuleAliases(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Import finder: an old module path gives the module now at its new path (the same module object)."""

    def __init__(self, aliases: Mapping[str, str]) -> None:
        self.aliases = dict(aliases)
        self._specs: dict[str, importlib.machinery.ModuleSpec | None] = {}

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.aliases:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        new = self.aliases[spec.name]
        warnings.warn(f"{spec.name} moved to {new}; import it from there (the old path is removed in a later "
                      "release).", DeprecationWarning, stacklevel=2)
        module = importlib.import_module(new)
        self._specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run (the module was imported at its new path); give it back its own spec."""
        for old, spec in self._specs.items():
            if sys.modules.get(self.aliases[old]) is module:
                module.__spec__ = spec


def alias_modules(aliases: Mapping[str, str]) -> None:
    """Keep old module paths importable after a move: ``import old`` gives ``new`` (same object) and warns.

    Args:
        aliases: old dotted module path -> new one. Nothing is imported until an old path is.
    """
    sys.meta_path.append(_ModuleAliases(aliases))
