"""objaug demo: train a small SimCLR model on embedded synthetic scenes, then localise objects with ContraCAM.

Runs on the CPU in about a minute (--seconds), needs no data or weights: the scenes (shapes on textured
backgrounds, with exact masks and boxes) are generated on the fly. Prints the mean mask IoU of ContraCAM
(1 iteration and refined) against the known masks, next to the centre-box prior and the same network at
its random initialisation; writes OUT/demo_grid.png (image | ContraCAM T=1 | refined + boxes | ground
truth) and OUT/boxes.json.

Examples:
    objaug demo                       # 60 s of training, outputs in ./objaug_demo
    objaug demo --seconds 120 --seed 1 --out /tmp/demo
    objaug demo --steps 100           # a fixed number of steps: reproducible on any machine
"""

from __future__ import annotations

import argparse
import sys

from objaug.cli import add_threads_argument, fail, out_dir_problem, with_threads

HELP = "SimCLR on synthetic scenes for a minute, then ContraCAM localisation scores and pictures"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Register the ``demo`` options."""
    p.add_argument("--out", default="objaug_demo", help="output directory (default ./objaug_demo)")
    p.add_argument("--seconds", type=float, default=60.0, help="training time budget (default 60)")
    p.add_argument("--steps", type=int, default=None, help="train a fixed number of steps instead")
    p.add_argument("--seed", type=int, default=0, help="seed of data, init and augmentations (default 0)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    add_threads_argument(p)
    p.add_argument("--refined-iters", type=int, default=None, help="ContraCAM iterations of the refined maps")
    p.add_argument("--quick", action="store_true",
                   help="a few seconds end to end (smoke test: tiny model, 3 steps, 16 held-out images)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Run the ``demo`` subcommand."""
    problem = out_dir_problem(args.out)
    if problem:
        return fail("demo", problem)
    return with_threads("demo", args, _run)


def _run(args: argparse.Namespace) -> int:
    import torch

    from objaug.tools.demo import DemoConfig, run_demo

    try:
        torch.empty(0, device=torch.device(args.device))
    except (RuntimeError, ValueError) as e:
        print(f"objaug demo: error: cannot use device {args.device!r}: {e}", file=sys.stderr)
        return 2
    if args.steps is not None and args.steps < 1:
        print("objaug demo: error: --steps must be >= 1", file=sys.stderr)
        return 2
    if args.seconds <= 0:
        print("objaug demo: error: --seconds must be > 0", file=sys.stderr)
        return 2
    cfg = DemoConfig(seconds=args.seconds, steps=args.steps, seed=args.seed, device=args.device)
    if args.quick:
        cfg = DemoConfig(seconds=args.seconds, steps=args.steps if args.steps is not None else 3, seed=args.seed,
                         device=args.device, width=8, batch_size=8, eval_images=16, image_size=32,
                         refined_iters=2, projector="32-16")
    if args.refined_iters is not None:
        if args.refined_iters < 1:
            print("objaug demo: error: --refined-iters must be >= 1", file=sys.stderr)
            return 2
        cfg.refined_iters = args.refined_iters
    run_demo(cfg, out_dir=args.out, progress=not args.no_progress)
    return 0
