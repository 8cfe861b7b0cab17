"""objaug's objects for Lightly's DetCon: label maps, ObjectMaskDataset and CAMMaskFn (with Lightly's own
DetConSTransform and DetConSLoss)."""

from __future__ import annotations

import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

pytest.importorskip("lightly")

from lightly.loss import DetConSLoss  # noqa: E402
from lightly.models.utils import pool_masked  # noqa: E402
from lightly.transforms import DetConSTransform  # noqa: E402
from torchvision import tv_tensors  # noqa: E402

from objaug import ContraCAM, boxes_from_steps  # noqa: E402
from objaug.config import BoxConfig, CamConfig  # noqa: E402
from objaug.integrations.lightly import CAMMaskFn, ObjectMaskDataset, object_label_map  # noqa: E402
from objaug.tools.archs import demo_backbone  # noqa: E402
from objaug.tools.synthetic import make_scenes  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

# geometry only, and a crop of the whole image (area 1.0 always falls back to the whole frame)
WHOLE = dict(min_scale=1.0, hf_prob=0.0, cj_prob=0.0, random_gray_scale=0.0, gaussian_blur_t1=0.0, normalize=None)


def reference_labels(boxes, valid, h, w, mask=None, threshold=0.5):
    """Per pixel, per box: the smallest valid box whose [x1, x2) x [y1, y2) holds the pixel centre (and whose
    mask value there is >= threshold) gives label slot + 1; else 0."""
    out = torch.zeros(1, h, w, dtype=torch.int64)
    for i in range(h):
        for j in range(w):
            cx, cy = (j + 0.5) / w, (i + 0.5) / h
            best, best_area = 0, float("inf")
            for k, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
                if not valid[k] or not (x1 <= cx < x2 and y1 <= cy < y2):
                    continue
                if mask is not None and float(mask[0, i, j]) < threshold:
                    continue
                area = (x2 - x1) * (y2 - y1)
                if area < best_area:
                    best, best_area = k + 1, area
            out[0, i, j] = best
    return out


def random_boxes(g, b, k):
    a, c = torch.rand(b, k, 2, generator=g), torch.rand(b, k, 2, generator=g)
    return torch.cat([torch.minimum(a, c), torch.maximum(a, c)], dim=-1)


def test_label_map_matches_the_per_pixel_reference():
    g = torch.Generator().manual_seed(0)
    boxes = random_boxes(g, 3, 4)
    valid = torch.rand(3, 4, generator=g) > 0.3
    masks = torch.rand(3, 1, 12, 16, generator=g)
    got = object_label_map(boxes, valid, (12, 16))
    got_masked = object_label_map(boxes, valid, (12, 16), masks=masks, threshold=0.4)
    assert got.dtype == torch.int64 and got.shape == (3, 1, 12, 16)
    for i in range(3):
        assert torch.equal(got[i], reference_labels(boxes[i], valid[i], 12, 16))
        assert torch.equal(got_masked[i], reference_labels(boxes[i], valid[i], 12, 16, masks[i], 0.4))
    one = object_label_map(boxes[0], valid[0], (12, 16))  # one image: (K, 4) -> (1, H, W)
    assert torch.equal(one, got[0])


def test_label_map_nested_box_keeps_its_label():
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.25, 0.25, 0.75, 0.75]])
    labels = object_label_map(boxes, None, (4, 4))[0]
    assert labels.tolist() == [[1, 1, 1, 1], [1, 2, 2, 1], [1, 2, 2, 1], [1, 1, 1, 1]]


@pytest.mark.parametrize("bad, match", [(dict(threshold=0.0), "threshold"), (dict(size=(0, 4)), "size"),
                                        (dict(masks=torch.zeros(1, 1, 3, 3)), "Resize the masks")])
def test_label_map_refuses_bad_arguments(bad, match):
    args = dict(boxes=torch.zeros(1, 2, 4), valid=None, size=(4, 4)) | {k: v for k, v in bad.items() if k == "size"}
    with pytest.raises(ValueError, match=match):
        object_label_map(**args, **{k: v for k, v in bad.items() if k != "size"})


def scenes_dataset(n=4):
    s = make_scenes(n, size=32, max_objects=3, seed=1)
    return s, torch.utils.data.TensorDataset(s.images, s.labels[:, 0])


def test_mask_dataset_feeds_detcon_transform():
    s, base = scenes_dataset()
    plain = ObjectMaskDataset(base, boxes=s.boxes, valid=s.valid, masks=s.masks.float())
    (image, mask), target = plain[2]
    assert isinstance(mask, tv_tensors.Mask) and mask.dtype == torch.int64 and mask.shape == (1, 32, 32)
    assert torch.equal(mask.as_subclass(torch.Tensor), reference_labels(s.boxes[2], s.valid[2], 32, 32,
                                                                         s.masks[2].float()))
    assert torch.equal(image, s.images[2]) and target == s.labels[2, 0]
    # through Lightly's own DetConSTransform: both views carry the same labels, resized with the image
    dataset = ObjectMaskDataset(base, boxes=s.boxes, valid=s.valid, masks=s.masks.float(),
                                transform=DetConSTransform(input_size=16, **WHOLE), return_index=True)
    views, target, index = dataset[2]
    (x0, m0), (x1, m1) = views
    assert x0.shape == (3, 16, 16) and index == 2
    expected = F.interpolate(mask[None].float(), size=(16, 16), mode="nearest").long()[0]  # v2 resizes masks so
    assert torch.equal(m0.as_subclass(torch.Tensor), m1.as_subclass(torch.Tensor))
    assert torch.equal(m0.as_subclass(torch.Tensor), expected)
    assert set(m0.unique().tolist()) <= set(mask.unique().tolist())


