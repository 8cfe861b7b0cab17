"""Tests for objaug.store.precompute and the precompute / inspect command lines.

A tiny random-weight torchvision ResNet (objaug.tools.archs.tiny_resnet, one BasicBlock per stage) on 32 px
generated images keeps every run to a fraction of a second; the reference results are computed by
calling ContraCAM and boxes_from_steps directly on hand-written batches.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from PIL import Image
from torch.utils.data import Dataset

from objaug.boxes import boxes_from_steps
from objaug.config import BoxConfig, CamConfig
from objaug.contracam import ContraCAM
from objaug.masks import masks_to_uint8, resize_masks
from objaug.store.format import (
    FORMAT_VERSION,
    LOG_NAME,
    MANIFEST_NAME,
    StoreError,
    StoreIncompleteError,
    StoreMismatchError,
    StoreVersionError,
    read_manifest,
)
from objaug.store.precompute import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageFolderFiles,
    dataset_fingerprint,
    load_dataset,
    precompute,
    shard_batches,
    store_settings,
)
from objaug.store.reader import ObjectStore
from objaug.store.writer import FAIL_ENV, SimulatedCrash
from objaug.tools.archs import build_backbone, tiny_resnet

SIZE = 32
KW = {"cam_config": CamConfig(iters=2), "batch_size": 4, "image_size": SIZE, "mask_size": 16, "shard_size": 8,
      "num_workers": 0, "progress": False}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def make_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return tiny_resnet(width=8)


class Blobs(Dataset):
    """Deterministic generated images: a bright disc on a dark noisy background, (3, S, S) in [0, 1]."""

    def __init__(self, n: int, size: int = SIZE, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        c = torch.rand(n, 2, 1, 1, generator=g) * size * 0.6 + size * 0.2
        r = torch.rand(n, 1, 1, generator=g) * size * 0.2 + size * 0.1
        disc = (((yy - c[:, 0]) ** 2 + (xx - c[:, 1]) ** 2) <= r**2).float()
        colour = torch.rand(n, 3, 1, 1, generator=g)
        bg = 0.2 * torch.rand(n, 3, size, size, generator=g)
        self.images = bg * (1 - disc[:, None]) + colour * disc[:, None]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], 0


class Faulty(Blobs):
    """Blobs with bad samples: raising, NaN, wrong type, wrong shape."""

    BAD = {2: "raise", 5: "nan", 9: "type", 10: "shape", 11: "raise"}

    def __getitem__(self, i: int):
        kind = self.BAD.get(i)
        if kind == "raise":
            raise OSError(f"cannot read sample {i}")
        if kind == "nan":
            x = self.images[i].clone()
            x[0, 0, 0] = float("nan")
            return x, 0
        if kind == "type":
            return "not an image", 0
        if kind == "shape":
            return torch.zeros(5, 8, 8), 0
        return self.images[i], 0


def resume_and_compare(ds, model, tmp_path, *, written: int) -> None:
    """Resume the store at tmp_path/s: ``written`` shards are (re)computed and it equals tmp_path/ref byte for byte."""
    res = precompute(ds, model, tmp_path / "s", **KW)
    assert res.shards_written == written
    assert store_files(tmp_path / "s") == store_files(tmp_path / "ref")


def store_files(path: Path) -> dict[str, bytes]:
    """Every file of a store (relative path -> bytes), except the volatile runs.log."""
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file() and p.name != LOG_NAME}


# ---------------------------------------------------------------------------------------------- batches


def test_shard_batches():
    for start, count, bs in [(0, 8, 4), (16, 5, 4), (3, 1, 4), (0, 3, 2), (0, 100, 7), (0, 2, 1), (0, 9, 64)]:
        b = shard_batches(start, count, bs)
        assert b[0][0] == start and b[-1][1] == start + count
        assert all(x[1] == y[0] for x, y in zip(b, b[1:], strict=False))
        sizes = [y - x for x, y in b]
        assert max(sizes) - min(sizes) <= 1
        if count >= 2:
            assert min(sizes) >= 2
        if bs >= 2 and count >= 2:
            assert len(b) == min(-(-count // bs), count // 2)
    assert shard_batches(0, 8, 4) == [(0, 4), (4, 8)]
    assert shard_batches(0, 10, 4) == [(0, 4), (4, 7), (7, 10)]


# ---------------------------------------------------------------------------------------------- round trip


def _reference(model, ds, ranges, mask_size=16, iters=2):
    """ContraCAM + boxes + uint8 masks, batch by hand-given batch."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    cam = ContraCAM(model, iters=iters)
    boxes, valid, masks = [], [], []
    for a, b in ranges:
        x = (torch.stack([ds[i][0] for i in range(a, b)]) - mean) / std
        maps, steps = cam(x, return_steps=True)
        bx, v = boxes_from_steps(steps)  # refined boxes: each iteration's own objects
        boxes.append(bx)
        valid.append(v)
        masks.append(masks_to_uint8(resize_masks(maps, mask_size, mode="area")))
    return torch.cat(boxes), torch.cat(valid), torch.cat(masks)


