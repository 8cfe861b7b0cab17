"""One source of objects: every entry point gives the library's objects, and takes every CAM and box option.

The library's definition (docs/how-it-works.md): boxes are ``boxes_from_steps`` of ContraCAM's per-iteration maps,
masks its output map, and masks from the first k iterations equal ``ContraCAM(iters=k)``'s output. The reference
below computes that directly from ContraCAM and objaug.boxes; each door must give the same objects for the same
model, images and settings (Grad-CAM at iters 1 and 3, hard negatives with a bank of negatives, a ViT with the
attention source). The CLI and store doors are tested in tests/test_cli_doors.py.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from objaug import ContraCAM, ObjectAwareAugment, boxes_from_steps, simclr_views
from objaug.config import BoxConfig, CamConfig, ScheduleConfig
from objaug.constants import IMAGENET_NORMALIZE
from objaug.tools.archs import tiny_resnet

SIZE = 32
BOXES = BoxConfig(threshold=0.4, max_boxes=3)


def _images(b: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(b, 3, SIZE, SIZE, generator=g) * 0.3
    for i in range(b):  # a bright square per image, at different places
        y0, x0 = 4 + 3 * i, 20 - 3 * i
        x[i, :, y0:y0 + 8, x0:x0 + 8] += 0.6
    return x.clamp(0, 1)


def _normalised(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_NORMALIZE["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_NORMALIZE["std"]).view(1, 3, 1, 1)
    return (x - mean) / std


def _cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return tiny_resnet(width=8).eval()


def _vit() -> torch.nn.Module:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=SIZE, patch_size=8,
                             depth=2).eval()


def _bank(model: torch.nn.Module) -> torch.Tensor:
    g = torch.Generator().manual_seed(9)
    return ContraCAM(model).embed(_normalised(torch.rand(5, 3, SIZE, SIZE, generator=g)))


CASES = {
    "gradcam-1": (_cnn, CamConfig(iters=1), False),
    "gradcam-3": (_cnn, CamConfig(iters=3, mask_iters=1), False),
    "hard-negatives-bank": (_cnn, CamConfig(iters=3, hard_negatives=2), True),
    "vit-attention": (_vit, CamConfig(map_source="attention", iters=2), False),
}


def _reference(model, cam_config: CamConfig, x, negatives):
    """The definition, from ContraCAM and objaug.boxes directly."""
    settings = cam_config.contracam_kwargs()
    maps, steps = ContraCAM(model, **settings)(x, negatives, return_steps=True)
    boxes, valid = boxes_from_steps(steps, **BOXES.steps_kwargs())
    if cam_config.mask_iters is not None:
        maps = ContraCAM(model, **{**settings, "iters": cam_config.mask_iters})(x, negatives)
    return boxes, valid, maps


def _assert_same(found, reference):
    boxes, valid, maps = reference
    torch.testing.assert_close(found.boxes, boxes)
    assert torch.equal(found.valid, valid)
    torch.testing.assert_close(found.masks, maps)


@pytest.mark.parametrize("case", list(CASES))
def test_object_aware_augment_finds_the_library_objects(case):
    make, cam_config, with_bank = CASES[case]
    model = make()
    x = _images()
    negatives = _bank(model) if with_bank else None
    aug = ObjectAwareAugment(simclr_views(SIZE), cam=model, cam_config=cam_config, box_config=BOXES)
    _assert_same(aug.find_objects(x, negatives), _reference(model, cam_config, _normalised(x), negatives))
    # the forward crops inside those boxes: every used region is one of them
    _, params = aug(x, negatives=negatives, return_params=True)
    found = aug.find_objects(x, negatives)
    used, index = params[0]["object"], params[0]["box_index"]
    rows = torch.arange(x.shape[0])[used]
    torch.testing.assert_close(params[0]["regions"][used], found.boxes[rows, index[used]])


@pytest.mark.parametrize("case", list(CASES))
def test_lightly_step_finds_the_library_objects(case):
    pytest.importorskip("lightly")
    from objaug.integrations.lightly.device_step import ObjectAwareStep

    make, cam_config, with_bank = CASES[case]
    model = make()
    x = _images()
    negatives = _bank(model) if with_bank else None
    views = simclr_views(SIZE, mixup=True)
    step = ObjectAwareStep(views, model=model, cam_config=cam_config, box_config=BOXES, negatives=negatives)
    step(x)
    assert step.last_objects is not None and step.last_objects.origin == "cam"
    _assert_same(step.last_objects, _reference(model, cam_config, _normalised(x), negatives))


@pytest.mark.parametrize("case", list(CASES))
def test_solo_learn_adapter_finds_the_library_objects(case):
    pytest.importorskip("omegaconf")
    from objaug.integrations.solo_learn.config import parse_objaug_config
    from objaug.integrations.solo_learn.views import SoloObjectAware

    make, cam_config, with_bank = CASES[case]
    model = make()
    x = _normalised(_images())  # solo-learn delivers normalised views
    negatives = _bank(model) if with_bank else None
    online = {k: v for k, v in dataclasses.asdict(cam_config).items() if v != getattr(CamConfig(), k)}
    block = {"enabled": True, "source": "online", "online": online, "mixup": {"enabled": True},
             "boxes": dataclasses.asdict(BOXES)}
    engine = SoloObjectAware(parse_objaug_config(block))
    views = [x.clone(), x.clone()]
    engine.step(views, torch.arange(x.shape[0]), cam=engine.build_cam(model, None),
                negatives=None if negatives is None else (lambda: negatives))
    assert engine.last_objects is not None
    _assert_same(engine.last_objects, _reference(model, cam_config, x, negatives))


def test_cached_doors_keep_masks_for_mixup():
    """Both training adapters run mixup between CAM refreshes from the per-index cache (uint8 masks)."""
    pytest.importorskip("lightly")
    from objaug.integrations.lightly.device_step import ObjectAwareStep
    from objaug.integrations.solo_learn.config import parse_objaug_config
    from objaug.integrations.solo_learn.views import SoloObjectAware

    model, x, idx = _cnn(), _images(), torch.arange(6)
    step = ObjectAwareStep(simclr_views(SIZE, mixup=True), model=model, schedule=ScheduleConfig(every_n_steps=2),
                           num_samples=6)
    step(x, indexes=idx)
    step(x, indexes=idx)
    assert step.last_objects is not None and step.last_objects.origin == "cache"
    assert step.last_objects.masks is not None and "mixed" in step.last_params[0]
    block = {"enabled": True, "source": "online", "online": {"every_n_steps": 2}, "mixup": {"enabled": True}}
    engine = SoloObjectAware(parse_objaug_config(block))
    engine.allocate_cache(6, torch.device("cpu"))
    for _ in range(2):
        views = [_normalised(x), _normalised(x)]
        cam = engine.build_cam(model, None) if engine.cam_due() else None
        engine.step(views, idx, cam=cam)
    assert engine.last_objects is not None and engine.last_objects.origin == "cache"
    assert 0 in engine.last_info["mixed"]


# ---------------------------------------------------------------------- every option reaches every door
CAM_VALUES = {"map_source": "attention", "iters": 3, "mask_iters": 1, "temperature": 0.2, "hard_negatives": 2,
              "bank": 8, "expand_res": True, "interpolation": "bilinear", "edges": False, "edge_radius": 0.1,
              "edge_eps": 0.05, "refine": "union"}
BOX_VALUES = {"threshold": 0.3, "min_area": 0.05, "margin": 0.1, "max_boxes": 2, "overlap": 0.5, "connectivity": 8,
              "map_size": 16}
CONTRACAM_ATTRIBUTE = {"map_source": "source"}  # ContraCAM's own name of a CamConfig field


def test_the_table_names_every_field():
    assert set(CAM_VALUES) == {f.name for f in dataclasses.fields(CamConfig)}
    assert set(BOX_VALUES) == {f.name for f in dataclasses.fields(BoxConfig)}
    for name, value in CAM_VALUES.items():
        assert value != getattr(CamConfig(), name), name
    for name, value in BOX_VALUES.items():
        assert value != getattr(BoxConfig(), name), name


def _cam_config(name: str) -> tuple[CamConfig, torch.nn.Module]:
    value = CAM_VALUES[name]
    config = CamConfig(**{name: value, **({"iters": 1} if name == "mask_iters" else {})})
    return config, (_vit() if name == "map_source" else _cnn())


@pytest.mark.parametrize("name", list(CAM_VALUES))
def test_every_cam_option_reaches_every_door(name):
    pytest.importorskip("lightly")
    pytest.importorskip("omegaconf")
    from objaug.integrations.lightly.device_step import ObjectAwareStep
    from objaug.integrations.solo_learn.config import parse_objaug_config
    from objaug.integrations.solo_learn.views import SoloObjectAware

    config, model = _cam_config(name)
    value = CAM_VALUES[name]
    aug = ObjectAwareAugment(simclr_views(SIZE), cam=model, cam_config=config)
    step = ObjectAwareStep(simclr_views(SIZE), model=model, cam_config=config)
    solo = SoloObjectAware(parse_objaug_config({"enabled": True, "online": {name: value}}))
    for door, provider, cam in (("ObjectAwareAugment", aug.provider, aug.cam), ("ObjectAwareStep", step.provider,
                                                                               step.cam),
                                ("solo-learn", solo.provider, solo.build_cam(model, None))):
        assert getattr(provider.cam_config, name) == value, door
        attribute = CONTRACAM_ATTRIBUTE.get(name, name)
        if hasattr(cam, attribute):  # the ContraCAM itself (mask_iters and bank live in the provider)
            assert getattr(cam, attribute) == value, door
    assert parse_objaug_config({}).online.cam == CamConfig()  # one default
    assert ObjectAwareStep(simclr_views(SIZE), model=model).provider.cam_config == CamConfig()


@pytest.mark.parametrize("name", list(BOX_VALUES))
def test_every_box_option_reaches_every_door(name):
    pytest.importorskip("lightly")
    pytest.importorskip("omegaconf")
    from objaug.integrations.lightly.device_step import ObjectAwareStep
    from objaug.integrations.solo_learn.config import parse_objaug_config
    from objaug.integrations.solo_learn.views import SoloObjectAware

    value = BOX_VALUES[name]
    config = BoxConfig(**{name: value})
    model = _cnn()
    doors = {
        "ObjectAwareAugment": ObjectAwareAugment(simclr_views(SIZE), cam=model, box_config=config).provider,
        "ObjectAwareStep": ObjectAwareStep(simclr_views(SIZE), model=model, box_config=config).provider,
        "solo-learn": SoloObjectAware(parse_objaug_config({"enabled": True, "boxes": {name: value}})).provider,
    }
    for door, provider in doors.items():
        assert getattr(provider.box_config, name) == value, door
    assert parse_objaug_config({}).boxes == BoxConfig()  # one default
