"""ObjectAwareStep in Lightly's PyTorch Lightning example structure: the hook and the callback."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn

pytest.importorskip("lightly")
pl = pytest.importorskip("pytorch_lightning")
pytest.importorskip("lightning")

from lightly.loss import NTXentLoss  # noqa: E402
from lightly.models.modules import MoCoProjectionHead  # noqa: E402
from lightly.models.utils import deactivate_requires_grad, update_momentum  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from objaug.augment.views import moco_v2_views  # noqa: E402
from objaug.integrations.lightly.device_step import ObjectAwareStep  # noqa: E402
from objaug.integrations.lightly.lightning import ObjectAwareCallback  # noqa: E402

SIZE = 32


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def moco_class(lightning_module: type) -> type:
    class MoCo(lightning_module):  # type: ignore[misc,valid-type]
        """examples/pytorch_lightning/moco.py, with ``hook=True`` adding objaug's five lines."""

        def __init__(self, hook: bool = False):
            super().__init__()
            resnet = torchvision.models.resnet18()
            self.backbone = nn.Sequential(*list(resnet.children())[:-1])
            self.projection_head = MoCoProjectionHead(512, 512, 128)
            self.backbone_momentum = copy.deepcopy(self.backbone)
            self.projection_head_momentum = copy.deepcopy(self.projection_head)
            deactivate_requires_grad(self.backbone_momentum)
            deactivate_requires_grad(self.projection_head_momentum)
            self.criterion = NTXentLoss(memory_bank_size=(64, 128))
            self.seen: list[tuple[int, ...]] = []
            self.losses: list[float] = []
            if hook:  # objaug
                self.objaug = ObjectAwareStep.from_model(self, moco_v2_views(SIZE))

        def on_after_batch_transfer(self, batch, dataloader_idx):
            if hasattr(self, "objaug") and self.trainer.training:  # objaug
                batch = self.objaug.transform_batch(batch)  # objaug
            return batch

        def forward(self, x):
            return self.projection_head(self.backbone(x).flatten(start_dim=1))

        def forward_momentum(self, x):
            return self.projection_head_momentum(self.backbone_momentum(x).flatten(start_dim=1)).detach()

        def training_step(self, batch, batch_idx):
            update_momentum(self.backbone, self.backbone_momentum, m=0.99)
            update_momentum(self.projection_head, self.projection_head_momentum, m=0.99)
            x_query, x_key = batch[0]
            self.seen.append(tuple(x_query.shape))
            loss = self.criterion(self.forward(x_query), self.forward_momentum(x_key))
            self.losses.append(float(loss.detach()))
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.06)

    return MoCo


MoCo = moco_class(pl.LightningModule)


def loader() -> DataLoader:
    g = torch.Generator().manual_seed(0)
    return DataLoader(TensorDataset(torch.rand(16, 3, 48, 48, generator=g), torch.zeros(16)), batch_size=8)


def trainer(module, **kwargs):
    return module.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                          enable_model_summary=False, accelerator="cpu", devices=1, **kwargs)


def test_the_five_line_hook():
    model = MoCo(hook=True)
    assert model.objaug.criterion is model.criterion
    trainer(pl).fit(model, loader())
    assert model.seen == [(8, 3, SIZE, SIZE)] * 2
    assert all(torch.isfinite(torch.tensor(model.losses)))
    assert "objaug" not in "".join(model.state_dict())  # the step adds nothing to checkpoints


def test_the_callback_with_views_or_a_factory_and_both_lightning_packages():
    import lightning.pytorch as L

    for module, how in ((pl, "views"), (L, "factory")):
        model = moco_class(module.LightningModule)()
        if how == "views":
            callback = ObjectAwareCallback(moco_v2_views(SIZE))
        else:
            callback = ObjectAwareCallback(lambda m: ObjectAwareStep(
                moco_v2_views(SIZE), model=m.backbone_momentum, projector=m.projection_head_momentum,
                criterion=m.criterion))
        trainer(module, callbacks=[callback]).fit(model, loader())
        assert model.seen == [(8, 3, SIZE, SIZE)] * 2
        assert callback.step is not None and callback.step.calls == 2
        assert callback.step.cam.split.encoder[0] is model.backbone_momentum[0]
        assert callback.step.criterion is model.criterion


def test_callback_refuses_tuple_batches_and_bad_steps():
    with pytest.raises(TypeError, match="ObjectAwareStep"):
        ObjectAwareCallback(42)  # type: ignore[arg-type]
    step = ObjectAwareStep(moco_v2_views(SIZE))
    callback = ObjectAwareCallback(step)
    with pytest.raises(TypeError, match="on_after_batch_transfer"):
        callback.on_train_batch_start(None, None, (torch.rand(2, 3, 8, 8),), 0)


class _Tiny(pl.LightningModule):
    """A SimCLR-shaped module small enough for a quick CPU run (Lightly's names: backbone, projection_head)."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1),
                                      nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.projection_head = nn.Sequential(nn.Flatten(), nn.Linear(8, 8))
        self.logged: list[dict[str, float]] = []

    def training_step(self, batch, batch_idx):
        x0, x1 = batch[0]
        z0, z1 = self.projection_head(self.backbone(x0)), self.projection_head(self.backbone(x1))
        return -nn.functional.cosine_similarity(z0, z1).mean()

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.logged.append({k: float(v) for k, v in self.trainer.callback_metrics.items() if k.startswith("objaug/")})

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_the_callback_logs_what_objaug_did_each_step():
    import dataclasses

    from objaug.augment.views import simclr_views

    views = simclr_views(16)
    views[1] = dataclasses.replace(views[1], mixup=True)
    model = _Tiny()
    callback = ObjectAwareCallback(lambda m: ObjectAwareStep.from_model(m, views, cam_size=16))
    t = pl.Trainer(max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False, accelerator="cpu", devices=1, callbacks=[callback])
    t.fit(model, DataLoader(TensorDataset(torch.rand(24, 3, 32, 32), torch.zeros(24)), batch_size=8))
    assert len(model.logged) == 3
    for step, row in enumerate(model.logged, start=1):
        names = {"objaug/boxed", "objaug/whole_frame", "objaug/mixed", "objaug/boxes_per_image", "objaug/cam_refreshes"}
        assert set(row) == names | {n + "_step" for n in names}  # per step (and as epoch means: "_epoch", below)
        assert 0.0 <= row["objaug/boxed"] <= 1.0 and row["objaug/boxed"] + row["objaug/whole_frame"] == 1.0
        assert 0.0 <= row["objaug/mixed"] <= 1.0 and row["objaug/boxes_per_image"] >= 0.0
        assert row["objaug/cam_refreshes"] == step  # the CAM ran on every step (refresh_every=1)
    stats = callback.step.stats
    assert stats.steps == 3 and stats.total is not None and int(stats.total[0]) == 3 * 8 * 2  # 2 object views
    shares = stats.shares(last=True)
    assert float(shares["boxed"]) == model.logged[-1]["objaug/boxed"]
    epoch = {k: float(v) for k, v in t.callback_metrics.items() if k.endswith("_epoch")}
    assert epoch["objaug/cam_refreshes_epoch"] == 3.0  # a running count: its value at the epoch's end
    assert epoch["objaug/boxed_epoch"] == pytest.approx(sum(r["objaug/boxed"] for r in model.logged) / 3)
