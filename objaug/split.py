"""The encoder/head seam ContraCAM needs: encoder to a spatial map, head to an embedding.

Like timm's ``forward_features`` / ``forward_head`` split, :class:`EncoderHead` cuts a model into

* an **encoder** ``f``: images (B, C_in, H, W) -> spatial feature map (B, C, h, w) (e.g. ResNet
  ``layer4``), and
* a **head** ``g``: (B, C, h, w) -> embedding (B, D), un-normalised (global pool, flatten, projector).

:func:`split_model` finds the cut automatically for the model families SSL libraries use, and
``EncoderHead(encoder, head)`` takes an explicit cut for anything else. The split never copies
weights: its modules are the model's own, so whatever runs through it runs the model.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

__all__ = ["EncoderHead", "split_model", "preserve_model_state", "expanded_resolution", "module_device"]

_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d, nn.MaxPool2d)
_PROJECTOR_NAMES = ("projector", "projection_head", "proj_head", "projection")
_RESNET_PARTS = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc")

_HOW_TO = (
    "Pass the cut explicitly: ContraCAM(encoder=..., head=...) or EncoderHead(encoder, head), where "
    "encoder maps images (B, C, H, W) to a spatial feature map (B, C', h, w) and head maps that map to "
    "an embedding (B, D) (global pooling, flatten, projector)."
)


class _MethodCall(nn.Module):
    """Wraps ``getattr(owner, method)`` as a module (for timm's forward_features / forward_head)."""

    def __init__(self, owner: nn.Module, method: str) -> None:
        super().__init__()
        self.owner = owner
        self.method = method

    def forward(self, x: Tensor) -> Tensor:
        return getattr(self.owner, self.method)(x)


class _Permute(nn.Module):
    """``x.permute(*dims)`` as a module (between the (B, h, w, C) maps of Swin and (B, C, h, w))."""

    def __init__(self, *dims: int) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: Tensor) -> Tensor:
        return x.permute(*self.dims)


class EncoderHead(nn.Module):
    """A model cut into an encoder (to a spatial map) and a head (to an embedding).

    Args:
        encoder: images (B, C_in, H, W) -> feature map (B, C, h, w).
        head: feature map (B, C, h, w) -> embedding (B, D), before L2 normalisation.
        last_stage: optional list of the ``nn.Conv2d`` modules that downsample into the last spatial
            stage (for the stride-1 "expand resolution" option). Found automatically when ``None``.

    The modules are shared with the model they come from (no copies).
    """

    def __init__(self, encoder: nn.Module, head: nn.Module, *, last_stage: list[nn.Conv2d] | None = None):
        super().__init__()
        if not isinstance(encoder, nn.Module) or not isinstance(head, nn.Module):
            raise TypeError(f"encoder and head must be nn.Modules, got {type(encoder).__name__} and "
                            f"{type(head).__name__}. {_HOW_TO}")
        self.encoder = encoder
        self.head = head
        self._last_stage = last_stage

    def forward_features(self, x: Tensor) -> Tensor:
        """Images (B, C_in, H, W) -> spatial feature map (B, C, h, w)."""
        return self.encoder(x)

    def forward_head(self, features: Tensor) -> Tensor:
        """Feature map (B, C, h, w) -> un-normalised embedding (B, D)."""
        return self.head(features)

    def forward(self, x: Tensor) -> Tensor:
        """Images (B, C_in, H, W) -> un-normalised embedding (B, D)."""
        return self.head(self.encoder(x))

    def last_stage_convs(self, example: Tensor) -> list[nn.Conv2d]:
        """The strided convolutions that downsample into the last spatial stage.

        For ResNets these are the convolutions of ``layer4[0]`` with stride > 1 (the block conv and
        the downsample shortcut). Otherwise they are found once, with one forward of ``example[:1]``
        (under ``no_grad``, eval mode restored afterwards): the strided ``nn.Conv2d`` layers whose
        input has the smallest spatial size.

        Args:
            example: an input batch (B, C_in, H, W) on the model's device (only the first image is used).

        Returns:
            The conv modules (empty if the encoder has no strided convolution).
        """
        if self._last_stage is None:
            self._last_stage = _find_last_stage(self.encoder, example[:1])
        return self._last_stage


