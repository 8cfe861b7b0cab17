"""Regenerate the Lightly / solo-learn pages' pictures (CPU only, deterministic, about a minute).

Run from the repository root (needs ``objaug[lightly]`` and Lightning):

    .venv/bin/python docs/gen_lightly_pictures.py

* ``docs/img/cam_maps.png``: what :class:`objaug.integrations.lightning_maps.LogCAMMaps` logs: a tiny
  SimCLR LightningModule (objaug's demo ResNet) trained for 100 steps on synthetic scenes with a real
  ``lightning.Trainer`` and a ``CSVLogger``; the PNG the callback wrote at the last step (top row: the fixed
  batch with its ContraCAM boxes; bottom row: the maps over the images).
* ``docs/img/lightly_views.png``: :func:`objaug.tools.viz.plot_object_aware_views` with the per-image
  ``ObjectAwareSimCLRTransform(input_size=64)`` on synthetic scenes and their ground-truth boxes.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import torch
import torch.nn.functional as F
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
IMG = os.path.join(HERE, "img")
sys.path.insert(0, os.path.dirname(HERE))


def cam_maps_picture(steps: int = 100, size: int = 64) -> None:
    import lightning.pytorch as L
    from lightning.pytorch.loggers import CSVLogger

    from objaug.augment.pipeline import ObjectAwareAugment
    from objaug.augment.presets import simclr_views
    from objaug.integrations.lightning_maps import LogCAMMaps
    from objaug.tools.archs import demo_backbone
    from objaug.tools.synthetic import make_scenes

    class SimCLR(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = nn.Sequential(*list(demo_backbone().children())[:-1])
            self.projection_head = nn.Sequential(nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 64))
            self.views = ObjectAwareAugment(simclr_views(size, gaussian_blur=0.0))  # plain crops (no boxes given)

        def training_step(self, batch, batch_idx):
            x0, x1 = self.views(batch[0])
            z0 = F.normalize(self.projection_head(self.backbone(x0).flatten(1)), dim=1)
            z1 = F.normalize(self.projection_head(self.backbone(x1).flatten(1)), dim=1)
            z = torch.cat([z0, z1])
            sim = (z @ z.T / 0.2).fill_diagonal_(float("-inf"))
            n = z0.shape[0]
            return F.cross_entropy(sim, torch.cat([torch.arange(n, 2 * n), torch.arange(n)]))

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    torch.manual_seed(0)
    scenes = make_scenes(512, size=size, max_objects=2, seed=0)
    fixed = make_scenes(6, size=size, max_objects=2, seed=1).images  # held-out scenes, in [0, 1]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(scenes.images), batch_size=32, shuffle=True,
                                         drop_last=True)
    with tempfile.TemporaryDirectory() as tmp:
        logger = CSVLogger(tmp, name="run")
        trainer = L.Trainer(max_steps=steps, logger=logger, accelerator="cpu", devices=1, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False,
                            callbacks=[LogCAMMaps(every_n_steps=steps, images=fixed)])
        trainer.fit(SimCLR(), loader)
        shutil.copyfile(os.path.join(logger.log_dir, "objaug_maps", f"step_{steps:07d}.png"),
                        os.path.join(IMG, "cam_maps.png"))


def lightly_views_picture(n: int = 4, size: int = 64) -> None:
    from objaug.integrations.lightly import ObjectAwareSimCLRTransform
    from objaug.tools.synthetic import make_scenes
    from objaug.tools.viz import plot_object_aware_views

    torch.manual_seed(0)
    scenes = make_scenes(n, size=size, max_objects=3, seed=3, backgrounds=None)
    plot_object_aware_views(scenes.images, ObjectAwareSimCLRTransform(input_size=size), scenes.boxes, scenes.valid,
                            path=os.path.join(IMG, "lightly_views.png"))


if __name__ == "__main__":
    os.makedirs(IMG, exist_ok=True)
    torch.set_num_threads(1)
    lightly_views_picture()
    cam_maps_picture()
    print("wrote", os.path.join(IMG, "lightly_views.png"), "and", os.path.join(IMG, "cam_maps.png"))
