"""bgbench data v2 (issue 13) on the generated stand-in: no network, no apt, no Debian files."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `benchmarks` is a namespace package at the repository root
    sys.path.insert(0, str(ROOT))

from benchmarks.bgbench import data, v2  # noqa: E402
from benchmarks.bgbench.build import build, main  # noqa: E402

COUNTS = {"n_train_per_class": 20, "n_test_per_class": 6, "n_multi_train": 12, "n_multi_test": 8}
S = 32
HOME = 0.75


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return v2.build_v2(tmp_path_factory.mktemp("bg2") / "d", source="generated", seed=0, size=S,
                       home_fraction=HOME, **COUNTS)


def _side(boxes: np.ndarray) -> np.ndarray:
    return np.maximum(boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1])


def test_files_and_manifest(built: Path) -> None:
    man = data.load_manifest(built)
    assert man["format"] == 2 and man["data_version"] == "v2" and man["home_fraction"] == HOME
    assert set(man["splits"]) == set(v2.SPLITS_V2) and (built / "samples.png").is_file()
    assert (built / "backgrounds.png").is_file()
    n_cls = len(man["classes"])
    for name in v2.SPLITS_V2:
        d = data.load_split(built, name)
        assert d["images"].shape == (man["splits"][name]["n"], S, S, 3) and d["images"].dtype == np.uint8
        assert d["bg_box"].shape == (len(d["images"]), 4)
    for name in v2.SINGLE_SPLITS_V2:
        n = COUNTS["n_train_per_class"] if name.startswith("train") else COUNTS["n_test_per_class"]
        assert man["splits"][name]["n"] == n * n_cls, name
    for b in man["backgrounds"]:  # three disjoint regions per photo
        regs = [b["train_region"], b["val_region"], b["test_region"]]
        for i in range(3):
            for j in range(i + 1, 3):
                ri, rj = regs[i], regs[j]
                assert min(min(ri[2], rj[2]) - max(ri[0], rj[0]), min(ri[3], rj[3]) - max(ri[1], rj[1])) <= 1e-6
    assert all(k >= 4 for k in man["photos_per_group"].values())


def test_object_share_in_requested_range(built: Path, tmp_path: Path) -> None:
    """Known answer: the objects' longer side follows the v2 scale laws (the generated cut-outs lose ~1-2 px
    of margin to their rim), and they cover more pixels than v1's on the same sources."""
    man = data.load_manifest(built)
    lo, hi = v2.SINGLE_SCALE_V2
    for name in ("train", "val_original", "original", "heldout_original"):
        side = _side(data.load_split(built, name)["boxes"])
        assert side.min() >= lo - 3 / S and side.max() <= hi + 1 / S, name
        assert lo - 0.06 < side.mean() < hi
    lo, hi = v2.MULTI_SCALE_V2
    for name in ("multi_train", "multi_test"):
        d = data.load_split(built, name)
        full = d["labels"] >= 0
        side = _side(d["boxes"][full])
        assert side.max() <= hi + 1 / S and side.mean() > lo - 0.06  # occlusion can only shrink a visible box
    share = data.load_split(built, "train")["masks"].reshape(-1, S * S).mean(1)
    assert man["stats"]["train"]["pixel_mean"] == pytest.approx(share.mean(), abs=1e-4)
    old = build(tmp_path / "v1", source="generated", seed=0, size=S, **COUNTS)
    old_share = data.load_split(old, "train")["masks"].reshape(-1, S * S).mean(1)
    assert share.mean() > 1.5 * old_share.mean()


