"""ObjectAwareDataset: boxes and masks attached by index to Lightly and torchvision datasets."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytest.importorskip("lightly")

import PIL.Image  # noqa: E402
from lightly.data import LightlyDataset  # noqa: E402
from lightly.transforms.torchvision_v2_compatibility import torchvision_transforms as T  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from objaug.integrations.lightly.dataset import ObjectAwareDataset, unpack_objects  # noqa: E402
from objaug.integrations.lightly.simclr_transform import ObjectAwareSimCLRTransform  # noqa: E402

N, H, W = 6, 32, 40
PLAIN = dict(cj_prob=0.0, random_gray_scale=0.0, gaussian_blur=0.0, normalize=None)


class Scenes(Dataset):
    """torchvision-style (PIL image, target): image i is blue with a red square at a known place."""

    def __init__(self, transform=None):
        self.transform = transform
        self.boxes = torch.tensor([[(i * 4) / W, 4 / H, (i * 4 + 12) / W, 20 / H] for i in range(N)])

    def __len__(self):
        return N

    def __getitem__(self, i):
        a = np.zeros((H, W, 3), np.uint8)
        a[...] = (0, 0, 255)
        a[4:20, i * 4:i * 4 + 12] = (255, 0, 0)
        img = PIL.Image.fromarray(a)
        return (self.transform(img) if self.transform else img), i % 2


class Store:
    """An in-memory stand-in for objaug.store.ObjectStore (get / get_batch)."""

    def __init__(self, boxes, valid, masks=None):
        self.boxes, self.valid, self.masks = boxes, valid, masks

    def get(self, index):
        return self.boxes[index], self.valid[index], None if self.masks is None else self.masks[index]

    def get_batch(self, indexes):
        return self.boxes[indexes], self.valid[indexes], None if self.masks is None else self.masks[indexes]


def red_only(view: torch.Tensor) -> bool:
    return torch.allclose(view, torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1))


def test_views_from_in_memory_boxes_keep_the_target():
    torch.manual_seed(0)
    base = Scenes()
    ds = ObjectAwareDataset(base, boxes=base.boxes[:, None], transform=ObjectAwareSimCLRTransform(16, **PLAIN))
    for i in range(N):
        views, target = ds[i]
        assert len(views) == 2 and all(red_only(v) for v in views) and target == i % 2
    batch = next(iter(DataLoader(ds, batch_size=3)))
    (x0, x1), targets = batch[0], batch[1]  # Lightly's loops: views = batch[0]
    assert x0.shape == x1.shape == (3, 3, 16, 16) and targets.tolist() == [0, 1, 0]


def test_lightly_dataset_and_a_store_with_masks_and_index():
    torch.manual_seed(1)
    base = Scenes()
    masks = torch.zeros(N, 1, H, W)
    for i in range(N):
        masks[i, :, 4:20, i * 4:i * 4 + 12] = 1.0
    store = Store(base.boxes[:, None], torch.ones(N, 1, dtype=torch.bool), masks)
    lightly_ds = LightlyDataset.from_torch_dataset(base)
    t = ObjectAwareSimCLRTransform(16, return_masks=True, **PLAIN)
    ds = ObjectAwareDataset(lightly_ds, store, transform=t, return_index=True)
    (views, view_masks), target, filename, index = ds[4]
    assert all(red_only(v) for v in views) and all(torch.equal(m, torch.ones(1, 16, 16)) for m in view_masks)
    assert target == 0 and isinstance(filename, str) and index == 4
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch[0][0][0].shape == (2, 3, 16, 16) and batch[0][1][0].shape == (2, 1, 16, 16)
    assert batch[-1].tolist() == [0, 1]


def test_plain_transform_collates_objects_for_the_device_path():
    base = Scenes()
    valid = torch.ones(N, 2, dtype=torch.bool)
    valid[:, 1] = False
    ds = ObjectAwareDataset(base, boxes=torch.cat([base.boxes[:, None], torch.zeros(N, 1, 4)], 1), valid=valid,
                            transform=T.ToTensor(), return_index=True)
    images, targets, objects, indexes = next(iter(DataLoader(ds, batch_size=4)))
    assert images.shape == (4, 3, H, W) and images.dtype == torch.float32 and images.max() <= 1
    assert objects["boxes"].shape == (4, 2, 4) and objects["valid"].shape == (4, 2)
    assert not objects["valid"][:, 1].any() and indexes.tolist() == [0, 1, 2, 3]


def test_unpack_objects_accepts_tuples_mappings_and_attributes():
    b, v, m = torch.zeros(2, 4), torch.ones(2, dtype=torch.bool), torch.zeros(1, 4, 4)
    assert unpack_objects((b, v))[2] is None
    assert unpack_objects({"boxes": b, "valid": v, "masks": m})[2] is m
    assert unpack_objects(SimpleNamespace(boxes=b, valid=v))[0] is b
    with pytest.raises(TypeError, match="boxes"):
        unpack_objects(b)


def test_bad_input_gives_clear_errors():
    base = Scenes()
    with pytest.raises(ValueError, match="needs the objects"):
        ObjectAwareDataset(base)
    with pytest.raises(ValueError, match="holds 5 images"):
        ObjectAwareDataset(base, boxes=torch.zeros(5, 1, 4))
    with pytest.raises(ValueError, match=r"\(N, K, 4\)"):
        ObjectAwareDataset(base, boxes=torch.zeros(N, 4))
    with pytest.raises(ValueError, match="valid"):
        ObjectAwareDataset(base, boxes=torch.zeros(N, 1, 4), valid=torch.ones(N, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="not both"):
        ObjectAwareDataset(base, Store(None, None), boxes=torch.zeros(N, 1, 4))
    with pytest.raises(TypeError, match="get"):
        ObjectAwareDataset(base, objects=[1, 2])
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        ObjectAwareDataset(base, masks=torch.zeros(N, H, W))
    # A dataset that already applies Lightly's multi-view transform:
    from lightly.transforms.simclr_transform import SimCLRTransform

    ds = ObjectAwareDataset(Scenes(transform=SimCLRTransform(8)), boxes=torch.zeros(N, 1, 4),
                            transform=ObjectAwareSimCLRTransform(8))
    with pytest.raises(TypeError, match="transform=None"):
        ds[0]
    with pytest.raises(TypeError, match=r"\(image, target"):
        ObjectAwareDataset([{"image": torch.zeros(3, 4, 4)}], boxes=torch.zeros(1, 1, 4))[0]
    # A dataset without boxes given to a transform that needs them:
    with pytest.raises(ValueError, match="ObjectAwareDataset"):
        ObjectAwareSimCLRTransform(8)(Scenes()[0][0])


def test_low_resolution_store_masks_are_resized_to_the_image():
    """Stores keep masks small (e.g. 56 px): they are resized bilinearly to the image before the crop."""
    from typing import NamedTuple

    class Item(NamedTuple):  # like objaug.store's StoreItem
        boxes: torch.Tensor
        valid: torch.Tensor
        mask: torch.Tensor

    class SmallMaskStore:
        def get(self, index):
            return Item(torch.zeros(0, 4), torch.zeros(0, dtype=torch.bool), torch.full((1, 8, 10), 0.25))

    ds = ObjectAwareDataset(Scenes(), SmallMaskStore(), transform=ObjectAwareSimCLRTransform(16, return_masks=True))
    views, masks = ds[0][0]
    assert all(torch.allclose(m, torch.full((1, 16, 16), 0.25)) for m in masks)
    plain = ObjectAwareDataset(Scenes(), SmallMaskStore(), transform=T.ToTensor())
    assert plain[0][-1]["masks"].shape == (1, H, W)


def test_a_real_object_store_on_both_paths(tmp_path):
    """objaug's ObjectStore (precomputed with a tiny model) feeds the dataset wrapper and the device step."""
    from objaug.augment.views import simclr_views
    from objaug.integrations.lightly.device_step import ObjectAwareStep
    from objaug.store import ObjectStore
    from objaug.store.precompute import precompute
    from objaug.tools.archs import tiny_resnet

    torch.manual_seed(2)
    base = Scenes()
    tensors = torch.utils.data.TensorDataset(torch.stack([T.ToTensor()(base[i][0]) for i in range(N)]),
                                             torch.zeros(N))
    precompute(tensors, tiny_resnet(), tmp_path / "store", batch_size=N, image_size=H, mask_size=8,
               shard_size=4, num_workers=0, progress=False)
    store = ObjectStore(tmp_path / "store")
    with pytest.raises(ValueError, match="check_store=False"):  # made from tensors, read as PIL: told apart
        ObjectAwareDataset(base, store)
    ds = ObjectAwareDataset(base, store, transform=ObjectAwareSimCLRTransform(16, return_masks=True),
                            return_index=True, check_store=False)  # the same images, decoded differently
    (views, masks), target, index = ds[3]
    assert [v.shape for v in views] == [(3, 16, 16)] * 2 and [m.shape for m in masks] == [(1, 16, 16)] * 2
    step = ObjectAwareStep(simclr_views(16), store=store)
    images = tensors.tensors[0][:4]
    x0, x1 = step(images, indexes=torch.tensor([5, 0, 2, 3]))
    assert x0.shape == (4, 3, 16, 16)
    expected = store.get_batch([5, 0, 2, 3])
    assert torch.equal(step.last_objects.boxes, expected.boxes)
    assert torch.equal(step.last_objects.valid, expected.valid)