def _vit() -> torch.nn.Module:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=SIZE, patch_size=8,
                             embed_dim=32, depth=2, num_heads=2)


@pytest.mark.parametrize("arch", ["resnet", "vit"])
def test_round_trip_matches_direct_contracam(tmp_path, arch):
    model = make_model() if arch == "resnet" else _vit()
    model.train()
    ds = Blobs(20)
    res = precompute(ds, model, tmp_path / "s", **KW)
    assert model.training and all(p.requires_grad for p in model.parameters())  # left as found
    assert res.shards_written == 3 and res.images == 20
    # shards [0, 8), [8, 16), [16, 20); batches of 4
    ranges = [(0, 4), (4, 8), (8, 12), (12, 16), (16, 20)]
    boxes, valid, masks = _reference(model, ds, ranges)
    store = ObjectStore(tmp_path / "s", dataset=ds)
    got = store.get_batch(torch.arange(20))
    torch.testing.assert_close(got.boxes, boxes, atol=1e-6, rtol=0)
    assert torch.equal(got.valid, valid)
    assert (got.masks * 255 - masks.float()).abs().max() <= 1.0 + 1e-4
    m = store.manifest
    assert m["complete"] and m["version"] == FORMAT_VERSION
    assert m["dataset"]["length"] == 20 and m["dataset"]["fingerprint"] == dataset_fingerprint(ds)
    assert m["settings"]["iters"] == 2 and m["settings"]["batch_size"] == 4 and m["settings"]["mask_size"] == 16
    assert m["layout"]["num_shards"] == 3 and m["layout"]["mask_codec"] == "gradient-deflate"
    assert m["model"]["weights"].startswith("sha256:")
    assert m["skipped"] == [] and m["summary"]["count"] == 20
    assert m["summary"]["with_box"] == int(valid.any(1).sum())
    assert not store.is_skipped(torch.arange(20)).any()
    assert (tmp_path / "s" / LOG_NAME).is_file()


def test_hard_negatives_with_a_bank_match_direct_contracam(tmp_path):
    """CamConfig(bank=N): every batch is also contrasted with the embeddings of N evenly spread samples (the batch's
    own images among them are never their own negatives); the store equals ContraCAM with that bank."""
    model = make_model()
    ds = Blobs(20)
    negatives = CamConfig(iters=2, hard_negatives=3, bank=10)
    res = precompute(ds, model, tmp_path / "s", **{**KW, "cam_config": negatives})
    assert res.images == 20
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = (ds.images - mean) / std
    cam = ContraCAM(model, iters=2, hard_negatives=3)
    spread = [0, 2, 4, 6, 8, 11, 13, 15, 17, 19]  # round(linspace(0, 19, 10))
    bank = cam.embed(x[spread])
    got = ObjectStore(tmp_path / "s", dataset=ds).get_batch(torch.arange(20))
    for a, b in [(0, 4), (4, 8), (8, 12), (12, 16), (16, 20)]:
        maps, steps = cam(x[a:b], bank, return_steps=True)
        boxes, valid = boxes_from_steps(steps)
        torch.testing.assert_close(got.boxes[a:b], boxes, atol=1e-6, rtol=0)
        assert torch.equal(got.valid[a:b], valid)
        m8 = masks_to_uint8(resize_masks(maps, 16, mode="area"))
        assert (got.masks[a:b] * 255 - m8.float()).abs().max() <= 1.0 + 1e-4
    settings = read_manifest(tmp_path / "s")["settings"]
    assert settings["hard_negatives"] == 3 and settings["bank_size"] == 10
    # part of the identity: another bank cannot resume this store; and a store without them has neither key
    with pytest.raises(StoreMismatchError, match="bank_size"):
        precompute(ds, model, tmp_path / "s", **{**KW, "cam_config": CamConfig(iters=2, hard_negatives=3, bank=12)})
    precompute(ds, model, tmp_path / "plain", **KW)
    assert "bank_size" not in read_manifest(tmp_path / "plain")["settings"]
    with pytest.raises(ValueError, match="hard_negatives"):
        precompute(ds, model, tmp_path / "bad", **{**KW, "cam_config": CamConfig(hard_negatives=0)})
    with pytest.raises(ValueError, match="bank"):
        precompute(ds, model, tmp_path / "bad", **{**KW, "cam_config": CamConfig(bank=-1)})
    assert not (tmp_path / "bad").exists()


