"""End-to-end tests of the ``objaug`` command line (``objaug cam``, the parser, ``python -m``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from objaug.cli import SUBCOMMANDS, build_parser, main
from objaug.cli.cam import balanced_batches, find_images
from objaug.tools.archs import build_projector, demo_backbone
from objaug.tools.synthetic import make_scenes

ARCH = ["--arch", "tiny_resnet_w4"]
FAST = ["--image-size", "32", "--iters", "2"]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    scenes = make_scenes(5, size=40, seed=0)
    arr = (scenes.images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    Image.fromarray(arr[0]).save(d / "a.png")
    Image.fromarray(arr[1]).save(d / "b.jpg")
    Image.fromarray(arr[2]).resize((60, 30)).save(d / "c wide.PNG")  # non-square, upper-case ext
    (d / "sub").mkdir()
    Image.fromarray(arr[3]).save(d / "sub" / "d.bmp")
    Image.fromarray(arr[4]).convert("L").save(d / "sub" / "e.webp")  # greyscale input
    (d / "broken.jpg").write_bytes(b"this is not a jpeg")
    (d / "notes.txt").write_text("ignored: not an image extension")
    return d


def _backbone() -> nn.Module:
    torch.manual_seed(0)
    return demo_backbone(width=4)


def _run(args: list[str], capsys) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err
    return code, err


def _check_outputs(out, *, n_images: int, n_skipped: int) -> dict:
    doc = json.loads((out / "boxes.json").read_text())
    assert set(doc) >= {"version", "settings", "images", "skipped", "box_format"}
    assert len(doc["images"]) == n_images and len(doc["skipped"]) == n_skipped
    for rec in doc["images"]:
        assert set(rec) >= {"file", "width", "height", "overlay", "boxes", "boxes_norm", "valid", "fallback"}
        assert len(rec["boxes"]) == len(rec["boxes_norm"]) == len(rec["valid"]) == doc["settings"]["max_boxes"]
        assert rec["fallback"] == (not any(rec["valid"]))
        for px, nm in zip(rec["boxes"], rec["boxes_norm"], strict=True):
            assert all(0.0 <= c <= 1.0 for c in nm)
            assert px == pytest.approx([nm[0] * rec["width"], nm[1] * rec["height"], nm[2] * rec["width"],
                                        nm[3] * rec["height"]], abs=0.01)
        with Image.open(out / rec["overlay"]) as im:
            assert im.size == (rec["width"], rec["height"])
    assert (out / "grid.png").is_file()
    return doc


def test_cam_plain_checkpoint_end_to_end(tmp_path, image_dir, capsys):
    torch.save(_backbone().state_dict(), tmp_path / "w.pt")
    out = tmp_path / "out"
    code, err = _run(["cam", str(image_dir), *ARCH, "--checkpoint", str(tmp_path / "w.pt"), "--out", str(out),
                      *FAST, "--batch-size", "2"], capsys)
    assert code == 0, err
    doc = _check_outputs(out, n_images=5, n_skipped=1)
    assert doc["skipped"][0]["file"].endswith("broken.jpg")
    assert "broken.jpg" in err and "skipping" in err
    files = [os.path.basename(r["file"]) for r in doc["images"]]
    assert files == ["a.png", "b.jpg", "c wide.PNG", "d.bmp", "e.webp"]
    wide = doc["images"][2]
    assert (wide["width"], wide["height"]) == (60, 30)


def test_cam_lightning_solo_layout_with_projector(tmp_path, image_dir, capsys):
    bb = _backbone()
    proj = build_projector("16-8", 16)
    assert proj is not None
    sd = {f"backbone.{k}": v for k, v in bb.state_dict().items()}
    sd.update({f"projector.{k}": v for k, v in proj.state_dict().items()})
    torch.save({"state_dict": sd, "epoch": 0}, tmp_path / "solo.ckpt")
    out = tmp_path / "out"
    code, err = _run(["cam", str(image_dir / "a.png"), str(image_dir / "b.jpg"), *ARCH, "--checkpoint",
                      str(tmp_path / "solo.ckpt"), "--projector", "16-8", "--out", str(out), *FAST], capsys)
    assert code == 0, err
    assert "prefix 'backbone.'" in err and "prefix 'projector.'" in err
    _check_outputs(out, n_images=2, n_skipped=0)


def test_cam_lightly_layout_and_explicit_prefix(tmp_path, image_dir, capsys):
    seq = nn.Sequential(*list(_backbone().children())[:-1])
    torch.save({"state_dict": {f"model.backbone.{k}": v for k, v in seq.state_dict().items()}},
               tmp_path / "lightly.ckpt")
    out = tmp_path / "out"
    code, err = _run(["cam", str(image_dir), *ARCH, "--checkpoint", str(tmp_path / "lightly.ckpt"),
                      "--key-prefix", "model.backbone.", "--out", str(out), *FAST, "--max-boxes", "2"], capsys)
    assert code == 0, err
    assert "lightly" in err
    doc = _check_outputs(out, n_images=5, n_skipped=1)
    assert doc["settings"]["max_boxes"] == 2


def test_cam_with_hard_negatives_and_a_bank_of_the_inputs(tmp_path, image_dir, capsys):
    """--hard-negatives K --bank N (N >= the inputs): each image against its K nearest among all inputs (never its
    own copy); the maps equal the Python API's with the same bank."""
    from objaug.contracam import ContraCAM
    from objaug.tools.viz import IMAGENET_MEAN, IMAGENET_STD

    bb = _backbone()
    torch.save(bb.state_dict(), tmp_path / "w.pt")
    out = tmp_path / "out"
    code, err = _run(["cam", str(image_dir), *ARCH, "--checkpoint", str(tmp_path / "w.pt"), "--out", str(out),
                      *FAST, "--batch-size", "2", "--hard-negatives", "1", "--bank", "5"], capsys)
    assert code == 0, err
    doc = _check_outputs(out, n_images=5, n_skipped=1)
    assert doc["settings"]["hard_negatives"] == 1 and doc["settings"]["bank"] == 5
    # the same boxes from the API: batches [0, 1, 2) and [2, 5) (balanced), one bank of all 5 inputs
    from objaug.boxes import boxes_from_steps
    from objaug.cli.cam import _read_rgb

    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    x = torch.stack([(torch.from_numpy(np.array(_read_rgb(r["file"]).resize((32, 32), Image.Resampling.BILINEAR)))
                      .permute(2, 0, 1).float() / 255 - mean) / std for r in doc["images"]])
    cam = ContraCAM(bb, iters=2, hard_negatives=1)
    bank = cam.embed(x)
    got = torch.tensor([r["boxes_norm"] for r in doc["images"]])
    for sl in (slice(0, 2), slice(2, 5)):
        _, steps = cam(x[sl], bank, return_steps=True)
        b, v = boxes_from_steps(steps)
        torch.testing.assert_close(got[sl], torch.where(v[..., None], b, got[sl]).float(), atol=1e-5, rtol=0)
        assert [r["valid"] for r in doc["images"][sl]] == v.tolist()
    code, err = _run(["cam", str(image_dir), *ARCH, "--random-init", "--out", str(out), "--hard-negatives", "0"],
                     capsys)
    assert code == 2 and "--hard-negatives must be an int >= 1 (or unset)" in err and "Traceback" not in err


