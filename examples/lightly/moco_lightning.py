"""MoCo v2 (Lightly's examples/pytorch_lightning/moco.py) with objaug's object-aware views made on the device.

The training-loop path as a LightningModule hook: the five lines marked `# objaug` in the module (the
other `# objaug` lines swap CIFAR-10 for generated scenes, the backbone and the command-line options).
on_after_batch_transfer receives the batch on the device and replaces the base images by MoCo v2's
query/key views: ContraCAM by the momentum encoder, with the NTXentLoss memory bank as extra negatives
(read only: the bank, BatchNorm statistics and gradients are left untouched), boxes from the maps, then
the object-aware crop and MoCo v2's augmentations for the whole batch at once. training_step is
unchanged. Without touching the module:
    Trainer(callbacks=[ObjectAwareCallback(moco_v2_views(32))])  # objaug.integrations.lightly.lightning

The backbone is objaug's small CIFAR-style ResNet (objaug.tools.archs.demo_backbone: 8x8 maps on the
64 px scenes; Lightly's resnet18 would give 2x2 maps, which ContraCAM warns are mostly noise). Runs on
the CPU in under a minute on generated multi-object scenes (objaug.tools.synthetic):

    python examples/lightly/moco_lightning.py            # 1 epoch of 256 images (8 steps of 32)
    python examples/lightly/moco_lightning.py --quick    # 2 small steps (used by the tests)

Needs objaug[lightly] and pytorch_lightning (installed with Lightly).
"""

import argparse

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--steps", type=int, default=-1, help="stop after this many steps (-1: all)")
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--images", type=int, default=256)
parser.add_argument("--quick", action="store_true", help="2 steps of 8 images")
args = parser.parse_args()
if args.quick:
    args.steps, args.batch_size, args.images = 2, 8, 16

# Imported after the arguments, so that --help works without the optional packages.
import copy

import pytorch_lightning as pl
import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import MoCoProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.utils.scheduler import cosine_schedule
from torch import nn

from objaug.augment.views import moco_v2_views  # objaug
from objaug.integrations.lightly.device_step import ObjectAwareStep  # objaug
from objaug.tools.archs import demo_backbone  # objaug (8x8 maps at 64 px, instead of resnet18)
from objaug.tools.synthetic import make_scenes  # objaug (generated data instead of CIFAR-10)


class MoCo(pl.LightningModule):
    def __init__(self):
        super().__init__()
        resnet = demo_backbone()  # objaug (Lightly: torchvision.models.resnet18())
        self.backbone = nn.Sequential(*list(resnet.children())[:-1])
        self.projection_head = MoCoProjectionHead(128, 512, 128)  # objaug (demo_backbone: 128 features)

        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)

        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)

        self.criterion = NTXentLoss(memory_bank_size=(4096, 128))
        self.objaug = ObjectAwareStep.from_model(self, moco_v2_views(32))  # objaug: momentum encoder + bank

    def on_after_batch_transfer(self, batch, dataloader_idx):  # objaug
        if self.trainer.training:  # objaug
            batch = self.objaug.transform_batch(batch)  # objaug
        return batch  # objaug

    def forward(self, x):
        query = self.backbone(x).flatten(start_dim=1)
        query = self.projection_head(query)
        return query

    def forward_momentum(self, x):
        key = self.backbone_momentum(x).flatten(start_dim=1)
        key = self.projection_head_momentum(key).detach()
        return key

    def training_step(self, batch, batch_idx):
        momentum = cosine_schedule(self.current_epoch, 10, 0.996, 1)
        update_momentum(self.backbone, self.backbone_momentum, m=momentum)
        update_momentum(self.projection_head, self.projection_head_momentum, m=momentum)
        x_query, x_key = batch[0]
        query = self.forward(x_query)
        key = self.forward_momentum(x_key)
        loss = self.criterion(query, key)
        self.log("loss", loss, prog_bar=True, on_step=True, batch_size=x_query.shape[0])  # objaug (progress only)
        return loss

    def configure_optimizers(self):
        optim = torch.optim.SGD(self.parameters(), lr=0.06)
        return optim


model = MoCo()

# Base images in [0, 1] (64 px generated scenes) instead of MoCoV2Transform's views:  # objaug
scenes = make_scenes(args.images, size=64, max_objects=3, seed=0)  # objaug
dataset = torch.utils.data.TensorDataset(scenes.images, scenes.labels[:, 0])  # objaug

dataloader = torch.utils.data.DataLoader(
    dataset,
    batch_size=args.batch_size,
    shuffle=True,
    drop_last=True,
)

accelerator = "gpu" if torch.cuda.is_available() else "cpu"

trainer = pl.Trainer(max_epochs=args.epochs, max_steps=args.steps, devices=1, accelerator=accelerator,
                     logger=False, enable_checkpointing=False)  # objaug (no files written)
trainer.fit(model=model, train_dataloaders=dataloader)
print(f"done: {trainer.global_step} steps, last loss {float(trainer.callback_metrics['loss']):.5f}")  # objaug
