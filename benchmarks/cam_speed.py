"""CAM speed: ContraCAM vs pytorch-grad-cam, captum and a plain inference forward, in one run.

Usage (CPU target setting of issue 2; also ``--device cuda --amp --channels-last``)::

    .venv/bin/python benchmarks/cam_speed.py --arch resnet18 --batch-size 32 --image-size 224

``--arch`` also takes timm names: ``vit_small_patch16_224`` times ContraCAM on a ViT (cut at the tokens
entering the last block; the baselines are ResNet-only and skipped).

All rows run on the same model, batch and device, in this process, timed in turn (round robin) so
load drift hits them alike. The anchor is the inference
forward of the whole model (encoder + head, ``torch.no_grad``, eval mode): the performance limit
of a CAM that needs one forward. Times are medians over ``--repeats`` rounds after a warm-up
(rows with ``iters > 2`` every other round).

Baselines:

* pytorch-grad-cam ``GradCAM`` on ``layer4[-1]`` with a per-image embedding-similarity target
  (cosine similarity of each image's embedding to its own detached embedding, computed once
  outside the timed region): its standard usage for an embedding model; output numpy, resized.
* captum ``LayerGradCam`` on ``layer4`` with the same similarity as a scalar forward function;
  then upsampled with ``LayerAttribution.interpolate`` (captum does not upsample by itself).

Both libraries differentiate a similarity score; ContraCAM differentiates the contrastive score,
which is what makes its maps meaningful for an SSL model. Speed is what is compared here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from objaug.contracam import ContraCAM


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_round_robin(
    fns: dict[str, Callable[[], object]], device: torch.device, repeats: int, warmup: int,
    every: dict[str, int] | None = None, clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """Median seconds per call of each function, timed in turn (A, B, C, A, B, C, ...) after a warm-up,
    so load drift on a shared machine hits every row alike. ``every[name] = k`` times that row only
    every k-th round (for slow rows)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    _sync(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(repeats):
        for name, fn in fns.items():
            if every and r % every.get(name, 1):
                continue
            start = clock()
            fn()
            _sync(device)
            times[name].append(clock() - start)
    return {name: statistics.median(t) for name, t in times.items()}


class _Method(nn.Module):
    """A backbone and a projector, as solo-learn methods hold them (``split_model`` finds both)."""

    def __init__(self, backbone: nn.Module, projector: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.projector = projector

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.backbone(x))


def _moco_head(dim: int) -> nn.Module:
    return nn.Sequential(nn.Linear(dim, 2048), nn.ReLU(inplace=True), nn.Linear(2048, 128))  # MoCo v2 head


def _build(arch: str) -> nn.Module:
    if arch.startswith("resnet") and hasattr(torchvision.models, arch):
        model = getattr(torchvision.models, arch)(weights=None)
        model.fc = _moco_head(model.fc.in_features)
        return model.eval()
    import timm  # any timm name, e.g. vit_small_patch16_224 (random weights)

    backbone = timm.create_model(arch, pretrained=False, num_classes=0)
    return _Method(backbone, _moco_head(backbone.num_features)).eval()


class _SimilarityTarget:
    """pytorch-grad-cam target: cosine similarity of the model output to a fixed embedding."""

    def __init__(self, key: torch.Tensor) -> None:
        self.key = key

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        return F.cosine_similarity(output, self.key, dim=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="resnet18",
                        help="torchvision ResNet or timm model name, e.g. vit_small_patch16_224 (random weights)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (all rows)")
    parser.add_argument("--channels-last", action="store_true", help="channels_last model and input (all rows)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iters", type=int, nargs="+", default=[1, 10], help="ContraCAM iterations to time")
    parser.add_argument("--no-baselines", action="store_true", help="skip pytorch-grad-cam and captum")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    parser.add_argument("--clock", choices=("wall", "process"), default="wall",
                        help="wall time, or this process's CPU time (CPU with --threads 1: robust to other jobs "
                             "on a shared machine)")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = _build(args.arch).to(device)
    images = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)

    def autocast() -> torch.autocast:
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp)

    fns: dict[str, Callable[[], object]] = {}
    every: dict[str, int] = {}

    def forward() -> object:
        with torch.no_grad(), autocast():
            return model(images)

    fns["inference forward (anchor)"] = forward

    for iters in args.iters:
        cam = ContraCAM(model, iters=iters, check_finite=False)

        def run_cam(cam: ContraCAM = cam) -> object:
            with autocast():
                return cam(images)

        fns[f"objaug ContraCAM iters={iters}"] = run_cam
        if iters > 2:
            every[f"objaug ContraCAM iters={iters}"] = 2  # slow row: every other round
    # the defaults include the edge filter; these rows show its cost and that of the other options
    variants = {"reference settings (no edge filter)": dict(edges=False, refine="union"),
                "every option (edges, hard_negatives=8)": dict(edges=True, hard_negatives=8)}
    if not hasattr(model, "layer4"):  # a ViT: its other map source
        variants["class-token attention (source='attention')"] = dict(source="attention")
    # a bank of 4096 embeddings (e.g. ContraCAM.embed over a training set, computed once), searched by
    # hard_negatives: the setting docs/how-it-works.md recommends for weak encoders on real photos
    with torch.no_grad():
        dim = ContraCAM(model, check_finite=False).embed(images[:2]).shape[1]
    bank = F.normalize(torch.randn(4096, dim, generator=torch.Generator().manual_seed(0)), dim=1).to(device)
    variants["every option + a 4096-entry bank (hard_negatives=32, temperature=0.2)"] = dict(
        edges=True, hard_negatives=32, temperature=0.2)
    for label, options in variants.items():
        cam = ContraCAM(model, iters=1, check_finite=False, **options)
        negatives = bank if "bank" in label else None

        def run_variant(cam: ContraCAM = cam, negatives: torch.Tensor | None = negatives) -> object:
            with autocast():
                return cam(images, negatives)

        fns[f"objaug ContraCAM iters=1, {label}"] = run_variant

    if not hasattr(model, "layer4") and not args.no_baselines:
        print("baselines need a ResNet (their target layer is layer4): skipped", file=sys.stderr)
    elif not args.no_baselines:
        with torch.no_grad(), autocast():
            keys = F.normalize(model(images).float(), dim=1)
        try:
            from pytorch_grad_cam import GradCAM

            targets = [_SimilarityTarget(k) for k in keys]

            def run_gradcam() -> object:
                with GradCAM(model=model, target_layers=[model.layer4[-1]]) as gc, autocast():
                    return gc(input_tensor=images, targets=targets)

            fns["pytorch-grad-cam GradCAM"] = run_gradcam
        except ImportError:
            print("pytorch-grad-cam not installed: pip install grad-cam", file=sys.stderr)
        try:
            from captum.attr import LayerAttribution, LayerGradCam

            def score(x: torch.Tensor) -> torch.Tensor:
                return (F.normalize(model(x).float(), dim=1) * keys).sum(dim=1)

            lgc = LayerGradCam(score, model.layer4)

            def run_captum() -> object:
                with autocast():
                    attr = lgc.attribute(images, relu_attributions=True)
                    return LayerAttribution.interpolate(attr, (args.image_size, args.image_size))

            fns["captum LayerGradCam"] = run_captum
        except ImportError:
            print("captum not installed: pip install captum", file=sys.stderr)

    clock = time.process_time if args.clock == "process" else time.perf_counter
    rows = list(_time_round_robin(fns, device, args.repeats, args.warmup, every, clock).items())
    anchor = rows[0][1]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"\n{args.arch}, batch {args.batch_size}, {args.image_size} px, {name}, {args.clock} clock, amp={args.amp}, "
          f"channels_last={args.channels_last}, torch {torch.__version__}")
    print(f"{'method':34s} {'ms/batch':>10s} {'images/s':>10s} {'x forward':>10s}")
    for label, t in rows:
        print(f"{label:34s} {t * 1e3:10.1f} {args.batch_size / t:10.1f} {t / anchor:10.2f}")
    by_name = dict(rows)
    if "objaug ContraCAM iters=1" in by_name and "pytorch-grad-cam GradCAM" in by_name:
        print(f"ContraCAM iters=1 / pytorch-grad-cam: "
              f"{by_name['objaug ContraCAM iters=1'] / by_name['pytorch-grad-cam GradCAM']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
