"""The encoder/head cut of Vision Transformers: the tokens entering the last block, as a patch grid.

For a ViT, ContraCAM's map is the token sequence **entering the last transformer block** (the layer
pytorch-grad-cam recommends, ``blocks[-1].norm1``'s input side):

* the **encoder** runs the patch embedding, the position embedding and every block but the last
  (without autograd, inside ContraCAM) and returns the patch tokens as a grid (B, D, h, w);
* the **head** flattens the grid back to tokens, puts the prefix tokens (class, register,
  distillation) in front again, and runs the last block, the final norm, the pooling the model itself
  uses (class token or average) and the projector: one backward through it is all ContraCAM needs.

Prefix tokens are dropped from the map (it is a spatial grid) but stay in the head's computation: the
encoder keeps those of its latest call, and the head uses them for a grid of the same batch size (the
encoder's output, or a map derived from it such as a masked or rescaled copy). A head called on a
batch the encoder did not see last raises a ``ValueError`` that says so.

Recognised (by duck typing; timm, torchvision and lightly are not imported here): timm
``VisionTransformer`` and its subclasses (solo-learn's ``vit_tiny`` ... ``vit_large``, DeiT,
register-token models, ``dynamic_img_size``), torchvision ``VisionTransformer``, and lightly's
``MaskedVisionTransformerTIMM`` / ``MaskedVisionTransformerTorchvision``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from objaug.encoder_head import EncoderHead

__all__ = ["ViTEncoderHead", "split_vit"]


@dataclass(frozen=True)
class _Layout:
    """How one ViT family runs: embedding, blocks, finishing (norm + pool + head), prefix count, grid."""

    embed: Callable[[Tensor], Tensor]  # images -> tokens entering the first block (B, P + N, D)
    blocks: list[nn.Module]
    finish: Callable[[Tensor], Tensor]  # tokens leaving the last block -> pooled embedding (B, D')
    num_prefix: int
    grid: Callable[[int, int], tuple[int, int]]  # image (H, W) -> patch grid (h, w)
    attention: str  # how the last block's attention weights are read: "timm" or "torchvision"


class _PrefixStash:
    """The prefix tokens (B, P, D) of the encoder's latest call, read by the head."""

    def __init__(self) -> None:
        self.tokens: Tensor | None = None


class _ViTPart(nn.Module):
    """One side of the cut: the model (a submodule, shared), its layout and the shared prefix stash."""

    def __init__(self, model: nn.Module, layout: _Layout, stash: _PrefixStash) -> None:
        super().__init__()
        self.model = model
        self.layout = layout
        self.stash = stash


class _ViTEncoder(_ViTPart):
    """Images (B, C, H, W) -> patch tokens entering the last block as a grid (B, D, h, w)."""

    def forward(self, images: Tensor) -> Tensor:
        lay = self.layout
        tokens = lay.embed(images)
        for block in lay.blocks[:-1]:
            tokens = block(tokens)
        h, w = lay.grid(int(images.shape[-2]), int(images.shape[-1]))
        b, n, d = tokens.shape
        if n - lay.num_prefix != h * w:
            raise ValueError(f"The ViT produced {n - lay.num_prefix} patch tokens for {tuple(images.shape[-2:])} "
                             f"images, expected a {h}x{w} grid. Pass images of the model's size (or build the "
                             "timm model with dynamic_img_size=True), or split it explicitly with "
                             "ContraCAM(encoder=..., head=...).")
        self.stash.tokens = tokens[:, :lay.num_prefix] if lay.num_prefix else None
        return tokens[:, lay.num_prefix:].transpose(1, 2).reshape(b, d, h, w)


class _ViTHead(_ViTPart):
    """Grid (B, D, h, w) -> embedding (B, D'): prefix tokens back in front, last block, norm, pooling."""

    def tokens(self, grid: Tensor) -> Tensor:
        """The token sequence (B, P + h*w, D) entering the last block for ``grid``."""
        if grid.ndim != 4:
            raise ValueError(f"The ViT head takes a patch grid (B, D, h, w), got shape {tuple(grid.shape)}.")
        tokens = grid.flatten(2).transpose(1, 2)
        if not self.layout.num_prefix:
            return tokens
        prefix = self.stash.tokens
        if prefix is None or prefix.shape[0] != grid.shape[0]:
            seen = "no batch" if prefix is None else f"a batch of {prefix.shape[0]}"
            raise ValueError(
                f"The ViT head rebuilds the token sequence with the prefix (class/register) tokens of the "
                f"encoder's latest call, which saw {seen}, but got a grid of batch {grid.shape[0]}. Call the "
                "encoder on this batch first (split.encoder(images), then split.head(grid)).")
        return torch.cat([prefix.to(device=tokens.device, dtype=tokens.dtype), tokens], dim=1)

    def forward(self, grid: Tensor) -> Tensor:
        return self.layout.finish(self.layout.blocks[-1](self.tokens(grid)))