def test_main_and_val_use_training_objects_heldout_the_rest(built: Path) -> None:
    man = data.load_manifest(built)
    train_ids = {o["id"] for o in man["objects"] if o["split"] == "train"}
    test_ids = {o["id"] for o in man["objects"] if o["split"] == "test"}
    assert train_ids and test_ids and not train_ids & test_ids
    for prefix, (obj_split, _) in v2.FAMILIES.items():
        ids = set(data.load_split(built, prefix + "original")["object_id"].tolist())
        assert ids <= (train_ids if obj_split == "train" else test_ids), prefix
    assert set(data.load_split(built, "original")["object_id"].tolist()) == train_ids  # every object used
    for name in ("train", "train_unbiased", "multi_train", "multi_test"):
        ids = data.load_split(built, name)["object_id"]
        assert set(ids[ids >= 0].tolist()) <= train_ids, name


def test_background_crops_disjoint_between_train_val_test(built: Path) -> None:
    """Every crop lies inside its family's region, so no test/val crop overlaps any training crop."""
    man = data.load_manifest(built)
    region_of = {"train": "train", "train_unbiased": "train", "multi_train": "train", "multi_test": "test"}
    region_of.update({p + b: r for p, (_, r) in v2.FAMILIES.items()
                      for b in ("original", "mixed_same", "mixed_rand")})
    crops: dict[str, list[tuple[int, np.ndarray]]] = {"train": [], "val": [], "test": []}
    for name, region in region_of.items():
        d = data.load_split(built, name)
        for p, box in zip(d["bg_id"], d["bg_box"], strict=True):
            r = man["backgrounds"][p][f"{region}_region"]
            assert r[0] - 1e-3 <= box[0] < box[2] <= r[2] + 1e-3 and r[1] - 1e-3 <= box[1] < box[3] <= r[3] + 1e-3
            crops[region].append((int(p), box))
    for other in ("val", "test"):
        for p, b in crops[other]:
            for q, a in crops["train"]:
                if p == q:
                    assert min(min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])) <= 1e-3
    only = data.load_split(built, "only_fg")
    assert (only["bg_id"] == -1).all() and (only["bg_box"] == -1).all()


def test_train_biased_and_unbiased_control(built: Path) -> None:
    man = data.load_manifest(built)
    b, u = data.load_split(built, "train"), data.load_split(built, "train_unbiased")
    for k in ("labels", "object_id", "masks", "boxes"):
        assert np.array_equal(b[k], u[k]), k  # the same object rows
    home = np.asarray(man["home"])[b["labels"]]
    per_class = Counter(b["labels"][b["bg_group"] == home].tolist())
    assert all(v == round(COUNTS["n_train_per_class"] * HOME) for v in per_class.values())
    n_groups = len(man["bg_groups"])
    assert abs((u["bg_group"] == home).mean() - 1 / n_groups) < 0.1  # random groups: home ~1/G
    assert len(set(u["bg_group"].tolist())) == n_groups
    assert (b["bg_box"] != u["bg_box"]).any(axis=1).all()


def test_families_share_placements(built: Path) -> None:
    man = data.load_manifest(built)
    for prefix in v2.FAMILIES:
        s = {b: data.load_split(built, prefix + b) for b in ("original", "mixed_same", "mixed_rand", "only_fg")}
        for b in s:
            assert np.array_equal(s[b]["masks"], s["original"]["masks"]) and np.array_equal(
                s[b]["object_id"], s["original"]["object_id"])
        home = np.asarray(man["home"])[s["original"]["labels"]]
        assert (s["original"]["bg_group"] == home).all() and (s["mixed_same"]["bg_group"] == home).all()
        assert (s["mixed_same"]["bg_id"] != s["original"]["bg_id"]).all()
        assert (s["mixed_rand"]["bg_group"] != home).all()


def test_deterministic_and_cli(built: Path, tmp_path: Path) -> None:
    again = v2.build_v2(tmp_path / "again", source="generated", seed=0, size=S, home_fraction=HOME, **COUNTS)
    m1, m2 = (json.loads((p / "manifest.json").read_text()) for p in (built, again))
    m1.pop("build_seconds"), m2.pop("build_seconds")
    assert m1 == m2
    for name in v2.SPLITS_V2:
        a, b = data.load_split(built, name), data.load_split(again, name)
        assert all(np.array_equal(a[k], b[k]) for k in a), name
    out = tmp_path / "cli"
    args = ["--version", "v2", "--source", "generated", "--size", "24", "--out", str(out), "--n-train-per-class", "4",
            "--n-test-per-class", "2", "--n-multi-train", "2", "--n-multi-test", "2"]
    assert main(args) == 0
    assert data.load_manifest(out)["home_fraction"] == 0.8  # v2's default


