"""SimCLR (Lightly's examples/pytorch/simclr.py) with objaug's object-aware crop in the data pipeline.

The pipeline path: ObjectAwareSimCLRTransform runs per image in the DataLoader workers, like Lightly's
SimCLRTransform, and crops both views inside one object box of the image. The boxes are attached to the
dataset by index (here the generated scenes' own boxes; in practice an objaug ObjectStore precomputed
with ContraCAM: ObjectAwareDataset(dataset, ObjectStore(path), transform=transform), or the boxes.json
of `objaug cam` read with objaug.store.load_cam_boxes). The lines marked `# objaug` are the whole change
to Lightly's example.

Runs on the CPU in under a minute on generated multi-object scenes (objaug.tools.synthetic):

    python examples/lightly/simclr_pytorch.py            # 1 epoch of 256 images (8 steps of 32)
    python examples/lightly/simclr_pytorch.py --quick    # 2 small steps (used by the tests)

Needs objaug[lightly].
"""

import argparse

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--steps", type=int, default=None, help="stop after this many steps")
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--images", type=int, default=256)
parser.add_argument("--workers", type=int, default=2)
parser.add_argument("--quick", action="store_true", help="2 steps of 8 images, no workers")
args = parser.parse_args()
if args.quick:
    args.steps, args.batch_size, args.images, args.workers = 2, 8, 16, 0

# Imported after the arguments, so that --help works without the optional packages.
import torch
import torchvision
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from torch import nn

from objaug.integrations.lightly.dataset import ObjectAwareDataset  # objaug
from objaug.integrations.lightly.simclr_transform import ObjectAwareSimCLRTransform  # objaug
from objaug.tools.synthetic import make_scenes  # objaug (generated data instead of CIFAR-10)


class SimCLR(nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.projection_head = SimCLRProjectionHead(512, 512, 128)

    def forward(self, x):
        x = self.backbone(x).flatten(start_dim=1)
        z = self.projection_head(x)
        return z


class Scenes(torch.utils.data.Dataset):
    """Generated multi-object scenes as a torchvision-style dataset: (PIL image, label)."""

    def __init__(self, n):
        self.scenes = make_scenes(n, size=64, max_objects=3, seed=0)

    def __len__(self):
        return len(self.scenes)

    def __getitem__(self, i):
        image = torchvision.transforms.functional.to_pil_image(self.scenes.images[i])
        return image, int(self.scenes.labels[i, 0])


resnet = torchvision.models.resnet18()
backbone = nn.Sequential(*list(resnet.children())[:-1])
model = SimCLR(backbone)

device = "cuda" if torch.cuda.is_available() else "cpu"
model.to(device)

scenes = Scenes(args.images)
transform = ObjectAwareSimCLRTransform(input_size=32, gaussian_blur=0.0)  # objaug
dataset = ObjectAwareDataset(  # objaug: attach each image's boxes by index
    scenes, boxes=scenes.scenes.boxes, valid=scenes.scenes.valid, transform=transform  # objaug
)  # objaug

dataloader = torch.utils.data.DataLoader(
    dataset,
    batch_size=args.batch_size,
    shuffle=True,
    drop_last=True,
    num_workers=args.workers,
)

criterion = NTXentLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.06)

print("Starting Training")
step = 0
for epoch in range(args.epochs):
    total_loss, batches = 0, 0
    for batch in dataloader:
        x0, x1 = batch[0]
        x0 = x0.to(device)
        x1 = x1.to(device)
        z0 = model(x0)
        z1 = model(x1)
        loss = criterion(z0, z1)
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
