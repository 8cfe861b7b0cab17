"""Shared helpers for the solo-learn integration tests (no tests here).

``ContractMethod`` is a LightningModule written to solo-learn's batch and attribute contract (not
solo-learn's code): ``cfg`` (OmegaConf, with solo-learn's ``augmentations`` list), ``backbone`` (a
torchvision ResNet-18 with ``fc = Identity``), ``projector``, optionally ``momentum_backbone`` /
``momentum_projector`` updated by EMA in ``on_train_batch_end``, ``num_crops``, and a
``training_step`` that takes ``[indexes, [X_1..X_n], targets]``, asserts ``len(X) == num_crops`` and
records what it sees.

``CoordDataset`` yields solo-learn samples ``(index, [view_1, view_2], target)`` whose views are the
same full frame with pixel values that encode where they come from: channel 0 = x of the pixel
centre in [0, 1], channel 1 = y, channel 2 = the sample's index / 1000. After any crop, channel 0/1
tell which part of the frame a view shows, and channel 2 which image it is.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torch.utils.data import Dataset

try:
    import lightning.pytorch as L
    from omegaconf import OmegaConf
except ImportError:  # pragma: no cover - the tests that need them skip
    L = None  # type: ignore[assignment]
    OmegaConf = None  # type: ignore[assignment]

SIZE = 32  # frame side of the store tests
CAM_SIZE = 64  # frame side of the online-CAM tests (ResNet-18 gives 2x2 maps)


def _single_thread() -> Any:
    """Fixture body: one intra-op thread (tiny CPU models on a shared 2-core machine run faster that way)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


try:
    import pytest

    single_thread = pytest.fixture(autouse=True)(_single_thread)

    @pytest.fixture(autouse=True)
    def entry_point_on(monkeypatch: Any) -> Any:
        """Fixture: the entry-point factories add the callback although ``solo`` is not imported here."""
        monkeypatch.setenv("OBJAUG_SOLO_LEARN", "1")
        yield
except ImportError:  # pragma: no cover
    pass


def pipeline(*, crop_size: int = SIZE, num_crops: int = 1, full: bool = True, flip: float = 0.0) -> dict[str, Any]:
    """One item of solo-learn's ``augmentations`` list (its schema; colour settings irrelevant here)."""
    return {
        "rrc": {"enabled": True, "crop_min_scale": 1.0 if full else 0.08, "crop_max_scale": 1.0},
        "color_jitter": {"prob": 0.0, "brightness": 0.4, "contrast": 0.4, "saturation": 0.2, "hue": 0.1},
        "grayscale": {"prob": 0.0},
        "gaussian_blur": {"prob": 0.0},
        "solarization": {"prob": 0.0},
        "equalization": {"prob": 0.0},
        "horizontal_flip": {"prob": flip},
        "crop_size": crop_size,
        "num_crops": num_crops,
    }


def make_cfg(objaug: dict[str, Any] | None = None, *, pipelines: list[dict[str, Any]] | None = None,
             batch_size: int = 4) -> Any:
    cfg: dict[str, Any] = {
        "method": "contract",
        "augmentations": pipelines if pipelines is not None else [pipeline(), pipeline()],
        "optimizer": {"batch_size": batch_size, "lr": 0.01},
        "performance": {"disable_channel_last": False},
    }
    if objaug is not None:
        cfg["objaug"] = objaug
    return OmegaConf.create(cfg)


def coord_frame(index: int, size: int = SIZE) -> Tensor:
    r = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    x = r.view(1, size).expand(size, size)
    y = r.view(size, 1).expand(size, size)
    return torch.stack([x, y, torch.full((size, size), index / 1000.0)])


class CoordDataset(Dataset):
    def __init__(self, n: int = 8, size: int = SIZE, views: int = 2) -> None:
        self.n, self.size, self.views = n, size, views

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[int, list[Tensor], int]:
        frame = coord_frame(index, self.size)
        return index, [frame.clone() for _ in range(self.views)], index % 2


class BlobDataset(CoordDataset):
    """Full frames with one bright square object on a textured background (for the online CAM)."""

    def __init__(self, n: int = 8, size: int = CAM_SIZE, views: int = 2) -> None:
        super().__init__(n, size, views)

    def __getitem__(self, index: int) -> tuple[int, list[Tensor], int]:
        g = torch.Generator().manual_seed(index)
        s = self.size
        img = torch.rand(3, s, s, generator=g) * 0.3
        side = s // 3
        x0, y0 = (index * 7) % (s - side), (index * 11) % (s - side)
        img[:, y0:y0 + side, x0:x0 + side] = torch.rand(3, 1, 1, generator=g) + 0.7
        img = (img - 0.45) / 0.25
        return index, [img.clone() for _ in range(self.views)], index % 2


