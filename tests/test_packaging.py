"""Packaging facts: every package is shipped, and optional dependencies stay optional."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "objaug").rglob("__init__.py")}
    found |= {"objaug." + ".".join(p.parent.relative_to(ROOT).parts)
              for p in (ROOT / "integrations").rglob("__init__.py")}
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    assert (ROOT / "objaug" / "py.typed").exists()


def test_import_objaug_does_not_import_optional_dependencies():
    code = (
        "import sys, objaug, objaug.integrations\n"
        "bad = [m for m in ('lightly', 'lightning', 'pytorch_lightning', 'hydra', 'omegaconf', 'timm')"
        " if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing objaug imported optional packages: {out.stdout}"


def test_every_exported_name_resolves_and_import_is_lazy():
    code = (
        "import sys, objaug\n"
        "assert 'kornia' not in sys.modules and 'torch' not in sys.modules, 'import objaug must stay cheap'\n"
        "missing = [n for n in objaug.__all__ if getattr(objaug, n, None) is None]\n"
        "assert not missing, missing\n"
        "import objaug.functional, objaug.augment\n"
        "for mod in (objaug.functional, objaug.augment):\n"
        "    assert all(hasattr(mod, n) for n in mod.__all__)\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
