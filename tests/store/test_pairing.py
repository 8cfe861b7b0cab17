"""A store pairs with the folder it was made from, whichever wrapper reads it; real mismatches say how to fix.

Also the cheap integrity checks on reads: the per-record CRC-32 and the small arrays' CRC-32.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from objaug.store import ImageFolderFiles, ObjectStore, StoreMismatchError, dataset_fingerprint
from objaug.store.format import StoreIncompleteError
from objaug.store.precompute import precompute
from objaug.tools.archs import tiny_resnet

KW = dict(batch_size=4, image_size=32, mask_size=8, shard_size=4, progress=False, num_workers=0)


def _folder(root, names):
    rng = np.random.default_rng(0)
    for i, name in enumerate(names):
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (20 + i, 24, 3), dtype=np.uint8)).save(p)
    return root


NAMES = ["cat/a.png", "cat/b.png", "cat/c.png", "dog/d.png", "dog/e.png", "dog/f.png"]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = _folder(tmp_path_factory.mktemp("photos"), NAMES)
    torch.manual_seed(0)
    out = root.parent / "store"
    precompute(ImageFolderFiles(root), tiny_resnet(width=8), out, **KW)  # what `objaug precompute --data` does
    return root, out


class _Reversed(torch.utils.data.Dataset):
    def __init__(self, root):
        self.root, self.samples = str(root), [(str(root / n), 0) for n in reversed(NAMES)]

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return Image.open(self.samples[i][0]), 0


def test_the_same_folder_pairs_whichever_wrapper_reads_it(made):
    torchvision = pytest.importorskip("torchvision")
    root, out = made
    wrappers = [ImageFolderFiles(root), torchvision.datasets.ImageFolder(str(root))]
    lightly = pytest.importorskip("lightly.data")
    wrappers.append(lightly.LightlyDataset(str(root)))
    from objaug.integrations.lightly.dataset import ObjectAwareDataset

    fingerprints = {dataset_fingerprint(d) for d in wrappers}
    assert len(fingerprints) == 1
    for d in wrappers:
        ObjectStore(out, dataset=d)  # no StoreMismatchError
        ObjectAwareDataset(d, ObjectStore(out))  # checked by default
    assert ObjectAwareDataset(wrappers[2], ObjectStore(out)).objaug_fingerprint() in fingerprints


def test_real_mismatches_are_refused_with_the_fix(made, tmp_path):
    from objaug.integrations.lightly.dataset import ObjectAwareDataset

    root, out = made
    with pytest.raises(StoreMismatchError, match="same 6 files in another order.*ImageFolderFiles"):
        ObjectAwareDataset(_Reversed(root), ObjectStore(out))
    short = ImageFolderFiles(_folder(tmp_path / "few", NAMES[:3]))
    with pytest.raises(StoreMismatchError, match=r"6 samples.*has 3\. Pair it with the dataset.*--overwrite"):
        ObjectAwareDataset(short, ObjectStore(out))
    other = ImageFolderFiles(_folder(tmp_path / "other", [n.replace(".png", "x.png") for n in NAMES]))
    with pytest.raises(StoreMismatchError, match="another dataset"):
        ObjectStore(out, dataset=other)
    ObjectAwareDataset(short, ObjectStore(out), check_store=False)  # the opt-out


def test_store_path_must_be_a_path():
    with pytest.raises(TypeError, match="path must be a directory path.*int"):
        ObjectStore(123)  # type: ignore[arg-type]


def test_damaged_records_and_arrays_are_refused_on_read(made, tmp_path):
    import shutil

    _, out = made
    copy = tmp_path / "s"
    shutil.copytree(out, copy)
    shard = copy / "shards" / "00000.bin"
    store = ObjectStore(copy)
    header = store._shard(0).header
    off, _, _ = header.array_range("masks")
    store.close()
    raw = bytearray(shard.read_bytes())
    raw[off + 1] ^= 0x01  # inside the first mask record: no size change, so only the CRC can tell
    shard.write_bytes(bytes(raw))
    store = ObjectStore(copy)  # opening checks sizes only
    with pytest.raises(StoreIncompleteError, match="sample 0 does not match its CRC-32"):
        store.get(0)
    raw[off + 1] ^= 0x01
    boxes_off, _, _ = header.array_range("boxes")
    raw[boxes_off + 2] ^= 0x01
    shard.write_bytes(bytes(raw))
    with pytest.raises(StoreIncompleteError, match="boxes array does not match its CRC-32"):
        ObjectStore(copy).get(1)
