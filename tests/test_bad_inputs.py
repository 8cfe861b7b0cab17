"""Bad inputs, one table per public entry point: each refused before any work, with an error that names the argument.

Every case is ``(id, call, error type, a regex the message must match)``; the regex names the argument
(and, where the fix is the point, the fix). Tables: ContraCAM, boxes_from_cam, the crop, the mixup,
ObjectAwareAugment, ObjectAwareStep, ObjectAwareDataset and the Lightly transforms, ObjectStore, the
solo-learn config; then (issue 25) flags that must be bools, degenerate negatives, Vision Transformers,
choices, options accepted then ignored, devices, files and paths, the valid inputs beside them and the
suggested fixes tried. The CLI's table is in tests/test_cli_errors.py.
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
    ("source near-miss", lambda: _solo({"source": "onlin"}), ValueError,
     r"objaug\.source must be one of 'store', 'online', got 'onlin'\. Did you mean 'online'\?"),
    ("box_sampling near-miss", lambda: _solo({"crop": {"box_sampling": "aera"}}), ValueError,
     r"objaug\.crop\.box_sampling must be one of 'uniform', 'area'.*Did you mean 'area'\?"),
    ("enabled a string", lambda: _solo({"enabled": "true"}), ValueError, "objaug.enabled must be true or false"),
    ("online.edges 'false'", lambda: _solo({"online": {"edges": "false"}}), ValueError,
     "objaug.online.edges must be a bool"),
    ("online.all_gather_negatives 'yes'", lambda: _solo({"online": {"all_gather_negatives": "yes"}}), ValueError,
     "objaug.online.all_gather_negatives must be true or false"),
    ("attention + hard_negatives", lambda: _solo({"online": {"map_source": "attention", "hard_negatives": 4}}),
     ValueError, r"objaug\.online\.map_source='attention' .* hard_negatives would have no effect"),
    ("every_n_steps a string", lambda: _solo({"online": {"every_n_steps": "2"}}), ValueError,
     "objaug.online.every_n_steps must be an int"),
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


# ---------------------------------------------------------------------- issue 25: the features added since
def _vit(img_size=32, patch=8, **kw):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=img_size,
                             patch_size=patch, depth=2, **kw)


def _tv_vit(image_size=32):
    from torchvision.models import VisionTransformer

    return VisionTransformer(image_size=image_size, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=16)


def _self_bank():
    x1 = X[:1]
    return _cam(x1, negatives=_cam.embed(x1))  # the batch's one image and its own copy as the only negative


def _all_copies_bank():
    x1 = X[:1]
    return _cam(x1, negatives=_cam.embed(x1).repeat(3, 1))  # every bank row a copy


def _cnn_1x1():
    with __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("ignore")
        return ContraCAM(tiny_resnet(width=8), expand_res=True)(torch.rand(2, 3, 4, 4))


#: A truthy string, an int and None where a flag is expected: a TypeError naming the argument, every public callable.
def _bool_cases():
    from objaug.boxes import boxes_from_steps, boxes_to_pixels
    from objaug.masks import resize_masks
    from objaug.metrics import best_box_iou, box_corloc
    from objaug.tools.archs import build_projector

    calls = {
        "ContraCAM(return_steps=)": lambda v: _cam(X, return_steps=v),
        "ContraCAM(edges=)": lambda v: ContraCAM(_model, edges=v),
        "ContraCAM(expand_res=)": lambda v: ContraCAM(_model, expand_res=v),
        "ContraCAM(check_finite=)": lambda v: ContraCAM(_model, check_finite=v),
        "ObjectAwareAugment(return_params=)": lambda v: _aug(X, BOXES, VALID, return_params=v),
        "ObjectAwareAugment(check=)": lambda v: _aug(X, BOXES, VALID, check=v if v is not None else "no"),
        "ObjectAwareAugment(check_inputs=)": lambda v: ObjectAwareAugment(check_inputs=v),
        "simclr_views(mixup=)": lambda v: simclr_views(16, mixup=v),
        "moco_v2_views(mixup=)": lambda v: __import__("objaug").moco_v2_views(16, mixup=v),
        "byol_views(mixup=)": lambda v: __import__("objaug").byol_views(16, mixup=v),
        "boxes_from_cam(relative=)": lambda v: boxes_from_cam(MASKS, relative=v),
        "boxes_from_steps(check_inputs=)": lambda v: boxes_from_steps([MASKS], check_inputs=v),
        "boxes_to_pixels(integer=)": lambda v: boxes_to_pixels(BOXES, 32, integer=v),
        "resize_masks(antialias=)": lambda v: resize_masks(MASKS, 16, antialias=v),
        "box_corloc(use_fallback=)": lambda v: box_corloc(BOXES, VALID, BOXES, VALID, use_fallback=v),
        "best_box_iou(use_fallback=)": lambda v: best_box_iou(BOXES, VALID, BOXES, VALID, use_fallback=v),
        "BackgroundMixup(inplace=)": lambda v: BackgroundMixup(inplace=v),
        "crop(same_on_batch=)": lambda v: ObjectAwareRandomResizedCrop(16, same_on_batch=v),
        "CamConfig(edges=)": lambda v: CamConfig(edges=v),
        "tiny_resnet(small_input=)": lambda v: tiny_resnet(width=8, small_input=v),
        "build_projector(batch_norm=)": lambda v: build_projector("8-4", 8, batch_norm=v),
    }
    return [(f"{name} {value!r}", (lambda c=call, v=value: c(v)), TypeError, f"{name.split('(')[1][:-2]} must be")
            for name, call in calls.items() for value in ("yes", 1)]


BOOLS = _bool_cases()


def _bool_cases_lightly():
    calls = {
        "ObjectAwareStep(check_inputs=)": lambda v: _step(check_inputs=v),
        "ObjectAwareDataset(return_index=)": lambda v: _dataset(_Images(), boxes=BOXES, return_index=v),
        "ObjectAwareDataset(check_store=)": lambda v: _dataset(_Images(), boxes=BOXES, check_store=v),
        "ObjectAwareSimCLRTransform(return_masks=)": lambda v: _simclr(16, return_masks=v),
        "ObjectAwareCallback(log_stats=)": lambda v: __import__(
            "objaug.integrations.lightly.lightning", fromlist=["x"]).ObjectAwareCallback(_step(), log_stats=v),
    }
    return [(f"{name} {value!r}", (lambda c=call, v=value: c(v)), TypeError, f"{name.split('(')[1][:-2]} must be")
            for name, call in calls.items() for value in ("yes", 0)]


BOOLS_LIGHTLY = _bool_cases_lightly()

NEGATIVES = [
    ("only negative its own copy", _self_bank, ValueError, "ContraCAM needs negatives: .* copies of it"),
    ("every bank row a copy", _all_copies_bank, ValueError,
     "ContraCAM needs negatives: .* all 3 rows of negatives= are copies"),
    ("negatives a string", lambda: _cam(X, "bank"), TypeError, "negatives must be a floating .* got str"),
    ("hard_negatives + own copies", lambda: ContraCAM(_model, hard_negatives=2)(X[:1], _cam.embed(X[:1])),
     ValueError, "ContraCAM needs negatives"),
]

VIT = [
    ("ViT: wrong size", lambda: ContraCAM(_vit())(torch.rand(2, 3, 24, 24)), ValueError,
     r"images are 24x24 but the Vision Transformer takes 32x32 images .*Resize them to 32x32"),
    ("ViT: not a multiple of the patch", lambda: ContraCAM(_vit(dynamic_img_size=True))(torch.rand(2, 3, 30, 30)),
     ValueError, r"images are 30x30, not a multiple of the Vision Transformer's 8x8 patch.*e\.g\. 32x32"),
    ("ViT: embed wrong size", lambda: ContraCAM(_vit()).embed(torch.rand(2, 3, 40, 40)), ValueError,
     "takes 32x32 images"),
    ("torchvision ViT: wrong size", lambda: ContraCAM(_tv_vit())(torch.rand(2, 3, 48, 48)), ValueError,
     r"takes 32x32 images .*build the VisionTransformer with image_size=48"),
    ("ViT: 1x1 grid, no expand_res advice", lambda: ContraCAM(_vit(img_size=8))(torch.rand(2, 3, 8, 8)),
     ValueError, r"1x1 map.*(?<!expand_res=True)A Vision Transformer's map is its patch grid.*expand_res does not"),
    ("CNN: 1x1 map with expand_res on", _cnn_1x1, ValueError, r"1x1 map.*Use larger images, or an encoder"),
    ("attention + hard_negatives", lambda: ContraCAM(_vit(), source="attention", hard_negatives=8), ValueError,
     "hard_negatives=8 has no effect with source='attention'"),
    ("attention + temperature", lambda: ContraCAM(_vit(), source="attention", temperature=0.1), ValueError,
     "temperature=0.1 has no effect with source='attention'.*drop temperature="),
    ("attention + expand_res", lambda: ContraCAM(_vit(), source="attention", expand_res=True), ValueError,
     "expand_res=True has no meaning for a Vision Transformer"),
    ("attention on a CNN", lambda: ContraCAM(_model, source="attention"), TypeError,
     "source='attention' needs a Vision Transformer"),
]


def _write_boxes_json(tmp, images):
    import json

    path = tmp / "boxes.json"
    path.write_text(json.dumps({"version": 1, "images": images}))
    return path


def _rec(name, valid, box=(0.1, 0.1, 0.5, 0.5)):
    return {"file": name, "boxes_norm": [list(box)], "valid": [valid]}


def _cam_boxes(tmp_factory, images, **kw):
    from objaug.store import load_cam_boxes

    return load_cam_boxes(_write_boxes_json(tmp_factory(), images), **kw)


STORE_FILES = [
    ("valid 'false' strings", lambda t: _cam_boxes(t, [_rec("a.png", "false")]), ValueError,
     r"valid flags \['false'\]; they must be JSON true/false"),
    ("valid 0/1", lambda t: _cam_boxes(t, [_rec("a.png", 1)]), ValueError, "valid flags"),
    ("box a bool", lambda t: _cam_boxes(t, [_rec("a.png", True, (True, 0, 1, 1))]), ValueError, "boxes_norm must be"),
    ("order of ints", lambda t: _cam_boxes(t, [_rec("a.png", True)], order=[0, 1]), TypeError,
     r"order\[0\] must be a file path .* not indexes"),
    ("order a single path", lambda t: _cam_boxes(t, [_rec("a.png", True)], order="a.png"), TypeError,
     "order must be a sequence of file paths .* a single path"),
    ("order a number", lambda t: _cam_boxes(t, [_rec("a.png", True)], order=3), TypeError,
     "order must be a sequence of file paths"),
    ("path an int", lambda t: __import__("objaug.store", fromlist=["x"]).load_cam_boxes(3), TypeError, "path"),
    ("plot to a directory", lambda t: __import__("objaug.tools.viz", fromlist=["x"]).plot_object_aware_views(
        X, _aug, BOXES, VALID, path=t()), ValueError, r"path=.* is a directory; pass a file path in it"),
    ("plot under a file", lambda t: _plot_under_a_file(t()), ValueError, "which is a file, not a directory"),
    ("plot path an int", lambda t: __import__("objaug.tools.viz", fromlist=["x"]).plot_object_aware_views(
        X, _aug, BOXES, VALID, path=3), TypeError, "path must be a file path"),
    ("plot box_width a string", lambda t: __import__("objaug.tools.viz", fromlist=["x"]).plot_object_aware_views(
        X, _aug, BOXES, VALID, box_width="2"), TypeError, "box_width must be an int"),
]


def _plot_under_a_file(tmp):
    from objaug.tools.viz import plot_object_aware_views

    (tmp / "a_file").write_text("x")
    return plot_object_aware_views(X, _aug, BOXES, VALID, path=tmp / "a_file" / "views.png")


def _meta(t):
    return t.to("meta")


DEVICES = [
    ("boxes on another device", lambda: _step()(X, boxes=_meta(BOXES)), ValueError,
     r"same device as images \(cpu\), got boxes on meta.*boxes\.to\(images\.device\)"),
    ("valid on another device", lambda: _step()(X, boxes=BOXES, valid=_meta(VALID)), ValueError,
     r"got valid on meta: move them to cpu with valid\.to\(images\.device\)"),
    ("masks on another device", lambda: _step()(X, masks=_meta(MASKS)), ValueError,
     r"got masks on meta: move them to cpu with masks\.to\(images\.device\)"),
    ("indexes on another device", lambda: _step(model=_model)(X, indexes=_meta(IDX)), ValueError,
     r"indexes is on meta but images are on cpu: move it to cpu with indexes\.to\(images\.device\)"),
    ("negatives on another device", lambda: _step(model=_model, negatives=_meta(torch.rand(8, 64)))(X), ValueError,
     r"negatives is on meta but images are on cpu: move it to cpu with negatives\.to\(images\.device\)"),
    ("negatives callable, another device", lambda: _step(model=_model, negatives=lambda: _meta(torch.rand(8, 64)))(X),
     ValueError, "negatives is on meta"),
    ("ViT step dry run, wrong size", lambda: _step(model=_vit(), image_size=24), ValueError,
     "images are 24x24 but the Vision Transformer takes 32x32"),
]

CHOICES = [
    ("mixup threshold near-miss", lambda: BackgroundMixup(threshold="otzu"), ValueError,
     r"threshold must be one of 'otsu', got 'otzu'\. Did you mean 'otsu'\?"),
    ("mixup threshold a bool", lambda: BackgroundMixup(threshold=True), TypeError, "threshold must be"),
    ("antialias 'yes'", lambda: ObjectAwareAugment(antialias="yes"), ValueError,
     r"antialias must be True, False or 'auto', got 'yes'"),
    ("antialias near-miss", lambda: ObjectAwareAugment(antialias="Auto"), ValueError, r"Did you mean 'auto'\?"),
    ("interpolation near-miss", lambda: ContraCAM(_model, interpolation="bilinar"), ValueError,
     r"interpolation must be one of 'bicubic', 'bilinear', 'nearest'.*Did you mean 'bilinear'\?"),
    ("source near-miss", lambda: ContraCAM(_model, source="gradcan"), ValueError, r"Did you mean 'gradcam'\?"),
    ("box_sampling near-miss", lambda: ObjectAwareAugment(box_sampling="aera"), ValueError,
     r"box_sampling must be one of 'uniform', 'area'.*Did you mean 'area'\?"),
    ("resize_masks mode near-miss", lambda: __import__("objaug").resize_masks(MASKS, 16, mode="bilnear"),
     ValueError, r"mode must be one of .*Did you mean 'bilinear'\?"),
]

IGNORED = [
    ("resize_masks antialias with area", lambda: __import__("objaug").resize_masks(MASKS, 16, mode="area",
                                                                                  antialias=True),
     ValueError, "antialias=True has no effect with mode='area'.*drop antialias, or use mode='bilinear'"),
    ("tiny_resnet stem_stride without small_input", lambda: tiny_resnet(small_input=False, stem_stride=2),
     ValueError, "stem_stride=2 sets the small stem's stride, but small_input=False"),
]

IGNORED_LIGHTLY = [
    ("step: valid without boxes", lambda: _step(model=_model)(X, valid=VALID), ValueError,
     "valid was given without boxes"),
    ("step: negatives without a CAM", lambda: _step(negatives=torch.rand(8, 64)), ValueError,
     r"negatives would have no effect: there is no CAM .* Pass model= \(or cam=\)"),
    ("step: criterion, cam_size, image_size without a CAM", lambda: _step(criterion=object(), cam_size=16,
                                                                          image_size=32),
     ValueError, "criterion, cam_size, image_size would have no effect"),
]

NEW_TABLES = {"flags are bools": BOOLS, "negatives": NEGATIVES, "Vision Transformers": VIT, "choices": CHOICES,
              "accepted then ignored": IGNORED}
NEW_LIGHTLY_TABLES = {"flags are bools (Lightly)": BOOLS_LIGHTLY, "devices (ObjectAwareStep)": DEVICES,
                      "accepted then ignored (Lightly)": IGNORED_LIGHTLY}


@pytest.mark.parametrize("call, error, match", [c[1:] for t in NEW_TABLES.values() for c in t],
                         ids=[f"{e}: {c[0]}" for e, t in NEW_TABLES.items() for c in t])
def test_new_features_refuse_bad_input(call, error, match):
    _run(call, error, match)


@pytest.mark.parametrize("call, error, match", [c[1:] for t in NEW_LIGHTLY_TABLES.values() for c in t],
                         ids=[f"{e}: {c[0]}" for e, t in NEW_LIGHTLY_TABLES.items() for c in t])
def test_new_features_refuse_bad_input_lightly(call, error, match):
    pytest.importorskip("lightly")
    _run(call, error, match)


@pytest.mark.parametrize("call, error, match", [c[1:] for c in STORE_FILES], ids=[c[0] for c in STORE_FILES])
def test_files_and_paths_are_checked_first(tmp_path_factory, call, error, match):
    _run(lambda: call(lambda: tmp_path_factory.mktemp("bad")), error, match)


def _plot_to(path):
    from objaug.tools.viz import plot_object_aware_views

    return plot_object_aware_views(X, _aug, BOXES, VALID, path=path)


#: Valid inputs next to the refused ones: an over-eager refusal is a bug too.
VALID_INPUTS = [
    ("flags True/False",
     lambda t: [_cam(X, return_steps=False), _aug(X, BOXES, VALID, return_params=True, check=None)]),
    ("one image with a real negative", lambda t: _cam(X[:1], negatives=_cam.embed(X[1:]))),
    ("one image, bank with its copy and others", lambda t: _cam(X[:1], negatives=_cam.embed(X))),
    ("one image, all copies, checks off",
     lambda t: ContraCAM(_model, check_finite=False)(X[:1], _cam.embed(X[:1]))),
    ("ViT of its own size", lambda t: ContraCAM(_vit())(torch.rand(2, 3, 32, 32))),
    ("dynamic ViT, any multiple of the patch",
     lambda t: ContraCAM(_vit(dynamic_img_size=True))(torch.rand(2, 3, 24, 40))),
    ("dynamic padded ViT, any size", lambda t: ContraCAM(_vit(dynamic_img_size=True, dynamic_img_pad=True))(
        torch.rand(2, 3, 30, 30))),
    ("attention source with defaults", lambda t: ContraCAM(_vit(), source="attention")(torch.rand(2, 3, 32, 32))),
    ("valid flags true/false", lambda t: _cam_boxes(t, [_rec("a.png", False), _rec("b.png", True)])),
    ("order of Paths", lambda t: _cam_boxes(t, [_rec("a.png", True)], order=[__import__("pathlib").Path("a.png")])),
    ("plot into a new folder", lambda t: _plot_to(t() / "new" / "views.png")),
    ("antialias 'auto'", lambda t: ObjectAwareAugment(antialias="auto")),
    ("resize_masks bilinear antialias", lambda t: __import__("objaug").resize_masks(MASKS, 16, antialias=True)),
    ("mixup threshold float", lambda t: BackgroundMixup(threshold=0.5)),
]


@pytest.mark.parametrize("call", [c[1] for c in VALID_INPUTS], ids=[c[0] for c in VALID_INPUTS])
def test_valid_inputs_are_accepted(tmp_path_factory, call):
    call(lambda: tmp_path_factory.mktemp("ok"))


def test_valid_inputs_are_accepted_lightly():
    pytest.importorskip("lightly")
    step = _step(model=_model)
    step(X, indexes=IDX)  # CPU indexes with images on the CPU (a DataLoader's)
    step(X, boxes=BOXES, valid=VALID, masks=MASKS)
    _step(model=_model, negatives=torch.rand(8, 64))(X)
    _step(model=_vit(), image_size=32)
    _step(model=_model, criterion=object(), cam_size=16, image_size=32)  # the fix: the same options with a CAM


def test_the_suggested_fixes_work(tmp_path):
    """Every fix a new message suggests is tried on the input that message was for."""
    import warnings

    import torch.nn.functional as F

    # "Pass at least 2 images, or negatives= embeddings of other images (e.g. cam.embed(other_images))"
    assert _cam(X[:2]).shape == (2, 1, 32, 32)
    assert _cam(X[:1], negatives=_cam.embed(X[1:])).amax() > 0
    # "Resize them to 32x32 (F.interpolate(images, size=(32, 32)))" / "build the timm model with dynamic_img_size=True"
    small = torch.rand(2, 3, 24, 24)
    ContraCAM(_vit())(F.interpolate(small, size=(32, 32)))
    ContraCAM(_vit(dynamic_img_size=True))(small)
    # "Resize them to a multiple, e.g. 32x32" / "dynamic_img_pad=True"
    odd = torch.rand(2, 3, 30, 30)
    ContraCAM(_vit(dynamic_img_size=True))(F.interpolate(odd, size=(32, 32)))
    ContraCAM(_vit(dynamic_img_size=True, dynamic_img_pad=True))(odd)
    # torchvision: "build the VisionTransformer with image_size=48"
    ContraCAM(_tv_vit(48))(torch.rand(2, 3, 48, 48))
    # a ViT's 1x1 grid: "images of at least 3 patches a side with a model built for them"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even the coarse-map warning
        ContraCAM(_vit(img_size=24))(torch.rand(2, 3, 24, 24))
        ContraCAM(_vit(img_size=8, dynamic_img_size=True))(torch.rand(2, 3, 24, 24))
    # a CNN's 1x1 map at 8 px: "expand_res=True" (gives a map: only the coarse-map warning is left) or larger images
    with pytest.warns(UserWarning, match="only 2x2; .*Use larger images, or an encoder"):  # no expand_res again
        ContraCAM(tiny_resnet(width=8), expand_res=True)(torch.rand(2, 3, 8, 8))
    ContraCAM(tiny_resnet(width=8))(torch.rand(2, 3, 32, 32))
    # attention options: "Drop hard_negatives, or use source='gradcam'"
    ContraCAM(_vit(), source="attention")
    ContraCAM(_vit(), source="gradcam", hard_negatives=8)
    # load_cam_boxes: JSON booleans; order as paths
    from objaug.store import load_cam_boxes

    path = _write_boxes_json(tmp_path, [_rec("a.png", False)])
    assert not load_cam_boxes(path).valid.any()
    assert load_cam_boxes(path, order=["a.png"]).files == ["a.png"]
    # plot: "pass a file path in it"
    _plot_to(tmp_path / "views.png")
    # resize_masks: "drop antialias, or use mode='bilinear'"
    from objaug import resize_masks

    resize_masks(MASKS, 16, mode="area")
    resize_masks(MASKS, 16, mode="bilinear", antialias=True)
    # tiny_resnet: "drop stem_stride, or use small_input=True"
    tiny_resnet(width=8, small_input=False)
    tiny_resnet(width=8, small_input=True, stem_stride=2)


def test_the_suggested_device_moves_work():
    pytest.importorskip("lightly")
    from objaug.validation import check_device, check_same_device

    images = X
    boxes = _meta(BOXES)
    with pytest.raises(ValueError, match=r"boxes\.to\(images\.device\)"):
        check_same_device([("images", images), ("boxes", boxes)])
    check_same_device([("images", images), ("boxes", BOXES.to(images.device))])
    with pytest.raises(ValueError, match="indexes is on meta"):
        check_device(_meta(IDX), "indexes", images.device, also_cpu=True)
    check_device(IDX.to(images.device), "indexes", images.device, also_cpu=True)
