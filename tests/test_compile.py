"""The accelerator code paths, run on the CPU (objaug.testing.accelerator_paths): one graph under
``torch.compile(fullgraph=True)`` and no value computed from the batch read back to the host.

``backend="eager"`` checks what fullgraph promises (Dynamo traces each call whole, no graph break) in
seconds; one test runs AOTAutograd on ContraCAM and compares with eager mode (Inductor itself:
benchmarks/compile_speed.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
import torch.nn as nn

from objaug import ContraCAM
from objaug.augment.crop import ObjectAwareRandomResizedCrop
from objaug.augment.mixup import BackgroundMixup
from objaug.augment.pipeline import ObjectAwareAugment
from objaug.augment.views import simclr_views
from objaug.testing import accelerator_paths

B, IN, OUT = 8, 96, 64  # issue 27's table: batch 8, 96 -> 64 px

#: The host readers: each returns a value computed on the device to Python (a stall of the stream).
_READERS: tuple[tuple[Any, str], ...] = (
    (torch.Tensor, "item"), (torch.Tensor, "tolist"), (torch.Tensor, "__bool__"), (torch.Tensor, "nonzero"),
    (torch, "nonzero"),
)
#: kornia functions that read their own CPU-side random draws in eager mode, never the batch and never a
#: device tensor: ColorJitter's order and factor guards (objaug.augment.pipeline._ColorJitter), the
#: Gaussian blur's check that the drawn sigmas are positive.
_KORNIA_DRAW_READERS = frozenset({"_dispatch_color_steps", "_gaussian_blur2d"})


class HostRead(AssertionError):
    pass


@contextlib.contextmanager
def host_reads_raise() -> Iterator[list[str]]:
    """Every host reader raises :class:`HostRead`, except kornia's reads of its own random draws (listed)."""
    allowed: list[str] = []
    saved = [(owner, name, getattr(owner, name)) for owner, name in _READERS]

    def guard(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def read(*args: Any, **kwargs: Any) -> Any:
            caller = sys._getframe(1).f_code.co_name
            if caller not in _KORNIA_DRAW_READERS:
                raise HostRead(f"{name} called from {caller}")
            allowed.append(caller)
            return original(*args, **kwargs)
        return read

    for owner, name, original in saved:
        setattr(owner, name, guard(name, original))
    try:
        yield allowed
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def _inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(B, 3, IN, IN, generator=gen)
    boxes = torch.tensor([[0.1, 0.1, 0.6, 0.7], [0.3, 0.2, 0.9, 0.9]]).expand(B, 2, 4).contiguous()
    valid = torch.tensor([[True, True], [True, False]]).repeat(B // 2, 1)
    masks = torch.zeros(B, 1, IN, IN)
    masks[:, :, 20:60, 30:70] = torch.rand(B, 1, 40, 40, generator=gen)
    return images, boxes, valid, masks


def _mixup_views() -> list[Any]:
    views = simclr_views(OUT)
    return [dataclasses.replace(views[0], mixup=True), views[1]]


def _tiny_resnet() -> nn.Module:
    import torchvision

    return torchvision.models.resnet18(num_classes=16).eval()


def _calls() -> dict[str, Callable[[], Any]]:
    """The issue's calls, each built fresh with its input checks off, as a function of no argument."""
    images, boxes, valid, masks = _inputs()
    crop = ObjectAwareRandomResizedCrop(OUT, check_inputs=False)
    mix = BackgroundMixup(check_inputs=False)
    aug = ObjectAwareAugment(_mixup_views(), check_inputs=False)  # view 0 mixes, view 1 does not
    cam = ContraCAM(_tiny_resnet(), iters=1, check_finite=False)
    return {
        "crop": lambda: crop(images, boxes, valid),
        "mixup": lambda: mix(images, masks),
        "augment": lambda: aug(images, boxes, valid, masks),
        "contracam": lambda: cam(images),
    }


@pytest.fixture(autouse=True)
def _fresh_dynamo() -> Iterator[None]:
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("name", ["crop", "mixup", "augment", "contracam"])
def test_compiles_whole_on_the_accelerator_paths(name: str, one_thread: None) -> None:
    call = _calls()[name]
    with accelerator_paths():
        out = torch.compile(call, fullgraph=True, backend="eager")()  # raises on any graph break
    first = out[0] if isinstance(out, tuple | list) else out
    assert torch.isfinite(first).all()


def test_lightly_step_views_compile_whole(one_thread: None) -> None:
    pytest.importorskip("lightly")
    from objaug.integrations.lightly.device_step import ObjectAwareStep

    images, boxes, valid, _ = _inputs()
    step = ObjectAwareStep(simclr_views(OUT), check_inputs=False)
    with accelerator_paths():
        views = torch.compile(lambda: step(images, boxes=boxes, valid=valid), fullgraph=True, backend="eager")()
    assert [tuple(v.shape) for v in views] == [(B, 3, OUT, OUT)] * 2


@pytest.mark.parametrize("name", ["crop", "mixup", "augment", "contracam"])
def test_no_value_of_the_batch_is_read_back(name: str, one_thread: None) -> None:
    calls = _calls()
    with accelerator_paths():
        calls[name]()  # first call: lazy buffers (the mixup queue, workspaces)
        with host_reads_raise() as kornia_draws:
            calls[name]()
    # only kornia reads, and only its CPU random draws (per view: the jitter's order and four factor guards,
    # the blur's sigma check)
    assert len(kornia_draws) <= (12 if name == "augment" else 0)


def test_the_readers_are_caught(one_thread: None) -> None:
    """The guard itself: a host read of the batch raises."""
    images = _inputs()[0]
    with host_reads_raise(), pytest.raises(HostRead):
        images.sum().item()
    with host_reads_raise(), pytest.raises(HostRead):
        bool(images.max() > 0)


def test_input_checks_read_the_host_once_when_due(one_thread: None) -> None:
    """With the checks on, the crop and the mixup read one value each on a checked call (documented)."""
    images, boxes, valid, masks = _inputs()
    crop = ObjectAwareRandomResizedCrop(OUT)
    with accelerator_paths(), host_reads_raise(), pytest.raises(HostRead, match="tolist"):
        crop(images, boxes, valid)


def test_aot_autograd_contracam_matches_eager(one_thread: None) -> None:
    """AOTAutograd (what Inductor compiles from: functionalised, torch.func's backward traced) gives eager's
    maps. Inductor itself takes minutes to build C++ kernels on this CPU: benchmarks/compile_speed.py runs it."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 8))
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    cam = ContraCAM(encoder=model[:4], head=model[4:], iters=2, check_finite=False)
    with accelerator_paths():
        eager = cam(images)
        compiled = torch.compile(lambda x: cam(x), fullgraph=True, backend="aot_eager")(images)
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=0)


def test_accelerator_paths_nest_and_restore() -> None:
    from objaug._paths import fixed_shape_path

    x = torch.zeros(1)
    assert not fixed_shape_path(x)
    with accelerator_paths():
        with accelerator_paths():
            assert fixed_shape_path(x)
        assert fixed_shape_path(x)
    assert not fixed_shape_path(x)
    with pytest.raises(RuntimeError), accelerator_paths():
        raise RuntimeError
    assert not fixed_shape_path(x)
