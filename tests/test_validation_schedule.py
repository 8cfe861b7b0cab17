"""objaug.validation_schedule: the input checks run on every CPU call, on a schedule on accelerators."""

from __future__ import annotations

import pytest
import torch

from objaug import ContraCAM
from objaug.augment.crop import ObjectAwareRandomResizedCrop
from objaug.augment.mixup import BackgroundMixup
from objaug.augment.pipeline import ObjectAwareAugment
from objaug.augment.views import simclr_views
from objaug.testing import accelerator_paths
from objaug.validation_schedule import CheckSchedule


def test_schedule_checks_the_first_calls_then_every_nth() -> None:
    sched = CheckSchedule(first=3, every=4)
    x = torch.zeros(1)
    with accelerator_paths():
        due = [sched.due(x) for _ in range(15)]
    assert [i + 1 for i, d in enumerate(due) if d] == [1, 2, 3, 7, 11, 15]
    assert sched.calls == 15
    assert all(sched.due(x) for _ in range(5)) and sched.calls == 15  # CPU: every call, not counted


def test_default_schedule_is_the_documented_one() -> None:
    sched = CheckSchedule()
    with accelerator_paths():
        due = [i + 1 for i in range(320) if sched.due(torch.zeros(1))]
    assert due == [*range(1, 11), 110, 210, 310]


@pytest.mark.parametrize(("bad", "error"), [(dict(first=-1), ValueError), (dict(every=0), ValueError),
                                            (dict(every=True), TypeError), (dict(first=1.5), TypeError)])
def test_bad_schedules_are_refused(bad: dict, error: type) -> None:
    with pytest.raises(error, match="(first|every) must be"):
        CheckSchedule(**bad)


def _bad_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    images = torch.rand(4, 3, 32, 32) * 255  # [0, 255] frames: refused by the value checks
    boxes = torch.tensor([[0.1, 0.1, 0.6, 0.7]]).expand(4, 1, 4).contiguous() * 32  # pixel boxes
    valid = torch.ones(4, 1, dtype=torch.bool)
    masks = torch.rand(4, 1, 32, 32) * 2  # masks above 1
    return images, boxes, valid, masks


def _modules() -> dict[str, tuple[object, object]]:
    images, boxes, valid, masks = _bad_inputs()
    crop = ObjectAwareRandomResizedCrop(16)
    mix = BackgroundMixup()
    aug = ObjectAwareAugment(simclr_views(16))
    return {"crop": (crop, lambda: crop(images / 255, boxes, valid)),
            "mixup": (mix, lambda: mix(images / 255, masks)),
            "augment": (aug, lambda: aug(images, boxes / 32, valid))}


@pytest.mark.parametrize("name", ["crop", "mixup", "augment"])
def test_default_refuses_bad_input_on_the_cpu_every_call(name: str) -> None:
    module, call = _modules()[name]
    for _ in range(3):
        with pytest.raises(ValueError):
            call()


@pytest.mark.parametrize("name", ["crop", "mixup", "augment"])
def test_accelerator_checks_follow_the_schedule(name: str) -> None:
    module, call = _modules()[name]
    module.check_schedule = CheckSchedule(first=2, every=3)  # type: ignore[attr-defined]
    refused = []
    with accelerator_paths():
        for _ in range(8):
            try:
                call()
                refused.append(False)
            except ValueError:
                refused.append(True)
    assert refused == [True, True, False, False, True, False, False, True]


def test_lightly_step_checks_follow_the_schedule() -> None:
    """The Lightly step's own value check (images, boxes, indexes) runs on its augment's schedule."""
    pytest.importorskip("lightly")
    from objaug.integrations.lightly.device_step import ObjectAwareStep

    images, boxes, valid, _ = _bad_inputs()
    step = ObjectAwareStep(simclr_views(16))
    step.augment.check_schedule = CheckSchedule(first=2, every=3)
    refused = []
    with accelerator_paths():
        for _ in range(8):
            try:
                step(images, boxes=boxes / 32, valid=valid)
                refused.append(False)
            except ValueError as err:
                assert "[0, 255]" in str(err) or "255" in str(err)
                refused.append(True)
    assert refused == [True, True, False, False, True, False, False, True]
    with pytest.raises(ValueError):  # on the CPU paths: every call
        step(images, boxes=boxes / 32, valid=valid)


def test_contracam_finite_check_follows_the_schedule() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=4), torch.nn.ReLU())
    head = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 4))
    cam = ContraCAM(encoder=model, head=head, edges=False)
    cam.check_schedule = CheckSchedule(first=1, every=2)
    images = torch.randn(2, 3, 32, 32)
    images[0, 0, 0, 0] = float("nan")
    with accelerator_paths():
        with pytest.raises(ValueError, match="NaN"):
            cam(images)
        cam(images)  # call 2: not checked
        with pytest.raises(ValueError, match="NaN"):
            cam(images)
