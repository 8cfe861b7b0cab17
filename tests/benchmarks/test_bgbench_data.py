"""bgbench's dataset builder (generated source: no network, no apt) against benchmarks/bgbench/FORMAT.md."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `benchmarks` is a namespace package at the repository root
    sys.path.insert(0, str(ROOT))

from benchmarks.bgbench import data, fetch  # noqa: E402
from benchmarks.bgbench.build import build, main  # noqa: E402

COUNTS = {"n_train_per_class": 20, "n_test_per_class": 6, "n_multi_train": 12, "n_multi_test": 8}
S = 32


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("bg") / "d", source="generated", seed=0, size=S, **COUNTS)


def _tight_box(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32) / mask.shape[-1]


def test_files_shapes_dtypes_ranges(built: Path) -> None:
    man = data.load_manifest(built)
    assert (built / "samples.png").is_file()
    assert man["format"] == 1 and man["source"] == "generated" and man["size"] == S
    n_cls, n_grp = len(man["classes"]), len(man["bg_groups"])
    assert len(man["home"]) == n_cls and all(0 <= h < n_grp for h in man["home"])
    assert [o["id"] for o in man["objects"]] == list(range(len(man["objects"])))
    for b in man["backgrounds"]:
        assert 0 <= b["group"] < n_grp
        tr, te = b["train_region"], b["test_region"]
        assert all(0 <= v <= 1 for v in tr + te) and tr[0] < tr[2] and tr[1] < tr[3]
        overlap_x = min(tr[2], te[2]) - max(tr[0], te[0])
        overlap_y = min(tr[3], te[3]) - max(tr[1], te[1])
        assert min(overlap_x, overlap_y) <= 1e-6, "train and test regions overlap"
    assert set(man["splits"]) == set(data.SPLITS)
    for name in data.SPLITS:
        d = data.load_split(built, name)
        n = man["splits"][name]["n"]
        assert (built / man["splits"][name]["file"]).is_file()
        assert d["images"].dtype == np.uint8 and d["images"].shape == (n, S, S, 3)
        assert d["boxes"].dtype == np.float32 and d["boxes"].min() >= 0 and d["boxes"].max() <= 1
        assert d["masks"].dtype == np.uint8 and set(np.unique(d["masks"])) <= {0, 1}
        for k in ("labels", "object_id", "bg_id", "bg_group"):
            assert d[k].dtype == np.int64, (name, k)
        if name in data.MULTI_SPLITS:
            assert man["splits"][name]["kind"] == "multi"
            assert d["masks"].shape == (n, 4, S, S) and d["boxes"].shape == (n, 4, 4)
            assert d["labels"].shape == d["object_id"].shape == (n, 4) and d["n_objects"].shape == (n,)
        else:
            assert man["splits"][name]["kind"] == "single"
            assert d["masks"].shape == (n, S, S) and d["boxes"].shape == (n, 4) and d["labels"].shape == (n,)
            assert d["labels"].min() >= 0 and d["labels"].max() < n_cls
            assert np.array_equal(d["labels"], [man["objects"][o]["class"] for o in d["object_id"]])
    assert man["splits"]["train"]["n"] == COUNTS["n_train_per_class"] * n_cls
    assert man["splits"]["original"]["n"] == COUNTS["n_test_per_class"] * n_cls
    t = data.as_tensor_images(data.load_split(built, "train")["images"][:3])
    assert t.shape == (3, 3, S, S) and t.dtype.is_floating_point and 0 <= t.min() and t.max() <= 1


def test_boxes_are_tight_boxes_of_masks(built: Path) -> None:
    for name in data.SINGLE_SPLITS:
        d = data.load_split(built, name)
        assert d["masks"].reshape(len(d["masks"]), -1).any(1).all()
        for m, b in zip(d["masks"], d["boxes"], strict=True):
            np.testing.assert_allclose(b, _tight_box(m), atol=1e-6)
    for name in data.MULTI_SPLITS:
        d = data.load_split(built, name)
        for masks, boxes, n in zip(d["masks"], d["boxes"], d["n_objects"], strict=True):
            for k in range(4):
                if k < n:
                    np.testing.assert_allclose(boxes[k], _tight_box(masks[k]), atol=1e-6)
                else:
                    assert not masks[k].any() and not boxes[k].any()


def test_train_home_fraction_and_objects(built: Path) -> None:
    man = data.load_manifest(built)
    d = data.load_split(built, "train")
    home = np.array(man["home"])[d["labels"]]
    assert abs((d["bg_group"] == home).mean() - man["home_fraction"]) < 0.03
    assert all(man["objects"][o]["split"] == "train" for o in np.unique(d["object_id"]))
    assert all(man["backgrounds"][b]["group"] == g for b, g in zip(d["bg_id"], d["bg_group"], strict=True))
    assert set(np.unique(d["labels"])) == set(range(len(man["classes"])))


def test_test_splits_share_placements_differ_in_background(built: Path) -> None:
    man = data.load_manifest(built)
    s = {n: data.load_split(built, n) for n in data.TEST_SPLITS}
    ref = s["original"]
    for n in data.TEST_SPLITS:
        for k in ("labels", "object_id", "masks", "boxes"):
            assert np.array_equal(s[n][k], ref[k]), (n, k)
    home = np.array(man["home"])[ref["labels"]]
    assert np.array_equal(s["original"]["bg_group"], home) and np.array_equal(s["mixed_same"]["bg_group"], home)
    assert (s["mixed_rand"]["bg_group"] != home).all() and (s["mixed_rand"]["bg_group"] >= 0).all()
    assert (s["only_fg"]["bg_id"] == -1).all() and (s["only_fg"]["bg_group"] == -1).all()
    near = ref["masks"].astype(bool)
    for _ in range(2):  # grow the masks by 2 px: the antialiased rim (alpha <= 127) lies outside them
        near = near | np.roll(near, 1, 1) | np.roll(near, -1, 1) | np.roll(near, 1, 2) | np.roll(near, -1, 2)
    bg = ~near
    assert (s["only_fg"]["images"][bg] == data.ONLY_FG_GREY).all()
    for a, b in (("original", "mixed_same"), ("original", "mixed_rand"), ("mixed_same", "mixed_rand")):
        differ = [(s[a]["images"][i][bg[i]] != s[b]["images"][i][bg[i]]).any() for i in range(len(bg))]
        assert all(differ), (a, b)
    test_ids = {o["id"] for o in man["objects"] if o["split"] == "test"}
    train_ids = {o["id"] for o in man["objects"] if o["split"] == "train"}
    assert set(ref["object_id"].tolist()) <= test_ids and not test_ids & train_ids
    for c in range(len(man["classes"])):
        n_test = sum(o["class"] == c and o["split"] == "test" for o in man["objects"])
        assert n_test >= 2


def test_multi_scenes(built: Path) -> None:
    man = data.load_manifest(built)
    for name, split in (("multi_train", "train"), ("multi_test", "test")):
        d = data.load_split(built, name)
        assert ((d["n_objects"] >= 2) & (d["n_objects"] <= 4)).all()
        for i, n in enumerate(d["n_objects"]):
            assert (d["labels"][i, :n] >= 0).all() and (d["labels"][i, n:] == -1).all()
            assert (d["object_id"][i, n:] == -1).all() and len(set(d["object_id"][i, :n].tolist())) == n
            assert all(man["objects"][o]["split"] == split for o in d["object_id"][i, :n])
            m = d["masks"][i, :n].astype(int)
            assert m.sum(0).max() <= 1, "visible masks overlap"
            assert (m.reshape(n, -1).sum(1) > 0).all()


def test_deterministic(tmp_path: Path, built: Path) -> None:
    again = build(tmp_path / "again", source="generated", seed=0, size=S, **COUNTS)
    other = build(tmp_path / "other", source="generated", seed=1, size=S, **COUNTS)
    for name in data.SPLITS:
        a, b, c = (data.load_split(p, name) for p in (built, again, other))
        assert all(np.array_equal(a[k], b[k]) for k in a), name
        assert not np.array_equal(a["images"], c["images"]), name
    m1, m2 = (json.loads((p / "manifest.json").read_text()) for p in (built, again))
    m1.pop("build_seconds"), m2.pop("build_seconds")
    assert m1 == m2


def test_reuse_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    args = ["--source", "generated", "--size", "24", "--out", str(out), "--n-train-per-class", "4",
            "--n-test-per-class", "2", "--n-multi-train", "2", "--n-multi-test", "2"]
    assert main(args) == 0
    assert "class" in capsys.readouterr().out
    stamp = (out / "train.npz").stat().st_mtime_ns
    assert main(args) == 0 and (out / "train.npz").stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert main([*args, "--force"]) == 0


def test_debian_without_apt_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(fetch.FetchError, match=r"apt-get.*not on PATH(.|\n)*--root"):
        build(tmp_path / "d", source="debian", cache=tmp_path / "cache")
    assert main(["--source", "debian", "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "d")]) == 2
    assert "--root" in capsys.readouterr().err
    with pytest.raises(fetch.FetchError, match="not an extracted root"):
        build(tmp_path / "d", source="debian", root=tmp_path)
