"""``objaug.log_maps``: solo-learn's callback logs ContraCAM maps of a fixed batch (real Lightning Trainer, CPU,
a module written to solo-learn's contract; see test_solo_learn_support.py)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("lightning")
pytest.importorskip("omegaconf")

import test_solo_learn_support as solo  # noqa: E402
from PIL import Image  # noqa: E402
from test_solo_learn_support import entry_point_on, single_thread  # noqa: E402

from objaug.integrations.solo_learn import ObjaugConfigError  # noqa: E402
from objaug.integrations.solo_learn.config import parse_objaug_config  # noqa: E402

__all__ = ["entry_point_on", "single_thread"]  # the autouse fixtures, imported

PIPES = [solo.pipeline(crop_size=solo.CAM_SIZE), solo.pipeline(crop_size=solo.CAM_SIZE)]


def test_log_maps_is_off_by_default_and_validated():
    assert parse_objaug_config({}).log_maps.every_n_steps == 0
    with pytest.raises(ObjaugConfigError, match="objaug.log_maps.num_images"):
        parse_objaug_config({"log_maps": {"num_images": 1}})
    with pytest.raises(ObjaugConfigError, match="objaug.log_maps.every_n_steps"):
        parse_objaug_config({"log_maps": {"every_n_steps": -1}})


def test_maps_are_written_while_objaug_is_disabled(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    block = {"enabled": False, "log_maps": {"every_n_steps": 2, "num_images": 3}}
    module = solo.ContractMethod(solo.make_cfg(block, pipelines=PIPES), momentum=True)
    trainer = solo.fit(module, solo.BlobDataset(8), steps=4, logger=CSVLogger(str(tmp_path), name="csv"))
    (cb,) = solo.objaug_callbacks(trainer)
    assert not cb.active and cb.map_logger.which == "auto"
    files = sorted((tmp_path / "csv" / "version_0" / "objaug_maps").iterdir())
    assert [f.name for f in files] == ["step_0000002.png", "step_0000004.png"]
    assert Image.open(files[0]).size == (3 * (solo.CAM_SIZE + 2) + 2, 2 * (solo.CAM_SIZE + 2) + 2)  # 3 images, 2 rows
    first = solo.BlobDataset(8)
    assert torch.equal(cb.map_logger.images, torch.stack([first[i][1][0] for i in range(3)]))  # view 0, batch 0


def test_the_fixed_batch_is_taken_before_objaug_recrops_it(tmp_path):
    block = {"enabled": True, "source": "store", "store": {"path": "memory:8", "cls": solo.STORE_CLS},
             "online": {"view": 1}, "log_maps": {"every_n_steps": 1, "num_images": 2}}
    module = solo.ContractMethod(solo.make_cfg(block, pipelines=PIPES))
    trainer = solo.fit(module, solo.BlobDataset(8), steps=1, default_root_dir=str(tmp_path))
    (cb,) = solo.objaug_callbacks(trainer)
    assert cb.active
    frames = torch.stack([solo.BlobDataset(8)[i][1][1] for i in range(2)])
    assert torch.equal(cb.map_logger.images, frames)  # the full frames of view 1, not objaug's crops
    assert not torch.equal(module.seen[0]["X"][1][:2], frames)  # what training saw was re-cropped
    assert [f.name for f in (tmp_path / "objaug_maps").iterdir()] == ["step_0000001.png"]


def test_attention_on_a_resnet_is_refused_at_setup_naming_the_key():
    block = {"online": {"map_source": "attention"}, "log_maps": {"every_n_steps": 5}}
    module = solo.ContractMethod(solo.make_cfg(block, pipelines=PIPES))
    with pytest.raises(ObjaugConfigError, match="objaug.online.map_source='attention'"):
        solo.fit(module, solo.BlobDataset(8), steps=1)
    assert module.seen == []  # before the first step
