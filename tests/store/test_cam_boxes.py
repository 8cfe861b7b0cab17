"""``load_cam_boxes``: ``objaug cam``'s boxes.json read back as boxes for ``ObjectAwareDataset``."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest
import torch
from PIL import Image

from objaug.cli import main
from objaug.integrations.lightly.dataset import ObjectAwareDataset
from objaug.store import load_cam_boxes
from objaug.tools.archs import demo_backbone
from objaug.tools.synthetic import make_scenes


@pytest.fixture(scope="module")
def cam_out(tmp_path_factory):
    root = tmp_path_factory.mktemp("cam")
    d = root / "imgs"
    d.mkdir()
    scenes = make_scenes(4, size=40, seed=1)
    arr = (scenes.images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for i, a in enumerate(arr):
        Image.fromarray(a).save(d / f"{i}.png")
    torch.manual_seed(0)
    torch.save(demo_backbone(width=4).state_dict(), root / "w.pt")
    out = root / "out"
    code = main(["cam", str(d), "--arch", "tiny_resnet_w4", "--checkpoint", str(root / "w.pt"), "--out", str(out),
                 "--image-size", "32", "--iters", "2", "--batch-size", "2", "--max-boxes", "3"])
    assert code == 0
    return out


def test_round_trip_matches_what_the_cli_wrote(cam_out, capsys):
    boxes, valid, files = load_cam_boxes(cam_out)  # the --out directory
    doc = json.loads((cam_out / "boxes.json").read_text())
    assert boxes.shape == (4, 3, 4) and boxes.dtype == torch.float32
    assert valid.shape == (4, 3) and valid.dtype == torch.bool
    assert files == [r["file"] for r in doc["images"]]
    for i, rec in enumerate(doc["images"]):
        torch.testing.assert_close(boxes[i], torch.tensor(rec["boxes_norm"]), atol=0, rtol=0)
        px = boxes[i] * torch.tensor([rec["width"], rec["height"]] * 2, dtype=torch.float32)
        torch.testing.assert_close(px, torch.tensor(rec["boxes"]), atol=0.01, rtol=0)  # the pixel boxes agree
        assert valid[i].tolist() == rec["valid"] and rec["fallback"] == (not valid[i].any())
    same = load_cam_boxes(cam_out / "boxes.json")
    assert torch.equal(same.boxes, boxes) and torch.equal(same.valid, valid)


def test_order_reorders_rows_and_feeds_object_aware_dataset(cam_out):
    boxes, valid, files = load_cam_boxes(cam_out)
    reverse = files[::-1]
    rb, rv, rf = load_cam_boxes(cam_out, order=reverse)
    assert rf == reverse and torch.equal(rb, boxes.flip(0)) and torch.equal(rv, valid.flip(0))
    images = [torch.rand(3, 40, 40) for _ in reverse]
    data = ObjectAwareDataset(images, boxes=rb, valid=rv)
    *_, objects = data[1]
    assert torch.equal(objects["boxes"], boxes[2]) and torch.equal(objects["valid"], valid[2])
    with pytest.raises(ValueError, match=r"order lists 'nope\.png', i\.e\. '.*nope\.png' from the current directory, "
                                         r"which is not among its 4 images \(in '.*imgs'\); 3 earlier files"):
        load_cam_boxes(cam_out, order=[*files[:-1], "nope.png"])


def test_wrong_files_are_refused_clearly(tmp_path, cam_out):
    with pytest.raises(FileNotFoundError, match=r"no such file .*boxes\.json.*objaug cam IMAGES --out DIR"):
        load_cam_boxes(tmp_path)
    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"not a JSON file"):
        load_cam_boxes(bad)
    bad.write_text(json.dumps({"format": 1, "shards": []}))  # e.g. a store's manifest
    with pytest.raises(ValueError, match=r"not an `objaug cam` boxes\.json"):
        load_cam_boxes(bad)
    doc = json.loads((cam_out / "boxes.json").read_text())
    doc["images"][1]["boxes_norm"][0] = [0.5, 0.5, 0.2, 0.9]
    bad.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=re.escape("images[1]") + r".*x1 <= x2"):
        load_cam_boxes(bad)
    with pytest.raises(TypeError, match=r"must be a str or path, got int"):
        load_cam_boxes(123)  # type: ignore[arg-type]


def _scenes(folder, n: int = 4) -> list[str]:
    folder.mkdir(parents=True)
    arr = (make_scenes(n, size=40, seed=2).images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for i, a in enumerate(arr):
        Image.fromarray(a).save(folder / f"{i}.png")
    (folder / "broken.png").write_bytes(b"not a png")
    return [f"{i}.png" for i in range(n)]


def test_boxes_json_loads_from_another_directory_and_after_a_move(tmp_path, monkeypatch):
    """`objaug cam data/train --out cam_out` run in one directory; the dataset's files listed from another (as
    ImageFolder(root) lists them: root joined to each name) and after moving the whole project."""
    project = tmp_path / "project"
    names = _scenes(project / "data" / "train")
    torch.manual_seed(0)
    torch.save(demo_backbone(width=4).state_dict(), project / "w.pt")
    monkeypatch.chdir(project)  # relative paths on the command line, as people type them
    assert main(["cam", "data/train", "--arch", "tiny_resnet_w4", "--checkpoint", "w.pt", "--out", "cam_out",
                 "--image-size", "32", "--iters", "2", "--batch-size", "2", "--max-boxes", "3"]) == 0
    here = load_cam_boxes("cam_out", order=[os.path.join("data", "train", n) for n in names])
    doc = json.loads((project / "cam_out" / "boxes.json").read_text())
    assert doc["version"] == 2 and doc["root"] == str(project / "cam_out")
    assert [r["relative"] for r in doc["images"]] == [f"../data/train/{n}" for n in names]
    assert doc["skipped"][0]["relative"] == "../data/train/broken.png"

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    root = project / "data" / "train"
    there = load_cam_boxes(project / "cam_out", order=[str(root / n) for n in names[::-1]])
    assert torch.equal(there.boxes, here.boxes.flip(0)) and torch.equal(there.valid, here.valid.flip(0))
    assert there.files == [str(root / n) for n in names[::-1]]  # absolute: usable from here
    relative = load_cam_boxes("../project/cam_out", order=[f"../project/data/train/{n}" for n in names])
    assert torch.equal(relative.boxes, here.boxes)

    with pytest.raises(ValueError, match=r"order lists '.*broken\.png', which `objaug cam` skipped \(.*\): remove it"):
        load_cam_boxes(project / "cam_out", order=[str(root / "broken.png")])
    with pytest.raises(ValueError, match=r"order lists '0\.png', i\.e\. '.*elsewhere/0\.png' from the current "
                                         r"directory, which is not among its 4 images \(in '.*train'\); none of "
                                         r"order's files matched"):
        load_cam_boxes(project / "cam_out", order=["0.png"])

    moved = tmp_path / "moved"
    shutil.move(project, moved)  # images and output folder together: found through 'relative'
    after = load_cam_boxes(moved / "cam_out", order=[str(moved / "data" / "train" / n) for n in names])
    assert torch.equal(after.boxes, here.boxes)
    assert after.files == [str(moved / "data" / "train" / n) for n in names]


def test_version_1_files_are_read_relative_to_the_current_directory(tmp_path, cam_out, monkeypatch):
    doc = json.loads((cam_out / "boxes.json").read_text())
    monkeypatch.chdir(cam_out.parent)
    doc["version"] = 1  # what objaug cam wrote before: paths as given on the command line
    for rec in doc["images"]:
        rec["file"] = os.path.relpath(rec.pop("file"))
        rec.pop("relative")
    (tmp_path / "v1.json").write_text(json.dumps(doc))
    old = load_cam_boxes(tmp_path / "v1.json", order=[r["file"] for r in doc["images"]][::-1])
    assert torch.equal(old.boxes, load_cam_boxes(cam_out).boxes.flip(0))
    assert old.files == [r["file"] for r in doc["images"]][::-1]
