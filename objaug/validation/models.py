"""Checks of the objects handed to objaug beside tensors: a model and the images it must take, the views.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

__all__ = ["check_image_size", "check_map_size", "check_model_input", "check_views", "is_vision_transformer",
           "map_size_fix"]


def check_model_input(images: Tensor, model: nn.Module, name: str = "images") -> None:
    """Refuse images that a model cannot take, by metadata only (no device synchronisation).

    Checks the dtype against the model's first floating parameter (unless autocast is on for the
    images' device, which casts both), the channel count against its first ``nn.Conv2d`` and, for a
    Vision Transformer, the size against the sizes it takes (:func:`check_image_size`).

    Raises:
        TypeError: a dtype mismatch (float64 model with float32 images, fp16 images on an fp32 model
            outside autocast, ...).
        ValueError: a channel count the first convolution does not take (grey or RGBA images), or a size
            a Vision Transformer does not take.
    """
    param = next((p for p in model.parameters() if p.is_floating_point()), None)
    if (param is not None and images.dtype != param.dtype
            and not torch.is_autocast_enabled(images.device.type)):
        raise TypeError(
            f"{name} are {images.dtype} but the model's weights are {param.dtype}: convert one to the other "
            f"({name}.to({param.dtype}) or model.to({images.dtype})), or run under "
            f"torch.autocast({images.device.type!r}) for mixed precision."
        )
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is not None and images.shape[1] != conv.in_channels:
        raise ValueError(
            f"{name} have {images.shape[1]} channels but the model's first convolution takes {conv.in_channels}: "
            f"convert grey images with {name}.expand(-1, 3, -1, -1) and RGBA ones with {name}[:, :3] "
            f"(or PIL's .convert('RGB') when loading)."
        )
    check_image_size(images, model, name)


def check_views(views: object, name: str = "views") -> object:
    """Refuse a view-preset *function* passed uncalled (``views=simclr_views``); returns ``views``.

    Raises:
        TypeError: ``views`` is callable and not a sequence.
    """
    if callable(views) and not isinstance(views, Sequence) and not isinstance(views, nn.Module):
        fn = getattr(views, "__name__", type(views).__name__)
        raise TypeError(f"{name} must be a list of ViewConfig, got the function {fn}: call it, e.g. "
                        f"{name}={fn}(224) (the argument is the view size).")
    return views


class _PatchRule(NamedTuple):
    """The image sizes a Vision Transformer takes."""

    fixed: tuple[int, int] | None  # the one (H, W) it takes, or None: any multiple of the patch
    patch: tuple[int, int]
    pads: bool  # pads any size up to a multiple of the patch (timm's dynamic_img_pad)
    family: str  # "timm" or "torchvision": how to build it for other sizes


def _patch_rule(model: nn.Module) -> _PatchRule | None:
    """What image sizes a Vision Transformer inside ``model`` takes; ``None`` for other models (CNNs).

    Duck-typed (timm and torchvision are not imported): the first timm ``PatchEmbed`` (``img_size``,
    ``patch_size``, ``strict_img_size``) or torchvision ``VisionTransformer`` (``image_size``, ``patch_size``,
    ``conv_proj``) among ``model.modules()``.
    """
    for module in model.modules():
        found: Any = module  # a duck-typed patch embedding: its attributes are read, not typed
        if hasattr(found, "strict_img_size") and hasattr(found, "patch_size") and hasattr(found, "img_size"):
            if found.img_size is None:  # timm checks nothing then
                return None
            ph, pw = (int(p) for p in found.patch_size)
            fh, fw = (int(s) for s in found.img_size)
            return _PatchRule((fh, fw) if found.strict_img_size else None, (ph, pw),
                              bool(getattr(found, "dynamic_img_pad", False)), "timm")
        if hasattr(found, "conv_proj") and hasattr(found, "image_size") and hasattr(found, "patch_size"):
            side, p = int(found.image_size), int(found.patch_size)
            return _PatchRule((side, side), (p, p), False, "torchvision")
    return None


def check_image_size(images: Tensor, model: nn.Module, name: str = "images") -> None:
    """Refuse images a Vision Transformer cannot take, before its own assertion (metadata only).

    A ViT built for a fixed size (timm's default, torchvision) takes only that size; a timm ViT built with
    ``dynamic_img_size=True`` takes any multiple of its patch size (any size with ``dynamic_img_pad=True``).
    Models without a patch embedding (CNNs) take any size: nothing is checked.

    Raises:
        ValueError: the images' size is not one the model takes; the message says which size it takes and
            how to get there.
    """
    rule = _patch_rule(model)
    if rule is None:
        return
    (ph, pw), h, w = rule.patch, int(images.shape[-2]), int(images.shape[-1])
    if rule.fixed is not None and (h, w) != rule.fixed:
        rebuild = ("build the timm model with dynamic_img_size=True (any multiple of its patch)"
                   if rule.family == "timm" else f"build the VisionTransformer with image_size={h} (a multiple of "
                   "its patch)")
        raise ValueError(
            f"{name} are {h}x{w} but the Vision Transformer takes {rule.fixed[0]}x{rule.fixed[1]} images ("
            f"{ph}x{pw} patches). Resize them to {rule.fixed[0]}x{rule.fixed[1]} (F.interpolate({name}, "
            f"size={rule.fixed}) or the transforms' size), or {rebuild}.")
    if rule.fixed is None and not rule.pads and (h % ph or w % pw):
        near = (max(ph, round(h / ph) * ph), max(pw, round(w / pw) * pw))
        raise ValueError(
            f"{name} are {h}x{w}, not a multiple of the Vision Transformer's {ph}x{pw} patch. Resize them to a "
            f"multiple, e.g. {near[0]}x{near[1]} (F.interpolate({name}, size={near})), or build the timm model "
            "with dynamic_img_pad=True (pads each side up to a multiple).")


def is_vision_transformer(model: nn.Module) -> bool:
    """Whether ``model`` holds a patch embedding (a Vision Transformer: its map is the patch grid)."""
    return _patch_rule(model) is not None or any(hasattr(m, "patch_embed") for m in model.modules())


def map_size_fix(model: nn.Module, *, expand_res: bool = False) -> str:
    """How to get a finer map than the encoder gives now: only advice that applies to this model.

    A CNN's map shrinks with its strides (``expand_res=True`` halves the last one, suggested unless it is
    on already); a Vision Transformer's map is its patch grid, image size / patch size, and ``expand_res``
    does not apply.

    Args:
        model: the model (or its encoder/head split).
        expand_res: whether the map was computed with ``expand_res=True`` already.
    """
    if is_vision_transformer(model):
        rule = _patch_rule(model)
        patch = f"{rule.patch[0]} px" if rule is not None else "the patch size"
        return ("A Vision Transformer's map is its patch grid (image side / patch side): use images of at least "
                f"3 patches a side (patch {patch}) with a model built for them (timm: img_size= that size, or "
                "dynamic_img_size=True), or a ViT with a smaller patch. (expand_res does not apply to ViTs.)")
    stride = "" if expand_res else " expand_res=True (stride 1 in the last stage),"
    return (f"Use larger images,{stride} or an encoder with a smaller-stride stem (e.g. a CIFAR ResNet: 3x3 "
            "conv1 with stride 1, no max pooling).")


def check_map_size(feats: Tensor, model: nn.Module, *, expand_res: bool = False) -> str | None:
    """Refuse an encoder map with nothing to localise; the warning text of one that is very coarse.

    Args:
        feats: ``(B, C, h, w)`` the encoder's map (only its shape is read).
        model: the model (or its encoder/head split) that gave it, for the fix (:func:`map_size_fix`).
        expand_res: whether ``expand_res=True`` is on already (then it is not suggested).

    Returns:
        ``None`` for a map of at least 3x3; the text of a warning for a smaller one.

    Raises:
        ValueError: a 1x1 map (a pooled encoder, or images too small for the encoder's stride or patch).
    """
    h, w = int(feats.shape[-2]), int(feats.shape[-1])
    fix = map_size_fix(model, expand_res=expand_res)
    if h * w == 1:
        pooled = ("" if is_vision_transformer(model) else " Pass an encoder that stops before the global "
                  "pooling (ContraCAM(encoder=..., head=...)).")
        raise ValueError(f"The encoder returned a {h}x{w} map: there is nothing to localise (a pooled encoder, "
                         f"or images too small for its stride or patch).{pooled} {fix}")
    if min(h, w) < 3:
        return f"ContraCAM: the encoder's last map is only {h}x{w}; maps and boxes this coarse are mostly noise. {fix}"
    return None
