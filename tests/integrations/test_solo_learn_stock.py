"""A stock solo-learn config (its ``scripts/pretrain/cifar`` layout, composed by Hydra) plus only
``+objaug.enabled=true`` trains with objaug engaged: online CAM by default, solo-learn's own transform set to
deliver full frames for the run (and restored), one summary line on rank 0, nothing when inert; the
entry-point factory adds no callback where solo-learn is not in the process."""

from __future__ import annotations

import logging
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("lightning")
pytest.importorskip("hydra")

import lightning.pytorch as L  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from test_solo_learn_support import (  # noqa: E402
    CAM_SIZE,
    ContractMethod,
    coord_frame,
    entry_point_on,
    fit,
    objaug_callbacks,
    single_thread,
)
from torch.utils.data import Dataset  # noqa: E402
from torchvision import transforms as T  # noqa: E402

from objaug.integrations.solo_learn import ObjaugConfigError  # noqa: E402

__all__ = ["entry_point_on", "single_thread"]

# solo-learn's scripts/pretrain/cifar/simclr.yaml (trimmed) and augmentations/symmetric.yaml (crop_size 64:
# ResNet-18 maps of a 32-pixel CIFAR frame are 1x1)
SIMCLR = """defaults:
  - _self_
  - augmentations: symmetric.yaml
  - wandb: private.yaml
  - override hydra/hydra_logging: disabled
  - override hydra/job_logging: disabled
hydra:
  output_subdir: null
  run:
    dir: .
name: "simclr-cifar10"
method: "simclr"
backbone:
  name: "resnet18"
data:
  dataset: cifar10
  train_path: "./datasets"
optimizer:
  name: "lars"
  batch_size: 256
  lr: 0.4
max_epochs: 1000
"""
SYMMETRIC = """- rrc:
    enabled: True
    crop_min_scale: 0.08
    crop_max_scale: 1.0
  color_jitter:
    prob: 0.8
    brightness: 0.8
    contrast: 0.8
    saturation: 0.8
    hue: 0.2
  grayscale:
    prob: 0.2
  gaussian_blur:
    prob: 0.5
  solarization:
    prob: 0.0
  equalization:
    prob: 0.0
  horizontal_flip:
    prob: 0.5
  crop_size: 64
  num_crops: 2
"""


def _layout(root: Path) -> Path:
    cifar = root / "scripts" / "pretrain" / "cifar"
    (cifar / "augmentations").mkdir(parents=True)
    (cifar / "wandb").mkdir()
    (cifar / "simclr.yaml").write_text(SIMCLR)
    (cifar / "augmentations" / "symmetric.yaml").write_text(SYMMETRIC)
    (cifar / "wandb" / "private.yaml").write_text("enabled: False\nentity: null\nproject: solo-learn\n")
    return cifar


def _compose(root: Path, overrides: list[str]) -> Any:
    with initialize_config_dir(config_dir=str(_layout(root)), version_base="1.2"):
        return compose(config_name="simclr", overrides=overrides)


class NCrop:
    """solo-learn's NCropAugmentation interface: ``transform`` applied ``num_crops`` times."""

    def __init__(self, transform: Any, num_crops: int) -> None:
        self.transform, self.num_crops = transform, num_crops

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.transform(x) for _ in range(self.num_crops)]


class FullPipeline:
    """solo-learn's FullTransformPipeline interface: the views of every pipeline, in order."""

    def __init__(self, transforms: list[NCrop]) -> None:
        self.transforms = transforms

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [v for t in self.transforms for v in t(x)]


def solo_transform(cfg: Any) -> FullPipeline:
    """The geometric part of solo-learn's build_transform_pipeline, per pipeline of ``cfg.augmentations``."""
    return FullPipeline([NCrop(T.Compose([
        T.RandomResizedCrop(a.crop_size, scale=(a.rrc.crop_min_scale, a.rrc.crop_max_scale), antialias=True),
        T.RandomHorizontalFlip(p=a.horizontal_flip.prob)]), a.num_crops) for a in cfg.augmentations])


