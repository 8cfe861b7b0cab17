"""Progress of an unfinished store: ``store_progress``, ``objaug precompute`` saying what it keeps when it
resumes, and ``objaug inspect`` on an unfinished store."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from objaug.cli import main
from objaug.store.resume import store_progress
from objaug.store.writer import FAIL_ENV

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _folder(root):
    root.mkdir()
    g = np.random.default_rng(0)
    for i in range(8):
        a = (g.random((24, 24, 3)) * 60).astype(np.uint8)
        a[6 + i % 4: 14 + i % 4, 5:15] = 200
        Image.fromarray(a).save(root / f"{i}.png")


def test_resume_and_inspect_report_progress(tmp_path, monkeypatch, capsys):
    root, out = tmp_path / "imgs", tmp_path / "store"
    _folder(root)
    assert store_progress(out) is None  # nothing there yet
    args = ["precompute", "--data", str(root), "--arch", "tiny_resnet", "--random-init", "--out", str(out),
            "--iters", "1", "--batch-size", "2", "--image-size", "24", "--mask-size", "8", "--shard-size", "2",
            "--workers", "0", "--no-progress", "--device", "cpu"]
    monkeypatch.setenv(FAIL_ENV, "1")  # killed after its first shard
    assert main(args) == 2  # the CLI turns the crash into one error line
    monkeypatch.delenv(FAIL_ENV)
    assert "SimulatedCrash" in capsys.readouterr().err
    progress = store_progress(out)
    assert progress is not None and not progress.complete
    k = progress.shards_done  # the writer thread may finish one more shard before the crash reaches it
    assert 1 <= k < 4 and (progress.num_shards, progress.images_done, progress.length) == (4, 2 * k, 8)
    assert main(["inspect", str(out), "--no-picture"]) == 1
    assert f"unfinished:   {k} of 4 shards ({2 * k} of 8 images) done" in capsys.readouterr().out
    assert main(["inspect", str(out), "--json", "--no-picture"]) == 1
    assert json.loads(capsys.readouterr().out) == {"complete": False, "count": 8, "images_done": 2 * k,
                                                   "num_shards": 4, "shards_done": k}
    assert main(args) == 0
    err = capsys.readouterr().err
    assert f"resuming: {k} of 4 shards kept ({2 * k} of 8 images)" in err
    assert f"this run: {4 - k} shard(s), {8 - 2 * k} images" in err
    done = store_progress(out)
    assert done is not None and done.complete and done.shards_done == 4
    assert main(args) == 0
    assert "is complete (4 of 4 shards (8 of 8 images) done)" in capsys.readouterr().err
    assert main(["inspect", str(out), "--no-picture"]) == 0
