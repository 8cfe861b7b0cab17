"""Tests for the object store format, writer and reader (no model involved).

Stores are written here from known arrays with the writer's own functions, and read back with
:class:`objaug.store.ObjectStore`; the mask codec is checked against a per-pixel reference.
"""

from __future__ import annotations

import json
import os
import pickle
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from objaug.store.format import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    StoreError,
    StoreIncompleteError,
    StoreMismatchError,
    StoreVersionError,
    canonical_json,
    decode_masks,
    encode_masks,
    encode_shard,
    read_manifest,
    read_shard_header,
    shard_name,
)
from objaug.store.reader import ObjectStore
from objaug.store.writer import finalize_manifest, write_pending_manifest, write_shard


def _residual_reference(x: np.ndarray) -> np.ndarray:
    """Per-pixel gradient predictor residual (the definition), slow."""
    h, w = x.shape
    r = np.zeros_like(x)
    for i in range(h):
        for j in range(w):
            up = int(x[i - 1, j]) if i else 0
            left = int(x[i, j - 1]) if j else 0
            ul = int(x[i - 1, j - 1]) if i and j else 0
            r[i, j] = (int(x[i, j]) - up - left + ul) % 256
    return r


def smooth_blobs(n: int, size: int = 56, seed: int = 0) -> np.ndarray:
    """Realistic CAM-like soft masks: max of 1-3 Gaussian blobs on a coarse 7x7 grid plus a little
    noise, bicubically upsampled to 224 (as ContraCAM upsamples a ResNet's layer4 map), min-max
    normalised, area-downsampled to ``size`` as precompute does, as uint8. Batched."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 7), torch.linspace(0, 1, 7), indexing="ij")
    count = torch.randint(1, 4, (n, 1, 1), generator=g)
    m = torch.zeros(n, 7, 7)
    for j in range(3):
        cy, cx = (torch.rand(2, n, 1, 1, generator=g) * 0.8 + 0.1).unbind(0)
        s = torch.rand(n, 1, 1, generator=g) * 0.2 + 0.08
        blob = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
        m = torch.where(count > j, torch.maximum(m, blob), m)
    m = m + 0.05 * torch.rand(n, 7, 7, generator=g)
    up = F.interpolate(m[:, None], size=(224, 224), mode="bicubic", align_corners=False)
    lo, hi = up.amin((2, 3), keepdim=True), up.amax((2, 3), keepdim=True)
    up = (up - lo) / (hi - lo + 1e-20)
    small = F.interpolate(up, size=(size, size), mode="area")
    return (small.clamp(0, 1) * 255).round().to(torch.uint8)[:, 0].numpy()


# ---------------------------------------------------------------------------------------------- codec


def test_codec_residual_matches_reference_and_round_trips():
    rng = np.random.default_rng(0)
    masks = np.concatenate([
        rng.integers(0, 256, (3, 9, 7), dtype=np.uint8),  # noise: worst case
        smooth_blobs(2, size=9)[:, :, :7],
        np.zeros((1, 9, 7), np.uint8), np.full((1, 9, 7), 255, np.uint8),
    ])
    from objaug.store.format import _gradient_residual

    res = _gradient_residual(masks)
    for x, r in zip(masks, res, strict=True):
        np.testing.assert_array_equal(r, _residual_reference(x))
    blob, offsets = encode_masks(masks)
    assert offsets.dtype == np.uint64 and offsets[0] == 0 and offsets[-1] == len(blob)
    records = [blob[int(a):int(b)] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    # each record is plain raw deflate of the residual
    for rec, r in zip(records, res, strict=True):
        assert zlib.decompress(rec, -15) == r.tobytes()
    np.testing.assert_array_equal(decode_masks(records, (9, 7)), masks)
    # any subset, any order
    np.testing.assert_array_equal(decode_masks([records[4], records[0], records[4]], (9, 7)), masks[[4, 0, 4]])
    assert decode_masks([], (9, 7)).shape == (0, 9, 7)


def test_codec_damaged_record_raises():
    blob, offsets = encode_masks(smooth_blobs(2, size=16))
    with pytest.raises(StoreError, match="damaged"):
        decode_masks([b"\xff\x00garbage"], (16, 16))
    with pytest.raises(StoreError, match="damaged"):
        decode_masks([blob[: int(offsets[1]) // 2]], (16, 16))


def test_bytes_per_image_on_smooth_cam_masks_under_1_5_kb(tmp_path):
    """Target: <= 1.5 KB per image with 56x56 masks and 4 boxes, everything in the shard counted."""
    n = 256
    masks = smooth_blobs(n, 56, seed=3)
    data = encode_shard(index=0, start=0, boxes=np.zeros((n, 4, 4), np.float32), valid=np.zeros((n, 4), bool),
                        status=np.zeros(n, np.uint8), masks=masks, skipped=[])
    per_image = len(data) / n
    assert per_image <= 1536, per_image
    raw = 56 * 56 + 4 * 4 * 4 + 4
    assert per_image < 0.5 * raw


# ---------------------------------------------------------------------------------------------- shards


def test_shard_layout_aligned_and_header_checked(tmp_path):
    n, k = 5, 3
    rng = np.random.default_rng(1)
    boxes = rng.random((n, k, 4), dtype=np.float32)
    valid = rng.random((n, k)) > 0.5
    data = encode_shard(index=7, start=70, boxes=boxes, valid=valid, status=np.zeros(n, np.uint8),
                        masks=smooth_blobs(n, 12), skipped=[{"index": 72, "error": "OSError: x"}])
    assert data == encode_shard(index=7, start=70, boxes=boxes, valid=valid, status=np.zeros(n, np.uint8),
                                masks=smooth_blobs(n, 12), skipped=[{"index": 72, "error": "OSError: x"}])
    (tmp_path / "shards").mkdir()
    write_shard(tmp_path, data, 7)
    assert not list((tmp_path / "shards").glob("*.partial"))
    h = read_shard_header(tmp_path / shard_name(7))
    assert (h.index, h.start, h.count, h.max_boxes, h.mask_size) == (7, 70, n, k, (12, 12))
    assert h.data_start % 64 == 0
    for name in ("boxes", "valid", "status", "offsets", "masks"):
        assert h.array_range(name)[0] % 64 == 0
    off, dtype, shape = h.array_range("boxes")
    np.testing.assert_array_equal(np.frombuffer(data[off:off + boxes.nbytes], dtype).reshape(shape), boxes)
    # truncated file / bad magic / unknown version
    p = tmp_path / "bad.bin"
    p.write_bytes(data[:-10])
    with pytest.raises(StoreIncompleteError, match="truncated"):
        read_shard_header(p)
    p.write_bytes(b"NOTSHARD" + data[8:])
    with pytest.raises(StoreIncompleteError, match="not an objaug shard"):
        read_shard_header(p)
    p.write_bytes(data.replace(b'"version":1', b'"version":9'))
    with pytest.raises(StoreVersionError):
        read_shard_header(p)


# ---------------------------------------------------------------------------------------------- stores


class _Data:
    """Known per-sample content of a hand-written store."""

    def __init__(self, n: int, k: int, mask: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        xy = rng.random((n, k, 2), dtype=np.float32) * 0.5
        self.boxes = np.concatenate([xy, xy + 0.4], axis=2).astype(np.float32)
        self.valid = rng.random((n, k)) > 0.4
        self.masks = smooth_blobs(n, mask, seed=seed)
        self.status = np.zeros(n, np.uint8)
        self.status[[i for i in (3, n - 1) if i < n]] = 1


class _ListDataset(Dataset):
    def __init__(self, n: int, fingerprint: str) -> None:
        self.n = n
        self.objaug_fingerprint = fingerprint

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.zeros(3, 4, 4)


def make_store(path: Path, n: int = 23, k: int = 3, mask: int = 20, shard_size: int = 8) -> _Data:
    """Write a complete store of ``n`` samples with the writer's functions; returns its content."""
    d = _Data(n, k, mask)
    num = -(-n // shard_size)
    manifest = {
        "dataset": {"fingerprint": "test:abc", "length": n, "kind": "test"},
        "format": "objaug-store", "version": FORMAT_VERSION, "objaug_version": "test",
        "layout": {"mask_codec": "gradient-deflate", "mask_size": [mask, mask], "max_boxes": k, "num_shards": num,
                   "shard_pattern": "shards/{index:05d}.bin", "shard_size": shard_size},
        "model": {"weights": "sha256:0"}, "settings": {"image_size": 32},
    }
    path.mkdir(parents=True, exist_ok=True)
    write_pending_manifest(path, manifest)
    for s in range(num):
        a, b = s * shard_size, min(n, (s + 1) * shard_size)
        skipped = [{"index": i, "error": "OSError: broken"} for i in range(a, b) if d.status[i]]
        data = encode_shard(index=s, start=a, boxes=d.boxes[a:b], valid=d.valid[a:b], status=d.status[a:b],
                            masks=d.masks[a:b], skipped=skipped)
        write_shard(path, data, s)
    finalize_manifest(path, manifest)
    return d


def test_round_trip_get_and_get_batch(tmp_path):
    d = make_store(tmp_path / "s")
    store = ObjectStore(tmp_path / "s")
    assert len(store) == 23 and store.max_boxes == 3 and store.mask_size == (20, 20)
    for i in (0, 7, 8, 22):
        boxes, valid, mask = store[i]
        np.testing.assert_array_equal(boxes.numpy(), d.boxes[i])
        np.testing.assert_array_equal(valid.numpy(), d.valid[i])
        assert mask.shape == (1, 20, 20) and mask.dtype == torch.float32
        np.testing.assert_allclose(mask[0].numpy(), d.masks[i] / 255.0, atol=1e-7)
    idx = torch.tensor([22, 0, 9, 9, 16, 3])  # across shards, repeats, any order
    b = store.get_batch(idx)
    assert b.boxes.shape == (6, 3, 4) and b.valid.dtype == torch.bool and b.masks.shape == (6, 1, 20, 20)
    np.testing.assert_array_equal(b.boxes.numpy(), d.boxes[idx.numpy()])
    np.testing.assert_array_equal(b.valid.numpy(), d.valid[idx.numpy()])
    np.testing.assert_allclose(b.masks[:, 0].numpy(), d.masks[idx.numpy()] / 255.0, atol=1e-7)
    # resized on request (bilinear), equal to resizing the stored mask
    r = store.get_batch([5, 6], mask_size=(40, 30)).masks
    ref = F.interpolate(torch.from_numpy(d.masks[[5, 6]]).float()[:, None] / 255, size=(40, 30), mode="bilinear",
                        align_corners=False)
    torch.testing.assert_close(r, ref.clamp(0, 1))
    assert store.get(5, mask_size=10).mask.shape == (1, 10, 10)
    # empty batch, numpy / list indexes, skipped flags
    assert store.get_batch(torch.zeros(0, dtype=torch.long)).masks.shape == (0, 1, 20, 20)
    assert store.is_skipped(np.array([3, 4, 22])).tolist() == [True, False, True]
    assert [e["index"] for e in store.skipped] == [3, 22]
    s = store.summary
    assert s["skipped"] == 2 and s["ok"] == 21
    ok = d.status == 0
    assert s["with_box"] == int((d.valid.any(1) & ok).sum())
    assert s["coverage"] == pytest.approx(s["with_box"] / 21)
    allb = store.all_boxes()
    np.testing.assert_array_equal(allb.boxes.numpy(), d.boxes)
    assert "ObjectStore(" in repr(store)


def test_bad_indexes(tmp_path):
    make_store(tmp_path / "s")
    store = ObjectStore(tmp_path / "s")
    with pytest.raises(IndexError, match="out of range"):
        store[23]
    with pytest.raises(IndexError, match="out of range"):
        store.get_batch(torch.tensor([0, -1]))
    with pytest.raises(TypeError):
        store.get_batch(torch.tensor([0.5]))
    with pytest.raises(TypeError):
        store.get_batch(torch.tensor([True]))
    with pytest.raises(ValueError, match="1-D"):
        store.get_batch(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(TypeError):
        store.get("3")  # type: ignore[arg-type]
    assert store.get(torch.tensor(3)).boxes.shape == (3, 4)


def test_missing_incomplete_version_and_damage(tmp_path):
    with pytest.raises(FileNotFoundError, match="No object store"):
        ObjectStore(tmp_path / "nothing")
    make_store(tmp_path / "s")
    man = json.loads((tmp_path / "s" / MANIFEST_NAME).read_text())
    # unknown (newer) version
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / MANIFEST_NAME).write_text(json.dumps({**man, "version": FORMAT_VERSION + 1}))
    with pytest.raises(StoreVersionError, match="Upgrade objaug"):
        ObjectStore(tmp_path / "v")
    # incomplete
    (tmp_path / "i").mkdir()
    (tmp_path / "i" / MANIFEST_NAME).write_bytes(canonical_json({**man, "complete": False}))
    with pytest.raises(StoreIncompleteError, match="resume"):
        ObjectStore(tmp_path / "i")
    assert read_manifest(tmp_path / "i", require_complete=False)["complete"] is False
    # not JSON
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / MANIFEST_NAME).write_text("{oops")
    with pytest.raises(StoreError, match="not valid JSON"):
        ObjectStore(tmp_path / "j")
    # a damaged shard (same size): caught by verify, not by the size check
    shard = tmp_path / "s" / shard_name(1)
    raw = bytearray(shard.read_bytes())
    raw[-5] ^= 0xFF
    shard.write_bytes(bytes(raw))
    ObjectStore(tmp_path / "s")
    with pytest.raises(StoreIncompleteError, match="checksums"):
        ObjectStore(tmp_path / "s", verify=True)
    # a missing shard
    shard.unlink()
    with pytest.raises(StoreIncompleteError, match="missing"):
        ObjectStore(tmp_path / "s")


