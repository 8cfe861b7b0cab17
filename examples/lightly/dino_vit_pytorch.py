"""DINO (Lightly's examples/pytorch/dino.py) with a Vision Transformer and objaug's object-aware views.

The training-loop path: every step ObjectAwareStep computes ContraCAM maps of the batch with the teacher
ViT (cut at the tokens entering its last block; gradients left untouched), turns them into object boxes
and makes DINO's two global views inside them. --attention uses the teacher's class-token attention
(DINO's own localisation map, no backward) instead of ContraCAM's Grad-CAM. Local crops are left out to
keep the example small (DINOLoss takes any number of student views). The lines marked `# objaug` are the
whole change to Lightly's example.

Runs on the CPU in about a minute on generated multi-object scenes (objaug.tools.synthetic):

    python examples/lightly/dino_vit_pytorch.py              # 1 epoch of 256 images (8 steps of 32)
    python examples/lightly/dino_vit_pytorch.py --attention  # class-token attention maps for the boxes
    python examples/lightly/dino_vit_pytorch.py --quick      # 2 small steps (used by the tests)

Needs objaug[lightly,vit] (timm).
"""

import argparse

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
for flag, default in (("--epochs", 1), ("--batch-size", 32), ("--images", 256)):
    parser.add_argument(flag, type=int, default=default)
parser.add_argument("--steps", type=int, default=None, help="stop after this many steps")
parser.add_argument("--attention", action="store_true", help="boxes from the class-token attention")
parser.add_argument("--quick", action="store_true", help="2 steps of 8 images")
args = parser.parse_args()
if args.quick:
    args.steps, args.batch_size, args.images = 2, 8, 16

# Imported after the arguments, so that --help works without the optional packages.
import copy
import itertools

import timm
import torch
from lightly.loss import DINOLoss
from lightly.models.modules import DINOProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.utils.scheduler import cosine_schedule
from torch import nn

from objaug import ContraCAM  # objaug
from objaug.augment.views import byol_views  # objaug (DINO's global views: BYOL's colour augmentations)
from objaug.integrations.lightly.device_step import ObjectAwareStep  # objaug
from objaug.tools.synthetic import make_scenes  # objaug (generated data instead of a folder of images)


class DINO(nn.Module):
    def __init__(self, backbone, input_dim):
        super().__init__()
        self.student_backbone = backbone
        self.student_head = DINOProjectionHead(input_dim, 512, 64, 2048, freeze_last_layer=1)
        self.teacher_backbone = copy.deepcopy(backbone)
        self.teacher_head = DINOProjectionHead(input_dim, 512, 64, 2048)
        deactivate_requires_grad(self.teacher_backbone)
        deactivate_requires_grad(self.teacher_head)

    def forward(self, x, teacher=False):
        backbone, head = (self.teacher_backbone, self.teacher_head) if teacher else (self.student_backbone,
                                                                                     self.student_head)
        return head(backbone(x).flatten(start_dim=1))


# a small ViT for 64 px images: 8 px patches (an 8x8 token grid), 4 blocks, class token, random weights
backbone = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=64, patch_size=8,
                             depth=4)
input_dim = backbone.embed_dim
model = DINO(backbone, input_dim)

device = "cuda" if torch.cuda.is_available() else "cpu"
model.to(device)

# Base images in [0, 1] (64 px generated scenes) instead of DINOTransform's views:  # objaug
scenes = make_scenes(args.images, size=64, max_objects=3, seed=0)  # objaug
dataset = torch.utils.data.TensorDataset(scenes.images, scenes.labels[:, 0])  # objaug
cam = ContraCAM(model.teacher_backbone, projector=model.teacher_head,  # objaug: the teacher explains the batch
                source="attention" if args.attention else "gradcam")  # objaug
step_views = ObjectAwareStep(byol_views(64), cam=cam).to(device)  # objaug: two global views inside object boxes

dataloader = torch.utils.data.DataLoader(
    dataset,
    batch_size=args.batch_size,
    shuffle=True,
    drop_last=True,
)

criterion = DINOLoss(output_dim=2048, warmup_teacher_temp_epochs=5)
criterion = criterion.to(device)

optimizer = torch.optim.Adam(model.parameters(), lr=0.001)

epochs = args.epochs
max_steps = args.steps if args.steps is not None else epochs * len(dataloader)
print("Starting Training")
step = 0
for epoch in range(epochs):
    losses = []
    momentum_val = cosine_schedule(epoch, epochs, 0.996, 1)
    for batch in itertools.islice(dataloader, max_steps - step):
        views = step_views(batch[0].to(device))  # objaug (was: views = batch[0])
        update_momentum(model.student_backbone, model.teacher_backbone, m=momentum_val)
        update_momentum(model.student_head, model.teacher_head, m=momentum_val)
        views = [view.to(device) for view in views]
        teacher_out = [model(view, teacher=True) for view in views[:2]]  # the global views
        student_out = [model(view) for view in views]
        loss = criterion(teacher_out, student_out, epoch=epoch)
        losses.append(loss.detach())
        loss.backward()
        # We only cancel gradients of student head.
        model.student_head.cancel_last_layer_gradients(current_epoch=epoch)
        optimizer.step()
        optimizer.zero_grad()
        step += 1
    print(f"epoch: {epoch:>02}, loss: {torch.stack(losses).mean():.5f}")
    if step >= max_steps:
        break
