"""Every CLI error is one line on stderr, exit status 2, no traceback, and names the option (table per command)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from objaug.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    for name in ("two/a.png", "two/b.png", "one/a.png"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(root / name)
    (root / "a_file.txt").write_text("not a directory")
    (root / "ds.py").write_text("import torch\nitems = [torch.rand(3, 8, 8)] * 3\n")
    return root


CAM = "cam {r}/two --arch tiny_resnet --random-init --image-size 32"
PRE = "precompute --arch tiny_resnet --random-init --image-size 32 --no-progress"
CASES = [
    ("cam --out file", CAM + " --out {r}/a_file.txt", r"--out .*a_file.txt is an existing file"),
    ("cam --out under a file", CAM + " --out {r}/a_file.txt/x", r"is an existing file"),
    ("cam --threads 0", CAM + " --out {r}/o1 --threads 0", r"--threads must be >= 1"),
    ("cam one image", "cam {r}/one --arch tiny_resnet --random-init --image-size 32 --out {r}/o2",
     r"only one readable image"),
    ("cam --iters 0", CAM + " --out {r}/o3 --iters 0", r"--iters must be an int >= 1, got 0\."),
    ("cam no checkpoint", "cam {r}/two --arch tiny_resnet --out {r}/o4", r"--checkpoint is required"),
    ("cam --hard-negatives 0", CAM + " --out {r}/o5 --hard-negatives 0", r"--hard-negatives must be an int >= 1"),
    ("precompute --out file", PRE + " --data {r}/two --out {r}/a_file.txt", r"--out .*existing file"),
    ("precompute one image", PRE + " --data {r}/one --out {r}/s1", r"only 1 image\(s\).*at least 2 images"),
    ("precompute --dataset x.py:nope", PRE + " --dataset {r}/ds.py:nope --out {r}/s2",
     r"--dataset '.*ds.py:nope': .*ds.py defines no 'nope' \(it defines items, torch\)"),
    ("precompute --dataset missing file", PRE + " --dataset {r}/missing.py:x --out {r}/s3", r"names no file"),
    ("precompute --threads 0", PRE + " --data {r}/two --out {r}/s4 --threads 0", r"--threads must be >= 1"),
    ("precompute --data missing", PRE + " --data {r}/nothing --out {r}/s5", r"--data: .*is not a directory"),
    ("precompute --hard-negatives 0", PRE + " --data {r}/two --out {r}/s6 --hard-negatives 0",
     r"--hard-negatives must be an int >= 1"),
    ("precompute --bank -1", PRE + " --data {r}/two --out {r}/s7 --bank -1", r"--bank must be an int >= 0"),
    ("demo --out file", "demo --out {r}/a_file.txt --quick", r"--out .*existing file"),
    ("demo --threads 0", "demo --out {r}/d --threads 0 --quick", r"--threads must be >= 1"),
    ("inspect no store", "inspect {r}/nothing", r"No object store|nothing"),
]


@pytest.mark.parametrize("args, match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_cli_errors_are_one_line_with_status_2(folders, capsys, args, match):
    code = main(args.format(r=folders).split())
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("objaug ") and ": error: " in err
    assert __import__("re").search(match, err), err


def test_an_unexpected_error_is_one_line_too(folders, capsys, monkeypatch):
    import objaug.cli.cam as cam

    def boom(args):
        raise RuntimeError("something\nunexpected")

    monkeypatch.setattr(cam, "_run", boom)
    assert main((CAM + " --out {r}/o9").format(r=folders).split()) == 2
    err = capsys.readouterr().err.strip()
    assert err == "objaug cam: error: RuntimeError: something unexpected (set OBJAUG_TRACEBACK=1 for the traceback)"
    monkeypatch.setenv("OBJAUG_TRACEBACK", "1")
    with pytest.raises(RuntimeError, match="unexpected"):
        main((CAM + " --out {r}/o9").format(r=folders).split())
