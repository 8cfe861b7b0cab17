"""Helpers shared by the tests of the object-aware Lightly transforms."""

from __future__ import annotations

import inspect
from typing import Any


def describe(op: Any) -> str:
    """repr, or type + attributes for Lightly's ops that have the default object repr."""
    r = repr(op)
    if " object at 0x" not in r:
        return r
    return f"{type(op).__name__}({', '.join(f'{k}={describe(v)}' for k, v in sorted(vars(op).items()))})"


def positional(cls: type) -> dict[str, Any]:
    """The defaults of ``cls.__init__``'s Lightly arguments (all but ``self`` and the keyword-only ones)."""
    return {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()
            if k != "self" and p.kind is not p.KEYWORD_ONLY}
