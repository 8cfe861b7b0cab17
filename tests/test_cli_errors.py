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
    ("cam --iters 0", CAM + " --out {r}/o3 --iters 0", r"--iters must be an int >= 1"),
    ("cam no checkpoint", "cam {r}/two --arch tiny_resnet --out {r}/o4", r"--checkpoint is required"),
    ("cam --hard-negatives 0", CAM + " --out {r}/o5 --hard-negatives 0",
     r"--hard-negatives must be an int >= 1 \(or unset\)"),
    ("precompute --out file", PRE + " --data {r}/two --out {r}/a_file.txt", r"--out .*existing file"),
    ("precompute one image", PRE + " --data {r}/one --out {r}/s1", r"only 1 image\(s\).*at least 2 images"),
    ("precompute --dataset x.py:nope", PRE + " --dataset {r}/ds.py:nope --out {r}/s2",
     r"--dataset '.*ds.py:nope': .*ds.py defines no 'nope' \(it defines items, torch\)"),
    ("precompute --dataset missing file", PRE + " --dataset {r}/missing.py:x --out {r}/s3", r"names no file"),
    ("precompute --threads 0", PRE + " --data {r}/two --out {r}/s4 --threads 0", r"--threads must be >= 1"),
    ("precompute --data missing", PRE + " --data {r}/nothing --out {r}/s5", r"--data: .*is not a directory"),
    ("precompute --hard-negatives 0", PRE + " --data {r}/two --out {r}/s6 --hard-negatives 0",
     r"--hard-negatives must be an int >= 1 \(or unset\)"),
    ("precompute --bank -1", PRE + " --data {r}/two --out {r}/s7 --bank -1", r"--bank must be an int >= 0"),
    ("demo --out file", "demo --out {r}/a_file.txt --quick", r"--out .*existing file"),
    ("demo --threads 0", "demo --out {r}/d --threads 0 --quick", r"--threads must be >= 1"),
    ("inspect no store", "inspect {r}/nothing", r"No object store|nothing"),
]


#: Settings the configs and the store refuse, named by their flags (the library's checks, translated):
#: (command, flags, message). The command runs on a readable folder, so only the flag is wrong.
FLAG_CASES = [
    ("cam", "--iters 0", r"--iters must be an int >= 1, got 0\."),
    ("cam", "--temperature 0", r"--temperature must be a number > 0\.0, got 0\.0"),
    ("cam", "--iters 2 --mask-iters 3", r"--mask-iters=3 is more than --iters=2"),
    ("cam", "--connectivity 6", r"--connectivity must be one of 4, 8, got 6"),
    ("cam", "--map-source attention --bank 4", r"--map-source='attention' uses no negatives .* Drop --bank"),
    ("cam", "--batch-size 0", r"--batch-size must be an int >= 2 .*, got 0\."),
    ("cam", "--batch-size 1", r"--batch-size must be an int >= 2 \(ContraCAM contrasts each image with the others"),
    ("precompute", "--batch-size 1", r"--batch-size must be an int >= 2"),
    ("cam", "--std 1 0 1", r"--std must hold 3 numbers > 0"),
    ("cam", "--device nonsense", r"cannot use --device 'nonsense'"),
    ("cam", "--edge-radius 0.9", r"--edge-radius must be a number in \(0\.0, 0\.5\], got 0\.9"),
    ("precompute", "--threshold 1.5", r"--threshold must be a number in \(0.0, 1.0\], got 1.5"),
    ("precompute", "--map-size 2", r"--map-size must be an int >= 4 \(or unset\), got 2"),
    ("precompute", "--image-size 4", r"--image-size must be an int >= 8, got 4\."),
    ("precompute", "--mask-size 0", r"--mask-size must be an int >= 1"),
    ("precompute", "--shard-size 0", r"--shard-size must be an int >= 1"),
    ("precompute", "--workers -1", r"--workers must be None .* or an int >= 0 .*, got -1"),
]
ON_A_FOLDER = {"cam": CAM + " --out {r}/o", "precompute": PRE + " --data {r}/two --out {r}/s"}


def one_line_error(folders, capsys, args: str) -> str:
    """Run ``objaug ARGS``; check exit status 2 and one line ``objaug <command>: error: ...``; return it."""
    code = main(args.format(r=folders).split())
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("objaug ") and ": error: " in err
    return err


@pytest.mark.parametrize("args, match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_cli_errors_are_one_line_with_status_2(folders, capsys, args, match):
    err = one_line_error(folders, capsys, args)
    assert __import__("re").search(match, err), err


@pytest.mark.parametrize("command, flags, match", FLAG_CASES, ids=[f"{c} {f}" for c, f, _ in FLAG_CASES])
def test_library_errors_name_the_flag(folders, capsys, command, flags, match):
    err = one_line_error(folders, capsys, f"{ON_A_FOLDER[command]} {flags}")
    assert __import__("re").search(match, err), err


@pytest.mark.parametrize("command", ["cam {r}/nothing", "precompute --data {r}/nothing"])
def test_a_bad_setting_is_refused_before_data_and_model(folders, capsys, command):
    """No such folder and no such architecture: the flag is refused first (nothing read, nothing built)."""
    err = one_line_error(folders, capsys, f"{command} --arch no_such_net --random-init --out {{r}}/x --iters 0")
    assert "--iters must be an int >= 1, got 0." in err


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


@pytest.mark.parametrize("args, match", [
    ("cam {r}/two --out {r}/o --iters abc", r"^objaug cam: error: argument --iters: invalid int value: 'abc'$"),
    ("precompute --data {r}/two --out {r}/s --refine max", r"^objaug precompute: error: argument --refine: invalid "),
    ("cam {r}/two --out {r}/o --edges=1", r"^objaug cam: error: argument --edges/--no-edges: ignored explicit"),
])
def test_usage_errors_are_one_line_with_status_2(folders, capsys, args, match):
    with pytest.raises(SystemExit) as e:
        main(args.format(r=folders).split())
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1, err
    assert __import__("re").search(match, err), err