def split_model(model: nn.Module, *, projector: nn.Module | None = None) -> EncoderHead:
    """Cut ``model`` into an encoder (to a spatial map) and a head (to an embedding).

    Recognised, in this order:

    * an :class:`EncoderHead` (returned as is, with ``projector`` appended to its head);
    * an object with a ``backbone`` attribute (solo-learn methods, lightly model classes): the
      backbone is split and its projector (``projector=``, else the first of the attributes
      ``projector``, ``projection_head``, ``proj_head``, ``projection``) is appended to the head;
    * a torchvision ``ResNet`` (or any module with ``conv1, bn1, relu, maxpool, layer1..4, avgpool,
      fc``): encoder = stem + ``layer1..layer4``; head = ``avgpool``, flatten, ``fc`` (a projector or
      ``nn.Identity``);
    * an ``nn.Sequential`` that ends in a pooling layer (lightly's
      ``nn.Sequential(*list(resnet18().children())[:-1])``), optionally followed by ``nn.Flatten``:
      encoder = everything before the last pooling layer; head = the pooling layer onwards + flatten;
    * a Vision Transformer (timm ``VisionTransformer`` and subclasses such as solo-learn's ``vit_*``,
      torchvision ``VisionTransformer``, lightly's ``MaskedVisionTransformerTIMM`` /
      ``MaskedVisionTransformerTorchvision``): encoder = patch and position embedding + every block
      but the last, returning the patch tokens entering the last block as a grid (B, D, h, w); head =
      the last block (prefix tokens put back in front), the final norm, the model's own pooling (class
      token or average) and the projector. See :mod:`objaug.split_vit`;
    * a timm model (``forward_features`` / ``forward_head``); for channels-last models such as Swin
      (``output_fmt == "NHWC"``) the last stage's (B, h, w, C) map is permuted to (B, C, h, w).

    Args:
        model: the model (or contrastive method) to split. Its modules are shared, not copied.
        projector: an optional module mapping the pooled (B, C) features to the embedding (B, D),
            appended to the head.

    Returns:
        An :class:`EncoderHead` whose ``head`` ends with ``projector`` if one was given or found.

    Raises:
        TypeError: ``model`` is not an ``nn.Module`` or has no recognisable spatial stage; the message
            says how to pass ``encoder=`` / ``head=`` explicitly.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}. {_HOW_TO}")
    from objaug.split_vit import ViTEncoderHead, split_vit  # a sibling module that builds on EncoderHead

    if isinstance(model, ViTEncoderHead):
        return model if projector is None else model.with_projector(projector)
    if isinstance(model, EncoderHead):
        return model if projector is None else EncoderHead(model.encoder, _append(model.head, projector))

    backbone = getattr(model, "backbone", None)
    if isinstance(backbone, nn.Module) and backbone is not model:
        if projector is None:
            for name in _PROJECTOR_NAMES:
                found = getattr(model, name, None)
                if isinstance(found, nn.Module):
                    projector = found
                    break
        return split_model(backbone, projector=projector)

    vit = split_vit(model, projector=projector)
    if vit is not None:
        return vit

    if all(isinstance(getattr(model, part, None), nn.Module) for part in _RESNET_PARTS):
        parts: dict[str, nn.Module] = {p: getattr(model, p) for p in _RESNET_PARTS}
        encoder = nn.Sequential(*(parts[p] for p in _RESNET_PARTS[:8]))
        head: nn.Module = nn.Sequential(parts["avgpool"], nn.Flatten(1), parts["fc"])
        layer4 = parts["layer4"]
        first_block = layer4[0] if isinstance(layer4, nn.Sequential) and len(layer4) > 0 else layer4
        last_stage = [m for m in first_block.modules() if isinstance(m, nn.Conv2d) and _is_strided(m)]
        return EncoderHead(encoder, _append(head, projector), last_stage=last_stage or None)

    if isinstance(model, nn.Sequential) and len(model) > 1:
        children = list(model)
        tail = [i for i, m in enumerate(children) if isinstance(m, _POOLS)]
        if tail and all(isinstance(m, (nn.Flatten, nn.Identity)) for m in children[tail[-1] + 1:]):
            cut = tail[-1]
            encoder = nn.Sequential(*children[:cut])
            head = nn.Sequential(*children[cut:], nn.Flatten(1))
            return EncoderHead(encoder, _append(head, projector))

    if callable(getattr(model, "forward_features", None)) and callable(getattr(model, "forward_head", None)):
        if getattr(model, "output_fmt", "NCHW") == "NHWC":  # Swin and other channels-last timm models
            return EncoderHead(nn.Sequential(_MethodCall(model, "forward_features"), _Permute(0, 3, 1, 2)),
                               _append(nn.Sequential(_Permute(0, 2, 3, 1), _MethodCall(model, "forward_head")),
                                       projector))
        return EncoderHead(_MethodCall(model, "forward_features"),
                           _append(_MethodCall(model, "forward_head"), projector))

    raise TypeError(
        f"Cannot find the spatial stage of a {type(model).__name__}: objaug splits torchvision ResNets, "
        f"nn.Sequential backbones ending in a pooling layer, timm models and objects with a `backbone` "
        f"attribute automatically. {_HOW_TO}"
    )


def _append(head: nn.Module, projector: nn.Module | None) -> nn.Module:
    if projector is None:
        return head
    return nn.Sequential(head, projector)


def _is_strided(conv: nn.Conv2d) -> bool:
    return any(s > 1 for s in conv.stride)


def _find_last_stage(encoder: nn.Module, example: Tensor) -> list[nn.Conv2d]:
    convs = [m for m in encoder.modules() if isinstance(m, nn.Conv2d) and _is_strided(m)]
    if not convs:
        return []
    sizes: dict[int, int] = {}

    def record(module: nn.Module, args: tuple[Tensor, ...]) -> None:
        sizes[id(module)] = int(args[0].shape[-2]) * int(args[0].shape[-1])

    handles = [c.register_forward_pre_hook(record) for c in convs]
    try:
        with preserve_model_state(encoder), torch.no_grad():
            encoder(example)
    finally:
        for h in handles:
            h.remove()
    seen = [c for c in convs if id(c) in sizes]
    if not seen:
        return []
    smallest = min(sizes[id(c)] for c in seen)
    return [c for c in seen if sizes[id(c)] == smallest]


@contextmanager
def preserve_model_state(*modules: nn.Module, eval_mode: bool = True) -> Iterator[None]:
    """Put ``modules`` in eval mode for the block and restore each submodule's own mode afterwards.

    The train/eval flag of every submodule is recorded and restored exactly (mixed modes, such as a
    frozen BatchNorm inside a training model, survive), also when the block raises. Parameters'
    ``requires_grad`` flags are recorded and restored too.
    """
    subs: dict[int, nn.Module] = {}
    for m in modules:
        for s in m.modules():
            subs[id(s)] = s
    training = {k: s.training for k, s in subs.items()}
    params: dict[int, Tensor] = {}
    for s in subs.values():
        for p in s.parameters(recurse=False):
            params[id(p)] = p
    requires = {k: p.requires_grad for k, p in params.items()}
    try:
        if eval_mode:
            for s in subs.values():
                s.training = False
        yield
    finally:
        for k, s in subs.items():
            s.training = training[k]
        for k, param in params.items():
            if param.requires_grad != requires[k]:
                param.requires_grad_(requires[k])


@contextmanager
def expanded_resolution(convs: list[nn.Conv2d]) -> Iterator[None]:
    """Set stride 1 on ``convs`` for the block (doubling the last stage's resolution); restore after."""
    saved: list[tuple[nn.Conv2d, tuple[int, ...]]] = [(c, tuple(c.stride)) for c in convs]
    try:
        for c in convs:
            c.stride = (1, 1)
        yield
    finally:
        for c, stride in saved:
            c.stride = stride  # type: ignore[assignment]


def module_device(module: nn.Module) -> torch.device | None:
    """The device of the first parameter or buffer of ``module`` (``None`` if it has neither)."""
    for t in module.parameters():
        return t.device
    for buf in module.buffers():
        return buf.device
    return None

