"""LogCAMMaps: ContraCAM maps of a fixed batch logged during a real (tiny, CPU) Lightning run."""

from __future__ import annotations

import io
import sys
import types

import pytest
import torch
import torch.nn.functional as F
from torch import nn

L = pytest.importorskip("lightning.pytorch")

from PIL import Image  # noqa: E402

from objaug import ContraCAM, boxes_from_steps  # noqa: E402
from objaug.config import CamConfig  # noqa: E402
from objaug.constants import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from objaug.integrations.lightning_maps import (  # noqa: E402
    CAMMapLogger,
    LogCAMMaps,
    cam_picture,
    find_cam_model,
    first_images,
)
from objaug.tools.archs import tiny_resnet  # noqa: E402
from objaug.tools.synthetic import make_scenes  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SCENES = make_scenes(8, size=32, max_objects=2, seed=0)


class Tiny(L.LightningModule):
    """A SimCLR-like module with Lightly's attribute names; batches are [images in [0, 1], labels]."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(*list(tiny_resnet(width=4).children())[:-1])
        self.projection_head = nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 8))

    def training_step(self, batch, batch_idx):
        x = (batch[0] - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        z0 = F.normalize(self.projection_head(self.backbone(x).flatten(1)), dim=1)
        z1 = F.normalize(self.projection_head(self.backbone(x.flip(-1)).flatten(1)), dim=1)
        return F.cross_entropy(z0 @ z1.T / 0.5, torch.arange(x.shape[0]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader():
    data = torch.utils.data.TensorDataset(SCENES.images, SCENES.labels[:, 0])
    return torch.utils.data.DataLoader(data, batch_size=4, shuffle=False)


def fit(tmp_path, logger, callback, steps=4):
    module = Tiny()
    trainer = L.Trainer(max_steps=steps, logger=logger, callbacks=[callback], accelerator="cpu", devices=1,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=str(tmp_path), log_every_n_steps=1)
    trainer.fit(module, loader())
    return module, trainer


def expected_picture(module, images):
    """Independent reference: ContraCAM of the final weights on the normalised fixed batch, drawn with viz."""
    x = (images - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    # the library's definition (objaug.find_objects): boxes of each iteration's map, masks the output map
    maps, steps = ContraCAM(module.backbone, projector=module.projection_head)(x, return_steps=True)
    boxes, valid = boxes_from_steps(steps)
    return cam_picture(images, maps, boxes, valid)


def png_tensor(data) -> torch.Tensor:
    return torch.from_numpy(__import__("numpy").asarray(Image.open(io.BytesIO(data)).convert("RGB")).copy()).permute(
        2, 0, 1)


def test_tensorboard_gets_the_maps_every_n_steps(tmp_path):
    pytest.importorskip("tensorboard")
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(str(tmp_path), name="tb")
    callback = LogCAMMaps(every_n_steps=2, num_images=4)
    module, _ = fit(tmp_path, logger, callback)
    logger.experiment.flush()
    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0})
    events.Reload()
    images = events.Images("objaug/cam_maps")
    assert [e.step for e in images] == [2, 4]
    assert torch.equal(callback.images, SCENES.images[:4])  # the first training batch
    last = png_tensor(images[-1].encoded_image_string)
    assert torch.equal(last, expected_picture(module, SCENES.images[:4]))  # drawn with the weights of step 4
    assert last.shape == (3, 2 * 34 + 2, 4 * 34 + 2)  # two rows of four 32 px tiles, 2 px padding


def test_csv_logger_and_no_logger_get_png_files(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    logger = CSVLogger(str(tmp_path), name="csv")
    module, _ = fit(tmp_path, logger, LogCAMMaps(every_n_steps=3, images=SCENES.images[4:8]), steps=6)
    files = sorted((tmp_path / "csv" / "version_0" / "objaug_maps").iterdir())
    assert [f.name for f in files] == ["step_0000003.png", "step_0000006.png"]
    last = torch.from_numpy(__import__("numpy").asarray(Image.open(files[-1]).convert("RGB")).copy()).permute(2, 0, 1)
    assert torch.equal(last, expected_picture(module, SCENES.images[4:8]))

    fit(tmp_path / "none", False, LogCAMMaps(every_n_steps=2, num_images=2), steps=2)
    assert [f.name for f in (tmp_path / "none" / "objaug_maps").iterdir()] == ["step_0000002.png"]


def state_of(module):
    return ({k: v.clone() for k, v in module.state_dict().items()}, [m.training for m in module.modules()],
            [p.requires_grad for p in module.parameters()],
            [None if p.grad is None else p.grad.clone() for p in module.parameters()],
            [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks)) for m in module.modules()])


def same_state(a, b):
    return (a[0].keys() == b[0].keys() and all(torch.equal(a[0][k], b[0][k]) for k in a[0]) and a[1:3] == b[1:3]
            and all((x is None and y is None) or torch.equal(x, y) for x, y in zip(a[3], b[3], strict=True))
            and a[4] == b[4])


def test_the_model_is_left_exactly_as_found_and_nothing_runs_between_steps(tmp_path, monkeypatch):
    module = Tiny()
    module.train()
    module.backbone[1].eval()  # a frozen BatchNorm inside a training model
    module.projection_head[0].weight.requires_grad_(False)
    module.projection_head[2].weight.grad = torch.ones_like(module.projection_head[2].weight)
    handle = module.backbone[0].register_forward_hook(lambda *a: None)
    before = state_of(module)
    trainer = types.SimpleNamespace(loggers=[], default_root_dir=str(tmp_path), global_step=1, is_global_zero=True)
    CAMMapLogger(1, images=SCENES.images[:4], cam_config=CamConfig(iters=2)).write_maps(trainer, module, 1)
    assert same_state(before, state_of(module))
    handle.remove()

    calls = []
    original = ContraCAM.__call__
    monkeypatch.setattr(ContraCAM, "__call__", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))

    class Probe(L.Callback):  # at every batch start: no hook on any module of the model
        hooks = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.hooks.append(sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
                                  for m in pl_module.modules()))

    probe = Probe()
    module = Tiny()
    trainer = L.Trainer(max_steps=5, logger=False, callbacks=[LogCAMMaps(every_n_steps=2, num_images=2), probe],
                        accelerator="cpu", enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=str(tmp_path))
    trainer.fit(module, loader())
    assert len(calls) == 2 and probe.hooks == [0] * 5  # steps 2 and 4 only


def test_first_images_and_model_lookup():
    x0, x1 = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8)
    assert first_images([[x0, x1], torch.zeros(4), ["a"] * 4]) is x0  # Lightly's pipeline batch
    assert first_images([torch.arange(4), [x1, x0], torch.zeros(4)]) is x1  # solo-learn's batch
    assert first_images({"image": x0}) is x0 and first_images([torch.zeros(4, 1, 8, 8)]) is None
    solo = nn.Module()
    solo.backbone, solo.projector = nn.Linear(2, 2), nn.Linear(2, 2)
    solo.momentum_backbone, solo.momentum_projector = nn.Linear(2, 2), nn.Linear(2, 2)
    assert find_cam_model(solo) == (solo.momentum_backbone, solo.momentum_projector)
    assert find_cam_model(solo, "online") == (solo.backbone, solo.projector)
    with pytest.raises(TypeError, match="pass the model explicitly"):
        find_cam_model(nn.Linear(2, 2))


BAD_SETTINGS = [
    (dict(every_n_steps=0), "every_n_steps"),
    (dict(num_images=1), "num_images"),
    (dict(cam_config=CamConfig(iters=2), num_images=1), "num_images"),
    (dict(images=torch.rand(1, 3, 8, 8)), "at least 2"),
]


@pytest.mark.parametrize("kwargs, match", BAD_SETTINGS)
def test_bad_settings_are_refused_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LogCAMMaps(**({"every_n_steps": 5} | kwargs))


def test_wandb_logger_gets_a_wandb_image(tmp_path, monkeypatch):
    logged = []
    fake = types.ModuleType("wandb")
    fake.Image = lambda array: ("wandb.Image", array.shape)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wandb", fake)
    WandbLogger = type("WandbLogger", (), {"experiment": types.SimpleNamespace(log=logged.append)})
    trainer = types.SimpleNamespace(loggers=[WandbLogger()], default_root_dir=str(tmp_path), global_step=3)
    picture = CAMMapLogger(3, images=SCENES.images[:2]).write_maps(trainer, Tiny(), 3)
    assert logged == [{"objaug/cam_maps": ("wandb.Image", tuple(picture.permute(1, 2, 0).shape)),
                       "trainer/global_step": 3}]
    assert not list(tmp_path.iterdir())  # no PNG for a logger that takes images



def test_imports_no_lightly():
    """Checked statically (a subprocess importing torch and Lightning costs tens of seconds on a busy machine):
    the module never imports Lightly, at module level or inside a function."""
    import ast
    from pathlib import Path

    import objaug.integrations.lightning_maps as module

    names = set()
    for node in ast.walk(ast.parse(Path(module.__file__).read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    assert "lightly" not in names and {"lightning", "pytorch_lightning", "objaug", "torch"} <= names
