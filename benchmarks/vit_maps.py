"""ViT map sources on the demo's scenes: ContraCAM (Grad-CAM) against the class-token attention.

Usage (CPU, about three minutes at the defaults)::

    .venv/bin/python benchmarks/vit_maps.py --seconds 120 --threads 2

Trains a small timm ViT (8 px patches on the demo's 64 px synthetic scenes: an 8x8 token grid,
class token) with the demo's SimCLR loop (:func:`objaug.tools.demo.train_simclr`, same augmentations
and data), then scores both map sources on the demo's held-out scenes with the demo's own evaluation
(:func:`objaug.tools.demo.evaluate_localisation`: mean per-image mask IoU at threshold 0.5), at
random initialisation and after training, for one pass and for refined maps. The centre-box prior is
printed beside them as the baseline to beat. Prints a Markdown table; ``--json`` also writes it.
"""

from __future__ import annotations

import argparse
import copy
import json

import torch

from objaug.metrics import center_box_prior, mask_iou
from objaug.tools.demo import DemoConfig, evaluate_localisation, train_simclr
from objaug.tools.synthetic import make_scenes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0, help="SimCLR training budget (default 120)")
    parser.add_argument("--steps", type=int, default=None, help="a fixed number of steps instead")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--embed-dim", type=int, default=96)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--refined-iters", type=int, default=5)
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    args = parser.parse_args(argv)

    import timm

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = DemoConfig(seconds=args.seconds, steps=args.steps, seed=args.seed, device=args.device)
    held_out = make_scenes(cfg.eval_images, size=cfg.image_size, max_objects=cfg.max_objects,
                           seed=cfg.seed + 1_000_003)  # the demo's held-out scenes
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=cfg.image_size,
                                  patch_size=8, embed_dim=args.embed_dim, depth=args.depth, num_heads=4)
        projector = torch.nn.Sequential(torch.nn.Linear(args.embed_dim, 128), torch.nn.BatchNorm1d(128),
                                        torch.nn.ReLU(), torch.nn.Linear(128, 64))
        init = copy.deepcopy(model).to(cfg.device), copy.deepcopy(projector).to(cfg.device)
        steps, seconds, loss = train_simclr(model, projector, cfg, progress=False)
    print(f"ViT (embed {args.embed_dim}, depth {args.depth}, 8 px patches, class token): SimCLR {steps} steps in "
          f"{seconds:.0f} s, final loss {loss:.3f}; {cfg.eval_images} held-out scenes, threshold {cfg.threshold:g}")

    rows: dict[str, float] = {}
    for state, (m, p) in {"random init": init, "trained": (model, projector)}.items():
        for source in ("gradcam", "attention"):
            for t in (1, args.refined_iters):
                _, iou, _, _ = evaluate_localisation(m, p, held_out, iters=t, threshold=cfg.threshold,
                                                     source=source)
                rows[f"{source}, {state}, T={t}"] = float(iou.mean())
    for frac in (0.1, 0.25, 0.5):
        prior = center_box_prior(cfg.eval_images, cfg.image_size, fraction=frac)
        rows[f"centre-box prior, area {frac:g}"] = float(mask_iou(prior, held_out.masks).mean())

    print("\n| map | mean mask IoU |\n|---|---|")
    for name, value in rows.items():
        print(f"| {name} | {value:.3f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"steps": steps, "seconds": seconds, "final_loss": loss, "iou": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