def test_settings_keep_the_keys_of_older_stores():
    """The settings of a store hold the keys stores had before CamConfig/BoxConfig (so those stores resume);
    the negatives when set; any other config field only when it is not its default."""
    older = {"batch_size", "expand_res", "image_resize", "image_size", "interpolation", "iters", "margin",
             "mask_resize", "mask_size", "max_boxes", "mean", "min_area", "precision", "std", "temperature",
             "threshold"}
    run = {"length": 10, "batch_size": 4, "image_size": 32, "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
           "mask_size": 16, "mask_resize": "area", "precision": "fp32"}
    plain = store_settings(CamConfig(iters=10), BoxConfig(), **run)
    assert set(plain) == older and plain["iters"] == 10 and plain["threshold"] == 0.5
    banked = store_settings(CamConfig(hard_negatives=3, bank=50), BoxConfig(), **run)
    assert set(banked) == older | {"hard_negatives", "bank_size"} and banked["bank_size"] == 10  # at most length
    other = store_settings(CamConfig(edges=False, mask_iters=1), BoxConfig(overlap=0.5, map_size=8), **run)
    assert {k: other[k] for k in set(other) - older} == {"edges": False, "mask_iters": 1, "overlap": 0.5,
                                                         "map_size": 8}


# ---------------------------------------------------------------------------------------------- resume


@pytest.mark.parametrize("mode", ["1", "1:midwrite"])
def test_resume_after_crash_is_byte_identical(tmp_path, monkeypatch, mode):
    model = make_model()
    ds = Blobs(28)  # 4 shards of 8, 8, 8, 4
    precompute(ds, model, tmp_path / "ref", **KW)
    monkeypatch.setenv(FAIL_ENV, mode)
    with pytest.raises(SimulatedCrash):
        precompute(ds, model, tmp_path / "s", **KW)
    monkeypatch.delenv(FAIL_ENV)
    shards = sorted(p.name for p in (tmp_path / "s" / "shards").iterdir())
    assert "00000.bin" in shards and "00003.bin" not in shards
    if mode.endswith("midwrite"):
        assert "00001.bin.partial" in shards and "00001.bin" not in shards
    assert read_manifest(tmp_path / "s", require_complete=False)["complete"] is False
    with pytest.raises(StoreIncompleteError, match="resume"):
        ObjectStore(tmp_path / "s")
    resume_and_compare(ds, model, tmp_path, written=3)  # only the unfinished shards were redone
    assert not list((tmp_path / "s").rglob("*.partial"))
    resume_and_compare(ds, model, tmp_path, written=0)  # a finished store: nothing to do, same bytes


def test_resume_redoes_damaged_shard(tmp_path):
    model = make_model()
    ds = Blobs(16)
    precompute(ds, model, tmp_path / "ref", **KW)
    precompute(ds, model, tmp_path / "s", **KW)
    shard = tmp_path / "s" / "shards" / "00001.bin"
    shard.write_bytes(shard.read_bytes()[:100])  # truncated by a disk problem
    resume_and_compare(ds, model, tmp_path, written=1)


