"""objaug.lazy: the package's names are imported on first use."""

from __future__ import annotations

import pytest


def test_lazy_exports_import_on_first_use():
    import objaug

    assert "ContraCAM" in dir(objaug) and objaug.ContraCAM.__module__ == "objaug.contracam"
    with pytest.raises(AttributeError, match="no_such_name"):
        objaug.no_such_name  # noqa: B018
