"""solo-learn BYOL training-step time with objaug (store and online ContraCAM) against without, in one run.

Usage (needs the real solo-learn importable as ``solo``; exits with a message otherwise)::

    python benchmarks/solo_step.py --batch-size 16 --image-size 128 --rounds 3 --steps 4

What is timed: solo-learn's own BYOL method (ResNet-18, its ``training_step``, LARS, momentum update)
inside a real Lightning Trainer, with the objaug callback added by the entry point exactly as in
``main_pretrain.py``; the model is converted to channels_last as ``main_pretrain.py`` does. The
DataLoader serves ready-made solo-learn batches ``[indexes, [X_1, X_2], targets]`` (random
normalised full frames) so the step time is the training step, not JPEG decoding. A step is the time
from one ``on_train_batch_start`` to the next (callback, forward, backward, optimiser, EMA), as wall
time and as this process's CPU time. On a shared machine the wall times carry the other processes'
load; with ``--threads 1`` (all work in this thread) the CPU time is the contention-free measure.

Rows (same model, same batches, configurations interleaved round by round, median over all timed
steps of each):

* ``plain``: objaug disabled (the anchor);
* ``store``: object-aware crop of both views inside boxes read from an ``objaug.store.ObjectStore``
  (precomputed once before timing) and background mixup of view 0 with the store's masks;
* ``online``: ContraCAM (iters=1) of the momentum encoder on view 0 on every step, boxes from it,
  object-aware crop of both views and mixup of view 0.

The printed ratios are each row's median step time over ``plain``'s (wall and CPU), and, as the
measure least disturbed by other processes, ``1 + (median CPU time spent inside objaug's
on_train_batch_start) / (plain's median CPU step time)``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of all configurations")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per configuration and round")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps at the start of each fit")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--precision", default="32")
    args = parser.parse_args()

    try:
        import lightning.pytorch as L
        from omegaconf import OmegaConf
        from solo.args.pretrain import parse_cfg
        from solo.methods import METHODS
    except ImportError as err:
        print(f"solo_step.py needs solo-learn (GitHub main) and lightning: {err}. Skipped.")
        return 0
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    import torchvision

    from objaug.store import precompute

    torch.manual_seed(0)
    b, s = args.batch_size, args.image_size
    n_batches = args.warmup + args.steps
    n = b * n_batches
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    images = torch.rand(n, 3, s, s)
    for i in range(n):  # a bright rectangle per image, so CAMs and masks have something to find
        y, x = (i * 7) % (s // 2), (i * 13) % (s // 2)
        images[i, :, y:y + s // 3, x:x + s // 3] = torch.rand(3, 1, 1) * 0.3 + 0.7
    frames = (images - mean) / std

    class Frames(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return n

        def __getitem__(self, i: int) -> tuple[int, list[torch.Tensor], int]:
            return i, [frames[i], frames[i]], 0

    class Pictures(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return n

        def __getitem__(self, i: int) -> torch.Tensor:
            return images[i]

    tmp = Path(tempfile.mkdtemp(prefix="objaug_solo_step_"))
    store_model = torchvision.models.resnet18()
    store_model.fc = torch.nn.Identity()
    precompute(Pictures(), store_model, tmp / "store", image_size=s, batch_size=b, mask_size=56,
               num_workers=0, progress=False)

    pipeline = {"rrc": {"enabled": True, "crop_min_scale": 1.0, "crop_max_scale": 1.0},
                "color_jitter": {"prob": 0.0}, "grayscale": {"prob": 0.0}, "gaussian_blur": {"prob": 0.0},
                "solarization": {"prob": 0.0}, "equalization": {"prob": 0.0}, "horizontal_flip": {"prob": 0.0},
                "crop_size": s, "num_crops": 1}
    (tmp / "train" / "a").mkdir(parents=True)
    cfg = OmegaConf.create({
        "name": "bench", "method": "byol", "backbone": {"name": "resnet18"},
        "method_kwargs": {"proj_hidden_dim": 4096, "proj_output_dim": 256, "pred_hidden_dim": 4096},
        "momentum": {"base_tau": 0.99, "final_tau": 1.0},
        "data": {"dataset": "custom", "train_path": str(tmp / "train"), "format": "image_folder", "num_workers": 0},
        "optimizer": {"name": "lars", "batch_size": b, "lr": 1.0, "classifier_lr": 0.1, "weight_decay": 1e-6,
                      "kwargs": {"clip_lr": True, "eta": 0.02, "exclude_bias_n_norm": True}},
        "scheduler": {"name": "warmup_cosine"}, "checkpoint": {"enabled": False}, "auto_resume": {"enabled": False},
        "augmentations": [pipeline, pipeline], "max_epochs": 1, "devices": [0], "accelerator": "cpu",
        "precision": args.precision,
    })
    OmegaConf.set_struct(cfg, False)
    cfg = parse_cfg(cfg)
    model = METHODS["byol"](cfg).to(memory_format=torch.channels_last)

    blocks: dict[str, dict[str, Any]] = {
        "plain": {"enabled": False},
        "store": {"enabled": True, "source": "store", "store": {"path": str(tmp / "store")},
                  "mixup": {"enabled": True, "views": [0]}},
        "online": {"enabled": True, "source": "online", "online": {"model": "momentum", "iters": 1},
                   "mixup": {"enabled": True, "views": [0]}},
    }
    times: dict[str, list[float]] = {k: [] for k in blocks}
    cpu: dict[str, list[float]] = {k: [] for k in blocks}
    hook: dict[str, list[float]] = {k: [] for k in blocks}  # CPU time inside objaug's on_train_batch_start

    class Clock(L.Callback):  # runs before the entry-point callback: its start includes objaug's work
        def __init__(self) -> None:
            self.stamps: list[tuple[float, float]] = []

        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            self.stamps.append((time.perf_counter(), time.process_time()))

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            self.stamps.append((time.perf_counter(), time.process_time()))

    loader = torch.utils.data.DataLoader(Frames(), batch_size=b, shuffle=False, drop_last=True, num_workers=0)
    for _ in range(args.rounds):
        for name, block in blocks.items():
            model.cfg.objaug = OmegaConf.create(block)
            clock = Clock()
            trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=n_batches, logger=False,
                                enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                                precision=args.precision, callbacks=[clock])
            objaug_cb = [cb for cb in trainer.callbacks if getattr(cb, "_objaug_solo_callback", False)][0]
            spent: list[float] = []

            def timed(*a: Any, _inner: Any = objaug_cb.on_train_batch_start, _spent: list[float] = spent) -> None:
                t0 = time.process_time()
                _inner(*a)
                _spent.append(time.process_time() - t0)

            objaug_cb.on_train_batch_start = timed
            trainer.fit(model, loader)
            hook[name].extend(spent[args.warmup:])
            if name != "plain":  # the callback did its work on every timed step
                engine = [cb for cb in trainer.callbacks if getattr(cb, "_objaug_solo_callback", False)][0].engine
                assert engine is not None and engine.batches_seen == n_batches, name
                assert name != "online" or engine.last_info["cam"], "no CAM on the last step"
            pairs = list(zip(clock.stamps[:-1], clock.stamps[1:], strict=True))[args.warmup:]
            times[name].extend(t1[0] - t0[0] for t0, t1 in pairs)
            cpu[name].extend(t1[1] - t0[1] for t0, t1 in pairs)

    anchor = statistics.median(times["plain"])
    anchor_cpu = statistics.median(cpu["plain"])
    print(f"solo-learn BYOL ResNet-18, batch {b}, {s}x{s}, 2 views, CPU, torch threads {torch.get_num_threads()}, "
          f"precision {args.precision}, {args.rounds} rounds x {args.steps} steps per row")
    print(f"{'row':8s} {'wall s/step':>12s} {'ratio':>7s} {'cpu s/step':>11s} {'ratio':>7s} {'objaug cpu s':>13s} "
          f"{'1 + objaug/plain':>17s}  (medians)")
    for name in blocks:
        med, med_cpu, med_hook = (statistics.median(times[name]), statistics.median(cpu[name]),
                                  statistics.median(hook[name]))
        print(f"{name:8s} {med:12.3f} {med / anchor:7.3f} {med_cpu:11.3f} {med_cpu / anchor_cpu:7.3f} "
              f"{med_hook:13.4f} {1 + med_hook / anchor_cpu:17.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