def test_resume_refuses_other_data_model_settings_or_version(tmp_path):
    model = make_model()
    ds = Blobs(12)
    out = tmp_path / "s"
    precompute(ds, model, out, **KW)
    with pytest.raises(StoreMismatchError, match="settings.iters"):
        precompute(ds, model, out, **{**KW, "cam_config": CamConfig(iters=3)})
    with pytest.raises(StoreMismatchError, match="dataset.length"):
        precompute(Blobs(13), model, out, **KW)
    with pytest.raises(StoreMismatchError, match="dataset.fingerprint"):
        precompute(Blobs(12, seed=1), model, out, **KW)
    with pytest.raises(StoreMismatchError, match="model.weights"):
        precompute(ds, make_model(seed=1), out, **KW)
    res = precompute(ds, make_model(seed=1), out, overwrite=True, **KW)
    assert res.shards_written == 2
    # a version this objaug does not know
    man = (out / MANIFEST_NAME).read_text().replace(f'"version": {FORMAT_VERSION}', '"version": 99')
    (out / MANIFEST_NAME).write_text(man)
    with pytest.raises(StoreVersionError, match="99"):
        precompute(ds, model, out, **KW)
    with pytest.raises(StoreVersionError):
        ObjectStore(out)
    # not a store
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(StoreError, match="not an objaug store"):
        precompute(ds, model, tmp_path / "other", **KW)


def test_bad_arguments_fail_before_work(tmp_path):
    model = make_model()
    ds = Blobs(4)
    for kw, match in [({"batch_size": 0}, "batch_size"), ({"precision": "fp8"}, "precision"),
                      ({"std": (1, 0, 1)}, "std"), ({"num_workers": -1}, "num_workers")]:
        with pytest.raises(ValueError, match=match):
            precompute(ds, model, tmp_path / "s", **{**KW, **kw})
    with pytest.raises(ValueError, match="threshold"):  # a box setting is refused when its config is built
        precompute(ds, model, tmp_path / "s", **KW, box_config=BoxConfig(threshold=2.0))
    with pytest.raises(TypeError, match="cam_config"):
        precompute(ds, model, tmp_path / "s", **{**KW, "cam_config": {"iters": 2}})
    with pytest.raises(TypeError, match="nn.Module"):
        precompute(ds, "model", tmp_path / "s", **KW)  # type: ignore[arg-type]
    assert not (tmp_path / "s").exists()


# ---------------------------------------------------------------------------------------------- bad input


def test_bad_samples_are_skipped_counted_and_listed(tmp_path):
    model = make_model()
    ds = Faulty(16)  # batches [8, 12) keeps only sample 8 (9, 10, 11 are bad): a lone image
    res = precompute(ds, model, tmp_path / "s", **KW)
    m = res.manifest
    assert [e["index"] for e in m["skipped"]] == sorted(Faulty.BAD)
    errors = {e["index"]: e["error"] for e in m["skipped"]}
    assert errors[2].startswith("OSError: cannot read sample 2")
    assert "NaN" in errors[5] and "TypeError" in errors[9] and "ValueError" in errors[10]
    assert m["summary"]["skipped"] == 5 and m["summary"]["ok"] == 11
    assert [s["skipped"] for s in m["shards"]] == [2, 3]
    store = ObjectStore(tmp_path / "s")
    bad = torch.tensor(sorted(Faulty.BAD))
    assert store.is_skipped(bad).all() and store.is_skipped(torch.tensor([0, 8, 15])).sum() == 0
    b = store.get_batch(bad)
    assert not b.valid.any() and (b.masks == 0).all()
    assert torch.equal(b.boxes[:, 0], torch.tensor([[0.0, 0.0, 1.0, 1.0]]).expand(5, 4))
    # the good samples of a batch with bad ones are computed on the good ones only
    ref_b, ref_v, _ = _reference(model, ds, [(12, 16)])
    got = store.get_batch(torch.arange(12, 16))
    torch.testing.assert_close(got.boxes, ref_b, atol=1e-6, rtol=0)
    # the lone image 8 was contrasted with the previous batch: it still got a map
    assert store.get(8).mask.max() > 0


def test_image_folder_dataset_and_fingerprint(tmp_path):
    root = tmp_path / "imgs"
    _write_images(root)
    ds = ImageFolderFiles(root)
    assert ds.files == ["a/0.png", "a/1.jpg", "b/c/2.PNG", "b/empty.png", "broken.jpg", "z.bmp"]
    fp = ds.objaug_fingerprint()
    assert fp.startswith("folder-v1:") and dataset_fingerprint(ds) == fp
    img = ds[0]
    assert isinstance(img, Image.Image)
    with pytest.raises(OSError, match="broken.jpg") as e:
        ds[4].load()
    assert str(root) not in str(e.value)
    (root / "extra.png").write_bytes((root / "a" / "0.png").read_bytes())
    assert ImageFolderFiles(root).objaug_fingerprint() != fp
    with pytest.raises(FileNotFoundError):
        ImageFolderFiles(tmp_path / "missing")
    (tmp_path / "none").mkdir()
    with pytest.raises(ValueError, match="No image files"):
        ImageFolderFiles(tmp_path / "none")


