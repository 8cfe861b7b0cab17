"""The example solo-learn configs compose with Hydra (as solo-learn's main_pretrain.py would load them)
and their objaug blocks validate; the ``+objaug...`` command-line form works on a config without one."""

from __future__ import annotations

from pathlib import Path

import pytest

hydra = pytest.importorskip("hydra")
OmegaConf = pytest.importorskip("omegaconf").OmegaConf

from hydra import compose, initialize_config_dir  # noqa: E402

from objaug.integrations.solo_learn.config import (  # noqa: E402
    ObjaugConfigError,
    check_solo_pipelines,
    parse_objaug_config,
    view_pipelines,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "solo_learn"
NAMES = ["byol", "mocov2plus", "simclr"]


def _compose(config_dir: Path, name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.2"):
        return compose(config_name=name, overrides=overrides)


@pytest.mark.parametrize("name", NAMES)
def test_example_composes_and_validates(name, tmp_path):
    cfg = _compose(EXAMPLES, name, [f"data.train_path={tmp_path}"])
    assert cfg.method == name and cfg.data.dataset == "custom"
    config = parse_objaug_config(cfg.objaug)
    assert config.enabled
    pipelines = check_solo_pipelines(config, cfg.augmentations)
    assert len(pipelines) == 2  # two large crops, as BYOL / MoCo / SimCLR in solo-learn
    for item in cfg.augmentations:  # every pipeline leaves the crop and the flip to objaug
        assert item.rrc.crop_min_scale == item.rrc.crop_max_scale == 1.0 and item.horizontal_flip.prob == 0.0


def test_examples_cover_store_and_online():
    sources = {name: parse_objaug_config(OmegaConf.load(EXAMPLES / f"{name}.yaml").objaug).source for name in NAMES}
    assert sources == {"byol": "store", "mocov2plus": "online", "simclr": "online"}


def test_command_line_overrides_of_the_block(tmp_path):
    cfg = _compose(EXAMPLES, "byol", [f"data.train_path={tmp_path}", "objaug.crop.box_p=0.5",
                                      "objaug.mixup.enabled=false", "objaug.store.path=/data/store"])
    config = parse_objaug_config(cfg.objaug)
    assert config.crop.box_p == 0.5 and not config.mixup.enabled and config.store.path == "/data/store"
    cfg = _compose(EXAMPLES, "byol", [f"data.train_path={tmp_path}", "objaug.crop.box_p=1.5"])
    with pytest.raises(ObjaugConfigError, match=r"objaug\.crop\.box_p must be a number in \[0\.0, 1\.0\], got 1\.5"):
        parse_objaug_config(cfg.objaug)


def test_plus_objaug_override_on_a_config_without_the_block(tmp_path):
    plain = OmegaConf.load(EXAMPLES / "simclr.yaml")
    del plain["objaug"]
    (tmp_path / "plain.yaml").write_text(OmegaConf.to_yaml(plain))
    cfg = _compose(tmp_path, "plain", [f"data.train_path={tmp_path}"])
    assert "objaug" not in cfg  # without the block, the callback would stay inert
    overrides = [f"data.train_path={tmp_path}", "+objaug.enabled=true", "+objaug.source=online",
                 "+objaug.online.every_n_steps=4", "+objaug.online.model=online", "+objaug.mixup.enabled=true",
                 "+objaug.mixup.views=[0]", "+objaug.crop.scale=[0.2,1.0]"]
    cfg = _compose(tmp_path, "plain", overrides)
    config = parse_objaug_config(cfg.objaug)
    assert config.enabled and config.source == "online" and config.online.schedule.every_n_steps == 4
    assert config.mixup.views == (0,) and config.crop.scale == (0.2, 1.0)
    check_solo_pipelines(config, cfg.augmentations)


def test_view_pipelines_follow_solo_learn_order():
    augs = [{"num_crops": 2}, {"num_crops": 1}, {"num_crops": 3}]
    assert view_pipelines(augs) == [0, 0, 1, 2, 2, 2]
