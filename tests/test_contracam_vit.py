"""ContraCAM on Vision Transformers: a float64 per-sample reference, analytic ViTs, models left as found."""

from __future__ import annotations

import pytest
import torch
from test_contracam import _iou, _reference_contracam, _scene  # the independent per-sample reference
from torch import nn

from objaug.contracam import ContraCAM

timm = pytest.importorskip("timm")


class _HookedViT:
    """Per-image encoder/head of a timm ViT written with hooks on the model's own forward (not objaug's cut).

    ``encoder(x)``: the patch tokens entering ``blocks[-1]`` as a (1, D, h, w) grid (prefix tokens kept
    aside); ``head(a)``: the model's whole forward on the same image with the last block's input replaced
    by ``[prefix, a]``.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.prefix = self.image = None

    def encoder(self, x):
        seen = {}
        hook = self.model.blocks[-1].register_forward_pre_hook(lambda m, a: seen.update(t=a[0]))
        try:
            self.model(x)
        finally:
            hook.remove()
        p = self.model.num_prefix_tokens
        tokens = seen["t"]
        self.prefix, self.image = tokens[:, :p], x
        side = round((tokens.shape[1] - p) ** 0.5)
        return tokens[:, p:].transpose(1, 2).reshape(tokens.shape[0], -1, side, side)

    def head(self, a):
        def swap(m, args):
            return (torch.cat([self.prefix, a.flatten(2).transpose(1, 2)], dim=1),)

        hook = self.model.blocks[-1].register_forward_pre_hook(swap)
        try:
            return self.model(self.image)
        finally:
            hook.remove()


@pytest.mark.parametrize("kwargs", [dict(), dict(global_pool="avg"), dict(reg_tokens=4)],
                         ids=["cls", "avg", "registers"])
@pytest.mark.parametrize("iters", [1, 2])
def test_vit_map_equals_per_sample_float64_reference(kwargs, iters):
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=96, depth=3,
                              **kwargs).double().eval()
    images = torch.randn(4, 3, 96, 96, dtype=torch.float64)
    maps = ContraCAM(model, iters=iters, refine="union", edges=False, temperature=0.5)(images)
    ref = _HookedViT(model)
    expected = _reference_contracam(ref.encoder, ref.head, images, iters=iters, temperature=0.5)
    assert maps.shape == (4, 1, 96, 96) and maps.dtype == torch.float32
    torch.testing.assert_close(maps.double(), expected, atol=1e-5, rtol=0)
    assert expected.flatten(1).std(dim=1).min() > 0.05  # non-trivial maps


# --------------------------------------------------------------------------------------------------
# An analytic ViT: 8 px patches, embedding channel k fires only on pure colour k (channel 3 is a
# constant 1), no position embedding, no norms, MLPs off. The last block's attention is uniform
# (sharpness 0: its class-token output is the mean of all tokens, so class-token pooling equals
# average pooling) or, with sharpness s > 0, the class token attends to coloured patches.
# --------------------------------------------------------------------------------------------------


def _colour_vit(*, pool: str, sharpness: float = 0.0) -> nn.Module:
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=64, patch_size=8,
                              embed_dim=4, depth=2, num_heads=1, global_pool=pool,
                              class_token=pool == "token").eval()
    model.patch_embed.norm = nn.ReLU()  # the patch embedding fires, or not
    model.norm, model.fc_norm = nn.Identity(), nn.Identity()
    with torch.no_grad():
        proj = model.patch_embed.proj
        proj.weight.zero_()
        proj.bias.zero_()
        for k in range(3):
            proj.weight[k] = -0.5 / 64
            proj.weight[k, k] = 1.0 / 64
        proj.bias[3] = 1.0
        model.pos_embed.zero_()
        if model.cls_token is not None:
            model.cls_token.copy_(torch.tensor([0.0, 0.0, 0.0, 1.0]))
        for block in model.blocks:
            qkv = block.attn.qkv
            qkv.weight.zero_()
            qkv.bias.zero_()
            qkv.weight[0, 3] = sharpness  # query: the constant channel
            qkv.weight[4, :3] = 1.0  # key: any colour
            qkv.weight[8:] = torch.eye(4)  # value: the token itself
            block.attn.proj.weight.copy_(torch.eye(4))
            block.attn.proj.bias.zero_()
            block.mlp.fc2.weight.zero_()
            block.mlp.fc2.bias.zero_()
    return model


def _colour_scenes():
    scenes = [_scene([(0, 8, 8, 24)]), _scene([(1, 32, 24, 24)]), _scene([(2, 16, 32, 24)])]
    return torch.stack([s[0] for s in scenes]), [s[1][0] for s in scenes]


@pytest.mark.parametrize("pool", ["token", "avg"])
def test_analytic_vit_lights_its_colour(pool):
    images, masks = _colour_scenes()
    maps = ContraCAM(_colour_vit(pool=pool), edges=False, interpolation="nearest")(images)
    for i, mask in enumerate(masks):
        assert _iou(maps[i, 0] >= 0.5, mask) > 0.9, f"image {i}"
        assert maps[i, 0][~mask].mean() < 0.1


def test_attention_source_lights_the_attended_patches():
    images, masks = _colour_scenes()
    cam = ContraCAM(_colour_vit(pool="token", sharpness=8.0), source="attention", edges=False,
                    interpolation="nearest")
    maps = cam(images)
    for i, mask in enumerate(masks):
        assert _iou(maps[i, 0] >= 0.5, mask) > 0.9, f"image {i}"
    single = cam(images[:1])  # no negatives needed
    torch.testing.assert_close(single, maps[:1])


def test_attention_source_needs_a_vit_with_a_class_token():
    with pytest.raises(TypeError, match="source='attention' needs a Vision Transformer"):
        ContraCAM(encoder=nn.Conv2d(3, 4, 3), head=nn.Flatten(1), source="attention")
    with pytest.raises(ValueError, match="need a class token"):
        ContraCAM(_colour_vit(pool="avg"), source="attention")(torch.rand(2, 3, 64, 64))
    with pytest.raises(ValueError, match="source must be"):
        ContraCAM(_colour_vit(pool="avg"), source="dino")  # type: ignore[arg-type]


def _state(model):
    return ({n: m.training for n, m in model.named_modules()},
            {n: p.requires_grad for n, p in model.named_parameters()},
            {n: (len(m._forward_hooks), len(m._forward_pre_hooks)) for n, m in model.named_modules()},
            {n: m.fused_attn for n, m in model.named_modules() if hasattr(m, "fused_attn")})


@pytest.mark.parametrize("source", ["gradcam", "attention"])
def test_vit_left_as_found_also_on_errors(source):
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=64, depth=2,
                              reg_tokens=1).train()
    model.blocks[0].eval()
    model.patch_embed.proj.weight.requires_grad_(False)
    model.blocks[-1].attn.fused_attn = True
    user_hook = model.blocks[-1].attn.attn_drop.register_forward_hook(lambda m, a, o: None)
    before = _state(model)
    cam = ContraCAM(model, source=source)
    cam(torch.randn(3, 3, 64, 64))
    assert _state(model) == before
    with pytest.raises(ValueError, match="takes 64x64 images"):  # objaug refuses a wrong size before timm does
        cam(torch.randn(3, 3, 48, 48))
    assert _state(model) == before

    def fail(m, a, o):
        raise RuntimeError("inside the attention")

    user_hook.remove()
    failing = model.blocks[-1].attn.attn_drop.register_forward_hook(fail)  # fires on the unfused path only
    before = _state(model)
    if source == "attention":
        with pytest.raises(RuntimeError, match="inside the attention"):
            cam(torch.randn(3, 3, 64, 64))
    else:
        cam(torch.randn(3, 3, 64, 64))  # Grad-CAM keeps the model's fused attention
    assert _state(model) == before
    failing.remove()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_vit_cuda_matches_cpu():
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=96, depth=3).eval()
    images = torch.randn(4, 3, 96, 96)
    for source in ("gradcam", "attention"):
        cpu = ContraCAM(model, source=source)(images)
        gpu = ContraCAM(model.cuda(), source=source)(images.cuda())
        model.cpu()
        torch.testing.assert_close(gpu.cpu(), cpu, atol=2e-3, rtol=0)


def test_swin_and_bf16_autocast():
    torch.manual_seed(0)
    swin = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, num_classes=0, img_size=112,
                             depths=(1, 1, 1, 1), embed_dim=24, num_heads=(1, 1, 1, 1)).eval()
    images = torch.randn(3, 3, 112, 112)
    maps = ContraCAM(swin, iters=2)(images)  # the last stage's 4x4 map
    assert maps.shape == (3, 1, 112, 112) and torch.isfinite(maps).all()
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=96, depth=3).eval()
    x = torch.randn(4, 3, 96, 96)
    for source in ("gradcam", "attention"):
        cam = ContraCAM(vit, source=source, edges=False)
        full = cam(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = cam(x)
        assert half.dtype == torch.float32
        assert (half - full).abs().mean() < 0.05, source