def test_dataset_check(tmp_path):
    make_store(tmp_path / "s")
    ObjectStore(tmp_path / "s", dataset=_ListDataset(23, "test:abc"))
    with pytest.raises(StoreMismatchError, match="23 samples"):
        ObjectStore(tmp_path / "s", dataset=_ListDataset(24, "test:abc"))
    with pytest.raises(StoreMismatchError, match="another dataset"):
        ObjectStore(tmp_path / "s", dataset=_ListDataset(23, "test:xyz"))


class _StoreDataset(Dataset):
    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, i: int):
        boxes, valid, mask = self.store[i]
        return i, boxes, valid, mask, os.getpid()


def test_readers_in_dataloader_workers(tmp_path):
    d = make_store(tmp_path / "s")
    store = ObjectStore(tmp_path / "s")
    store[0]  # maps opened in the parent before the fork: the workers must not reuse them
    parent_maps = dict(store._shards)
    assert parent_maps
    loader = DataLoader(_StoreDataset(store), batch_size=5, num_workers=2, shuffle=False)
    seen = []
    pids = set()
    for idx, boxes, valid, masks, pid in loader:
        np.testing.assert_array_equal(boxes.numpy(), d.boxes[idx.numpy()])
        np.testing.assert_array_equal(valid.numpy(), d.valid[idx.numpy()])
        np.testing.assert_allclose(masks[:, 0].numpy(), d.masks[idx.numpy()] / 255.0, atol=1e-7)
        seen += idx.tolist()
        pids |= set(pid.tolist())
    assert sorted(seen) == list(range(23))
    assert os.getpid() not in pids and len(pids) == 2
    assert store._shards.keys() == parent_maps.keys()  # parent state untouched
    # pickling (spawn workers) drops the maps; the copy reopens lazily
    copy = pickle.loads(pickle.dumps(store))
    assert copy._shards == {} and copy._pid is None
    np.testing.assert_array_equal(copy[9].boxes.numpy(), d.boxes[9])


def test_get_batch_is_vectorised_fast(tmp_path):
    """Not a timing assertion: get_batch touches each shard once per batch (no per-sample shard lookups)."""
    make_store(tmp_path / "s", n=64, shard_size=16)
    store = ObjectStore(tmp_path / "s")
    calls = []
    orig = store._shard

    def counting(s: int):
        calls.append(s)
        return orig(s)

    store._shard = counting  # type: ignore[method-assign]
    store.get_batch(torch.arange(64).flip(0))
    assert sorted(calls) == [0, 1, 2, 3]