def test_mask_dataset_reads_a_store_and_batches_train_detcon_loss():
    s, base = scenes_dataset(4)

    class Store:  # what ObjectStore.get returns: boxes (K, 4), valid (K,), masks (1, h, w) at a lower resolution
        def get(self, index):
            return s.boxes[index], s.valid[index], F.avg_pool2d(s.masks[index].float()[None], 2)[0]

        def __len__(self):
            return 4

    dataset = ObjectMaskDataset(base, Store(), transform=DetConSTransform(input_size=16, min_scale=0.5))
    (x0, m0), (x1, m1) = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4)))[0]
    assert x0.shape == (4, 3, 16, 16) and m0.shape == (4, 1, 16, 16) and m0.dtype == torch.int64
    features = torch.randn(4, 8, 16, 16, requires_grad=True)
    ids = torch.zeros(4, 2, dtype=torch.int64)
    ids[:, 1] = m0.flatten(1).amax(1)
    v0 = pool_masked(features, m0[:, 0], 4).transpose(1, 2).gather(1, ids[..., None].expand(-1, -1, 8))
    v1 = pool_masked(features, m1[:, 0], 4).transpose(1, 2).gather(1, ids[..., None].expand(-1, -1, 8))
    loss = DetConSLoss(gather_distributed=False)(v0, v1, ids, ids)
    loss.backward()
    assert torch.isfinite(loss) and features.grad is not None


def test_mask_dataset_needs_boxes():
    _, base = scenes_dataset()
    with pytest.raises(ValueError, match="needs each image's boxes"):
        ObjectMaskDataset(base, masks=torch.zeros(4, 1, 32, 32))


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(*list(demo_backbone(width=8).children())[:-1])


def test_cam_mask_fn_matches_contracam_and_pickles():
    s = make_scenes(6, size=32, seed=2)
    model = small_model()
    modes = [m.training for m in model.modules()]
    fn = CAMMaskFn(model, negative_images=s.images[1:], box_config=BoxConfig(max_boxes=3))
    assert [m.training for m in model.modules()] == modes and all(p.requires_grad for p in model.parameters())
    labels = fn(s.images[0])
    # independent reference: ContraCAM of the original model against the same negatives
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    cam = ContraCAM(model)
    negatives = cam.embed((s.images[1:] - mean) / std)
    # the library's definition (objaug.find_objects): boxes of each iteration's map, masks the output map
    maps, steps = cam((s.images[:1] - mean) / std, negatives=negatives, return_steps=True)
    boxes, valid = boxes_from_steps(steps, max_boxes=3)
    assert labels.shape == (1, 32, 32) and labels.dtype == torch.int64
    assert torch.equal(labels, reference_labels(boxes[0], valid[0], 32, 32, maps[0]))
    clone = pickle.loads(pickle.dumps(fn))
    assert clone._cam is None and torch.equal(clone(s.images[0]), labels)
    # inside Lightly's DetConSTransform: the mask is computed once and shared by both views
    (_, m0), (_, m1) = DetConSTransform(input_size=16, mask_fn=fn, **WHOLE)(s.images[0])
    assert torch.equal(m0.as_subclass(torch.Tensor), m1.as_subclass(torch.Tensor)) and m0.shape == (1, 16, 16)


def test_cam_mask_fn_runs_in_a_dataloader_worker():
    s = make_scenes(4, size=32, seed=3)
    fn = CAMMaskFn(small_model(), negative_images=s.images)

    class Images(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return fn(s.images[i])

    ctx = "fork" if "fork" in torch.multiprocessing.get_all_start_methods() else None
    batch = next(iter(torch.utils.data.DataLoader(Images(), batch_size=2, num_workers=1, multiprocessing_context=ctx)))
    assert torch.equal(batch, torch.stack([fn(s.images[0]), fn(s.images[1])]))


def test_cam_mask_fn_refuses_at_construction():
    model = small_model()
    with pytest.raises(ValueError, match="negative_images"):
        CAMMaskFn(model)
    with pytest.raises(TypeError, match="source='attention'"):
        CAMMaskFn(model, cam_config=CamConfig(map_source="attention"))
    with pytest.raises(ValueError, match="not both"):
        CAMMaskFn(model, negatives=torch.randn(3, 128), negative_images=torch.rand(3, 3, 32, 32))
    with pytest.raises(ValueError, match="cam_size"):
        CAMMaskFn(model, negatives=torch.randn(3, 128), cam_size=0)