class ViTEncoderHead(EncoderHead):
    """A Vision Transformer cut at the tokens entering its last block (see the module docstring).

    Made by :func:`objaug.split_model` for recognised ViTs. Adds :meth:`attention_maps`, the last
    block's class-token self-attention (the map source ``ContraCAM(source="attention")``).

    Args:
        model: the ViT (shared, not copied).
        layout: how the model's family runs (internal).
        projector: optional module appended to the head (pooled features (B, D) -> (B, D')).
    """

    _model: nn.Module
    _vit_head: _ViTHead

    def __init__(self, model: nn.Module, layout: _Layout, *, projector: nn.Module | None = None) -> None:
        stash = _PrefixStash()
        vit_head = _ViTHead(model, layout, stash)
        head: nn.Module = vit_head if projector is None else nn.Sequential(vit_head, projector)
        super().__init__(_ViTEncoder(model, layout, stash), head, last_stage=[])
        self._layout = layout
        self._projector = projector
        # plain attributes (not submodules: both are already reachable through encoder and head)
        self.__dict__["_model"] = model
        self.__dict__["_vit_head"] = vit_head

    @property
    def num_prefix_tokens(self) -> int:
        """Class, register and distillation tokens in front of the patch tokens."""
        return self._layout.num_prefix

    def with_projector(self, projector: nn.Module) -> ViTEncoderHead:
        """The same cut with ``projector`` appended to the head."""
        both = projector if self._projector is None else nn.Sequential(self._projector, projector)
        return ViTEncoderHead(self._model, self._layout, projector=both)

    def last_stage_convs(self, example: Tensor) -> list[nn.Conv2d]:
        """A ViT has no strided last stage: ``expand_res`` does not apply (raises ``ValueError``)."""
        raise ValueError("expand_res=True has no meaning for a Vision Transformer (its grid is fixed by the patch "
                         "size, not by a strided last stage). Use larger images with a dynamic_img_size=True model "
                         "for finer maps, and expand_res=False.")

    def attention_maps(self, grid: Tensor) -> Tensor:
        """The last block's class-token self-attention over the patches, averaged over heads.

        No backward is needed (DINO's localisation map). Run the encoder on the batch first.

        Args:
            grid: (B, D, h, w) patch grid from ``self.encoder`` (the same batch as its latest call).

        Returns:
            (B, 1, h, w) attention weights (non-negative; each image's weights over patches and prefix
            tokens sum to 1), in the grid's dtype (float32 at least), on its device.

        Raises:
            ValueError: the model has no class token (average-pooled ViTs without prefix tokens).
        """
        lay = self._layout
        if not lay.num_prefix:
            raise ValueError("attention maps need a class token, but this ViT has no prefix tokens. Use "
                             "ContraCAM(source='gradcam') (the default) for this model.")
        block = lay.blocks[-1]
        with _captured_attention(block, lay.attention) as captured, torch.no_grad():
            block(self._vit_head.tokens(grid))
        if not captured:
            raise RuntimeError("The last block's attention weights were not seen; split it explicitly.")
        attn = captured[0]  # (B, heads, L, L)
        b, _, h, w = grid.shape
        cls_row = attn[:, :, 0, lay.num_prefix:].mean(dim=1)
        return cls_row.to(torch.promote_types(cls_row.dtype, torch.float32)).reshape(b, 1, h, w)


