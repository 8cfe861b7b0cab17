"""BYOL (Lightly's examples/pytorch/byol.py) with objaug's object-aware views made on the device.

The training-loop path: the DataLoader yields base images (full frames in [0, 1]); every step
ObjectAwareStep computes ContraCAM maps of the batch with the momentum encoder (BatchNorm statistics and
gradients left untouched), turns them into object boxes and makes BYOL's two views inside them, for the
whole batch at once. The lines marked `# objaug` are the whole change to Lightly's example. Use
schedule=ScheduleConfig(every_n_steps=N) (with dataset indexes) to run the CAM every N steps only, or
store= to read precomputed boxes.

The backbone is objaug's small CIFAR-style ResNet (objaug.tools.archs.demo_backbone: total stride 8, so
8x8 maps on the 64 px scenes; Lightly's resnet18 would give 2x2 maps there, which ContraCAM warns are
mostly noise). Runs on the CPU in under a minute on generated multi-object scenes (objaug.tools.synthetic):

    python examples/lightly/byol_pytorch.py              # 1 epoch of 256 images (8 steps of 32)
    python examples/lightly/byol_pytorch.py --quick      # 2 small steps (used by the tests)

Needs objaug[lightly].
"""

import argparse

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--steps", type=int, default=None, help="stop after this many steps")
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--images", type=int, default=256)
parser.add_argument("--quick", action="store_true", help="2 steps of 8 images")
args = parser.parse_args()
if args.quick:
    args.steps, args.batch_size, args.images = 2, 8, 16

# Imported after the arguments, so that --help works without the optional packages.
import copy

import torch
from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.utils.scheduler import cosine_schedule
from torch import nn

from objaug.augment.views import byol_views  # objaug
from objaug.integrations.lightly.device_step import ObjectAwareStep  # objaug
from objaug.tools.archs import demo_backbone  # objaug (8x8 maps at 64 px, instead of resnet18)
from objaug.tools.synthetic import make_scenes  # objaug (generated data instead of CIFAR-10)


class BYOL(nn.Module):
    def __init__(self, backbone, dim):
        super().__init__()

        self.backbone = backbone
        self.projection_head = BYOLProjectionHead(dim, 1024, 256)
        self.prediction_head = BYOLPredictionHead(256, 1024, 256)

        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)

        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)

    def forward(self, x):
        y = self.backbone(x).flatten(start_dim=1)
        z = self.projection_head(y)
        p = self.prediction_head(z)
        return p

    def forward_momentum(self, x):
        y = self.backbone_momentum(x).flatten(start_dim=1)
        z = self.projection_head_momentum(y)
        z = z.detach()
        return z


resnet = demo_backbone()  # objaug (Lightly: torchvision.models.resnet18())
backbone = nn.Sequential(*list(resnet.children())[:-1])
model = BYOL(backbone, dim=128)  # objaug (demo_backbone: 128 features; Lightly: 512)

device = "cuda" if torch.cuda.is_available() else "cpu"
model.to(device)

# Base images in [0, 1] (64 px generated scenes) instead of BYOLTransform's views:  # objaug
scenes = make_scenes(args.images, size=64, max_objects=3, seed=0)  # objaug
dataset = torch.utils.data.TensorDataset(scenes.images, scenes.labels[:, 0])  # objaug
step_views = ObjectAwareStep(  # objaug: BYOL's views (32 px, Lightly's defaults), CAM by the momentum encoder
    byol_views(32), model=model.backbone_momentum, projector=model.projection_head_momentum  # objaug
).to(device)  # objaug

dataloader = torch.utils.data.DataLoader(
    dataset,
    batch_size=args.batch_size,
    shuffle=True,
    drop_last=True,
)

criterion = NegativeCosineSimilarity()
optimizer = torch.optim.SGD(model.parameters(), lr=0.06)

epochs = args.epochs
print("Starting Training")
step = 0
for epoch in range(epochs):
    total_loss, batches = 0, 0
    momentum_val = cosine_schedule(epoch, epochs, 0.996, 1)
    for batch in dataloader:
        x0, x1 = step_views(batch[0].to(device))  # objaug (was: x0, x1 = batch[0])
        update_momentum(model.backbone, model.backbone_momentum, m=momentum_val)
        update_momentum(model.projection_head, model.projection_head_momentum, m=momentum_val)
        x0 = x0.to(device)
        x1 = x1.to(device)
        p0 = model(x0)
        z0 = model.forward_momentum(x0)
        p1 = model(x1)
        z1 = model.forward_momentum(x1)
        loss = 0.5 * (criterion(p0, z1) + criterion(p1, z0))
        total_loss += loss.detach()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        step += 1
        batches += 1
        if args.steps is not None and step >= args.steps:
            break
    avg_loss = total_loss / max(1, batches)
    print(f"epoch: {epoch:>02}, loss: {avg_loss:.5f}")
    if args.steps is not None and step >= args.steps:
        break
