"""Finding the encoder/head cut of a model automatically: :func:`split_model`.

Like timm's ``forward_features`` / ``forward_head`` split, :func:`split_model` cuts a model into an
:class:`~objaug.encoder_head.EncoderHead`: an encoder from images (B, C_in, H, W) to a spatial feature
map (B, C, h, w) and a head from that map to an un-normalised embedding (B, D). It recognises the model
families SSL libraries use (Vision Transformers through :mod:`objaug.split_vit`);
``EncoderHead(encoder, head)`` takes an explicit cut for anything else. The split never copies
weights: its modules are the model's own, so whatever runs through it runs the model.
"""

from __future__ import annotations

from torch import Tensor, nn

from objaug.encoder_head import HOW_TO_SPLIT, EncoderHead, strided_convs
from objaug.split_vit import ViTEncoderHead, split_vit

__all__ = ["split_model"]

_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d, nn.MaxPool2d)
_PROJECTOR_NAMES = ("projector", "projection_head", "proj_head", "projection")
_RESNET_PARTS = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc")


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
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}. {HOW_TO_SPLIT}")
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
        last_stage = strided_convs(first_block)
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
        f"attribute automatically. {HOW_TO_SPLIT}"
    )


def _append(head: nn.Module, projector: nn.Module | None) -> nn.Module:
    if projector is None:
        return head
    return nn.Sequential(head, projector)
