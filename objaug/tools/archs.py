"""Model builders for the command line and the demo.

* :func:`build_backbone`: ``resnet18``/``resnet50`` (torchvision, random init, ``fc = Identity``), any
  timm model name (``num_classes=0``; timm is imported lazily) and ``tiny_resnet`` (the demo's small
  ResNet). Every builder returns a model that maps (B, 3, H, W) images to (B, D) features.
* :func:`tiny_resnet`: a narrow one-block-per-stage torchvision ``ResNet`` (the class itself, so
  objaug's automatic encoder/head split applies).
* :func:`build_projector`: an MLP projector from a ``"2048-128"``-style spec.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet, resnet18, resnet50

from objaug.validation import check_bool

__all__ = ["ARCHS", "PROJECTOR_FLAGS", "backbone_dim", "build_backbone", "build_projector", "demo_backbone",
           "parse_projector_spec", "tiny_resnet"]

#: Architectures built without timm.
ARCHS: tuple[str, ...] = ("resnet18", "resnet50", "tiny_resnet")


def tiny_resnet(
    *,
    width: int = 32,
    widths: Sequence[int] | None = None,
    blocks: Sequence[int] = (1, 1, 1, 1),
    small_input: bool = True,
    stem_stride: int = 1,
    strides: Sequence[int] = (1, 2, 2, 2),
) -> ResNet:
    """A narrow torchvision ``ResNet`` with ``BasicBlock`` stages, for small images and small CPUs.

    The model is an instance of ``torchvision.models.resnet.ResNet`` (its stages rebuilt narrower with
    the class's own ``_make_layer``), so it has the usual children ``conv1, bn1, relu, maxpool,
    layer1..layer4, avgpool, fc`` with ``fc = Identity``, and objaug's automatic split and the
    checkpoint loader treat it like any torchvision ResNet.

    Args:
        width: channels of ``layer1`` when ``widths`` is None; the stages then have
            ``width * (1, 2, 4, 8)`` channels.
        widths: channels of the four stages (overrides ``width``). The output dimension is
            ``widths[3]``.
        blocks: BasicBlocks per stage (4 ints).
        small_input: if True (default) the stem is a 3x3 convolution of stride ``stem_stride`` and
            ``maxpool`` is an ``Identity`` (CIFAR style); else the standard 7x7 stride-2 convolution and
            3x3 stride-2 max pooling.
        stem_stride: stride of the small stem (1 or 2).
        strides: strides of the first block of each stage (torchvision: (1, 2, 2, 2)).

    Returns:
        A ``ResNet`` in train mode mapping (B, 3, H, W) to (B, widths[3]). With the defaults its total
        stride is 8 (64 px images give 8x8 maps).
    """
    chans = list(widths) if widths is not None else [width, 2 * width, 4 * width, 8 * width]
    if len(chans) != 4 or min(chans) < 1 or len(blocks) != 4 or min(blocks) < 1 or len(strides) != 4 \
            or min(strides) < 1 or stem_stride < 1:
        raise ValueError(f"tiny_resnet needs 4 positive widths, block counts and strides, got widths={chans}, "
                         f"blocks={tuple(blocks)}, strides={tuple(strides)}, stem_stride={stem_stride}.")
    if not check_bool(small_input, "small_input") and stem_stride != 1:
        raise ValueError(f"stem_stride={stem_stride} sets the small stem's stride, but small_input=False builds the "
                         "standard 7x7 stride-2 stem: drop stem_stride, or use small_input=True.")
    model = ResNet(BasicBlock, [1, 1, 1, 1])
    if small_input:
        model.conv1 = nn.Conv2d(3, chans[0], kernel_size=3, stride=stem_stride, padding=1, bias=False)
        model.maxpool = nn.Identity()  # type: ignore[assignment]
    else:
        model.conv1 = nn.Conv2d(3, chans[0], kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(chans[0])
    model.inplanes = chans[0]
    model.layer1 = model._make_layer(BasicBlock, chans[0], blocks[0], stride=strides[0])
    model.layer2 = model._make_layer(BasicBlock, chans[1], blocks[1], stride=strides[1])
    model.layer3 = model._make_layer(BasicBlock, chans[2], blocks[2], stride=strides[2])
    model.layer4 = model._make_layer(BasicBlock, chans[3], blocks[3], stride=strides[3])
    model.fc = nn.Identity()  # type: ignore[assignment]
    for m in model.modules():  # same initialisation as torchvision's ResNet constructor
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
    return model


def demo_backbone(*, width: int = 32) -> ResNet:
    """The demo's network (``build_backbone("tiny_resnet")``): a :func:`tiny_resnet` with stages of
    ``width * (1, 2, 4, 4)`` channels, a 3x3 stride-2 stem, no max pooling and a stride-1 last stage
    (total stride 8: 8x8 maps at 64 px). Output dimension ``4 * width``."""
    w = width
    return tiny_resnet(widths=(w, 2 * w, 4 * w, 4 * w), stem_stride=2, strides=(1, 2, 2, 1))


def build_backbone(arch: str, **kwargs: object) -> nn.Module:
    """Build a randomly initialised backbone that maps (B, 3, H, W) images to (B, D) features.

    Args:
        arch: ``"resnet18"``, ``"resnet50"`` (torchvision, ``weights=None``, ``fc = Identity``),
            ``"tiny_resnet"`` or ``"tiny_resnet_w<W>"`` (the demo's network, :func:`demo_backbone`, of
            width 32 or W; ``kwargs`` are passed on) or any timm model
            name (created with ``pretrained=False, num_classes=0``, and ``dynamic_img_size=True`` where the
            family has that option, e.g. ``vit_tiny_patch16_224``, so Vision Transformers take any image
            size that is a multiple of their patch size; a ``"timm:"`` prefix is accepted and stripped).
        **kwargs: extra keyword arguments for the builder.

    Returns:
        The model, in train mode, on the CPU.

    Raises:
        ValueError: unknown architecture name.
        ImportError: a timm name was given but timm is not installed.
    """
    if not isinstance(arch, str) or not arch:
        raise ValueError(f"arch must be a non-empty string, got {arch!r}.")
    if arch == "resnet18":
        model: nn.Module = resnet18(weights=None, **kwargs)  # type: ignore[arg-type]
        model.fc = nn.Identity()
        return model
    if arch == "resnet50":
        model = resnet50(weights=None, **kwargs)  # type: ignore[arg-type]
        model.fc = nn.Identity()
        return model
    tiny = re.fullmatch(r"tiny_resnet(?:_w(\d+))?", arch)
    if tiny:
        width = int(tiny.group(1)) if tiny.group(1) else 32
        return demo_backbone(width=width, **kwargs)  # type: ignore[arg-type]
    name = arch.removeprefix("timm:")
    try:
        timm = importlib.import_module("timm")
    except ImportError as e:
        raise ImportError(
            f"Architecture {arch!r} is not one of {ARCHS} and would be built with timm, which is not "
            "installed. Install it with `pip install timm` (or `pip install objaug[timm]`)."
        ) from e
    if not timm.is_model(name):
        raise ValueError(
            f"Unknown architecture {arch!r}: not one of {ARCHS} and not a timm model name. "
            f"List timm models with `python -c \"import timm; print(timm.list_models('*resnet*'))\"`."
        )
    if "dynamic_img_size" not in kwargs:
        try:  # Vision Transformers: any image size (a multiple of the patch size); same weights
            return timm.create_model(name, pretrained=False, num_classes=0,  # type: ignore[no-any-return]
                                     dynamic_img_size=True, **kwargs)
        except TypeError:  # the model family has no such option
            pass
    return timm.create_model(name, pretrained=False, num_classes=0, **kwargs)  # type: ignore[no-any-return]


@torch.no_grad()
def backbone_dim(model: nn.Module, *, image_size: int = 64) -> int:
    """Feature dimension D of a backbone, found with one forward pass of a (2, 3, S, S) zero batch.

    The model's train/eval mode is restored afterwards.
    """
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        p = next(iter(model.parameters()), None)
        x = torch.zeros(2, 3, image_size, image_size,
                        device=p.device if p is not None else None,
                        dtype=p.dtype if p is not None else None)
        out = model(x)
    finally:
        for m, t in modes.items():
            m.train(t)
    if out.ndim != 2:
        raise ValueError(f"The backbone returns shape {tuple(out.shape)}, expected (B, D). Remove its "
                         "classifier (fc = Identity / num_classes=0) and keep the global pooling.")
    return int(out.shape[1])


PROJECTOR_FLAGS: tuple[str, ...] = ("bn", "nobias", "bnlast")


def parse_projector_spec(spec: str) -> tuple[list[int], frozenset[str]]:
    """Parse a projector spec ``[flag,flag...:]d1-d2-...``.

    ``d1-d2-...`` are the output sizes of the Linear layers (hidden sizes, then the output size).
    Flags: ``bn`` (BatchNorm1d after each hidden Linear), ``nobias`` (no bias in the Linear layers that
    a BatchNorm1d follows), ``bnlast`` (BatchNorm1d on the output too).

    Returns:
        ``(dims, flags)``.

    Raises:
        ValueError: a malformed spec or an unknown flag.
    """
    s = spec.strip()
    flags: frozenset[str] = frozenset()
    if ":" in s:
        head, _, s = s.partition(":")
        flags = frozenset(f.strip().lower() for f in head.split(",") if f.strip())
        unknown = flags - set(PROJECTOR_FLAGS)
        if unknown:
            raise ValueError(f"Unknown projector flag(s) {sorted(unknown)} in {spec!r}; known: {PROJECTOR_FLAGS}.")
    try:
        dims = [int(p) for p in s.split("-")]
    except ValueError:
        dims = []
    if not dims or min(dims) < 1:
        raise ValueError(f"Projector spec {spec!r} is not valid: use hidden and output sizes joined by '-', "
                         "e.g. '2048-128' (Linear-ReLU-Linear) or 'bn:4096-256' (with BatchNorm1d).")
    return dims, flags


def build_projector(spec: str | Sequence[int] | None, in_dim: int, *,
                    batch_norm: bool = False) -> nn.Sequential | None:
    """Build an MLP projector as an ``nn.Sequential`` (so checkpoint keys read ``projector.0.weight``...).

    Layouts by spec (``h`` hidden, ``o`` output; keys of the Sequential in brackets):

    * ``"h-o"``: Linear, ReLU, Linear [0, 2] -- solo-learn MoCo v2+, the reference MoCo v2 head,
      lightly ``MoCoProjectionHead`` (under ``projection_head.layers.``);
    * ``"bn:h-o"``: Linear, BatchNorm1d, ReLU, Linear [0, 1, 3] -- solo-learn SimCLR / BYOL;
    * ``"bn,nobias:h-o"``: the same with no bias in the first Linear -- lightly ``BYOLProjectionHead``;
    * ``"bn,nobias,bnlast:h-o"``: Linear(no bias), BatchNorm1d, ReLU, Linear(no bias), BatchNorm1d
      [0, 1, 3, 4] -- lightly ``SimCLRProjectionHead``.

    More hidden layers: ``"h1-h2-o"``.

    Args:
        spec: a spec string (see :func:`parse_projector_spec`), a list of ints, or
            ``None``/``""``/``"none"`` (no projector: returns ``None``).
        in_dim: input feature dimension (the backbone's D).
        batch_norm: add BatchNorm1d after hidden layers (same as the ``bn`` flag).

    Returns:
        The projector (train mode) or ``None``.
    """
    check_bool(batch_norm, "batch_norm")
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "none")):
        return None
    flags: frozenset[str] = frozenset()
    if isinstance(spec, str):
        dims, flags = parse_projector_spec(spec)
    else:
        dims = [int(d) for d in spec]
        if not dims or min(dims) < 1:
            raise ValueError(f"Projector dims must be positive ints, got {spec!r}.")
    if batch_norm:
        flags = flags | {"bn"}
    layers: list[nn.Module] = []
    prev = in_dim
    for i, d in enumerate(dims):
        last = i == len(dims) - 1
        bn_follows = ("bnlast" in flags) if last else ("bn" in flags)
        layers.append(nn.Linear(prev, d, bias=not (bn_follows and "nobias" in flags)))
        if bn_follows:
            layers.append(nn.BatchNorm1d(d))
        if not last:
            layers.append(nn.ReLU(inplace=True))
        prev = d
    return nn.Sequential(*layers)
