"""The Lightly examples run (two small steps each, on generated data, on the CPU).

They run in this process (``runpy``) to share its imports: a subprocess per example would spend most
of its time importing torch, lightly and lightning again.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("lightly")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "lightly"


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.mark.slow
@pytest.mark.parametrize("name", ["simclr_pytorch.py", "byol_pytorch.py", "moco_lightning.py",
                                  "dino_vit_pytorch.py"])
@pytest.mark.filterwarnings("ignore::FutureWarning")  # DINOProjectionHead's weight_norm
def test_example_runs_quick(name, tmp_path, monkeypatch, capsys):
    if name == "moco_lightning.py":
        pytest.importorskip("pytorch_lightning")
    if name == "dino_vit_pytorch.py":
        pytest.importorskip("timm")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(EXAMPLES / name), "--quick"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    assert "loss" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []  # nothing written
    assert (EXAMPLES / name).read_text().count("# objaug") >= 3