def test_dataset_specs_and_sampled_fingerprint(tmp_path, monkeypatch):
    f = tmp_path / "mydata.py"
    f.write_text("import torch\n"
                 "class D:\n"
                 "    def __len__(self): return 6\n"
                 "    def __getitem__(self, i): return {'image': torch.full((3, 8, 8), i / 10), 'label': i}\n"
                 "def make(): return D()\n"
                 "INSTANCE = D()\n")
    ds = load_dataset(f"{f}:make")
    assert len(ds) == 6
    monkeypatch.syspath_prepend(str(tmp_path))
    assert len(load_dataset("mydata:INSTANCE")) == 6
    for bad in ("nocolon", ":make", f"{f}:"):
        with pytest.raises(ValueError):
            load_dataset(bad)
    with pytest.raises(ValueError, match="map-style"):
        load_dataset("os:getcwd")
    with pytest.raises(ValueError, match="map-style"):
        load_dataset("math:pi")
    fp = dataset_fingerprint(ds)
    assert fp.startswith("sampled-v1:") and fp == dataset_fingerprint(load_dataset(f"{f}:make"))
    assert dataset_fingerprint(Blobs(6)) != dataset_fingerprint(Blobs(6, seed=1))


# ---------------------------------------------------------------------------------------------- distributed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ddp_worker(rank: int, world: int, port: int, out: str, seed_by_rank: bool = False) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        res = precompute(Blobs(28), make_model(seed=rank if seed_by_rank else 0), out, **KW)
        assert res.world_size == world and res.rank == rank
        assert res.manifest["complete"]
    finally:
        dist.destroy_process_group()


def test_two_process_ddp_gives_the_same_store(tmp_path):
    precompute(Blobs(28), make_model(), tmp_path / "one", **KW)
    # fork: no re-import of torch in the children (spawn works too, only slower)
    mp.start_processes(_ddp_worker, args=(2, _free_port(), str(tmp_path / "two")), nprocs=2, join=True,
                       start_method="fork")
    assert store_files(tmp_path / "two") == store_files(tmp_path / "one")
    log = (tmp_path / "two" / LOG_NAME).read_text().splitlines()
    assert len(log) == 2  # one line per rank; rank 0 did shards 0 and 2, rank 1 shards 1 and 3
    assert sorted('"shards_written": 2' in line for line in log) == [True, True]
    # ranks with different weights (e.g. unseeded random init): a clear error on every rank, nothing written
    with pytest.raises(mp.ProcessRaisedException, match="do not agree"):
        mp.start_processes(_ddp_worker, args=(2, _free_port(), str(tmp_path / "bad"), True), nprocs=2, join=True,
                           start_method="fork")
    assert not (tmp_path / "bad").exists()


# ---------------------------------------------------------------------------------------------- CLI


def _write_images(root: Path) -> None:
    g = np.random.default_rng(0)
    (root / "a").mkdir(parents=True)
    (root / "b" / "c").mkdir(parents=True)

    def img(h: int, w: int) -> Image.Image:
        a = (g.random((h, w, 3)) * 60).astype(np.uint8)
        a[h // 4: h // 2, w // 3: 2 * w // 3] = g.integers(100, 255, 3)
        return Image.fromarray(a)

    img(40, 30).save(root / "a" / "0.png")
    img(50, 64).save(root / "a" / "1.jpg", quality=90)
    img(32, 32).convert("L").save(root / "b" / "c" / "2.PNG")
    (root / "b" / "empty.png").write_bytes(b"")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    img(20, 20).save(root / "z.bmp")
    (root / "notes.txt").write_text("not an image")


def _cli(argv: list[str]) -> int:
    try:
        from objaug.cli import SUBCOMMANDS, main

        if "precompute" in SUBCOMMANDS and "inspect" in SUBCOMMANDS:
            return main(argv)
    except ImportError:  # pragma: no cover
        pass
    import importlib

    module = importlib.import_module(f"objaug.cli.{argv[0]}")
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(argv[1:])))


