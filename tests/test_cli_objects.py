"""``objaug cam``, ``objaug precompute`` and ``store.precompute`` find the library's objects, with every option.

The library path is ``find_objects(cam_config.build(model), normalised images, box_config)`` (boxes of every
ContraCAM iteration's map, the output map as the mask). Each door is run on the same tiny model (a checkpoint
of it for the command lines) and the same tiny images, in one batch, so the in-batch negatives match; boxes
must be equal (up to the 6 decimals of ``boxes.json``), stored masks equal up to the store's area resize and
uint8 quantisation. The table tests check that every :class:`CamConfig` and :class:`BoxConfig` field is a flag
of both commands with the config's default, and that a value given on the command line reaches the configs
the commands use.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from objaug.cli import SUBCOMMANDS, build_parser, main
from objaug.cli.options import CONFIG_FIELDS, config_flag
from objaug.config import BoxConfig, CamConfig
from objaug.constants import IMAGENET_MEAN, IMAGENET_STD
from objaug.objects import find_objects
from objaug.store import ObjectStore, precompute
from objaug.store.format import read_manifest
from objaug.tools.archs import build_backbone
from objaug.tools.synthetic import make_scenes

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

N = 6  # images: one batch (--batch-size 64), so every door contrasts the same images
MASK_SIZE = 16
CNN = ("tiny_resnet_w4", 32)  # (arch, image size)
VIT = ("vit_tiny_patch16_224", 64)  # timm, 16 px patches: a 4 x 4 token grid

CASES = {
    "gradcam-iters1": (CNN, CamConfig(iters=1), BoxConfig()),
    "gradcam-iters3": (CNN, CamConfig(iters=3), BoxConfig(max_boxes=3)),
    "gradcam-hard-negatives-bank": (CNN, CamConfig(iters=3, mask_iters=1, hard_negatives=2, bank=3), BoxConfig()),
    "vit-attention": (VIT, CamConfig(map_source="attention", iters=2), BoxConfig()),
}


def config_argv(*configs: Any) -> list[str]:
    """The command-line flags of the non-default fields of ``configs`` (``--edges``/``--no-edges`` for bools)."""
    argv: list[str] = []
    for config in configs:
        for f in dataclasses.fields(config):
            value = getattr(config, f.name)
            if value == f.default:
                continue
            if isinstance(value, bool):
                argv.append(config_flag(f.name) if value else "--no-" + config_flag(f.name)[2:])
            else:
                argv += [config_flag(f.name), str(value)]
    return argv


def _model(arch: str) -> torch.nn.Module:
    if arch.startswith("vit"):
        pytest.importorskip("timm")
    torch.manual_seed(0)
    return build_backbone(arch).eval()


@pytest.fixture(scope="module")
def doors(tmp_path_factory):
    """Per image size: a folder of N PNG files (already at that size, so no door resizes) and their pixels."""
    root = tmp_path_factory.mktemp("doors")
    found = {}
    for size in (CNN[1], VIT[1]):
        folder = root / f"images{size}"
        folder.mkdir()
        pixels = (make_scenes(N, size=size, seed=3).images * 255).round().to(torch.uint8)
        for i, p in enumerate(pixels):
            Image.fromarray(p.permute(1, 2, 0).numpy()).save(folder / f"{i:02d}.png")
        found[size] = (folder, pixels)
    return root, found


def _normalised(pixels: torch.Tensor) -> torch.Tensor:
    """What the doors feed the model: [0, 1] images normalised with ImageNet's statistics."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (pixels.float() / 255 - mean) / std


def library_objects(model, pixels, cam_config: CamConfig, box_config: BoxConfig):
    """The library path, with the offline bank written out: ``round(linspace(0, N - 1, bank))`` samples."""
    x = _normalised(pixels)
    cam = cam_config.build(model)
    negatives = None
    if cam_config.bank:
        spread = sorted({round(float(v)) for v in np.linspace(0, N - 1, cam_config.bank)})
        negatives = cam.embed(x[spread])
    return find_objects(cam, x, box_config, negatives=negatives, mask_iters=cam_config.mask_iters)