def test_cam_errors(tmp_path, image_dir, capsys):
    torch.save({"state_dict": {"foo.weight": torch.zeros(3)}}, tmp_path / "bad.ckpt")
    out = tmp_path / "out"
    code, err = _run(["cam", str(image_dir), *ARCH, "--checkpoint", str(tmp_path / "bad.ckpt"), "--out",
                      str(out), *FAST], capsys)
    assert code == 2 and "--key-prefix" in err
    # no checkpoint and no --random-init
    code, err = _run(["cam", str(image_dir), *ARCH, "--out", str(out)], capsys)
    assert code == 2 and "--checkpoint is required" in err
    # a single image: ContraCAM needs at least 2
    code, err = _run(["cam", str(image_dir / "a.png"), *ARCH, "--random-init", "--out", str(out), *FAST], capsys)
    assert code == 2 and "at least 2 images" in err
    # nothing readable: exit 1, boxes.json lists the skipped files
    code, err = _run(["cam", str(image_dir / "broken.jpg"), str(tmp_path / "missing.png"), *ARCH,
                      "--random-init", "--out", str(out), *FAST], capsys)
    assert code == 1 and "no image could be read" in err
    doc = json.loads((out / "boxes.json").read_text())
    assert doc["images"] == [] and len(doc["skipped"]) == 2
    # unknown architecture
    code, err = _run(["cam", str(image_dir), "--arch", "no_such_net_xyz", "--random-init", "--out", str(out)],
                     capsys)
    assert code == 2 and "no_such_net_xyz" in err