def test_debian_v2_lists() -> None:
    groups = Counter(g for g, _, _ in v2.BACKGROUNDS_V2)
    assert set(groups) == set(v2.GROUPS_V2) and min(groups.values()) >= 4
    assert sorted(v2.HOME_V2) == sorted(c for c, _ in v2.CLASS_RULES_V2)
    assert len(set(v2.HOME_V2.values())) == len(v2.HOME_V2)  # one home per class
    assert len({p for _, p, _ in v2.BACKGROUNDS_V2}) == len(v2.BACKGROUNDS_V2)  # a photo in one group only
    for _, _, (x0, y0, x1, y1) in v2.BACKGROUNDS_V2:
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1


def test_debian_v2_photos_present_when_fetched() -> None:
    root = v2.DEFAULT_CACHE / "root"
    if not all((root / f".bgbench-{p}").exists() for p in v2.PACKAGES_V2):
        pytest.skip("the v2 Debian packages are not fetched (run the v2 build once); nothing to check offline")
    missing = [p for _, p, _ in v2.BACKGROUNDS_V2 if not (root / p).is_file()]
    assert not missing


def test_gate_runs_on_tiny_v2(built: Path) -> None:
    from benchmarks.bgbench.gate import run_gate

    r = run_gate(built, train_split="train_unbiased", steps=2, batch_size=16, arch="tiny")
    assert set(r["accuracy"]) == {"val", "main", "heldout"}
    for fam in r["accuracy"].values():
        assert all(0.0 <= v <= 1.0 for k, v in fam.items() if k != "bg_gap")
        assert fam["bg_gap"] == pytest.approx(fam["mixed_same"] - fam["mixed_rand"], abs=1e-4)
    assert r["train_home_share"] < 0.5 and r["chance"] == pytest.approx(1 / 6, abs=1e-3)


def test_checkpoints_do_not_change_training(built: Path) -> None:
    """Known answer: evaluating at checkpoints (forked RNG, eval mode) leaves the trained weights unchanged."""
    import torch

    from benchmarks.bgbench.train import TrainConfig, to_float_images, train_ssl

    images = to_float_images(data.load_split(built, "train")["images"][:48])
    cfg = TrainConfig(arch="tiny", view_size=S, batch_size=16, steps=3, seed=0)
    seen: list[int] = []
    a, _ = train_ssl(cfg, images, progress=False)
    b, _ = train_ssl(cfg, images, progress=False, checkpoints=(0, 2),
                     on_checkpoint=lambda step, m: (seen.append(step), torch.rand(3), m.backbone(images[:4])))
    assert seen == [0, 2]
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb), ka


def test_encoder_gate_runs_on_tiny_v2(built: Path) -> None:
    from benchmarks.bgbench.encoder_gate import run_encoder_gate
    from benchmarks.bgbench.evaluate import EvalConfig

    r = run_encoder_gate(built, arch="tiny", steps=2, batch_size=16, checkpoints=(0, 2), say=lambda s: None,
                         eval_cfg=EvalConfig(probe_iters=5, cam_batch=16, cam_iters=2, n_loc=16))
    assert set(r["checkpoints"]) == {"0", "2"}
    for m in r["checkpoints"].values():
        assert -1.0 <= m["loc/single/contrast_T1"] <= 1.0 and 0.0 <= m["loc/single/iou_T1"] <= 1.0
    assert 0.0 < r["centre_box"]["loc/single/iou_center0.25"] < 1.0
    levers = r["cam_levers"]["0"]
    assert {"iou_t1", "contrast_t0.1", "iou_t0.2_samebg"} <= set(levers)
    # temperature 1 with the evaluation's batches is the evaluation's own T=1 map
    assert levers["iou_t1"] == pytest.approx(r["checkpoints"]["0"]["loc/single/iou_T1"], abs=1e-3)