def _checkpoint(model, path: Path) -> str:
    torch.save(model.state_dict(), path)
    return str(path)


def _assert_store_matches(store: ObjectStore, ref) -> None:
    got = store.get_batch(torch.arange(N))
    torch.testing.assert_close(got.boxes, ref.boxes, atol=1e-6, rtol=0)
    assert torch.equal(got.valid, ref.valid)
    masks = F.interpolate(ref.masks.float(), size=(MASK_SIZE, MASK_SIZE), mode="area")
    assert (got.masks - masks).abs().max() <= 1 / 255 + 1e-6  # uint8 quantisation


@pytest.mark.parametrize("case", list(CASES))
def test_every_door_finds_the_library_objects(case, doors, tmp_path, capsys, monkeypatch):
    (arch, size), cam_config, box_config = CASES[case]
    _, images = doors
    folder, pixels = images[size]
    model = _model(arch)
    ref = library_objects(model, pixels, cam_config, box_config)
    assert ref.valid.any(), "a case where nothing is found would compare little"
    ckpt = _checkpoint(model, tmp_path / "w.pt")
    common = ["--arch", arch, "--checkpoint", ckpt, "--image-size", str(size), "--batch-size", "64",
              "--device", "cpu", *config_argv(cam_config, box_config)]

    # objaug cam: boxes.json, and the maps it draws (the grid's overlay of all N images)
    import objaug.tools.viz as viz

    drawn: list[torch.Tensor] = []
    overlay = viz.overlay_cam
    monkeypatch.setattr(viz, "overlay_cam", lambda im, m, **kw: drawn.append(m) or overlay(im, m, **kw))
    assert main(["cam", str(folder), "--out", str(tmp_path / "cam"), *common]) == 0, capsys.readouterr().err
    doc = json.loads((tmp_path / "cam" / "boxes.json").read_text())
    torch.testing.assert_close(torch.tensor([r["boxes_norm"] for r in doc["images"]]), ref.boxes,
                               atol=1e-6, rtol=0)  # boxes.json rounds to 6 decimals
    assert torch.equal(torch.tensor([r["valid"] for r in doc["images"]]), ref.valid)
    torch.testing.assert_close(next(m for m in drawn if m.shape[0] == N), ref.masks, atol=1e-5, rtol=0)

    # objaug precompute --data
    store = tmp_path / "cli_store"
    assert main(["precompute", "--data", str(folder), "--out", str(store), "--mask-size", str(MASK_SIZE),
                 "--workers", "0", "--no-progress", *common]) == 0, capsys.readouterr().err
    _assert_store_matches(ObjectStore(store), ref)

    # store.precompute
    dataset = [(p.float() / 255, 0) for p in pixels]
    precompute(dataset, model, tmp_path / "api_store", cam_config=cam_config, box_config=box_config,
               batch_size=64, image_size=size, mask_size=MASK_SIZE, num_workers=0, progress=False)
    _assert_store_matches(ObjectStore(tmp_path / "api_store"), ref)


# ---------------------------------------------------------------------------------------------- table

#: A value other than the default for every config field (the gradcam run; map_source: the attention run).
NOT_DEFAULT: dict[str, Any] = {
    "iters": 2, "mask_iters": 1, "temperature": 0.5, "hard_negatives": 1, "bank": 2, "expand_res": True,
    "interpolation": "bilinear", "edges": False, "edge_radius": 0.1, "edge_eps": 0.02, "refine": "union",
    "threshold": 0.4, "min_area": 0.02, "margin": 0.1, "max_boxes": 3, "overlap": 0.5, "connectivity": 8,
    "map_size": 8,
}
COMMANDS = {"cam": ["cam", "in/", "--out", "o"], "precompute": ["precompute", "--data", "in/", "--out", "o"]}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_config_field_is_a_flag_with_the_config_default(command):
    sub = argparse.ArgumentParser()
    importlib.import_module(SUBCOMMANDS[command]).add_arguments(sub)
    flags = {flag: action for action in sub._actions for flag in action.option_strings}
    args = sub.parse_args(COMMANDS[command][1:])
    for cls in (CamConfig, BoxConfig):
        for f in dataclasses.fields(cls):
            assert config_flag(f.name) in flags, f"{command} has no {config_flag(f.name)}"
            assert flags[config_flag(f.name)].dest == f.name
            assert getattr(args, f.name) == f.default, f"{command} {config_flag(f.name)}"
            assert flags[config_flag(f.name)].help, f"{command} {config_flag(f.name)} has no help"
    assert set(NOT_DEFAULT) | {"map_source"} == set(CONFIG_FIELDS)  # a new field needs a row here


