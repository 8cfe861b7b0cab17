"""Bad inputs, one table per public entry point: each refused before any work, with an error that names the argument.

Every case is ``(id, call, error type, a regex the message must match)``; the regex names the argument
(and, where the fix is the point, the fix). Tables: ContraCAM, boxes_from_cam, the crop, the mixup,
ObjectAwareAugment, ObjectAwareStep, ObjectAwareDataset and the Lightly transforms, ObjectStore, the
solo-learn config. The CLI's table is in tests/test_cli_errors.py.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from objaug import ContraCAM
from objaug.augment.crop import ObjectAwareRandomResizedCrop
from objaug.augment.mixup import BackgroundMixup
from objaug.augment.pipeline import ObjectAwareAugment
from objaug.augment.views import simclr_views
from objaug.boxes import boxes_from_cam
from objaug.config import CamConfig, ScheduleConfig
from objaug.tools.archs import tiny_resnet

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

X = torch.rand(4, 3, 32, 32)
BOXES = torch.tensor([[[0.1, 0.1, 0.6, 0.7]]]).expand(4, 1, 4).clone()
VALID = torch.ones(4, 1, dtype=torch.bool)
MASKS = torch.rand(4, 1, 32, 32)
NAN = X.clone().index_put_((torch.tensor([1]), torch.tensor([0]), torch.tensor([3]), torch.tensor([3])),
                           torch.tensor(float("nan")))
NORMALISED = (X - 0.45) / 0.225
PIXELS = BOXES * 32
REVERSED = BOXES[..., [2, 3, 0, 1]]



def _run(call, error, match):
    with pytest.raises(error, match=match):
        call()


_model = tiny_resnet(width=8)
_cam = ContraCAM(_model)

CONTRACAM = [
    ("list", lambda: _cam([X[0], X[1]]), TypeError, "images must be a torch.Tensor"),
    ("3-D", lambda: _cam(X[0]), ValueError, r"images must be 4-D.*unsqueeze\(0\)"),
    ("uint8", lambda: _cam((X * 255).byte()), TypeError, "images must be floating point.*/ 255"),
    ("empty", lambda: _cam(X[:0]), ValueError, "images has an empty dimension"),
    ("1 channel", lambda: _cam(X[:, :1]), ValueError, r"images have 1 channels.*expand\(-1, 3"),
    ("4 channels", lambda: _cam(torch.rand(4, 4, 32, 32)), ValueError, r"images have 4 channels.*\[:, :3\]"),
    ("float64 images", lambda: _cam(X.double()), TypeError, "images are torch.float64 but the model's weights"),
    ("float64 model", lambda: ContraCAM(tiny_resnet(width=8).double())(X), TypeError, "images are torch.float32"),
    ("fp16 on cpu", lambda: _cam(X.half()), TypeError, r"images are torch.float16.*torch.autocast"),
    ("NaN", lambda: _cam(NAN), ValueError, "images contains NaN"),
    ("one image", lambda: _cam(X[:1]), ValueError, "ContraCAM needs negatives"),
    ("negatives 1-D", lambda: _cam(X, torch.rand(8)), ValueError, "negatives must be a floating"),
    ("iters 0", lambda: ContraCAM(_model, iters=0), ValueError, "iters must be an int >= 1"),
    ("temperature inf", lambda: ContraCAM(_model, temperature=float("inf")), ValueError, "temperature must be"),
    ("no model", lambda: ContraCAM(), TypeError, "needs a model"),
]

BOXES_FROM_CAM = [
    ("(B, H, W) maps", lambda: boxes_from_cam(MASKS[:, 0]), ValueError, r"maps.*unsqueeze\(1\)"),
    ("list", lambda: boxes_from_cam([MASKS]), TypeError, "maps"),
    ("threshold 2", lambda: boxes_from_cam(MASKS, threshold=2.0), ValueError, "threshold"),
    ("NaN maps", lambda: boxes_from_cam(MASKS.clone().fill_(float("nan"))), ValueError, "maps .*NaN"),
    ("maps above 1", lambda: boxes_from_cam(MASKS * 3), ValueError, r"maps must lie in \[0"),
    ("max_boxes 0", lambda: boxes_from_cam(MASKS, max_boxes=0), ValueError, "max_boxes"),
]

_crop = ObjectAwareRandomResizedCrop(16)
CROP = [
    ("pixel boxes", lambda: _crop(X, PIXELS, VALID), ValueError, "boxes must be normalised.*Divide pixel boxes"),
    ("reversed boxes", lambda: _crop(X, REVERSED, VALID), ValueError, "boxes must satisfy x1 <= x2.*box_convert"),
    ("int valid", lambda: _crop(X, BOXES, VALID.long()), ValueError, "valid must be a bool tensor"),
    ("boxes (B, 4)", lambda: _crop(X, BOXES[:, 0], VALID), ValueError, r"boxes must have shape \(B, K, 4\)"),
    ("batch mismatch", lambda: _crop(X, BOXES[:2], VALID[:2]), ValueError, "boxes has batch size 2"),
    ("size 0", lambda: ObjectAwareRandomResizedCrop(0), ValueError, "size must be positive"),
    ("scale reversed", lambda: ObjectAwareRandomResizedCrop(16, scale=(0.9, 0.2)), ValueError, "scale"),
]

_mix = BackgroundMixup(p=1.0)
MIXUP = [
    ("NaN images", lambda: _mix(NAN, MASKS), ValueError, "images contains NaN"),
    ("masks above 1", lambda: _mix(X, MASKS * 2), ValueError, r"masks must lie in \[0.0, 1.0\]"),
    ("NaN masks", lambda: _mix(X, MASKS.clone().fill_(float("nan"))), ValueError, "masks must lie .*contains NaN"),
    ("masks other size", lambda: _mix(X, MASKS[..., :16, :16]), ValueError, "masks must have shape.*resize_masks"),
    ("masks batch", lambda: _mix(X, MASKS[:2]), ValueError, "images and masks must have the same batch size"),
    ("uint8 images", lambda: _mix((X * 255).byte(), MASKS), TypeError, "images must be floating point"),
    ("p 2", lambda: BackgroundMixup(p=2.0), ValueError, "p must be a probability"),
    ("threshold 0", lambda: BackgroundMixup(threshold=0.0), ValueError, "threshold"),
]

_aug = ObjectAwareAugment(simclr_views(16))
AUGMENT = [
    ("views uncalled", lambda: ObjectAwareAugment(simclr_views), TypeError, r"views=simclr_views\(224\)"),
    ("views empty", lambda: ObjectAwareAugment([]), TypeError, "views must be a non-empty sequence"),
    ("[0, 255]", lambda: _aug(X * 255), ValueError, r"images must lie in \[0.0, 1.0\].*divide by 255"),
    ("normalised", lambda: _aug(NORMALISED), ValueError, "images must lie.*look normalised.*Remove Normalize"),
    ("NaN", lambda: _aug(NAN), ValueError, "images contains NaN"),
    ("1 channel", lambda: _aug(X[:, :1]), ValueError, "images must have 3 channels"),
    ("pixel boxes", lambda: _aug(X, PIXELS, VALID), ValueError, "boxes must be normalised.*pixel"),
    ("reversed boxes", lambda: _aug(X, REVERSED, VALID), ValueError, "boxes must satisfy x1 <= x2"),
    ("masks above 1", lambda: _aug(X, masks=MASKS * 2), ValueError, r"masks must lie in \[0.0, 1.0\]"),
    ("valid alone", lambda: _aug(X, valid=VALID), ValueError, "valid was given without boxes"),
    ("negatives, no cam", lambda: _aug(X, negatives=torch.rand(4, 8)), ValueError, "negatives="),
    ("box_p 1.5", lambda: ObjectAwareAugment(box_p=1.5), ValueError, "box_p must be a probability"),
    ("box_sampling", lambda: ObjectAwareAugment(box_sampling="big"), ValueError, "box_sampling"),
]


def _step_class():
    from objaug.integrations.lightly.device_step import ObjectAwareStep

    return ObjectAwareStep


def _step(**kw):
    from objaug.integrations.lightly.device_step import ObjectAwareStep

    return ObjectAwareStep(simclr_views(16), **kw)


IDX = torch.arange(4)
STEP = [
    ("[0, 255]", lambda: _step()(X * 255, boxes=BOXES), ValueError, r"images must lie in \[0.0, 1.0\].*255"),
    ("double-normalised", lambda: _step()(NORMALISED, boxes=BOXES), ValueError, "look normalised.*Remove Normalize"),
    ("NaN", lambda: _step()(NAN, boxes=BOXES), ValueError, "images contains NaN"),
    ("4 channels", lambda: _step()(torch.rand(4, 4, 32, 32), boxes=BOXES), ValueError, "images must have 3 channels"),
    ("pixel boxes", lambda: _step()(X, boxes=PIXELS), ValueError, "boxes must be normalised.*pixel"),
    ("reversed boxes", lambda: _step()(X, boxes=REVERSED), ValueError, "boxes must satisfy x1 <= x2"),
    ("masks above 1", lambda: _step()(X, masks=MASKS * 3), ValueError, r"masks must lie in \[0.0, 1.0\]"),
    ("indexes too large", lambda: _step(model=_model, schedule=ScheduleConfig(every_n_steps=2), num_samples=4)(
        X, indexes=IDX + 2),
     ValueError, r"indexes must be dataset indexes in \[0, 4\)"),
    ("negative indexes", lambda: _step(model=_model)(X, indexes=IDX - 1), ValueError, "indexes must be dataset"),
    ("indexes shape", lambda: _step(model=_model)(X, indexes=IDX[:2]), ValueError, r"indexes must be a \(B,\)"),
    ("float indexes", lambda: _step(model=_model)(X, indexes=IDX.float()), ValueError, "indexes must be"),
    ("no source", lambda: _step()(X), ValueError, "No source of objects"),
    ("views uncalled", lambda: _step_class()(simclr_views), TypeError, r"views=simclr_views\(224\)"),
    ("iters 0", lambda: _step(model=_model, cam_config=CamConfig(iters=0)), ValueError, "iters must be an int >= 1"),
    ("every_n_steps 0", lambda: _step(model=_model, schedule=ScheduleConfig(every_n_steps=0)), ValueError,
     "every_n_steps"),
    ("views augment and box_p", lambda: _step_class()(ObjectAwareAugment(), box_p=0.5), ValueError,
     "views is a ready ObjectAwareAugment, whose box_p"),
    ("model and cam", lambda: _step(model=_model, cam=_cam), TypeError, "either model= .* or cam="),
    ("store without get_batch", lambda: _step(store=3), TypeError, "store must have a get_batch"),
    ("cache without num_samples", lambda: _step(model=_model, schedule=ScheduleConfig(every_n_steps=3)), ValueError,
     "num_samples"),
]


class _Images(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return X[i], 0


class _Sized:
    def __len__(self):
        return 9

    def get(self, i):
        return BOXES[0], VALID[0], None


def _dataset(*args, **kw):
    from objaug.integrations.lightly.dataset import ObjectAwareDataset

    return ObjectAwareDataset(*args, **kw)


def _simclr(*args, **kw):
    from objaug.integrations.lightly.simclr_transform import ObjectAwareSimCLRTransform

    return ObjectAwareSimCLRTransform(*args, **kw)


DATASET = [
    ("dataset 3", lambda: _dataset(3, boxes=BOXES), TypeError, "dataset must be a map-style dataset"),
    ("no objects", lambda: _dataset(_Images()), ValueError, "needs the objects of each image"),
    ("both sources", lambda: _dataset(_Images(), _Sized(), boxes=BOXES), ValueError, "either objects="),
    ("boxes length", lambda: _dataset(_Images(), boxes=BOXES[:2]), ValueError, "boxes holds 2 images"),
    ("int valid", lambda: _dataset(_Images(), boxes=BOXES, valid=VALID.long()), ValueError, "valid must be a bool"),
    ("store length", lambda: _dataset(_Images(), _Sized()), ValueError, "objects holds 9 samples"),
    ("objects no get", lambda: _dataset(_Images(), 5), TypeError, "objects must have a get"),
    ("transform pixel boxes", lambda: _simclr(16)(X[0], PIXELS[0], None), ValueError, "boxes"),
    ("transform one box (4,)", lambda: _simclr(16)(X[0], BOXES[0, 0], None), ValueError,
     r"boxes must have shape \(K, 4\).*boxes\[None\]"),
    ("transform reversed", lambda: _simclr(16)(X[0], REVERSED[0], None), ValueError, "boxes must satisfy x1 <= x2"),
    ("transform 0-255 image", lambda: _simclr(16)(X[0] * 255, BOXES[0], None), ValueError, "image.*255"),
    ("transform NaN image", lambda: _simclr(16)(X[0] * float("nan"), BOXES[0], None), ValueError, "image"),
    ("view 0-255 image", lambda: _simclr(16).transforms[0](X[0] * 255), ValueError, "image.*255"),
    ("input_size -1", lambda: _simclr(-1), ValueError, "input_size must be an int >= 1"),
    ("input_size float", lambda: _simclr(16.0), TypeError, "input_size must be an int >= 1"),
]


def _store(path, **kw):
    from objaug.store import ObjectStore

    return ObjectStore(path, **kw)


STORE = [
    ("path int", lambda: _store(123), TypeError, "path must be a directory path"),
    ("path None", lambda: _store(None), TypeError, "path must be a directory path"),
    ("no store", lambda: _store("/nonexistent/objaug-store"), FileNotFoundError, "No object store"),
]


def _solo(block):
    pytest.importorskip("omegaconf")
    from objaug.integrations.solo_learn.config import parse_objaug_config

    return parse_objaug_config(block)


SOLO = [
    ("unknown key", lambda: _solo({"enabled": True, "crpo": {}}), ValueError, "crpo"),
    ("crop.box_p 2", lambda: _solo({"enabled": True, "crop": {"box_p": 2}}), ValueError, "objaug.crop.box_p"),
    ("views text", lambda: _solo({"enabled": True, "views": "all"}), ValueError, "objaug.views"),
    ("store without path", lambda: _solo({"enabled": True, "source": "store"}), ValueError, "objaug.store.path"),
    ("online iters 0", lambda: _solo({"enabled": True, "source": "online", "online": {"iters": 0}}), ValueError,
     "objaug.online.iters"),
    ("mixup threshold", lambda: _solo({"enabled": True, "mixup": {"enabled": True, "threshold": 5}}), ValueError,
     "objaug.mixup.threshold"),
]


#: One table per public entry point; the entry points whose adapters need lightly are skipped without it.
TABLES = {"ContraCAM": CONTRACAM, "boxes_from_cam": BOXES_FROM_CAM, "crop": CROP, "mixup": MIXUP,
          "ObjectAwareAugment": AUGMENT, "ObjectAwareStep": STEP,
          "ObjectAwareDataset and the Lightly transforms": DATASET, "ObjectStore": STORE,
          "solo-learn config": SOLO}
NEEDS_LIGHTLY = {"ObjectAwareStep", "ObjectAwareDataset and the Lightly transforms"}


@pytest.mark.parametrize("entry, call, error, match",
                         [(entry, *c[1:]) for entry, table in TABLES.items() for c in table],
                         ids=[f"{entry}: {c[0]}" for entry, table in TABLES.items() for c in table])
def test_every_entry_point_refuses_bad_input(entry, call, error, match):
    if entry in NEEDS_LIGHTLY:
        pytest.importorskip("lightly")
    _run(call, error, match)


def test_the_model_is_left_unchanged_when_a_check_fails():
    model = tiny_resnet(width=8).train()
    cam = ContraCAM(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for bad in (X.double(), X[:, :1], NAN):
        with pytest.raises((TypeError, ValueError)):
            cam(bad)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_views_config_is_frozen_so_a_preset_cannot_be_changed_by_accident():
    with pytest.raises(dataclasses.FrozenInstanceError):
        simclr_views(16)[0].mixup = True  # type: ignore[misc]