def test_protocol_runs_on_v2_data(built: Path, tmp_path: Path) -> None:
    """The main test splits keep v1's names, so the v1 protocol reads a v2 folder unchanged."""
    from benchmarks.bgbench.protocol import run_protocol

    r = run_protocol(built, tmp_path / "out", scale="tiny", seeds=[0], arms=["baseline"], modes=[],
                     progress=False, figures=False)
    m = r["aggregate"]["simclr/baseline"]
    assert 0.0 <= m["probe/only_fg"]["mean"] <= 1.0 and r["config"]["n_ssl_images"] == 120 + 12


def test_oracle_objects_are_the_ground_truth(built: Path) -> None:
    from benchmarks.bgbench.data import load_split
    from benchmarks.bgbench.train import oracle_objects

    single, multi = load_split(built, "train"), load_split(built, "multi_train")
    o = oracle_objects(single, multi)
    n, m = single["images"].shape[0], multi["images"].shape[0]
    assert o["boxes"].shape == (n + m, 4, 4) and o["masks"].shape == (n + m, 1, *single["masks"].shape[1:])
    np.testing.assert_array_equal(o["valid"].sum(1), np.concatenate([np.ones(n, int), multi["n_objects"]]))
    np.testing.assert_array_equal(o["boxes"][:n, 0], single["boxes"])
    k = int(multi["n_objects"][0])
    np.testing.assert_array_equal(o["boxes"][n, :k], multi["boxes"][0, :k])
    assert set(np.unique(o["masks"])) <= {0, 255}
    np.testing.assert_array_equal(o["masks"][:n, 0] == 255, single["masks"] == 1)
    np.testing.assert_array_equal(o["masks"][n + 1, 0] == 255, multi["masks"][1].max(0) == 1)
    with pytest.raises(ValueError, match="max_boxes"):
        oracle_objects(single, multi, max_boxes=2)


def test_protocol_v2_arms_references_and_summary(built: Path, tmp_path: Path) -> None:
    """Oracle and two-stage arms, the unbiased supervised reference, CAM ablations and the summary JSON."""
    from benchmarks.bgbench.protocol import main

    summary = tmp_path / "summary.json"
    assert main(["--data", str(built), "--out", str(tmp_path / "out"), "--scale", "tiny", "--seeds", "0",
                 "--arms", "baseline", "crop", "mixup", "--modes", "two-stage", "oracle", "--no-figures",
                 "--quiet", "--ablations", "--summary", str(summary)]) == 0
    s = json.loads(summary.read_text())
    assert set(s["arms"]) == {"baseline", "crop/two-stage", "mixup/two-stage", "crop/oracle", "mixup/oracle"}
    assert set(s["references"]) == {"centre_box", "random_init", "supervised", "supervised_unbiased"}
    for arm, metrics in s["arms"].items():
        for key in ("original", "mixed_same", "mixed_rand", "only_fg", "bg_gap", "per_object", "iou_t1",
                    "obj_bg_t1"):
            assert 0.0 <= abs(metrics[key]["mean"]) <= 100.0 and metrics[key]["n"] == 1, (arm, key)
        gap = metrics["mixed_same"]["mean"] - metrics["mixed_rand"]["mean"]
        assert metrics["bg_gap"]["mean"] == pytest.approx(gap, abs=0.02)
    # oracle crops always come from a ground-truth box (every SSL image has at least one object)
    assert s["arms"]["crop/oracle"]["views_in_box"]["mean"] == pytest.approx(100.0)
    assert s["arms"]["mixup/oracle"]["views_mixed"]["mean"] > 0.0
    assert s["seeds"] == [0] and s["command"].startswith("python -m benchmarks.bgbench.protocol ")
    assert s["wall_s"] > 0 and "iou_t1" in s["ablations"]["simclr"] and "iou_hn8_t0.2" in s["ablations"]["simclr"]
    assert s["config"]["two_stage_iters_single"] == s["config"]["two_stage_iters"] == 2