def test_shared_flags_have_one_default():
    """The model/input flags of cam and precompute: the same defaults (--device auto, --batch-size 64)."""
    parsed = {name: vars(build_parser().parse_args(argv)) for name, argv in COMMANDS.items()}
    shared = set(parsed["cam"]) & set(parsed["precompute"]) - {"_run", "command", "out"}
    assert {"arch", "device", "batch_size", "image_size", "mean", "std", "seed", *CONFIG_FIELDS} <= shared
    assert {k: parsed["cam"][k] for k in shared} == {k: parsed["precompute"][k] for k in shared}
    assert parsed["cam"]["device"] == "auto" and parsed["cam"]["batch_size"] == 64


@pytest.fixture
def used_configs(monkeypatch):
    """Records the CamConfig each command builds its ContraCAM from and the BoxConfig its objects are found with."""
    import objaug.objects

    run_module = importlib.import_module("objaug.store.precompute")  # objaug.store.precompute is the function
    seen: dict[str, Any] = {}
    build = CamConfig.build

    def recording_build(self, *args, **kwargs):
        seen["cam"] = self
        return build(self, *args, **kwargs)

    def recording_find(cam, images, boxes=None, **kwargs):
        seen["box"] = boxes
        seen["mask_iters"] = kwargs.get("mask_iters")
        return find_objects(cam, images, boxes, **kwargs)

    monkeypatch.setattr(CamConfig, "build", recording_build)
    monkeypatch.setattr(objaug.objects, "find_objects", recording_find)
    monkeypatch.setattr(run_module, "find_objects", recording_find)
    return seen


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("source", ["gradcam", "attention"])
def test_a_flag_value_reaches_the_config_used(command, source, doors, tmp_path, capsys, used_configs):
    _, images = doors
    if source == "gradcam":
        (arch, size), values = CNN, dict(NOT_DEFAULT)
    else:  # the attention source takes no negatives, temperature or expand_res
        (arch, size), values = VIT, {"map_source": "attention", "iters": 2, "mask_iters": 1, "max_boxes": 3}
    cam_fields = {f.name for f in dataclasses.fields(CamConfig)}
    cam_config = CamConfig(**{k: v for k, v in values.items() if k in cam_fields})
    box_config = BoxConfig(**{k: v for k, v in values.items() if k not in cam_fields})
    argv = [*COMMANDS[command]]
    argv[argv.index("in/")] = str(images[size][0])
    argv[argv.index("o")] = str(tmp_path / "out")
    _model(arch)  # skips without timm
    argv += ["--arch", arch, "--random-init", "--image-size", str(size), "--device", "cpu",
             *config_argv(cam_config, box_config)]
    if command == "precompute":
        argv += ["--workers", "0", "--no-progress", "--mask-size", str(MASK_SIZE)]
    assert main(argv) == 0, capsys.readouterr().err
    assert used_configs["cam"] == cam_config
    assert used_configs["box"] == box_config and used_configs["mask_iters"] == cam_config.mask_iters
    if command == "precompute":  # the store's identity holds every setting given
        settings = read_manifest(tmp_path / "out")["settings"]
        stored = {"bank": "bank_size"}
        for name, value in values.items():
            assert settings[stored.get(name, name)] == value, name
    else:
        settings = json.loads((tmp_path / "out" / "boxes.json").read_text())["settings"]
        assert {k: settings[k] for k in CONFIG_FIELDS} == {**dataclasses.asdict(cam_config),
                                                           **dataclasses.asdict(box_config)}
