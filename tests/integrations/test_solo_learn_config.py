"""The ``objaug:`` block's schema and validation (pure Python; no Lightning, no solo-learn)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from objaug.integrations.solo_learn.config import (
    ObjaugConfig,
    ObjaugConfigError,
    check_solo_pipelines,
    full_frame_fixes,
    parse_objaug_config,
    schema_rows,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "solo-learn.md"


def _pipeline(full=True, flip=0.0, num_crops=1, enabled=True):
    return {"rrc": {"enabled": enabled, "crop_min_scale": 1.0 if full else 0.08, "crop_max_scale": 1.0},
            "horizontal_flip": {"prob": flip}, "crop_size": 224, "num_crops": num_crops}


def test_defaults_are_disabled_and_match_the_dataclasses():
    assert parse_objaug_config(None) == parse_objaug_config({}) == ObjaugConfig()
    assert not ObjaugConfig().enabled


def test_every_field_has_exactly_one_schema_row():
    keys = [row[0] for row in schema_rows()]
    assert len(keys) == len(set(keys))
    fields = []
    default = ObjaugConfig()
    for f in dataclasses.fields(default):
        value = getattr(default, f.name)
        if not dataclasses.is_dataclass(value):
            fields.append(f.name)
            continue
        for g in dataclasses.fields(value):
            inner = getattr(value, g.name)
            # online.cam / online.schedule: objaug's shared configs, written flat under the section
            names = [h.name for h in dataclasses.fields(inner)] if dataclasses.is_dataclass(inner) else [g.name]
            fields += [f"{f.name}.{name}" for name in names]
    assert sorted(fields) == sorted(keys)


def test_docs_list_every_key_with_its_default():
    rows = {}
    for line in DOCS.read_text().splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)]
        if len(cells) == 6 and cells[1].startswith("`"):
            rows[cells[1].strip("`")] = cells[3].strip("`")
    for key, _, default, _ in schema_rows():
        assert key in rows, f"docs/solo-learn.md has no table row for objaug.{key}"
        assert rows[key] == default, f"docs/solo-learn.md: objaug.{key} default {rows[key]} != {default}"


def test_mixup_threshold_otsu_or_a_number():
    assert parse_objaug_config({}).mixup.threshold == "otsu"
    assert parse_objaug_config({"mixup": {"threshold": 0.2}}).mixup.threshold == 0.2


def test_omegaconf_block_and_values():
    OmegaConf = pytest.importorskip("omegaconf").OmegaConf
    block = OmegaConf.create({"enabled": True, "source": "online", "views": [1, 0],
                              "crop": {"box_p": 1, "scale": [0.2, 1]}, "mixup": {"enabled": True, "views": [1]},
                              "online": {"iters": 3, "view": "${views.1}"}})
    c = parse_objaug_config(block)
    assert c.enabled and c.source == "online" and c.views == (1, 0)
    assert c.crop.box_p == 1.0 and isinstance(c.crop.box_p, float) and c.crop.scale == (0.2, 1.0)
    assert c.mixup.views == (1,) and c.online.cam.iters == 3 and c.online.view == 0  # interpolation resolved


@pytest.mark.parametrize(
    ("block", "match"),
    [
        ("yes", r"objaug must be a mapping"),
        ({"enable": True}, r"Unknown key objaug\.enable in the objaug block\. Did you mean objaug\.enabled\?"),
        ({"mixups": {}}, r"Unknown key objaug\.mixups.*Did you mean objaug\.mixup\?"),
        ({"crop": {"prob": 0.5}}, r"Unknown key objaug\.crop\.prob.*Allowed keys under objaug\.crop: alpha, antialias"),
        ({"crop": [0.5]}, r"objaug\.crop must be a mapping"),
        ({"enabled": "yes"}, r"objaug\.enabled must be true or false, got 'yes' \(str\)"),
        ({"source": "file"}, r"objaug\.source must be one of 'store', 'online', got 'file'"),
        ({"views": [0, 0]}, r"objaug\.views lists a view twice"),
        ({"views": []}, r"objaug\.views must list at least one view"),
        ({"views": "01"}, r"objaug\.views must be a list of view indexes"),
        ({"views": [-1]}, r"objaug\.views must be a list of view indexes"),
        ({"crop": {"box_p": 1.5}}, r"objaug\.crop\.box_p must be a number in \[0\.0, 1\.0\], got 1\.5"),
        ({"crop": {"box_p": True}}, r"objaug\.crop\.box_p must be a number in \[0\.0, 1\.0\], got True \(bool\)"),
        ({"crop": {"scale": [1.0, 0.5]}}, r"objaug\.crop\.scale must satisfy 0\.0 < min <= max <= 1\.0"),
        ({"crop": {"scale": 0.5}}, r"objaug\.crop\.scale must be a \[min, max\] pair"),
        ({"crop": {"ratio": [0, 1]}}, r"objaug\.crop\.ratio must satisfy 0\.0 < min <= max <= inf"),
        ({"crop": {"box_sampling": "largest"}}, r"objaug\.crop\.box_sampling must be one of 'uniform', 'area'"),
        ({"crop": {"alpha": 0}}, r"objaug\.crop\.alpha must be a number > 0\.0"),
        ({"crop": {"min_box_pixels": -1}}, r"objaug\.crop\.min_box_pixels must be an integer >= 0, got -1"),
        ({"crop": {"min_box_pixels": 8.5}}, r"objaug\.crop\.min_box_pixels must be an integer >= 0, got 8\.5"),
        ({"online": {"iters": 1.5}}, r"objaug\.online\.iters must be an int >= 1, got float 1\.5"),
        ({"online": {"every_n_steps": 0}}, r"objaug\.online\.every_n_steps must be an int >= 1, got 0"),
        ({"online": {"model": "target"}}, r"objaug\.online\.model must be one of 'auto', 'online', 'momentum'"),
        ({"boxes": {"min_area": 1.0}}, r"objaug\.boxes\.min_area must be a number in \[0\.0, 1\.0\), got 1\.0"),
        ({"mixup": {"threshold": 0}}, r"objaug\.mixup\.threshold must be a number in \(0\.0, 1\.0\]"),
        ({"mixup": {"threshold": "mean"}}, r"objaug\.mixup\.threshold must be 'otsu' or a number in"),
        ({"mixup": {"queue_size": -1}}, r"objaug\.mixup\.queue_size must be an integer >= 0"),
        ({"store": {"cls": "ObjectStore"}}, r"objaug\.store\.cls must name a class or function as 'package\.module"),
        ({"enabled": True, "views": [0], "mixup": {"enabled": True, "views": [0, 1]}},
         r"objaug\.mixup\.views \[0, 1\] must be a subset of objaug\.views \[0\].*Add \[1\] to objaug\.views"),
        ({"enabled": True, "source": "store"}, r"objaug\.source is 'store' but objaug\.store\.path is not set"),
        ({"source": "online", "online": {"view": 2}}, r"objaug\.online\.view=2 must be one of objaug\.views \[0, 1\]"),
    ],
)
def test_bad_blocks_name_the_key_and_the_allowed_values(block, match):
    with pytest.raises(ObjaugConfigError, match=match):
        parse_objaug_config(block)


def test_disabled_block_is_still_validated():
    with pytest.raises(ObjaugConfigError, match="objaug.crop.scale"):
        parse_objaug_config({"enabled": False, "crop": {"scale": [2, 3]}})
    parse_objaug_config({"enabled": False, "source": "store"})  # no path needed while disabled


def test_pipelines_full_frame_rules():
    c = parse_objaug_config({"enabled": True, "store": {"path": "x"}})
    assert check_solo_pipelines(c, [_pipeline(), _pipeline()]) == [0, 1]
    assert check_solo_pipelines(c, [_pipeline(num_crops=2)]) == [0, 0]
    assert check_solo_pipelines(c, [_pipeline(full=False, enabled=False), _pipeline()]) == [0, 1]  # Resize only
    with pytest.raises(ObjaugConfigError, match=r"augmentations\[1\]\.rrc\.crop_min_scale: 1\.0 \(got 0\.08\)"):
        check_solo_pipelines(c, [_pipeline(), _pipeline(full=False)])
    with pytest.raises(ObjaugConfigError, match=r"augmentations\[0\]\.horizontal_flip\.prob: 0\.0 \(got 0\.5\)"):
        check_solo_pipelines(c, [_pipeline(flip=0.5), _pipeline()])
    with pytest.raises(ObjaugConfigError, match=r"view 1 does not exist: solo-learn delivers 1 views"):
        check_solo_pipelines(c, [_pipeline()])
    relaxed = parse_objaug_config({"enabled": True, "store": {"path": "x"}, "check_pipelines": False})
    check_solo_pipelines(relaxed, [_pipeline(full=False, flip=0.5), _pipeline(full=False)])
    # multicrop: only the re-cropped views' pipelines must be full frames
    small = dict(_pipeline(full=False), crop_size=96, num_crops=4)
    assert check_solo_pipelines(c, [_pipeline(num_crops=2), small]) == [0, 0, 1, 1, 1, 1]
    with pytest.raises(ObjaugConfigError, match=r"cfg\.augmentations must be solo-learn's list"):
        check_solo_pipelines(c, {"rrc": {}})


def test_source_defaults_to_online_unless_a_store_is_named():
    assert parse_objaug_config({"enabled": True}).source == "online"
    assert parse_objaug_config({"enabled": True, "store": {"path": "/s"}}).source == "store"
    assert parse_objaug_config({"enabled": True, "source": "online", "store": {"path": "/s"}}).source == "online"


def test_full_frame_fixes_list_every_setting_once_per_pipeline():
    c = parse_objaug_config({"enabled": True})
    stock = [_pipeline(full=False, flip=0.5, num_crops=2)]  # solo-learn's symmetric.yaml: one pipeline, 2 crops
    assert full_frame_fixes(c, stock) == [(0, 0, "rrc.crop_min_scale", 1.0, 0.08),
                                          (0, 0, "horizontal_flip.prob", 0.0, 0.5)]
    assert full_frame_fixes(c, [_pipeline(), _pipeline()]) == []
    with pytest.raises(ObjaugConfigError, match=r"augmentations\.0\.rrc\.crop_min_scale=1\.0 "
                                                 r"augmentations\.0\.horizontal_flip\.prob=0\.0\."):
        check_solo_pipelines(c, stock)