class MemoryStore:
    """In-memory stand-in for ``objaug.store.ObjectStore``: ``get_batch(indexes) -> (boxes, valid, masks)``."""

    def __init__(self, boxes: Tensor, valid: Tensor, masks: Tensor | None) -> None:
        self.boxes, self.valid, self.masks = boxes, valid, masks
        self.requests: list[Tensor] = []

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def get_batch(self, indexes: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        self.requests.append(indexes.clone())
        log = os.environ.get("OBJAUG_TEST_STORE_LOG")
        if log:  # lets a test see, from outside the process, that the callback asked for boxes
            with open(log, "a") as f:
                f.write(" ".join(str(int(i)) for i in indexes) + "\n")
        idx = indexes.long()
        return self.boxes[idx], self.valid[idx], None if self.masks is None else self.masks[idx]


def box_store(n: int = 8, *, with_masks: bool = True, mask_size: int = 16) -> MemoryStore:
    """One known box per index (different for every index), K = 2 with the second slot invalid; masks = box."""
    i = torch.arange(n, dtype=torch.float32)
    x1 = 0.05 + 0.05 * (i % 4)
    y1 = 0.1 + 0.05 * (i % 3)
    boxes = torch.zeros(n, 2, 4)
    boxes[:, 0] = torch.stack([x1, y1, x1 + 0.4, y1 + 0.5], dim=1)
    boxes[:, 1] = torch.tensor([0.9, 0.9, 1.0, 1.0])  # never used: invalid
    valid = torch.zeros(n, 2, dtype=torch.bool)
    valid[:, 0] = True
    masks = None
    if with_masks:
        r = (torch.arange(mask_size, dtype=torch.float32) + 0.5) / mask_size
        inside_x = (r.view(1, -1) >= boxes[:, 0, 0, None]) & (r.view(1, -1) <= boxes[:, 0, 2, None])  # (n, W)
        inside_y = (r.view(1, -1) >= boxes[:, 0, 1, None]) & (r.view(1, -1) <= boxes[:, 0, 3, None])  # (n, H)
        masks = (inside_y[:, :, None] & inside_x[:, None, :]).float()[:, None]
    return MemoryStore(boxes, valid, masks)


_Base: Any = L.LightningModule if L is not None else nn.Module


class ContractMethod(_Base):
    def __init__(self, cfg: Any, *, momentum: bool = False, channels_last: bool = False, record: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = torchvision.models.resnet18()
        self.backbone.fc = nn.Identity()
        self.projector = nn.Sequential(nn.Linear(512, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 32))
        if momentum:
            self.momentum_backbone = copy.deepcopy(self.backbone)
            self.momentum_projector = copy.deepcopy(self.projector)
            for p in [*self.momentum_backbone.parameters(), *self.momentum_projector.parameters()]:
                p.requires_grad = False
        self.num_crops = sum(int(p.num_crops) for p in cfg.augmentations)
        self.channels_last = channels_last
        self.record = record
        self.seen: list[dict[str, Any]] = []

    def training_step(self, batch: list[Any], batch_idx: int) -> Tensor:
        indexes, X, targets = batch
        X = [X] if isinstance(X, Tensor) else X
        assert len(X) == self.num_crops
        if self.record:
            self.seen.append({"indexes": indexes.clone(), "X": [x.detach().clone() for x in X],
                              "autocast": torch.is_autocast_enabled("cpu")})
        zs = []
        for x in X:
            if self.channels_last:
                x = x.to(memory_format=torch.channels_last)
            zs.append(F.normalize(self.projector(self.backbone(x)), dim=1))
        loss = -(zs[0] * zs[1]).sum(1).mean()
        return loss

    @torch.no_grad()
    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if hasattr(self, "momentum_backbone"):
            for online, target in ((self.backbone, self.momentum_backbone), (self.projector, self.momentum_projector)):
                for po, pt in zip(online.parameters(), target.parameters(), strict=True):
                    pt.mul_(0.99).add_(po.detach(), alpha=0.01)

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD([p for p in self.parameters() if p.requires_grad], lr=0.01)


def fit(module: Any, dataset: Dataset, *, steps: int = 2, batch_size: int = 4, callbacks: list[Any] | None = None,
        **trainer_kwargs: Any) -> Any:
    """Fit ``module`` for ``steps`` batches on the CPU; returns the Trainer."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, drop_last=True)
    kwargs: dict[str, Any] = dict(accelerator="cpu", devices=1, max_steps=steps, logger=False,
                                  enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                                  num_sanity_val_steps=0)
    kwargs.update(trainer_kwargs)
    if callbacks is not None:
        kwargs["callbacks"] = callbacks
    trainer = L.Trainer(**kwargs)
    trainer.fit(module, loader)
    return trainer


def objaug_callbacks(trainer: Any) -> list[Any]:
    return [cb for cb in trainer.callbacks if getattr(cb, "_objaug_solo_callback", False)]


def make_store(path: str) -> MemoryStore:
    """``objaug.store.cls`` target for the tests: ``path`` is ``"memory:N"`` or ``"memory:N:nomasks"``."""
    parts = path.split(":")
    return box_store(int(parts[1]), with_masks=not (len(parts) > 2 and parts[2] == "nomasks"))


STORE_CLS = "test_solo_learn_support:make_store"
