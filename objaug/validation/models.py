"""Checks of the objects handed to objaug beside tensors: a model and the images it must take, the views.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["check_model_input", "check_views"]


def check_model_input(images: Tensor, model: nn.Module, name: str = "images") -> None:
    """Refuse images that a model cannot take, by metadata only (no device synchronisation).

    Checks the dtype against the model's first floating parameter (unless autocast is on for the
    images' device, which casts both) and the channel count against its first ``nn.Conv2d``.

    Raises:
        TypeError: a dtype mismatch (float64 model with float32 images, fp16 images on an fp32 model
            outside autocast, ...).
        ValueError: a channel count the first convolution does not take (grey or RGBA images).
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
