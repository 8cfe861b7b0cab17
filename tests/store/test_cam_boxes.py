"""``load_cam_boxes``: ``objaug cam``'s boxes.json read back as boxes for ``ObjectAwareDataset``."""

from __future__ import annotations

import json
import re

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
    with pytest.raises(ValueError, match=r"order lists '.*nope\.png', which it does not have"):
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
