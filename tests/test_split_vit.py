"""The ViT cut: each recognised family equals the model's own forward; prefix tokens; Swin; errors."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from objaug.contracam import ContraCAM
from objaug.split import split_model
from objaug.split_vit import ViTEncoderHead

timm = pytest.importorskip("timm")


def _timm_vit(**kwargs):
    torch.manual_seed(0)
    args = dict(pretrained=False, num_classes=0, img_size=96, depth=3) | kwargs
    return timm.create_model("vit_tiny_patch16_224", **args).eval()


def _tv_vit():
    torch.manual_seed(0)
    return torchvision.models.VisionTransformer(image_size=64, patch_size=16, num_layers=2, num_heads=2,
                                                hidden_dim=32, mlp_dim=64).eval()


def _method(backbone: nn.Module, **heads: nn.Module) -> nn.Module:
    """A contrastive method as SSL libraries hold one: ``backbone`` plus a named projection head."""
    method = nn.Module()
    method.backbone = backbone
    for name, head in heads.items():
        setattr(method, name, head)
    return method.eval()


@pytest.mark.parametrize("kwargs, prefix", [
    (dict(), 1),
    (dict(global_pool="avg"), 1),
    (dict(reg_tokens=4), 5),
    (dict(class_token=False, global_pool="avg"), 0),
    (dict(no_embed_class=True, reg_tokens=2), 3),
])
def test_timm_vit_equals_model_and_cuts_before_last_block(kwargs, prefix):
    model = _timm_vit(**kwargs)
    split = split_model(model)
    assert isinstance(split, ViTEncoderHead) and split.num_prefix_tokens == prefix
    x = torch.randn(3, 3, 96, 96)
    seen = {}
    hook = model.blocks[-1].register_forward_pre_hook(lambda m, a: seen.update(tokens=a[0]))
    try:
        out = model(x)
    finally:
        hook.remove()
    grid = split.encoder(x)
    assert grid.shape == (3, 192, 6, 6)
    patches = seen["tokens"][:, prefix:]  # the tokens entering the last block, prefix tokens dropped
    torch.testing.assert_close(grid.flatten(2).transpose(1, 2), patches)
    torch.testing.assert_close(split.head(grid), out)
    assert split.encoder.model is model  # shared, not copied


def test_timm_dynamic_img_size_non_square():
    model = _timm_vit(dynamic_img_size=True, reg_tokens=1)
    split = split_model(model)
    x = torch.randn(2, 3, 128, 80)
    assert split.encoder(x).shape == (2, 192, 8, 5)
    torch.testing.assert_close(split(x), model(x))


def test_torchvision_vit_and_projector():
    model = _tv_vit()
    proj = nn.Linear(1000, 8)
    split = split_model(model, projector=proj)
    x = torch.randn(2, 3, 64, 64)
    assert split.encoder(x).shape == (2, 32, 4, 4)
    torch.testing.assert_close(split(x), proj(model(x)))
    more = nn.Linear(8, 4)
    torch.testing.assert_close(split_model(split, projector=more)(x), more(proj(model(x))))


def test_lightly_masked_vit_wrappers():
    modules = pytest.importorskip("lightly.models.modules")
    timm_wrapper = modules.MaskedVisionTransformerTIMM(vit=_timm_vit(global_pool="avg", reg_tokens=2)).eval()
    tv_wrapper = modules.MaskedVisionTransformerTorchvision(vit=_tv_vit()).eval()
    for wrapper, size, grid in [(timm_wrapper, 96, (6, 6)), (tv_wrapper, 64, (4, 4))]:
        x = torch.randn(2, 3, size, size)
        split = split_model(wrapper)
        assert split.encoder(x).shape[-2:] == grid
        torch.testing.assert_close(split(x), wrapper(x))

    method = _method(timm_wrapper, projection_head=nn.Linear(192, 16))  # lightly's examples' attribute names
    x = torch.randn(2, 3, 96, 96)
    torch.testing.assert_close(split_model(method)(x), method.projection_head(timm_wrapper(x)))


def test_solo_learn_style_vit_subclass():
    vision_transformer = pytest.importorskip("timm.models.vision_transformer")

    class VisionTransformerMoCo(vision_transformer.VisionTransformer):  # solo-learn's vit_mocov3 shape
        pass

    torch.manual_seed(0)
    backbone = VisionTransformerMoCo(img_size=64, patch_size=16, embed_dim=32, depth=2, num_heads=2,
                                     num_classes=0).eval()

    method = _method(backbone, projector=nn.Linear(32, 8))  # solo-learn's attribute contract
    x = torch.randn(2, 3, 64, 64)
    split = split_model(method)
    assert isinstance(split, ViTEncoderHead)
    torch.testing.assert_close(split(x), method.projector(backbone(x)))


def test_swin_last_stage_map():
    torch.manual_seed(0)
    model = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, num_classes=0, img_size=112,
                              depths=(1, 1, 1, 1), embed_dim=24, num_heads=(1, 1, 1, 1)).eval()
    split = split_model(model)
    x = torch.randn(2, 3, 112, 112)
    feats = split.encoder(x)
    nhwc = model.forward_features(x)
    assert feats.shape == (2, 192, 4, 4) and nhwc.shape == (2, 4, 4, 192)
    torch.testing.assert_close(feats, nhwc.permute(0, 3, 1, 2))
    torch.testing.assert_close(split.head(feats), model(x))


def test_head_needs_the_encoders_batch():
    split = split_model(_timm_vit())
    grid = split.encoder(torch.randn(3, 3, 96, 96))
    split.head(grid * 0.5)  # a map derived from the encoder's output: same batch, fine
    with pytest.raises(ValueError, match="encoder's latest call, which saw a batch of 3"):
        split.head(grid[:2])
    with pytest.raises(ValueError, match="which saw no batch"):
        split_model(_timm_vit()).head(grid)


def test_wrong_image_size_and_expand_res_errors():
    split = split_model(_timm_vit(dynamic_img_size=True))
    with pytest.raises(ValueError, match="expand_res=True has no meaning"):
        split.last_stage_convs(torch.randn(1, 3, 96, 96))
    with pytest.raises(ValueError, match="expand_res=True has no meaning"):
        ContraCAM(split, expand_res=True)  # at construction, before any work
    with pytest.raises(TypeError, match="no transformer blocks"):
        split_model(_timm_vit(depth=0))


def _attention_reference(tokens, weight, bias, heads, prefix):
    """Class-token attention over the patches, averaged over heads, from the q/k projection weights."""
    b, n, d = tokens.shape
    qkv = (tokens @ weight.T + bias).reshape(b, n, 3, heads, d // heads)
    q, k = qkv[:, :, 0].transpose(1, 2), qkv[:, :, 1].transpose(1, 2)  # (B, heads, N, d_h)
    attn = torch.softmax(q @ k.transpose(-2, -1) / (d // heads) ** 0.5, dim=-1)
    return attn[:, :, 0, prefix:].mean(dim=1)


@pytest.mark.parametrize("family", ["timm", "torchvision"])
def test_attention_maps_equal_the_class_token_attention(family):
    model = _timm_vit(reg_tokens=2) if family == "timm" else _tv_vit()
    size, prefix = (96, 3) if family == "timm" else (64, 1)
    x = torch.randn(2, 3, size, size)
    seen = {}
    last = model.blocks[-1] if family == "timm" else model.encoder.layers[-1]
    hook = last.register_forward_pre_hook(lambda m, a: seen.update(tokens=a[0]))
    try:
        model(x)
    finally:
        hook.remove()
    split = split_model(model)
    maps = split.attention_maps(split.encoder(x))
    if family == "timm":
        normed = last.norm1(seen["tokens"])
        expected = _attention_reference(normed, last.attn.qkv.weight, last.attn.qkv.bias, 3, prefix)
    else:
        normed = last.ln_1(seen["tokens"])
        mha = last.self_attention
        expected = _attention_reference(normed, mha.in_proj_weight, mha.in_proj_bias, mha.num_heads, prefix)
    grid = maps.shape[-1]
    assert maps.shape == (2, 1, grid, grid)
    torch.testing.assert_close(maps.flatten(1), expected, atol=1e-5, rtol=1e-4)
    if family == "timm":
        assert last.attn.fused_attn == timm.layers.use_fused_attn()  # restored
