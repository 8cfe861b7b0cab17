"""One rule for every scalar option (objaug.validation.scalars): a value of the wrong type raises TypeError
(bools are not numbers), a value of the right type that is impossible raises ValueError; the message names
the argument. Checked on the helpers, then option by option on every public constructor."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from objaug.augment.crop import ObjectAwareRandomResizedCrop
from objaug.augment.mixup import BackgroundMixup
from objaug.augment.pipeline import ObjectAwareAugment
from objaug.augment.views import ViewConfig
from objaug.boxes import boxes_from_cam
from objaug.config import BoxConfig, CamConfig
from objaug.contracam import ContraCAM
from objaug.store import precompute
from objaug.validation import (
    check_antialias,
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_normalize,
    check_optional_int,
    check_optional_size,
    check_pair,
    check_size,
)

# ------------------------------------------------------------------------------------------------- helpers
HELPERS: list[tuple[Callable[[object], object], list[object], list[object], list[object]]] = [
    # (check, accepted, wrong type, impossible)
    (lambda v: check_int(v, "n", low=1, high=5), [1, 5], ["3", 3.0, True, None], [0, 6]),
    (lambda v: check_optional_int(v, "n", low=0, none="all"), [None, 0, 7], ["3", 1.5, False], [-1]),
    (lambda v: check_float(v, "x", low=0.0, high=1.0, low_open=True), [1, 0.5, 1.0], ["0.5", True, None],
     [0.0, 1.5, math.nan, math.inf]),
    (lambda v: check_bool(v, "flag"), [True, False], ["yes", 1, None], []),
    (lambda v: check_choice(v, "mode", ("a", "b")), ["a", "b"], [1, None, b"a"], ["c", "A"]),
    (lambda v: check_choice(v, "k", (4, 8)), [4, 8], ["4", 4.0, True], [6]),
    (lambda v: check_antialias(v), [True, False, "auto"], [1, None], ["on"]),
    (lambda v: check_pair(v, "pair", 0.0, 1.0, fix="."), [(0.1, 0.5), [0.5, 0.5]], ["ab", (0.1,), (True, 0.5)],
     [(0.6, 0.5), (0.0, 0.5), (math.nan, 0.5)]),
    (lambda v: check_size(v), [8, (4, 8)], ["8", 8.0, (4,), (4, 8.0), True], [0, (4, -1)]),
    (lambda v: check_optional_size(v, "cam_size", none="as given"), [None, 8, (4, 8)], ["8", (4, 8.0), True],
     [0, (4, -1)]),
    (lambda v: check_normalize(v), [None, {"mean": (0.5, 0.5, 0.5), "std": [0.2, 0.2, 0.2]}],
     ["imagenet", {"mean": "abc", "std": (1, 1, 1)}, {"mean": (0, 0, True), "std": (1, 1, 1)}],
     [{"mean": (0, 0, 0)}, {"mean": (0, 0), "std": (1, 1, 1)}, {"mean": (0, 0, 0), "std": (1, 0, 1)},
      {"mean": (0, 0, 0), "std": (1, 1, 1), "max": 255}]),
]


def test_normalize_is_returned_as_float_tuples():
    got = check_normalize({"mean": [0, 0.5, 1], "std": (1, 2, 3)})
    assert got == {"mean": (0.0, 0.5, 1.0), "std": (1.0, 2.0, 3.0)}
    assert all(isinstance(x, float) for x in got["mean"] + got["std"])
    with pytest.raises(TypeError, match=r"cam_size must be None \(as given\)"):
        check_optional_size("big", "cam_size", none="as given")


@pytest.mark.parametrize(("check", "accepted", "wrong_type", "impossible"), HELPERS)
def test_each_helper_follows_the_rule(check, accepted, wrong_type, impossible):
    for value in accepted:
        check(value)
    for value in wrong_type:
        with pytest.raises(TypeError):
            check(value)
    for value in impossible:
        with pytest.raises(ValueError):
            check(value)


def test_a_message_names_the_argument_the_requirement_and_the_fix():
    with pytest.raises(TypeError, match=r"iters must be an int >= 1, got str '3'\. Pass the value itself"):
        check_int("3", "iters", low=1)
    with pytest.raises(TypeError, match=r"iters must be an int >= 1, got bool True\. A bool is a flag"):
        check_int(True, "iters", low=1)
    with pytest.raises(ValueError, match=r"iters must be an int >= 1, got 0\."):
        check_int(0, "iters", low=1)
    with pytest.raises(ValueError, match=r"p must be a number in \(0\.0, 1\.0\], got nan"):
        check_float(math.nan, "p", low=0.0, high=1.0, low_open=True)


# ------------------------------------------------------------------------------------------- constructors
def _cam(**kw: Any) -> Any:
    return ContraCAM(encoder=nn.Identity(), head=nn.Flatten(1), **kw)


def _crop(**kw: Any) -> Any:
    return ObjectAwareRandomResizedCrop(kw.pop("size", 16), **kw)


def _boxes(**kw: Any) -> Any:
    return boxes_from_cam(torch.rand(1, 1, 8, 8), **kw)


def _precompute(**kw: Any) -> Any:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
    return precompute([torch.rand(3, 16, 16)], model, "/nonexistent/objaug-store", progress=False, **kw)


ENTRIES: dict[str, Callable[..., Any]] = {
    "ContraCAM": _cam,
    "BackgroundMixup": BackgroundMixup,
    "ObjectAwareRandomResizedCrop": _crop,
    "ObjectAwareAugment": ObjectAwareAugment,
    "ViewConfig": ViewConfig,
    "boxes_from_cam": _boxes,
    "store.precompute": _precompute,
    "CamConfig": CamConfig,
    "BoxConfig": BoxConfig,
}

#: (entry, option, values of a wrong type, values of the right type that are impossible)
OPTIONS: list[tuple[str, str, list[Any], list[Any]]] = [
    ("ContraCAM", "iters", ["3", 3.0, True], [0]),
    ("ContraCAM", "temperature", ["1", True, None], [0.0, -1.0, math.inf]),
    ("ContraCAM", "expand_res", ["yes", 1], []),
    ("ContraCAM", "interpolation", [3, None], ["cubic"]),
    ("ContraCAM", "check_finite", ["yes", 0], []),
    ("ContraCAM", "hard_negatives", ["2", 2.0, True], [0]),
    ("ContraCAM", "edges", ["yes", 1], []),
    ("ContraCAM", "edge_radius", ["0.1", True], [0.0, 0.6]),
    ("ContraCAM", "edge_eps", ["0.01", True], [0.0, math.nan]),
    ("ContraCAM", "refine", [1], ["max"]),
    ("ContraCAM", "source", [1], ["cam"]),
    ("BackgroundMixup", "p", ["0.4", True, None], [1.5, -0.1]),
    ("BackgroundMixup", "threshold", [None, True], [0.0, 1.5, "auto"]),
    ("BackgroundMixup", "fallback_mass", ["0.9", True], [0.0, 1.5]),
    ("BackgroundMixup", "queue_size", ["3", 2.0, True], [-1]),
    ("BackgroundMixup", "source", [1, None], ["tiles"]),
    ("BackgroundMixup", "check_inputs", ["yes", 1], []),
    ("BackgroundMixup", "inplace", ["no", 0], []),
    ("ObjectAwareRandomResizedCrop", "size", ["16", 16.0, True], [0, (16, -1)]),
    ("ObjectAwareRandomResizedCrop", "scale", ["big", (0.1,), (True, 1.0)], [(0.5, 0.2), (0.1, 2.0)]),
    ("ObjectAwareRandomResizedCrop", "ratio", [0.75, ("a", "b")], [(1.0, 0.5), (0.0, 1.0)]),
    ("ObjectAwareRandomResizedCrop", "box_sampling", [1, None], ["random"]),
    ("ObjectAwareRandomResizedCrop", "center_suppressed", ["no", 1], []),
    ("ObjectAwareRandomResizedCrop", "alpha", ["0.6", True], [0.0, -1.0]),
    ("ObjectAwareRandomResizedCrop", "antialias", [1, None], ["maybe"]),
    ("ObjectAwareRandomResizedCrop", "resample", [1.5, None], ["lanczos"]),
    ("ObjectAwareRandomResizedCrop", "p", ["1", True], [2.0]),
    ("ObjectAwareRandomResizedCrop", "attempts", ["10", 10.0, True], [0]),
    ("ObjectAwareRandomResizedCrop", "min_box_pixels", ["8", 1.5, True], [-1]),
    ("ObjectAwareRandomResizedCrop", "same_on_batch", ["no", 1], []),
    ("ObjectAwareRandomResizedCrop", "check_inputs", ["yes", 1], []),
    ("ObjectAwareAugment", "box_p", ["1", True], [1.5]),
    ("ObjectAwareAugment", "box_sampling", [1], ["random"]),
    ("ObjectAwareAugment", "center_suppressed", ["no", 1], []),
    ("ObjectAwareAugment", "alpha", ["0.6", True], [0.0]),
    ("ObjectAwareAugment", "antialias", [1, None], ["maybe"]),
    ("ObjectAwareAugment", "attempts", ["10", 1.5, True], [0]),
    ("ObjectAwareAugment", "cpu_chunk_size", ["8", 8.0, True], [0]),
    ("ObjectAwareAugment", "check_inputs", ["yes", 1], []),
    ("ViewConfig", "input_size", ["224", 224.0, True], [0, (224, 0)]),
    ("ViewConfig", "min_scale", ["0.08", True], [0.0, 1.5]),
    ("ViewConfig", "ratio", [0.75, ("a", "b")], [(1.0, 0.5)]),
    ("ViewConfig", "cj_prob", ["0.8", True, None], [1.5]),
    ("ViewConfig", "cj_strength", ["1", True], [-1.0]),
    ("ViewConfig", "random_gray_scale", ["0.2", True], [-0.5]),
    ("ViewConfig", "gaussian_blur", ["0.5", True], [2.0]),
    ("ViewConfig", "sigmas", [0.5, (True, 2.0)], [(2.0, 0.1)]),
    ("ViewConfig", "kernel_size", ["3", 3.0, True], [0, 4]),
    ("ViewConfig", "solarization_prob", ["0.2", True], [1.5]),
    ("ViewConfig", "hf_prob", ["0.5", True], [1.5]),
    ("ViewConfig", "normalize", [("mean", "std"), "imagenet"], [{"mean": [0.5] * 3}, {"mean": [0.5] * 3,
                                                                                     "std": [0.0] * 3}]),
    ("ViewConfig", "mixup", ["yes", 1], []),
    ("ViewConfig", "object_crop", ["yes", 1], []),
    ("ViewConfig", "min_box_pixels", ["8", 8.0, True], [-1]),
    ("boxes_from_cam", "threshold", ["0.5", True, None], [0.0, 1.5, math.nan]),
    ("boxes_from_cam", "min_area", ["0.01", True], [1.0, -0.1]),
    ("boxes_from_cam", "margin", ["0.2", True], [-0.1, math.inf]),
    ("boxes_from_cam", "max_boxes", ["4", 4.0, True], [0]),
    ("boxes_from_cam", "connectivity", ["4", 4.0, True], [6]),
    ("boxes_from_cam", "relative", ["yes", 1], []),
    ("boxes_from_cam", "check_inputs", ["yes", 1], []),
    ("store.precompute", "cam_config", [{"iters": 3}, 3], []),
    ("store.precompute", "box_config", [{"threshold": 0.5}], []),
    ("CamConfig", "iters", ["3", 3.0, True], [0]),
    ("CamConfig", "mask_iters", ["1", True], [0]),
    ("CamConfig", "temperature", ["1", True], [0.0]),
    ("CamConfig", "hard_negatives", ["2", True], [0]),
    ("CamConfig", "bank", ["8", 8.0, True], [-1]),
    ("CamConfig", "expand_res", ["yes", 1], []),
    ("CamConfig", "interpolation", [3], ["cubic"]),
    ("CamConfig", "map_source", [1], ["atention"]),
    ("CamConfig", "edges", ["yes", 1], []),
    ("CamConfig", "edge_radius", ["0.1", True], [0.0, 0.6]),
    ("CamConfig", "edge_eps", ["0.01", True], [0.0]),
    ("CamConfig", "refine", [1], ["max"]),
    ("store.precompute", "batch_size", ["64", 64.0, True], [0]),
    ("store.precompute", "image_size", ["224", True], [4]),
    ("store.precompute", "mask_size", ["56", True], [0]),
    ("BoxConfig", "max_boxes", ["4", True], [0]),
    ("BoxConfig", "threshold", ["0.5", True], [0.0]),
    ("BoxConfig", "min_area", ["0.01", True], [1.0]),
    ("BoxConfig", "margin", ["0.2", True], [-1.0]),
    ("BoxConfig", "overlap", ["0.3", True], [1.5]),
    ("BoxConfig", "connectivity", ["4", True], [6]),
    ("BoxConfig", "map_size", ["16", 16.0, True], [2]),
    ("store.precompute", "shard_size", ["1024", True], [0]),
    ("store.precompute", "precision", [16, None], ["fp8"]),
    ("store.precompute", "num_workers", ["2", 2.0, True], [-1]),
    ("store.precompute", "overwrite", ["yes", 1], []),
    ("store.precompute", "progress", ["yes", 1], []),
]


@pytest.mark.parametrize(("entry", "option", "wrong_type", "impossible"), OPTIONS,
                         ids=[f"{e}.{o}" for e, o, *_ in OPTIONS])
def test_every_constructor_option_follows_the_rule(entry, option, wrong_type, impossible):
    make = ENTRIES[entry]
    for value in wrong_type:
        with pytest.raises(TypeError, match=option):
            make(**{option: value})
    for value in impossible:
        with pytest.raises(ValueError, match=option):
            make(**{option: value})


def test_the_table_covers_every_constructor():
    assert {entry for entry, *_ in OPTIONS} == set(ENTRIES)