class SoloDataset(Dataset):
    """solo-learn's dataset_with_index: ``(index, transform(image), target)``; images are coordinate frames."""

    def __init__(self, transform: Any, n: int = 4) -> None:
        self.transform, self.n = transform, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[int, Any, int]:
        return index, self.transform(coord_frame(index, CAM_SIZE)), 0


class Delivered(L.Callback):
    """Records the views as the DataLoader delivered them (runs before the entry-point callback)."""

    def __init__(self) -> None:
        self.views: list[torch.Tensor] = []

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.views.extend(v.clone() for v in batch[1])


@pytest.fixture
def said():
    """Lines Lightning's rank_zero_info printed (either Lightning package) during the test."""
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    loggers = [logging.getLogger("lightning.pytorch"), logging.getLogger("pytorch_lightning")]
    for log in loggers:
        log.addHandler(handler)
    yield lines
    for log in loggers:
        log.removeHandler(handler)


def test_stock_config_plus_enabled_trains_with_objaug_engaged(tmp_path, said):
    cfg = _compose(tmp_path, ["+objaug.enabled=true"])
    transform = solo_transform(cfg)
    crop, flip = transform.transforms[0].transform.transforms
    module, spy = ContractMethod(cfg), Delivered()
    trainer = fit(module, SoloDataset(transform), steps=1, callbacks=[spy])
    (cb,) = objaug_callbacks(trainer)
    assert cb.active and cb.config.source == "online"  # no store given: ContraCAM of the model
    frame = torch.stack([coord_frame(i, CAM_SIZE) for i in range(4)])
    for v in spy.views:  # solo-learn delivered whole, unflipped frames ...
        assert torch.allclose(v, frame, atol=1e-5)
    assert not torch.allclose(module.seen[0]["X"][0], frame, atol=1e-3)  # ... that objaug then re-cropped
    assert crop.scale == (0.08, 1.0) and flip.p == 0.5  # restored at teardown
    engaged = [line for line in said if line.startswith("objaug:")]
    assert len(engaged) == 1, said
    assert "views [0, 1] of 2" in engaged[0] and "online ContraCAM of backbone + projector" in engaged[0]
    assert "mixup: off" in engaged[0] and "augmentations[0] set to deliver full, unflipped frames" in engaged[0]


def test_unknown_transform_gets_one_message_with_every_override(tmp_path):
    cfg = _compose(tmp_path, ["+objaug.enabled=true"])
    data = SoloDataset(lambda x: [x.clone(), x.clone()])  # not solo-learn's pipeline: cannot be adjusted
    with pytest.raises(ObjaugConfigError, match=r"augmentations\.0\.rrc\.crop_min_scale=1\.0 "
                                                r"augmentations\.0\.horizontal_flip\.prob=0\.0\.") as err:
        fit(ContractMethod(cfg), data, steps=1)
    hydra = str(err.value).split("On the command line: ")[1].split(". ")[0].split()
    fixed = _compose(tmp_path / "again", ["+objaug.enabled=true", *hydra])  # the advice composes and is enough
    module = ContractMethod(fixed)
    trainer = fit(module, data, steps=1)
    assert objaug_callbacks(trainer)[0].active and len(module.seen) == 1


def test_inert_callback_is_silent(tmp_path, said):
    cfg = _compose(tmp_path, [])
    trainer = fit(ContractMethod(cfg), SoloDataset(solo_transform(cfg)), steps=1)
    assert [cb.active for cb in objaug_callbacks(trainer)] == [False]
    assert not [line for line in said if "objaug" in line]


def test_factory_adds_nothing_without_solo_learn(monkeypatch):
    from objaug.integrations.solo_learn.callback import callbacks_factory

    monkeypatch.delenv("OBJAUG_SOLO_LEARN")
    monkeypatch.delitem(sys.modules, "solo", raising=False)
    assert callbacks_factory() == []
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False)
    assert objaug_callbacks(trainer) == []
    monkeypatch.setitem(sys.modules, "solo", types.ModuleType("solo"))  # what main_pretrain.py has imported
    assert len(callbacks_factory()) == 1
    monkeypatch.setenv("OBJAUG_SOLO_LEARN", "0")
    assert callbacks_factory() == []
