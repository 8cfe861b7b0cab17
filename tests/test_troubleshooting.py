"""docs/troubleshooting.md's promises: every message its tables list (images, store, Lightly adapter) is raised.

The page's "Message (start)" cells are read; each backticked message is triggered here, and every
piece of it between ``...`` must appear in the raised error's ``"<Type>: <message>"``. A message the page
lists without a trigger here fails the test, as does a trigger whose error differs from the page.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import torch

from objaug.config import CamConfig, ScheduleConfig

PAGE = Path(__file__).resolve().parents[1] / "docs" / "troubleshooting.md"
SECTIONS = ("Images and maps", "New features: ViT sizes, negatives, flags, files", "The object store",
            "Lightly adapter")


def page_messages() -> list[str]:
    text = PAGE.read_text()
    found = []
    for section in SECTIONS:
        body = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
        for line in body.splitlines():
            if line.startswith("| `"):
                found += re.findall(r"`([^`]+)`", line.split(" | ")[0])
    return found


def _triggers(tmp: Path) -> dict[str, object]:
    from objaug import ContraCAM
    from objaug.augment.mixup import BackgroundMixup
    from objaug.augment.pipeline import ObjectAwareAugment
    from objaug.augment.views import simclr_views
    from objaug.integrations.lightly.dataset import ObjectAwareDataset
    from objaug.integrations.lightly.device_step import ObjectAwareStep
    from objaug.masks import resize_masks
    from objaug.store import ImageFolderFiles, ObjectStore, load_cam_boxes
    from objaug.store.loading import check_input_options
    from objaug.store.precompute import precompute
    from objaug.tools.archs import tiny_resnet
    from objaug.tools.viz import plot_object_aware_views

    spec = importlib.util.spec_from_file_location("_pairing", Path(__file__).parent / "store" / "test_pairing.py")
    assert spec is not None and spec.loader is not None
    pairing = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pairing)  # its folder-of-images helpers
    NAMES, KW, _folder, _Reversed = pairing.NAMES, pairing.KW, pairing._folder, pairing._Reversed

    x = torch.rand(2, 3, 32, 32)
    boxes = torch.tensor([[[0.1, 0.1, 0.5, 0.5]]] * 2)
    aug = ObjectAwareAugment(simclr_views(16))
    cam = ContraCAM(tiny_resnet(width=8))
    root = _folder(tmp / "photos", NAMES)
    precompute(ImageFolderFiles(root), tiny_resnet(width=8), tmp / "store", **KW)
    store = ObjectStore(tmp / "store")
    few = ImageFolderFiles(_folder(tmp / "few", NAMES[:2]))
    other = ImageFolderFiles(_folder(tmp / "other", [n.replace(".png", "x.png") for n in NAMES]))
    shard = tmp / "store" / "shards" / "00000.bin"

    def damaged():
        raw = bytearray(shard.read_bytes())
        raw[ObjectStore(tmp / "store")._shard(0).header.array_range("masks")[0] + 1] ^= 1
        shard.write_bytes(bytes(raw))
        ObjectStore(tmp / "store").get(0)

    images = torch.utils.data.TensorDataset(x, torch.zeros(2))
    step = ObjectAwareStep(simclr_views(16), model=tiny_resnet(width=8))

    def vit(**kw):
        timm = pytest.importorskip("timm")
        return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=32, patch_size=8,
                                 depth=2, **kw)
    sized = type("Sized", (), {"__len__": lambda self: 5, "get": lambda self, i: (boxes[0], None, None)})()

    return {
        "images must be a torch.Tensor of shape (B, C, H, W)": lambda: aug([x[0]]),
        "images must be 4-D (B, C, H, W), got shape (3, ...)": lambda: aug(x[0]),
        "images must be floating point, got torch.uint8": lambda: aug((x * 255).byte()),
        "images contains NaN or infinite values": lambda: aug(x * float("nan")),
        "images must lie in [0.0, 1.0] ... They look normalised already": lambda: aug(x - 0.5),
        "images must lie in [0.0, 1.0] ... They look like [0, 255] pixel values": lambda: aug(x * 255),
        "images must have 3 channels": lambda: aug(x[:, :1]),
        "images have 1 channels but the model's first convolution takes 3": lambda: cam(x[:, :1]),
        "images are torch.float64 but the model's weights are torch.float32": lambda: cam(x.double()),
        "masks must have shape (B, 1, H, W) ... to match the images": lambda: aug(x, masks=x[:, :1, :8]),
        "boxes must have shape (B, K, 4)": lambda: aug(x, boxes[:, 0]),
        "valid must be a bool tensor of shape (B, K)": lambda: aug(x, boxes, torch.ones(2, 1)),
        "boxes must be normalised (x1, y1, x2, y2) in [0, 1] ... They look like pixel coordinates":
            lambda: aug(x, boxes * 32),
        "boxes must satisfy x1 <= x2 and y1 <= y2": lambda: aug(x, boxes[..., [2, 3, 0, 1]]),
        "indexes must be dataset indexes in [0, ...)":
            lambda: ObjectAwareStep(simclr_views(16), model=tiny_resnet(width=8),
                                    schedule=ScheduleConfig(every_n_steps=2), num_samples=2)(
                x, indexes=torch.tensor([0, 2])),
        "views must be a list of ViewConfig, got the function simclr_views": lambda: ObjectAwareAugment(simclr_views),
        "All inputs must be on the same device as images (cpu), got boxes on meta: move them to cpu with "
        "boxes.to(images.device)": lambda: aug(x, boxes.to("meta"), torch.ones(2, 1, dtype=torch.bool)),
        "images are on cpu but the model is on cuda:0": None,  # needs two devices: tests/test_pipeline.py (CUDA)
        "indexes is on ... but images are on ...: move it to ...":
            lambda: step(x, indexes=torch.arange(2).to("meta")),
        "negatives is on ... but images are on ...":
            lambda: ObjectAwareStep(simclr_views(16), model=tiny_resnet(width=8),
                                    negatives=torch.rand(4, 256).to("meta"))(x),
        "images are ... but the Vision Transformer takes ... images": lambda: ContraCAM(vit())(x[:, :, :24, :24]),
        "images are ..., not a multiple of the Vision Transformer's ... patch":
            lambda: ContraCAM(vit(dynamic_img_size=True))(x[:, :, :30, :30]),
        "ContraCAM needs negatives: the batch's one image has no other image to contrast with, and all ... rows of "
        "negatives= are copies of it": lambda: cam(x[:1], negatives=cam.embed(x[:1])),
        "source='attention' uses no negatives and no contrastive score, so hard_negatives would have no effect":
            lambda: CamConfig(map_source="attention", hard_negatives=8),
        "hard_negatives=8 has no effect with source='attention'":
            lambda: ContraCAM(vit(), source="attention", hard_negatives=8),
        "return_steps must be a bool (True or False), got str 'yes'": lambda: cam(x, return_steps="yes"),
        "antialias=True has no effect with mode='area'":
            lambda: resize_masks(x[:, :1], 16, mode="area", antialias=True),
        "threshold must be one of 'otsu', got 'otzu'. Did you mean 'otsu'?": lambda: BackgroundMixup(threshold="otzu"),
        "load_cam_boxes(path=...): images[...] ... has the valid flags ...; they must be JSON true/false":
            lambda: load_cam_boxes(_boxes_json(tmp, "false")),
        "order[0] must be a file path (str or pathlib.Path), got int":
            lambda: load_cam_boxes(_boxes_json(tmp, True), order=[0, 1]),
        "path=... is a directory; pass a file path in it": lambda: plot_object_aware_views(x, aug, boxes, path=tmp),
        "batch_size must be an int >= 2 (ContraCAM contrasts each image with the others of its batch), got 1":
            lambda: check_input_options(batch_size=1, image_size=32, mean=(0, 0, 0), std=(1, 1, 1)),
        "No object store at ...: manifest ... is missing": lambda: ObjectStore(tmp / "nothing"),
        "StoreVersionError: ... has format version v, but this objaug reads version w": None,  # tests/store
        "StoreIncompleteError: ... is incomplete": None,  # tests/store/test_store.py
        "StoreIncompleteError: ... missing or resized shard file(s)": None,  # tests/store/test_store.py
        "do not match the checksums": None,  # tests/store/test_store.py (verify=True)
        "StoreMismatchError: The store at ... was made from a dataset of ... samples":
            lambda: ObjectStore(tmp / "store", dataset=few),
        "StoreMismatchError: ... reads the same ... files in another order":
            lambda: ObjectAwareDataset(_Reversed(root), store),
        "StoreMismatchError: ... is another dataset: the same length but other files or contents":
            lambda: ObjectStore(tmp / "store", dataset=other),
        "StoreIncompleteError: ... does not match its CRC-32": damaged,
        "index ... is out of range for a store of ... samples": lambda: store.get(99),
        "ObjectAwareDataset needs the objects of each image": lambda: ObjectAwareDataset(images),
        "Pass either objects= (a store) or boxes=/valid=/masks= tensors, not both":
            lambda: ObjectAwareDataset(images, sized, boxes=boxes),
        "boxes holds ... images but the dataset has ...": lambda: ObjectAwareDataset(images, boxes=boxes[:1]),
        "objects holds ... samples but the dataset has ...": lambda: ObjectAwareDataset(images, sized),
    }


def _boxes_json(tmp: Path, valid: object) -> Path:
    """A one-image ``boxes.json`` whose valid flag is ``valid``."""
    import json

    path = tmp / f"boxes_{valid}.json"
    path.write_text(json.dumps({"version": 1, "images": [{"file": "a.png", "boxes_norm": [[0, 0, 1, 1]],
                                                          "valid": [valid]}]}))
    return path


def test_every_message_the_page_lists_is_raised(tmp_path):
    pytest.importorskip("lightly")
    triggers = _triggers(tmp_path)
    listed = page_messages()
    assert set(listed) == set(triggers), "page and test disagree: " + repr(set(listed) ^ set(triggers))
    checked = 0
    for text, trigger in triggers.items():
        if trigger is None:
            continue  # triggered in the test named next to it
        with pytest.raises(Exception) as info:  # noqa: PT011 - the type is part of the text checked below
            trigger()
        raised = f"{type(info.value).__name__}: {info.value}"
        for piece in (p.strip(" :") for p in text.split("...")):
            assert piece in raised, f"page: {text!r}\nraised: {raised}"
        checked += 1
    assert checked >= 24
