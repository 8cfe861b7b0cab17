"""Against the real solo-learn (GitHub main): skipped when ``solo`` is not importable (CI cannot install it).

* in-process: solo-learn's own config parsing, data pipeline, BYOL / SimCLR / MoCo v2+ methods and a
  Lightning Trainer with no explicit callbacks; the entry-point callback rewrites the views that the
  method's ``training_step`` sees;
* end to end: solo-learn's unmodified ``main_pretrain.py`` with ``examples/solo_learn/byol.yaml``
  (skipped unless the solo-learn checkout with ``main_pretrain.py`` is found next to the package).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

solo = pytest.importorskip("solo")
pytest.importorskip("lightning")

from omegaconf import OmegaConf  # noqa: E402
from test_solo_learn_support import STORE_CLS, objaug_callbacks, single_thread  # noqa: E402

__all__ = ["single_thread"]

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parents[1] / "examples" / "solo_learn"
N_IMAGES = 8
SIZE = 64


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """A tiny custom dataset: 2 class folders of 4 PNGs each, a bright square on a noisy background."""
    from PIL import Image

    root = tmp_path_factory.mktemp("solo_images")
    g = torch.Generator().manual_seed(0)
    for i in range(N_IMAGES):
        folder = root / f"class{i % 2}"
        folder.mkdir(exist_ok=True)
        img = torch.rand(80, 96, 3, generator=g) * 0.4
        y, x = 10 + 5 * (i % 3), 15 + 7 * (i % 4)
        img[y:y + 30, x:x + 30] = torch.rand(3, generator=g) * 0.3 + 0.7
        Image.fromarray((img * 255).byte().numpy()).save(folder / f"img{i}.png")
    return root


def _solo_cfg(name: str, folder: Path, objaug: dict[str, Any] | None = None) -> Any:
    """An example config shrunk for the CPU, through solo-learn's own parse_cfg."""
    from solo.args.pretrain import parse_cfg

    cfg = OmegaConf.load(EXAMPLES / f"{name}.yaml")
    for key in ("defaults", "hydra"):
        cfg.pop(key, None)
    OmegaConf.set_struct(cfg, False)
    cfg.data.train_path = str(folder)
    cfg.data.num_workers = 0
    cfg.backbone.name = "resnet18"
    for key in ("proj_hidden_dim", "pred_hidden_dim"):
        if key in cfg.method_kwargs:
            cfg.method_kwargs[key] = 64
    cfg.method_kwargs.proj_output_dim = 32
    if "queue_size" in cfg.method_kwargs:
        cfg.method_kwargs.queue_size = 64
    cfg.optimizer.batch_size = 4
    cfg.devices = [0]
    cfg.accelerator = "cpu"
    cfg.strategy = "auto"
    cfg.precision = "32"
    cfg.sync_batchnorm = False
    cfg.checkpoint.enabled = False
    for item in cfg.augmentations:
        item.crop_size = SIZE
    if objaug is not None:
        cfg.objaug = OmegaConf.merge(cfg.objaug, objaug)
    if "online" in cfg.objaug:
        cfg.objaug.online.start_step = 0
    return parse_cfg(cfg)


def _train(name: str, folder: Path, objaug: dict[str, Any] | None = None, steps: int = 2) -> dict[str, Any]:
    """Build the method and loader as main_pretrain.py does; fit with no explicit objaug callback."""
    import lightning.pytorch as L
    from solo.data.pretrain_dataloader import (
        FullTransformPipeline,
        NCropAugmentation,
        build_transform_pipeline,
        prepare_dataloader,
        prepare_datasets,
    )
    from solo.methods import METHODS

    cfg = _solo_cfg(name, folder, objaug)
    model = METHODS[cfg.method](cfg).to(memory_format=torch.channels_last)
    transform = FullTransformPipeline([NCropAugmentation(build_transform_pipeline(cfg.data.dataset, a), a.num_crops)
                                       for a in cfg.augmentations])
    dataset = prepare_datasets(cfg.data.dataset, transform, train_data_path=cfg.data.train_path,
                               data_format=cfg.data.format, no_labels=cfg.data.no_labels)
    loader = prepare_dataloader(dataset, batch_size=cfg.optimizer.batch_size, num_workers=0)

    record: dict[str, Any] = {"before": [], "after": [], "losses": [], "cam": []}

    class Before(L.Callback):  # user callbacks run before the entry-point ones
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            record["before"].append([x.clone() for x in batch[1]])

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            record["losses"].append(float(outputs["loss"]))
            engine = objaug_callbacks(trainer)[-1].engine
            record["cam"].append(None if engine is None else engine.last_info.get("cam"))

    original = model.training_step

    def training_step(batch, batch_idx):
        record["after"].append([x.clone() for x in batch[1]])
        return original(batch, batch_idx)

    model.training_step = training_step  # type: ignore[method-assign]
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[Before()])
    trainer.fit(model, loader)
    record["callbacks"] = objaug_callbacks(trainer)
    return record


def _check_rewritten(record: dict[str, Any], views: int = 2) -> None:
    (cb,) = record["callbacks"]
    assert cb.active and cb.from_entry_point
    assert len(record["after"]) == len(record["before"]) > 0
    for before, after in zip(record["before"], record["after"], strict=True):
        assert len(after) == views
        for b, a in zip(before, after, strict=True):
            assert a.shape == b.shape and torch.isfinite(a).all()
            assert not torch.equal(a, b)
    assert all(torch.isfinite(torch.tensor(loss)) for loss in record["losses"])


def test_byol_store(image_folder):
    record = _train("byol", image_folder, {"store": {"path": f"memory:{N_IMAGES}", "cls": STORE_CLS}})
    _check_rewritten(record)
    assert record["callbacks"][0].engine.last_info["mixed"].keys() == {0}