def test_cam_applies_exif_orientation(tmp_path, capsys):
    arr = (make_scenes(2, size=32, seed=1).images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    im = Image.fromarray(arr[0]).resize((40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    im.save(tmp_path / "rot.jpg", exif=exif)
    Image.fromarray(arr[1]).save(tmp_path / "plain.png")
    out = tmp_path / "out"
    code, err = _run(["cam", str(tmp_path), *ARCH, "--random-init", "--out", str(out), *FAST], capsys)
    assert code == 0, err
    doc = _check_outputs(out, n_images=2, n_skipped=0)
    rot = next(r for r in doc["images"] if r["file"].endswith("rot.jpg"))
    assert (rot["width"], rot["height"]) == (20, 40)  # as displayed


def test_balanced_batches_never_single():
    for n in range(2, 40):
        for bs in (1, 2, 3, 5, 8, 32):
            parts = balanced_batches(n, bs)
            assert sum(len(p) for p in parts) == n
            assert min(len(p) for p in parts) >= 2
            assert max(len(p) for p in parts) <= max(bs, 2) + 1
            assert [i for p in parts for i in p] == list(range(n))
    assert balanced_batches(1, 4) == [range(0, 1)]
    assert balanced_batches(0, 4) == []


def test_find_images(image_dir, tmp_path):
    files, skipped = find_images([str(image_dir), str(image_dir / "a.png"), str(tmp_path / "nope")])
    names = [os.path.relpath(f, image_dir) for f in files]
    assert names == ["a.png", "b.jpg", "broken.jpg", "c wide.PNG", os.path.join("sub", "d.bmp"),
                     os.path.join("sub", "e.webp")]
    assert skipped == [{"file": str(tmp_path / "nope"), "error": "no such file or directory"}]


def test_parser_registry_and_help(capsys):
    parser = build_parser()
    assert {"demo", "cam"} <= set(SUBCOMMANDS)
    with pytest.raises(SystemExit) as e:
        parser.parse_args(["--help"])
    assert e.value.code == 0
    assert "cam" in capsys.readouterr().out
    assert main([]) == 2


def test_python_dash_m_entry_point():
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "objaug", "cam", "--help"], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0 and "--checkpoint" in r.stdout


def test_cam_with_a_timm_vit_arch(tmp_path, image_dir, capsys):
    pytest.importorskip("timm")
    out = tmp_path / "out"
    code, err = _run(["cam", str(image_dir / "a.png"), str(image_dir / "b.jpg"), "--arch", "vit_tiny_patch16_224",
                      "--random-init", "--out", str(out), "--image-size", "64", "--iters", "2"], capsys)
    assert code == 0, err
    _check_outputs(out, n_images=2, n_skipped=0)
    code, err = _run(["cam", str(image_dir / "a.png"), str(image_dir / "b.jpg"), "--arch", "vit_tiny_patch16_224",
                      "--random-init", "--out", str(out), "--image-size", "64", "--map-source", "attention"], capsys)
    assert code == 0, err
    assert _check_outputs(out, n_images=2, n_skipped=0)["settings"]["map_source"] == "attention"
    code, err = _run(["cam", str(image_dir / "a.png"), str(image_dir / "b.jpg"), *ARCH, "--random-init", "--out",
                      str(out), "--map-source", "attention"], capsys)
    assert code != 0 and "--map-source='attention' needs a Vision Transformer" in err


def test_cam_help_says_vits_work(capsys):
    """The help once said a ViT's tokens were refused; test_cam_with_a_timm_vit_arch shows they work."""
    with pytest.raises(SystemExit):
        main(["cam", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "timm Vision Transformers (e.g. --arch vit_small_patch16_224" in text and "refused" not in text.split(
        "Vision Transformers")[0]
