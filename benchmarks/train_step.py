"""One SSL training step (SimCLR, ResNet-18): Lightly's CPU pipeline vs objaug's device step.

Same model (Lightly's example structure: ``nn.Sequential`` ResNet-18 backbone + ``SimCLRProjectionHead``,
``NTXentLoss``, SGD), same batch of B generated multi-object scenes (``objaug.tools.synthetic``), one process.

Step time, per path (everything in the step is timed, the device is synchronised at the end):

* ``lightly``: Lightly's ``SimCLRTransform(input_size=S)`` applied image by image to the batch's PIL
  images (what a DataLoader worker does), the views stacked and moved to the device, then forward of
  both views, ``NTXentLoss``, backward, ``optimizer.step()``.
* ``objaug-store``: ``ObjectAwareStep`` on the device on the batch's base images ((B, 3, S, S) float in
  [0, 1], already on the device): boxes read from an in-memory store by index, object-aware crop, the
  same SimCLR colour augmentations (kornia, batched), then the same training step.
* ``objaug-cam``: the same, but the boxes come from ContraCAM computed online every step by the model
  being trained (``iters=1``, in-batch negatives), then ``boxes_from_cam``.

Not timed in any path: decoding the images and collating (done by DataLoader workers in both cases).
In real training Lightly's per-image transforms run in parallel workers and overlap the step; this
benchmark runs them serially in the step, as the task's definition of "step time" asks (that is
Lightly's cost per step on a machine without spare cores for workers).

Repetitions are interleaved (lightly, store, cam, lightly, ...) after one warm-up each and the median is
reported, so machine load affects the three paths alike; the ratios are to Lightly's median measured in
the same run.

Run:
    .venv/bin/python benchmarks/train_step.py                    # B=32 at 128 px, CUDA if present
    .venv/bin/python benchmarks/train_step.py --batch 32 --size 224 --repeats 5 --device cpu
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torchvision
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from lightly.transforms.simclr_transform import SimCLRTransform
from torch import nn

from objaug.augment.views import simclr_views
from objaug.integrations.lightly.device_step import ObjectAwareStep
from objaug.tools.synthetic import make_scenes


class SimCLR(nn.Module):
    """Lightly's examples/pytorch/simclr.py model."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(*list(torchvision.models.resnet18().children())[:-1])
        self.projection_head = SimCLRProjectionHead(512, 512, 128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head(self.backbone(x).flatten(start_dim=1))


class MemoryStore:
    """An in-memory object store: ``get_batch(indexes) -> (boxes, valid, masks)`` (as objaug.store)."""

    def __init__(self, boxes: torch.Tensor, valid: torch.Tensor) -> None:
        self.boxes, self.valid = boxes, valid

    def get_batch(self, indexes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        return self.boxes[indexes], self.valid[indexes], None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=128, help="base image size = view size (px)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    b, s = args.batch, args.size

    scenes = make_scenes(b, size=s, max_objects=3, seed=0)
    pil_images = [torchvision.transforms.functional.to_pil_image(img) for img in scenes.images]
    base = scenes.images.to(device)
    indexes = torch.arange(b)
    store = MemoryStore(scenes.boxes, scenes.valid)

    model = SimCLR().to(device)
    criterion = NTXentLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06)
    lightly_transform = SimCLRTransform(input_size=s)
    step_store = ObjectAwareStep(simclr_views(s), store=store).to(device)
    step_cam = ObjectAwareStep(simclr_views(s), model=model).to(device)

    def train(x0: torch.Tensor, x1: torch.Tensor) -> None:
        loss = criterion(model(x0), model(x1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    parts: dict[str, list[float]] = {k: [] for k in ("lightly aug", "objaug aug (store)", "objaug aug (cam)")}

    def lightly_step() -> None:
        t = time.perf_counter()
        views = [lightly_transform(img) for img in pil_images]
        x0 = torch.stack([v[0] for v in views]).to(device, non_blocking=True)
        x1 = torch.stack([v[1] for v in views]).to(device, non_blocking=True)
        sync(device)
        parts["lightly aug"].append(time.perf_counter() - t)
        train(x0, x1)

    def store_step() -> None:
        t = time.perf_counter()
        x0, x1 = step_store(base, indexes=indexes)
        sync(device)
        parts["objaug aug (store)"].append(time.perf_counter() - t)
        train(x0, x1)

    def cam_step() -> None:
        t = time.perf_counter()
        x0, x1 = step_cam(base)
        sync(device)
        parts["objaug aug (cam)"].append(time.perf_counter() - t)
        train(x0, x1)

    paths: dict[str, Callable[[], None]] = {"lightly": lightly_step, "objaug-store": store_step,
                                            "objaug-cam": cam_step}
    times: dict[str, list[float]] = {k: [] for k in paths}
    for fn in paths.values():  # warm-up
        fn()
    for v in parts.values():
        v.clear()
    for _ in range(args.repeats):
        for name, fn in paths.items():
            sync(device)
            t = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t)

    med = {k: statistics.median(v) for k, v in times.items()}
    aug = {k: statistics.median(v) for k, v in parts.items()}
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or 'cpu'})"
    print(f"SimCLR ResNet-18 train step, B={b}, {s}x{s} px views from {s}x{s} base images, device {dev}, "
          f"torch threads {torch.get_num_threads()}, torch {torch.__version__}, {args.repeats} interleaved repeats "
          "(median)")
    print(f"{'path':<16}{'step (s)':>10}{'augment (s)':>13}{'train (s)':>11}{'x lightly':>11}  target")
    targets = {"lightly": "", "objaug-store": "<= 1.15", "objaug-cam": "<= 1.50"}
    aug_key = {"lightly": "lightly aug", "objaug-store": "objaug aug (store)", "objaug-cam": "objaug aug (cam)"}
    for name in paths:
        rest = statistics.median(t - a for t, a in zip(times[name], parts[aug_key[name]], strict=True))
        ratio = med[name] / med["lightly"]
        print(f"{name:<16}{med[name]:>10.3f}{aug[aug_key[name]]:>13.3f}{rest:>11.3f}{ratio:>11.2f}  {targets[name]}")


if __name__ == "__main__":
    main()
