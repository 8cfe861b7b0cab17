"""The encoder/head seam ContraCAM needs: :class:`EncoderHead`, a model cut into two parts.

* an **encoder** ``f``: images (B, C_in, H, W) -> spatial feature map (B, C, h, w) (e.g. ResNet
  ``layer4``), and
* a **head** ``g``: (B, C, h, w) -> embedding (B, D), un-normalised (global pool, flatten, projector).

:func:`objaug.split.split_model` finds the cut for the model families SSL libraries use (the Vision
Transformer cut, :class:`objaug.split_vit.ViTEncoderHead`, is a subclass); ``EncoderHead(encoder, head)``
takes an explicit cut for anything else.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from objaug.model_state import preserve_model_state

__all__ = ["HOW_TO_SPLIT", "EncoderHead", "strided_convs"]

#: how to pass a cut explicitly (the end of every "cannot split" message).
HOW_TO_SPLIT = (
    "Pass the cut explicitly: ContraCAM(encoder=..., head=...) or EncoderHead(encoder, head), where "
    "encoder maps images (B, C, H, W) to a spatial feature map (B, C', h, w) and head maps that map to "
    "an embedding (B, D) (global pooling, flatten, projector)."
)


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
                            f"{type(head).__name__}. {HOW_TO_SPLIT}")
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


def strided_convs(module: nn.Module) -> list[nn.Conv2d]:
    """The ``nn.Conv2d`` layers in ``module`` (itself included) with a stride above 1, in module order."""
    return [m for m in module.modules() if isinstance(m, nn.Conv2d) and any(s > 1 for s in m.stride)]


def _find_last_stage(encoder: nn.Module, example: Tensor) -> list[nn.Conv2d]:
    convs = strided_convs(encoder)
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