def test_cli_precompute_and_inspect_on_a_folder(tmp_path, capsys):
    root = tmp_path / "imgs"
    _write_images(root)
    torch.manual_seed(0)
    model = build_backbone("tiny_resnet")
    ckpt = tmp_path / "w.pt"
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in model.state_dict().items()}}, ckpt)
    out = tmp_path / "store"
    args = ["precompute", "--data", str(root), "--arch", "tiny_resnet", "--checkpoint", str(ckpt), "--out", str(out),
            "--iters", "1", "--batch-size", "4", "--image-size", str(SIZE), "--mask-size", "16",
            "--shard-size", "4", "--workers", "2", "--no-progress", "--device", "cpu"]
    assert _cli(args) == 0
    err = capsys.readouterr().err
    assert "6 samples, 2 skipped" in err
    m = read_manifest(out)
    assert [e["index"] for e in m["skipped"]] == [3, 4]  # b/empty.png, broken.jpg
    assert m["dataset"]["kind"] == "folder"
    assert m["dataset"]["fingerprint"] == ImageFolderFiles(root).objaug_fingerprint()
    assert m["model"]["arch"] == "tiny_resnet" and m["model"]["checkpoint"]["name"] == "w.pt"
    # the same run again: nothing to do; other settings: a clear error
    assert _cli(args) == 0
    assert _cli(args[:-2] + ["--device", "cpu", "--iters", "2"]) == 2
    assert "settings.iters" in capsys.readouterr().err
    assert _cli(["precompute", "--data", str(root), "--arch", "tiny_resnet", "--out", str(tmp_path / "x")]) == 2
    assert "--checkpoint is required" in capsys.readouterr().err
    # inspect, with the images and without
    pic = tmp_path / "grid.png"
    assert _cli(["inspect", str(out), "--data", str(root), "--picture", str(pic)]) == 0
    text = capsys.readouterr().out
    assert "samples:      6" in text and "skipped 2" in text and "coverage:" in text and "broken.jpg" in text
    assert "with an object box" in text and "whole frame" in text
    assert Image.open(pic).size[0] > SIZE
    assert _cli(["inspect", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert "coverage" in summary
    # the mixable shares: the 4 readable samples' masks through the mixup rules, computed here directly
    from objaug.functional.mixup import largest_strip, object_rectangles
    from objaug.masks import otsu_thresholds

    store = ObjectStore(out)
    ok = torch.from_numpy(np.flatnonzero(~store.is_skipped(torch.arange(len(store))).numpy()))
    masks = store.get_batch(ok).masks.float()
    h, w = masks.shape[-2:]
    for key, t, fb in (("mixable_defaults", otsu_thresholds(masks), 0.9), ("mixable_paper", 0.2, None)):
        expected = float((largest_strip(object_rectangles(masks, t, fb), h, w)[1] > 0).float().mean())
        assert summary[key] == pytest.approx(expected)
    assert summary["mixable_sampled"] == 4 and "sampled masks leave a background strip" in text
    assert (tmp_path / "store_inspect.png").is_file()
    (root / "a" / "0.png").unlink()
    assert _cli(["inspect", str(out), "--data", str(root), "--no-picture"]) == 2
    assert "dataset of 6 samples" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX paths")
def test_cli_dataset_callable(tmp_path, capsys):
    f = tmp_path / "gen.py"
    f.write_text("import sys\n"
                 f"sys.path.insert(0, {os.path.dirname(__file__)!r})\n"
                 "from test_precompute import Blobs\n"
                 "def make():\n    return Blobs(10)\n")
    out = tmp_path / "store"
    assert _cli(["precompute", "--dataset", f"{f}:make", "--arch", "tiny_resnet", "--random-init", "--out", str(out),
                 "--iters", "1", "--batch-size", "5", "--image-size", str(SIZE), "--workers", "0",
                 "--no-progress", "--device", "cpu"]) == 0
    store = ObjectStore(out, dataset=Blobs(10))
    assert len(store) == 10 and store.mask_size == (56, 56)
    assert store.manifest["dataset"]["kind"] == "callable"
    assert _cli(["inspect", str(out), "--dataset", f"{f}:make", "--no-picture"]) == 0
