"""objaug.lazy: lazy exports and the deprecated aliases of the modules moved to objaug.tools."""

from __future__ import annotations

import importlib

import pytest

MOVED = ("demo", "synthetic", "archs", "checkpoint", "viz", "losses")


@pytest.mark.parametrize("name", MOVED)
def test_old_paths_give_the_moved_module_and_warn(name):
    new = importlib.import_module(f"objaug.tools.{name}")
    import sys

    sys.modules.pop(f"objaug.{name}", None)
    with pytest.warns(DeprecationWarning, match=f"objaug.tools.{name}"):
        old = importlib.import_module(f"objaug.{name}")
    assert old is new and old.__spec__.name == f"objaug.tools.{name}"


def test_lazy_exports_import_on_first_use():
    import objaug

    assert "ContraCAM" in dir(objaug) and objaug.ContraCAM.__module__ == "objaug.contracam"
    with pytest.raises(AttributeError, match="no_such_name"):
        objaug.no_such_name  # noqa: B018