@contextmanager
def _captured_attention(block: nn.Module, kind: str) -> Iterator[list[Tensor]]:
    """Record the attention weights (B, heads, L, L) of ``block`` for the block; restore it after.

    timm: the unfused path is switched on (``attn.fused_attn = False``) and the output of
    ``attn.attn_drop`` (the softmax weights) is recorded; torchvision: ``self_attention`` is asked for
    per-head weights. The attention implementation flag and the hooks are restored, also on errors.
    """
    captured: list[Tensor] = []
    handles = []
    saved_fused: bool | None = None
    attn = getattr(block, "attn", None)
    try:
        if kind == "timm":
            if attn is None or not hasattr(attn, "attn_drop") or not hasattr(attn, "fused_attn"):
                raise ValueError(f"The last block ({type(block).__name__}) has no timm Attention (attn with "
                                 "fused_attn and attn_drop); attention maps are not available for it.")
            saved_fused = bool(attn.fused_attn)
            attn.fused_attn = False
            handles.append(attn.attn_drop.register_forward_hook(lambda m, a, out: captured.append(out)))
        else:
            mha: Any = block.self_attention

            def ask_weights(m: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
                return args, {**kwargs, "need_weights": True, "average_attn_weights": False}

            handles.append(mha.register_forward_pre_hook(ask_weights, with_kwargs=True))
            handles.append(mha.register_forward_hook(lambda m, a, out: captured.append(out[1])))
        yield captured
    finally:
        for handle in handles:
            handle.remove()
        if saved_fused is not None and attn is not None:
            attn.fused_attn = saved_fused


# --------------------------------------------------------------------------------------------------
# Recognising the families
# --------------------------------------------------------------------------------------------------


def _is_class(model: object, module: str, name: str) -> bool:
    return any(c.__name__ == name and c.__module__.startswith(module) for c in type(model).__mro__)


def _timm_layout(vit: Any, *, embed: Callable[[Tensor], Tensor] | None = None,
                 finish: Callable[[Tensor], Tensor] | None = None) -> _Layout:
    def timm_embed(images: Tensor) -> Tensor:
        return vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(images))))

    def timm_finish(tokens: Tensor) -> Tensor:
        return vit.forward_head(vit.norm(tokens))

    def grid(h: int, w: int) -> tuple[int, int]:
        return tuple(vit.patch_embed.dynamic_feat_size((h, w)))  # type: ignore[return-value]

    return _Layout(embed or timm_embed, list(vit.blocks), finish or timm_finish, int(vit.num_prefix_tokens),
                   grid, "timm")


def _torchvision_layout(vit: Any, *, embed: Callable[[Tensor], Tensor] | None = None) -> _Layout:
    enc = vit.encoder

    def tv_embed(images: Tensor) -> Tensor:
        x = vit._process_input(images)
        x = torch.cat([vit.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        return enc.dropout(x + enc.pos_embedding)

    def tv_finish(tokens: Tensor) -> Tensor:
        return vit.heads(enc.ln(tokens)[:, 0])

    def grid(h: int, w: int) -> tuple[int, int]:
        return h // vit.patch_size, w // vit.patch_size

    return _Layout(embed or tv_embed, list(enc.layers), tv_finish, 1, grid, "torchvision")


def _lightly_timm_layout(wrapper: Any) -> _Layout:
    vit = wrapper.vit

    def finish(tokens: Tensor) -> Tensor:  # MaskedVisionTransformerTIMM.forward's pooling
        x = vit.norm(tokens)
        attn_pool = getattr(vit, "attn_pool", None)
        if attn_pool is not None:
            return attn_pool(x)
        pool = getattr(vit, "global_pool", "")
        if pool == "avg":
            return x[:, vit.num_prefix_tokens:].mean(dim=1)
        return x[:, 0] if pool else x

    return _timm_layout(vit, embed=lambda images: vit.norm_pre(wrapper.preprocess(images)), finish=finish)


def _lightly_torchvision_layout(wrapper: Any) -> _Layout:
    vit = wrapper.vit
    layout = _torchvision_layout(vit, embed=lambda images: vit.encoder.dropout(wrapper.preprocess(images)))
    # MaskedVisionTransformerTorchvision.forward returns the class token after the final norm, no heads
    return _Layout(layout.embed, layout.blocks, lambda t: vit.encoder.ln(t)[:, 0], 1, layout.grid, "torchvision")


def vit_layout(model: nn.Module) -> _Layout | None:
    """The layout of a recognised ViT family, or ``None`` if ``model`` is not one."""
    if _is_class(model, "lightly.", "MaskedVisionTransformerTIMM"):
        return _lightly_timm_layout(model)
    if _is_class(model, "lightly.", "MaskedVisionTransformerTorchvision"):
        return _lightly_torchvision_layout(model)
    if _is_class(model, "timm.", "VisionTransformer") and callable(getattr(model, "_pos_embed", None)):
        return _timm_layout(model)
    if _is_class(model, "torchvision.", "VisionTransformer"):
        return _torchvision_layout(model)
    return None


def split_vit(model: nn.Module, *, projector: nn.Module | None = None) -> ViTEncoderHead | None:
    """Cut a recognised ViT at the tokens entering its last block; ``None`` if it is not one.

    Args:
        model: a timm / torchvision ``VisionTransformer`` or a lightly masked-ViT wrapper.
        projector: optional module appended to the head.

    Returns:
        A :class:`ViTEncoderHead`, or ``None`` when ``model`` is not a recognised ViT.

    Raises:
        TypeError: a recognised ViT without transformer blocks.
    """
    layout = vit_layout(model)
    if layout is None:
        return None
    if not layout.blocks:
        raise TypeError(f"The {type(model).__name__} has no transformer blocks to cut before. Split it explicitly: "
                        "ContraCAM(encoder=..., head=...).")
    return ViTEncoderHead(model, layout, projector=projector)