def test_byol_precomputed_store(image_folder, tmp_path):
    """The documented recipe: precompute over torchvision's ImageFolder (solo-learn's custom dataset class,
    hence the same indexes), then train with objaug.store.path and the default store class."""
    import torchvision

    from objaug.store import precompute

    model = torchvision.models.resnet18()
    model.fc = torch.nn.Identity()
    precompute(torchvision.datasets.ImageFolder(str(image_folder)), model, tmp_path / "store",
               image_size=SIZE, batch_size=N_IMAGES, mask_size=16, num_workers=0, progress=False)
    record = _train("byol", image_folder, {"store": {"path": str(tmp_path / "store")}})
    _check_rewritten(record)


def test_byol_online_momentum(image_folder):
    record = _train("byol", image_folder, {"source": "online", "online": {"model": "auto"},
                                           "boxes": {"map_size": 16}})
    _check_rewritten(record)
    assert record["cam"] == [True, True]


def test_simclr_online(image_folder):
    record = _train("simclr", image_folder, {"boxes": {"map_size": 16}})
    _check_rewritten(record)
    assert record["cam"] == [True, True]


def test_mocov2plus_online_cache(image_folder):
    record = _train("mocov2plus", image_folder, {"online": {"every_n_steps": 2, "all_gather_negatives": False},
                                                 "boxes": {"map_size": 16}}, steps=3)
    _check_rewritten(record)
    assert record["cam"] == [True, False, True]


def test_inert_without_block(image_folder):
    import lightning.pytorch as L  # noqa: F401

    cfg_block = {"enabled": False}
    record = _train("simclr", image_folder, cfg_block, steps=1)
    (cb,) = record["callbacks"]
    assert not cb.active
    assert all(torch.equal(a, b) for a, b in zip(record["before"][0], record["after"][0], strict=True))


def _main_pretrain() -> Path | None:
    root = Path(solo.__file__).resolve().parents[1]
    script = root / "main_pretrain.py"
    return script if script.exists() else None


@pytest.mark.slow
def test_main_pretrain_end_to_end(image_folder, tmp_path):
    script = _main_pretrain()
    if script is None:
        pytest.skip("solo-learn's main_pretrain.py is not next to the installed package")
    overrides = [
        f"data.train_path={image_folder}", "data.num_workers=0", "backbone.name=resnet18",
        "method_kwargs.proj_hidden_dim=64", "method_kwargs.pred_hidden_dim=64", "method_kwargs.proj_output_dim=32",
        "optimizer.batch_size=4", "augmentations.0.crop_size=64", "augmentations.1.crop_size=64",
        f"objaug.store.path=memory:{N_IMAGES}", f"+objaug.store.cls={STORE_CLS}",
        "accelerator=cpu", "devices='1'", "strategy=auto", "precision=32", "sync_batchnorm=False",
        "max_epochs=1", "+max_steps=2", "checkpoint.enabled=False", "+objaug.crop.antialias=false",
    ]
    log = tmp_path / "store_requests.txt"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", WANDB_MODE="disabled", OBJAUG_TEST_STORE_LOG=str(log))
    proc = subprocess.run([sys.executable, str(script), "--config-path", str(EXAMPLES), "--config-name", "byol.yaml",
                           *overrides], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    # the entry-point callback (no code change in solo-learn) asked the store for both batches' boxes
    requests = [line.split() for line in log.read_text().splitlines()]
    assert len(requests) == 2 and all(len(r) == 4 for r in requests)


@pytest.mark.slow
def test_stock_byol_plus_enabled_states_what_objaug_engaged(image_folder, tmp_path):
    """solo-learn's own scripts/pretrain/custom/byol.yaml (hydra/job_logging: disabled) plus only
    ``+objaug.enabled=true`` (and CPU-sized settings): the summary reaches stderr."""
    script = _main_pretrain()
    if script is None or not (script.parent / "scripts" / "pretrain" / "custom" / "byol.yaml").is_file():
        pytest.skip("solo-learn's checkout (main_pretrain.py, scripts/pretrain/custom) is not next to the package")
    overrides = [
        "+objaug.enabled=true",
        f"data.train_path={image_folder}", "~data.val_path", "data.format=image_folder", "data.num_workers=0",
        "method_kwargs.proj_hidden_dim=64", "method_kwargs.pred_hidden_dim=64", "method_kwargs.proj_output_dim=32",
        "optimizer.batch_size=4", "augmentations.0.crop_size=64", "augmentations.1.crop_size=64",
        "accelerator=cpu", "devices='1'", "strategy=auto", "precision=32", "sync_batchnorm=False",
        "max_epochs=1", "+max_steps=1", "checkpoint.enabled=False", "auto_resume.enabled=False", "wandb.enabled=False",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", WANDB_MODE="disabled")
    proc = subprocess.run([sys.executable, str(script), "--config-path", str(script.parent / "scripts" / "pretrain" /
                                                                          "custom"), "--config-name", "byol.yaml",
                           *overrides], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    lines = proc.stderr.splitlines()
    start = lines.index("objaug: on (objaug.enabled: true), object-aware crop of views [0, 1] of 2 on the device")
    assert lines[start + 1] == ("  boxes: online ContraCAM of momentum_backbone + momentum_projector on view 0 "
                                "(1 iteration)")
    assert lines[start + 2] == "  refresh: a fresh CAM on every batch from batch 0"
    assert lines[start + 4] == "  mixup: off"
    for i in (0, 1):  # solo-learn's asymmetric.yaml: one pipeline per view, both cropped and flipped
        assert (f"    augmentations[{i}]: RandomResizedCrop scale (0.08, 1.0) -> (1.0, 1.0), RandomHorizontalFlip p "
                "0.5 -> 0.0") in lines
