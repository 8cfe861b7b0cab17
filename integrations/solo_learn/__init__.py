"""objaug for solo-learn: a Lightning callback switched on by an ``objaug:`` block in the solo-learn config.

Install objaug next to solo-learn, add an ``objaug:`` block to the pretraining YAML (or
``+objaug.enabled=true ...`` on the command line) and run solo-learn's own ``main_pretrain.py``: the
callback is added to the Trainer through Lightning's ``callbacks_factory`` entry points. See
``docs/solo-learn.md`` for the schema and the order of operations.

Exports (imported lazily, so importing this package imports neither Lightning nor the tensor code):
:class:`SoloObjectAwareCallback` (``lightning.pytorch``),
:func:`parse_objaug_config`,
:func:`check_solo_pipelines`, :class:`ObjaugConfig`, :class:`ObjaugConfigError`, :func:`schema_rows`,
:class:`SoloObjectAware`.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ObjaugConfig",
    "ObjaugConfigError",
    "SoloObjectAware",
    "SoloObjectAwareCallback",
    "check_solo_pipelines",
    "parse_objaug_config",
    "schema_rows",
]

_WHERE = {
    "SoloObjectAwareCallback": ".callback",
    "SoloObjectAware": ".views",
    "ObjaugConfig": ".config",
    "ObjaugConfigError": ".config",
    "check_solo_pipelines": ".config",
    "parse_objaug_config": ".config",
    "schema_rows": ".config",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
