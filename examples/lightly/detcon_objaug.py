"""DetCon (Lightly's DetConSTransform + DetConSLoss / DetConBLoss) trained on objaug's object masks.

DetCon pools the feature map over the regions of a segmentation shared by both views and contrasts
region embeddings. Here the regions are objaug's objects, as integer label maps (background 0, object k
labelled k; objaug.integrations.lightly.label_maps):

* --masks boxes (default): ObjectMaskDataset attaches each image's objects (here the generated scenes'
  boxes and masks; in practice an objaug ObjectStore or objaug cam's boxes.json read with
  objaug.store.load_cam_boxes) as a tv_tensors.Mask; DetConSTransform crops image and mask alike.
* --masks cam: DetConSTransform(mask_fn=CAMMaskFn(...)) computes each image's labels on the fly in the
  DataLoader workers from a frozen copy of a model's ContraCAM maps (here the model itself at the start;
  in practice a trained model), with a bank of negative images.

--method s trains DetCon-S (SimCLR-style, DetConSLoss); --method b DetCon-B (BYOL-style: prediction head,
momentum target, DetConBLoss). The backbone is objaug's small CIFAR-style ResNet (8x8 feature maps on 64 px
views). Runs on the CPU in well under a minute on generated multi-object scenes (objaug.tools.synthetic):

    python examples/lightly/detcon_objaug.py                          # DetCon-S, 10 steps of 16 images
    python examples/lightly/detcon_objaug.py --method b --masks cam   # DetCon-B on ContraCAM masks
    python examples/lightly/detcon_objaug.py --steps 2                # 2 steps (used by the tests)

Needs objaug[lightly] (Lightly >= 1.6 for DetConSTransform).
"""

import argparse

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--method", choices=["s", "b"], default="s", help="DetCon-S (SimCLR) or DetCon-B (BYOL)")
parser.add_argument("--masks", choices=["boxes", "cam"], default="boxes", help="where the object labels come from")
parser.add_argument("--steps", type=int, default=10)
parser.add_argument("--batch-size", type=int, default=16)
parser.add_argument("--images", type=int, default=128)
parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (the mask_fn is pickled to them)")
args = parser.parse_args()

# Imported after the arguments, so that --help works without the optional packages.
import copy

import torch
import torch.nn.functional as F
from lightly.loss import DetConBLoss, DetConSLoss
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead, SimCLRProjectionHead
from lightly.models.utils import deactivate_requires_grad, pool_masked, update_momentum
from lightly.transforms import DetConSTransform
from torch import nn

from objaug.config import BoxConfig
from objaug.integrations.lightly import CAMMaskFn, ObjectMaskDataset
from objaug.tools.archs import demo_backbone
from objaug.tools.synthetic import make_scenes

NUM_LABELS = 5  # background + at most 4 objects (boxes_from_cam's max_boxes; the scenes have <= 3)
REGIONS = 4  # regions sampled per image for the loss, as DetCon


class DetCon(nn.Module):
    def __init__(self, method):
        super().__init__()
        # Lightly's backbone convention: the ResNet without its fc, ending in the global pooling (what
        # ContraCAM explains); backbone[:-1] is the feature map DetCon pools: (B, 128, H / 8, W / 8).
        self.backbone = nn.Sequential(*list(demo_backbone().children())[:-1])
        if method == "s":
            self.projection_head = SimCLRProjectionHead(128, 256, 64)
        else:
            self.projection_head = BYOLProjectionHead(128, 256, 64)
            self.prediction_head = BYOLPredictionHead(64, 256, 64)
            self.backbone_momentum = copy.deepcopy(self.backbone)
            self.projection_head_momentum = copy.deepcopy(self.projection_head)
            for target in (self.backbone_momentum, self.projection_head_momentum):
                deactivate_requires_grad(target)

    def regions(self, x, mask, ids, momentum=False):
        """Region embeddings (B, M, D): the feature map mean-pooled over each label in ``ids`` (B, M)."""
        backbone = self.backbone_momentum if momentum else self.backbone
        head = self.projection_head_momentum if momentum else self.projection_head
        features = backbone[:-1](x)  # (B, C, h, w)
        small = F.interpolate(mask.float(), size=features.shape[-2:], mode="nearest").long()[:, 0]
        pooled = pool_masked(features, small, NUM_LABELS).transpose(1, 2)  # (B, NUM_LABELS, C)
        chosen = pooled.gather(1, ids[..., None].expand(-1, -1, pooled.shape[-1]))  # (B, M, C)
        z = head(chosen.flatten(0, 1)).view(*ids.shape, -1)
        return z.detach() if momentum else z


def sample_regions(m0, m1):
    """REGIONS label ids per image, among the labels visible in both views (DetCon's mask sampling)."""
    seen0 = F.one_hot(m0.flatten(1), NUM_LABELS).amax(1)
    seen1 = F.one_hot(m1.flatten(1), NUM_LABELS).amax(1)
    both = (seen0 * seen1).float()
    both = torch.where(both.sum(1, keepdim=True) > 0, both, seen0.float())
    return torch.multinomial(both, REGIONS, replacement=True)


class ImagesOnly(torch.utils.data.Dataset):
    """The scenes for DetConSTransform(mask_fn=...): the transform sees the image alone."""

    def __init__(self, images, transform):
        self.images, self.transform = images, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(self.images[i]), 0


torch.manual_seed(0)
model = DetCon(args.method)
scenes = make_scenes(args.images, size=64, max_objects=3, seed=0)
if args.masks == "boxes":
    dataset = ObjectMaskDataset(  # image + tv_tensors.Mask of per-object labels, from boxes and soft masks
        torch.utils.data.TensorDataset(scenes.images, scenes.labels[:, 0]), boxes=scenes.boxes, valid=scenes.valid,
        masks=scenes.masks.float(), transform=DetConSTransform(input_size=64, min_scale=0.3))
else:
    mask_fn = CAMMaskFn(model.backbone, projector=model.projection_head,  # a frozen copy of the model
                        negative_images=scenes.images[:32], box_config=BoxConfig(max_boxes=NUM_LABELS - 1))
    dataset = ImagesOnly(scenes.images, DetConSTransform(input_size=64, min_scale=0.3, mask_fn=mask_fn))
dataloader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True,
                                         num_workers=args.workers)

if args.method == "s":
    criterion = DetConSLoss(gather_distributed=False)
else:
    criterion = DetConBLoss(gather_distributed=False)
optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.06, momentum=0.9)

print("Starting Training")
step = 0
while step < args.steps:
    for batch in dataloader:
        (x0, m0), (x1, m1) = batch[0]
        ids = sample_regions(m0, m1)
        if args.method == "s":
            loss = criterion(model.regions(x0, m0, ids), model.regions(x1, m1, ids), ids, ids)
        else:
            update_momentum(model.backbone, model.backbone_momentum, m=0.99)
            update_momentum(model.projection_head, model.projection_head_momentum, m=0.99)
            p0 = model.prediction_head(model.regions(x0, m0, ids).flatten(0, 1)).view(*ids.shape, -1)
            p1 = model.prediction_head(model.regions(x1, m1, ids).flatten(0, 1)).view(*ids.shape, -1)
            t0, t1 = model.regions(x0, m0, ids, momentum=True), model.regions(x1, m1, ids, momentum=True)
            loss = criterion(p0, p1, t0, t1, ids, ids)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        step += 1
        labels = torch.cat([m0, m1]).unique().numel()
        print(f"step {step:>3}, loss: {loss.item():.5f}, labels in the batch: {labels}")
        if step >= args.steps:
            break
