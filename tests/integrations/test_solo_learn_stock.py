"""A stock solo-learn config (its ``scripts/pretrain/cifar`` layout, composed by Hydra) plus only
``+objaug.enabled=true`` trains with objaug engaged: online CAM by default, solo-learn's own transform set to
deliver full frames for the run (and restored), a short summary on stderr on rank 0 that survives solo-learn's
``hydra/job_logging: disabled`` (checked in a real ``@hydra.main`` process), nothing when inert; the entry-point
factory adds no callback where solo-learn is not in the process."""

from __future__ import annotations

import os
import subprocess
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
    STORE_CLS,
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

HERE = Path(__file__).resolve().parent

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


def _summary(err: str) -> list[str]:
    """The summary's lines: from the line starting with ``objaug: on`` to the last indented line after it."""
    lines = err.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("objaug: on")]
    assert len(starts) == 1, err
    out = [lines[starts[0]]]
    for line in lines[starts[0] + 1:]:
        if not line.startswith("  "):
            break
        out.append(line)
    return out


def test_stock_config_plus_enabled_trains_with_objaug_engaged(tmp_path, capsys):
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
    summary = _summary(capsys.readouterr().err)
    assert summary == [
        "objaug: on (objaug.enabled: true), object-aware crop of views [0, 1] of 2 on the device",
        "  boxes: online ContraCAM of backbone + projector on view 0 (1 iteration)",
        "  refresh: a fresh CAM on every batch from batch 0",
        "  crop: box_p=1 scale=[0.08, 1] ratio=[0.75, 1.33] flip=0.5 sampling=uniform",
        "  mixup: off",
        "  solo-learn's data pipeline, changed for this run (objaug crops and flips these views; restored when "
        "training ends):",
        "    augmentations[0]: RandomResizedCrop scale (0.08, 1.0) -> (1.0, 1.0), RandomHorizontalFlip p 0.5 -> 0.0",
    ]


def test_summary_of_a_store_run_with_mixup_and_full_frame_pipelines(tmp_path, capsys):
    full = ["augmentations.0.rrc.crop_min_scale=1.0", "augmentations.0.horizontal_flip.prob=0.0"]
    cfg = _compose(tmp_path, ["+objaug.enabled=true", "+objaug.store.path=memory:4", f"+objaug.store.cls={STORE_CLS}",
                              "+objaug.mixup.enabled=true", *full])
    fit(ContractMethod(cfg), SoloDataset(solo_transform(cfg)), steps=1)
    summary = _summary(capsys.readouterr().err)
    assert summary[1] == f"  boxes: store memory:4 ({STORE_CLS})"
    assert summary[2] == "  refresh: none needed: the store is read by dataset index on every batch"
    assert summary[4] == "  mixup: on, views [0] p=0.4 threshold=otsu queue=50 (tiled-strip)"
    assert summary[5:] == ["  solo-learn's data pipeline: unchanged (it already delivers full, unflipped frames)"]


def test_summary_states_the_mixup_start_step(tmp_path, capsys):
    full = ["augmentations.0.rrc.crop_min_scale=1.0", "augmentations.0.horizontal_flip.prob=0.0"]
    cfg = _compose(tmp_path, ["+objaug.enabled=true", "+objaug.store.path=memory:4", f"+objaug.store.cls={STORE_CLS}",
                              "+objaug.mixup.enabled=true", "+objaug.mixup.start_step=500", *full])
    fit(ContractMethod(cfg), SoloDataset(solo_transform(cfg)), steps=1)
    summary = _summary(capsys.readouterr().err)
    assert summary[4] == "  mixup: on from batch 500, views [0] p=0.4 threshold=otsu queue=50 (tiled-strip)"


def test_summary_states_the_online_refresh_schedule(tmp_path, capsys):
    cfg = _compose(tmp_path, ["+objaug.enabled=true", "+objaug.online.every_n_steps=4", "+objaug.online.start_step=8",
                              "+objaug.online.iters=2"])
    fit(ContractMethod(cfg), SoloDataset(solo_transform(cfg)), steps=1)
    summary = _summary(capsys.readouterr().err)
    assert summary[1] == "  boxes: online ContraCAM of backbone + projector on view 0 (2 iterations)"
    assert summary[2] == ("  refresh: a fresh CAM every 4 batches from batch 8 (whole-frame crops, no mixup before "
                          "it); in between boxes (and masks) cached per image are reused (online.cache: index)")


def test_summary_survives_hydra_job_logging_disabled(tmp_path):
    """solo-learn's own set-up, in a real process: ``@hydra.main`` with ``hydra/job_logging: disabled`` (which
    swallows Lightning's ``rank_zero_info``, as the control line shows) and only ``+objaug.enabled=true``."""
    config_dir = _layout(tmp_path / "configs")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", OBJAUG_SOLO_LEARN="1")
    proc = subprocess.run([sys.executable, str(HERE / "solo_hydra_app.py"), "--config-path", str(config_dir),
                           "--config-name", "simclr", "+objaug.enabled=true"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "control: rank_zero_info reached the screen" not in out  # the logging set-up of solo-learn's configs
    summary = _summary(proc.stderr)
    assert summary[0] == "objaug: on (objaug.enabled: true), object-aware crop of views [0, 1] of 2 on the device"
    assert summary[-1] == ("    augmentations[0]: RandomResizedCrop scale (0.08, 1.0) -> (1.0, 1.0), "
                           "RandomHorizontalFlip p 0.5 -> 0.0")


def test_summary_only_on_rank_zero(tmp_path, capsys):
    from objaug.integrations.solo_learn.callback import SoloObjectAwareCallback

    cb = SoloObjectAwareCallback()
    cb._say(types.SimpleNamespace(is_global_zero=False), "objaug: on (rank 1)")
    cb._say(types.SimpleNamespace(is_global_zero=True), "objaug: on (rank 0)")
    assert capsys.readouterr().err == "objaug: on (rank 0)\n"


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


def test_inert_callback_is_silent(tmp_path, capsys):
    cfg = _compose(tmp_path, [])
    trainer = fit(ContractMethod(cfg), SoloDataset(solo_transform(cfg)), steps=1)
    assert [cb.active for cb in objaug_callbacks(trainer)] == [False]
    captured = capsys.readouterr()
    assert "objaug" not in captured.out + captured.err


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
