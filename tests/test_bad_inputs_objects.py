"""Bad input at the doors of the object source: configs, the provider, the step, the solo-learn block.

Each case: the call, the error type, and a pattern the message must match (it names the argument, what was
wrong and, where it suggests a fix, the fix is then checked to work).
"""

from __future__ import annotations

import pytest
import torch

from objaug import ObjectAwareAugment, simclr_views
from objaug.boxes import boxes_from_cam
from objaug.config import BoxConfig, CamConfig, ScheduleConfig, config_from_mapping
from objaug.objects import Objects
from objaug.provider import ObjectProvider
from objaug.tools.archs import tiny_resnet


def _cam(images, negatives=None):
    return images[:, :1].clamp(0, 1)


CASES = [
    ("iters a string", lambda: CamConfig(iters="3"), TypeError, r"CamConfig\.iters must be an int >= 1, got str"),
    ("iters 0", lambda: CamConfig(iters=0), ValueError, r"CamConfig\.iters must be an int >= 1, got 0"),
    ("iters a bool", lambda: CamConfig(iters=True), TypeError, r"CamConfig\.iters must be an int"),
    ("edges a string", lambda: CamConfig(edges="yes"), TypeError, r"CamConfig\.edges must be a bool"),
    ("near-miss source", lambda: CamConfig(map_source="atention"), ValueError, r"Did you mean 'attention'\?"),
    ("near-miss refine", lambda: CamConfig(refine="unoin"), ValueError, r"one of 'weighted', 'union'.*'union'\?"),
    ("mask_iters > iters", lambda: CamConfig(iters=2, mask_iters=3), ValueError, "mask_iters=3 is more than iters=2"),
    ("attention ignores negatives", lambda: CamConfig(map_source="attention", hard_negatives=4, bank=8),
     ValueError, "hard_negatives, bank would have no effect"),
    ("attention with expand_res", lambda: CamConfig(map_source="attention", expand_res=True), ValueError,
     "expand_res=True needs a CNN"),
    ("threshold above 1", lambda: BoxConfig(threshold=1.5), ValueError, r"BoxConfig\.threshold must be a number in"),
    ("connectivity 6", lambda: BoxConfig(connectivity=6), ValueError, "connectivity must be one of 4, 8"),
    ("map_size a float", lambda: BoxConfig(map_size=16.0), TypeError,
     r"BoxConfig\.map_size must be an int >= 4 \(or unset\)"),
    ("every_n_steps 0", lambda: ScheduleConfig(every_n_steps=0), ValueError, "every_n_steps must be an int >= 1"),
    ("unknown key", lambda: config_from_mapping(CamConfig, {"iter": 3}), ValueError,
     r"Unknown option CamConfig\.iter\. Did you mean CamConfig\.iters\?"),
    ("provider config type", lambda: ObjectProvider(cam_config={"iters": 3}), TypeError,
     "cam_config must be an objaug.config.CamConfig"),
    ("provider cache a string", lambda: ObjectProvider(cache="yes"), TypeError, "cache must be a bool"),
    ("negatives callable gives a string",
     lambda: ObjectProvider(normalize=None).objects(torch.rand(2, 3, 8, 8), cam=_cam, negatives=lambda: "bank"),
     TypeError, r"negatives must be an \(N, D\) tensor .* got str"),
    ("cache without indexes",
     lambda: ObjectProvider(schedule=ScheduleConfig(every_n_steps=2), num_samples=4, normalize=None).objects(
         torch.rand(2, 3, 8, 8), cam=_cam), ValueError, "pass indexes="),
    ("maps outside [0, 1]", lambda: boxes_from_cam(torch.rand(1, 1, 8, 8) * 3), ValueError,
     r"min-max normalise each map first .* or pass relative=True"),
    ("augment objects and boxes", lambda: ObjectAwareAugment(simclr_views(16))(
        torch.rand(2, 3, 16, 16), torch.zeros(2, 1, 4), objects=Objects.none(2)), ValueError,
     "either as objects= or as boxes="),
    ("augment ready cam and cam_config", lambda: ObjectAwareAugment(simclr_views(16), cam=_cam,
                                                                    cam_config=CamConfig(iters=3)),
     ValueError, "cam is a ready CAM whose options are its own"),
]


@pytest.mark.parametrize(("name", "call", "error", "pattern"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_clearly(name, call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_the_suggested_fixes_work():
    maps = torch.rand(1, 1, 8, 8) * 3
    boxes_from_cam(maps, relative=True)  # "pass relative=True"
    from objaug.functional.cam import minmax_normalize

    boxes_from_cam(minmax_normalize(maps))  # "min-max normalise each map first"
    assert config_from_mapping(CamConfig, {"iters": 3}).iters == 3  # "Did you mean CamConfig.iters?"


def test_step_refuses_valid_without_boxes_and_a_ready_augments_options():
    pytest.importorskip("lightly")
    from objaug.integrations.lightly.device_step import ObjectAwareStep

    step = ObjectAwareStep(simclr_views(16), model=tiny_resnet(width=8))
    with pytest.raises(ValueError, match="valid was given without boxes"):
        step(torch.rand(2, 3, 16, 16), valid=torch.ones(2, 1, dtype=torch.bool))
    for option, value in (("box_p", 0.5), ("box_sampling", "area"), ("check_inputs", False)):
        with pytest.raises(ValueError, match=f"whose {option} are its own"):
            ObjectAwareStep(ObjectAwareAugment(simclr_views(16)), **{option: value})


def test_step_dry_run_refuses_a_model_that_gives_no_map():
    pytest.importorskip("lightly")
    from objaug.integrations.lightly.device_step import ObjectAwareStep

    with pytest.raises(ValueError, match="1x1 map"):  # a ResNet on 8-px images: nothing to localise
        ObjectAwareStep(simclr_views(8), model=tiny_resnet(width=8), image_size=8)
    ObjectAwareStep(simclr_views(32), model=tiny_resnet(width=8), image_size=32)  # a size it can localise


def test_solo_block_interpolation_errors_name_the_block():
    OmegaConf = pytest.importorskip("omegaconf").OmegaConf
    from objaug.integrations.solo_learn.config import ObjaugConfigError, parse_objaug_config

    block = OmegaConf.create({"enabled": True, "online": {"view": "${nowhere.view}"}})
    with pytest.raises(ObjaugConfigError, match=r"interpolation in the block cannot be resolved"):
        parse_objaug_config(block)
    with pytest.raises(ObjaugConfigError, match=r"objaug\.online\.iters must be an int >= 1, got 0"):
        parse_objaug_config({"online": {"iters": 0}})
    with pytest.raises(ObjaugConfigError, match=r"objaug\.online\.map_source.*Did you mean 'attention'"):
        parse_objaug_config({"online": {"map_source": "atention"}})
