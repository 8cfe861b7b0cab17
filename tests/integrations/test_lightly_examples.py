"""The Lightly examples: each runs (a few small steps, on generated data, on the CPU) without ContraCAM's
"mostly noise" warning, and each ``--help`` says what it does, even without the optional packages.

The runs happen in this process (``runpy``) to share its imports: a subprocess per example would spend most
of its time importing torch, lightly and lightning again. ``--help`` runs in a subprocess in which lightly,
timm, Lightning and torch itself cannot be imported.
"""

from __future__ import annotations

import ast
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "lightly"
ALL = sorted(p.name for p in EXAMPLES.glob("*.py"))

# a subprocess's site-packages: block the optional packages (and torch: --help must not need it)
_BLOCKED = ("lightly", "timm", "pytorch_lightning", "lightning", "torch", "torchvision", "wandb")
_HELP = ("import runpy, sys\n"
         "for name in {blocked!r}:\n"
         "    sys.modules[name] = None\n"
         "sys.argv = [{path!r}, '--help']\n"
         "runpy.run_path({path!r}, run_name='__main__')\n")


def test_every_example_is_listed():
    assert ALL == ["byol_pytorch.py", "detcon_objaug.py", "dino_vit_pytorch.py", "moco_lightning.py",
                   "simclr_pytorch.py"]


@pytest.mark.parametrize("name", ALL)
def test_help_describes_the_example_without_optional_packages(name):
    path = str(EXAMPLES / name)
    doc = ast.get_docstring(ast.parse(Path(path).read_text()))
    assert doc and len(doc.split()) > 30, "the example needs a module docstring saying what it does"
    out = subprocess.run([sys.executable, "-c", _HELP.format(blocked=_BLOCKED, path=path)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: ") and doc.splitlines()[0] in out.stdout
    assert "Needs objaug[" in out.stdout  # what to install


QUICK = {"detcon_objaug.py": ["--steps", "2", "--batch-size", "4", "--images", "8"]}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["simclr_pytorch.py", "byol_pytorch.py", "moco_lightning.py",
                                  "dino_vit_pytorch.py", "detcon_objaug.py"])
@pytest.mark.filterwarnings("ignore::FutureWarning")  # DINOProjectionHead's weight_norm
def test_example_runs_quick_without_noise_warning(name, tmp_path, monkeypatch, capsys, recwarn, one_thread):
    pytest.importorskip("lightly")
    if name == "moco_lightning.py":
        pytest.importorskip("pytorch_lightning")
    if name == "dino_vit_pytorch.py":
        pytest.importorskip("timm")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(EXAMPLES / name), *QUICK.get(name, ["--quick"])])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    assert "loss" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []  # nothing written
    assert not [str(w.message) for w in recwarn if "mostly noise" in str(w.message)]
    if name != "detcon_objaug.py":  # Lightly's example + the marked lines; the DetCon example is objaug's own
        assert (EXAMPLES / name).read_text().count("# objaug") >= 3


@pytest.mark.slow
def test_detcon_example_cam_masks_and_detcon_b(monkeypatch, capsys, one_thread):
    pytest.importorskip("lightly")
    monkeypatch.setattr(sys, "argv", [str(EXAMPLES / "detcon_objaug.py"), "--method", "b", "--masks", "cam",
                                      "--steps", "1", "--batch-size", "4", "--images", "8"])
    runpy.run_path(str(EXAMPLES / "detcon_objaug.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "step   1, loss:" in out