def test_train_crops_per_photo_reuses_few_training_backgrounds(built: Path, tmp_path: Path) -> None:
    """k fixed crops per photo: the training splits hold at most k distinct crops per photo, each inside its
    photo's train region; the val/test splits are byte-identical to the default build."""
    k = 2
    out = v2.build_v2(tmp_path / "c2", source="generated", seed=0, size=S, home_fraction=HOME,
                      train_crops_per_photo=k, **COUNTS)
    man = data.load_manifest(out)
    assert man["params"]["train_crops_per_photo"] == k and "train_crops_per_photo" not in \
        data.load_manifest(built)["params"]
    for name in ("train", "train_unbiased", "multi_train"):
        d = data.load_split(out, name)
        for p in np.unique(d["bg_id"]):
            assert len(np.unique(d["bg_box"][d["bg_id"] == p], axis=0)) <= k, (name, p)
        fresh = data.load_split(built, name)
        assert len(np.unique(fresh["bg_box"], axis=0)) > len(np.unique(d["bg_box"], axis=0))
    base = data.load_manifest(built)
    for name in ("val_original", "original", "mixed_rand", "heldout_original", "multi_test"):
        assert man["splits"][name]["sha1_images"] == base["splits"][name]["sha1_images"], name
    with pytest.raises(ValueError, match="train_crops_per_photo"):
        v2.build_v2(tmp_path / "bad", source="generated", seed=0, size=S, train_crops_per_photo=-1, **COUNTS)


def test_protocol_cam_options_objaug(built: Path, tmp_path: Path) -> None:
    """``--cam-options objaug``: the two-stage CAMs with a bank of the SSL set, the online CAM with the chosen
    options, background mixup's shipped rule (Otsu cut, mass fallback), and the bank ablation."""
    from benchmarks.bgbench.data import OBJAUG_MIXUP
    from benchmarks.bgbench.protocol import main

    summary = tmp_path / "summary.json"
    assert main(["--data", str(built), "--out", str(tmp_path / "out"), "--scale", "tiny", "--seeds", "0",
                 "--arms", "baseline", "mixup", "--modes", "two-stage", "online", "--cam-options", "objaug",
                 "--no-figures", "--quiet", "--ablations", "--summary", str(summary)]) == 0
    s = json.loads(summary.read_text())
    assert s["config"]["cam_options"] == "objaug"
    assert s["config"]["train"]["mixup_threshold"] == OBJAUG_MIXUP["mixup_threshold"] == "otsu"
    assert s["config"]["train"]["mixup_fallback_mass"] == OBJAUG_MIXUP["mixup_fallback_mass"]
    assert set(s["arms"]) == {"baseline", "mixup/two-stage", "mixup/online"}
    # with the fallback every two-stage mask the tiny encoder gives leaves a strip, so views get mixed
    stats = s["two_stage_objects"]["simclr/s0"]
    assert 0.0 < stats["mixable_fraction"] <= 1.0
    assert s["arms"]["mixup/two-stage"]["views_mixed"]["mean"] > 0.0
    assert "iou_objaug_bank" in s["ablations"]["simclr"] and "contrast_objaug_bank" in s["ablations"]["simclr"]
    # the reference profile stays the default (every committed result) and refuses to mix with this folder
    with pytest.raises(RuntimeError, match="another protocol configuration"):
        main(["--data", str(built), "--out", str(tmp_path / "out"), "--scale", "tiny", "--seeds", "0",
              "--arms", "baseline", "--modes", "two-stage", "--no-figures", "--quiet"])
