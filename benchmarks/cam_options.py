"""ContraCAM's options on real photos: train a small SimCLR encoder, then measure each option on a validation split.

Reads a bgbench data folder (``benchmarks/bgbench``: ``train.npz`` and ``val_original.npz``, images with exact
object masks), trains the demo's width-16 ResNet (8x8 maps at 64 px) with SimCLR on the training images for
``--steps``, and on the validation images (never the test splits) reports, per ContraCAM setting:

* mask IoU at 0.5 against the true masks, next to the best centre box and the random-init network;
* ``obj - bg``: mean map inside the object minus outside (:func:`objaug.metrics.map_contrast`);
* box hit rate: images whose true box is matched (IoU >= 0.5) by a found box;
* the share of images whose mixup rectangle leaves a strip (so they can build a background) and the share a
  ``BackgroundMixup(p=0.4)`` actually mixed, with the fixed 0.2 threshold and with ``threshold="otsu"``.

Usage::

    .venv/bin/python benchmarks/cam_options.py --data benchmarks/.cache/bgbench/data-v2-debian-s0-64px-h80 \\
        --steps 600 --threads 1
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from objaug.augment.mixup import BackgroundMixup
from objaug.boxes import boxes_from_steps
from objaug.contracam import ContraCAM
from objaug.functional.mixup import largest_strip, mask_bounding_boxes
from objaug.masks import otsu_thresholds
from objaug.metrics import center_box_prior, map_contrast, mask_iou, pairwise_box_iou
from objaug.tools.archs import build_projector, demo_backbone
from objaug.tools.losses import nt_xent

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

SETTINGS: dict[str, dict[str, object]] = {
    "reference (T=1, t=1, all negatives, no edges)": dict(iters=1, edges=False, refine="union"),
    "defaults T=1 (edges)": dict(iters=1),
    "T=1, temperature 0.2": dict(iters=1, temperature=0.2),
    "T=1, hard_negatives=8": dict(iters=1, hard_negatives=8),
    "T=1, hard_negatives=8, temperature 0.2": dict(iters=1, hard_negatives=8, temperature=0.2),
    "reference T=5 (union, no edges)": dict(iters=5, edges=False, refine="union"),
    "defaults T=5 (weighted, edges)": dict(iters=5),
}


def load(path: Path) -> tuple[Tensor, Tensor, Tensor]:
    d = np.load(path)
    images = torch.from_numpy(d["images"]).permute(0, 3, 1, 2).float() / 255
    masks = torch.from_numpy(d["masks"]).unsqueeze(1) > 0  # bgbench stores 0/1 (older builds 0/255)
    return images, masks.float(), torch.from_numpy(d["boxes"]).float()


def train(images: Tensor, steps: int, batch: int, seed: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    import kornia.augmentation as K
    from tqdm import tqdm

    torch.manual_seed(seed)
    model, projector = demo_backbone(width=16), build_projector("bn:128-64", 64)
    assert projector is not None
    aug = torch.nn.Sequential(K.RandomResizedCrop((64, 64), scale=(0.2, 1.0)), K.RandomHorizontalFlip(),
                              K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8), K.RandomGrayscale(p=0.2))
    params = list(model.parameters()) + list(projector.parameters())
    opt = torch.optim.AdamW(params, lr=4e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    for step in tqdm(range(steps), desc="SimCLR", leave=False):
        lr = 4e-3 * min(1.0, (step + 1) / 20) * 0.5 * (1 + math.cos(math.pi * step / steps))
        for group in opt.param_groups:
            group["lr"] = lr
        x = images[torch.randint(0, images.shape[0], (batch,), generator=g)]
        with torch.no_grad():
            v1, v2 = (aug(x) - MEAN) / STD, (aug(x) - MEAN) / STD
        z = projector(model(torch.cat([v1, v2])))
        loss = nt_xent(z[:batch], z[batch:], temperature=0.2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval(), projector.eval()


def mixup_shares(maps: Tensor, images: Tensor) -> dict[str, float]:
    out = {}
    h, w = maps.shape[-2:]
    for name, thr in (("0.2", 0.2), ("0.5", 0.5), ("otsu", "otsu")):
        # the rectangle of the hard mask, as BackgroundMixup takes it (Otsu: each map's own cut)
        cut = otsu_thresholds(maps).view(-1, 1, 1, 1) if thr == "otsu" else float(thr)
        rect = mask_bounding_boxes((maps >= cut).float(), 0.5)
        _, area = largest_strip(rect, h, w)
        mix = BackgroundMixup(p=0.4, threshold=thr, queue_size=50)  # type: ignore[arg-type]
        mixed = torch.cat([mix(images[i:i + 64], maps[i:i + 64], generator=torch.Generator().manual_seed(i))[1]
                           for i in range(0, images.shape[0], 64)])
        out[f"eligible@{name}"] = float((area > 0).float().mean())
        out[f"mixed@{name}"] = float(mixed.float().mean())
    return out


def evaluate(model: torch.nn.Module, projector: torch.nn.Module, images: Tensor, masks: Tensor, boxes: Tensor,
             options: dict[str, object], batch: int = 128) -> dict[str, float]:
    maps_all, boxes_all, valid_all = [], [], []
    for i in range(0, images.shape[0], batch):
        x = (images[i:i + batch] - MEAN) / STD
        maps, steps = ContraCAM(model, projector=projector, **options)(x, return_steps=True)  # type: ignore[arg-type]
        b, v = boxes_from_steps(steps)
        maps_all.append(maps)
        boxes_all.append(b)
        valid_all.append(v)
    maps, found, valid = torch.cat(maps_all), torch.cat(boxes_all), torch.cat(valid_all)
    hit = (pairwise_box_iou(boxes[:, None], found).masked_fill(~valid[:, None], 0).amax(dim=2) >= 0.5)[:, 0]
    res = {"iou": float(mask_iou(maps, masks, threshold=0.5).mean()),
           "obj-bg": float(map_contrast(maps, masks).nanmean()), "box_hit": float(hit.float().mean())}
    res.update(mixup_shares(maps, (images - MEAN) / STD))
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="bgbench data folder (train.npz, val_original.npz)")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--weights", type=Path, default=None,
                    help="load the trained encoder from this file if it exists, else train and save it there")
    args = ap.parse_args(argv)
    if not (args.data / "train.npz").is_file() or not (args.data / "val_original.npz").is_file():
        print(f"cam_options: error: {args.data} has no train.npz / val_original.npz (build it with "
              "benchmarks/bgbench)", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    train_images, _, _ = load(args.data / "train.npz")
    images, masks, boxes = load(args.data / "val_original.npz")
    torch.manual_seed(args.seed)
    init_model, init_proj = demo_backbone(width=16).eval(), build_projector("bn:128-64", 64)
    assert init_proj is not None
    t0 = time.perf_counter()
    if args.weights is not None and args.weights.is_file():
        model, projector = demo_backbone(width=16), build_projector("bn:128-64", 64)
        assert projector is not None
        state = torch.load(args.weights)
        model.load_state_dict(state["backbone"])
        projector.load_state_dict(state["projector"])
        model.eval(), projector.eval()
        print(f"loaded the encoder from {args.weights}")
    else:
        model, projector = train(train_images, args.steps, args.batch_size, args.seed)
        if args.weights is not None:
            torch.save({"backbone": model.state_dict(), "projector": projector.state_dict()}, args.weights)
        print(f"trained {args.steps} steps (batch {args.batch_size}) in {time.perf_counter() - t0:.0f} s on "
              f"{train_images.shape[0]} images")
    print(f"validation: {images.shape[0]} images, object share {float(masks.mean()):.3f}")
    n = images.shape[0]
    centre = max(float(mask_iou(center_box_prior(n, 64, fraction=f), masks).mean()) for f in (0.1, 0.25, 0.5))
    print(f"best centre box (area 0.1/0.25/0.5): IoU {centre:.3f}")
    rows = [("random init, reference T=1", init_model, init_proj.eval(), SETTINGS[next(iter(SETTINGS))])]
    rows += [(name, model, projector, opt) for name, opt in SETTINGS.items()]
    cols = ("IoU", "obj-bg", "box", "elig.2", "mix.2", "elig.5", "mix.5", "eligO", "mixO")
    print(f"{'setting':48s} " + " ".join(f"{c:>6s}" for c in cols))
    for name, m, p, opt in rows:
        r = evaluate(m, p, images, masks, boxes, opt)
        vals = [r["iou"], r["obj-bg"], r["box_hit"]] + [r[f"{k}@{t}"] for t in ("0.2", "0.5", "otsu")
                                                       for k in ("eligible", "mixed")]
        print(f"{name:48s} " + " ".join(f"{v:6.3f}" for v in vals))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
