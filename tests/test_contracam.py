"""ContraCAM against an independent per-sample float64 reference, analytic toy models, and bad input."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from objaug.contracam import ContraCAM
from objaug.encoder_head import EncoderHead

# --------------------------------------------------------------------------------------------------
# A slow, per-sample reference written from method.md §1, independently of objaug.functional.cam.
# --------------------------------------------------------------------------------------------------


def _reference_contracam(encoder, head, images, *, iters, temperature=1.0, bank=None):
    """One image at a time, explicit sums, float64. Returns (B, 1, H, W)."""
    b, c, h, w = images.shape
    mu = images.mean(dim=(0, 2, 3), keepdim=True)

    def embed(x):
        with torch.no_grad():
            a = encoder(x[None])[0]
        a = a.clone().requires_grad_(True)
        z = head(a[None])[0]
        return a, z / z.norm()

    union = [None] * b
    keys = [None] * b
    past = []  # past[s][j]: embedding of image j at iteration s (detached)
    current = list(images)
    for t in range(iters):
        feats, zs = [], []
        for i in range(b):
            a, z = embed(current[i])
            feats.append(a)
            zs.append(z)
        past.append([z.detach() for z in zs])
        if t == 0:
            keys = [z.detach() for z in zs]
        for i in range(b):
            z = zs[i]
            denom = 0.0
            for s in range(t + 1):
                for j in range(b):
                    if j != i:
                        denom = denom + torch.exp(torch.dot(z, past[s][j]) / temperature)
            if bank is not None:
                for n in bank:
                    denom = denom + torch.exp(torch.dot(z, n / n.norm()) / temperature)
            score = torch.dot(z, keys[i]) / temperature - torch.log(denom)
            (g,) = torch.autograd.grad(score, feats[i])
            alpha = torch.clamp(g.mean(dim=(1, 2)), min=0)
            cam = torch.relu((alpha[:, None, None] * feats[i].detach()).sum(0))
            cam = F.interpolate(cam[None, None], size=(h, w), mode="bicubic", align_corners=False)[0]
            cam = cam - cam.min()
            cam = cam / (cam.max() + 1e-20)
            union[i] = cam if t == 0 else torch.maximum(union[i], cam)
        current = [images[i] * (1 - union[i]) + mu[0] * union[i] for i in range(b)]
    return torch.stack(union)


def _small_resnet():
    torch.manual_seed(0)
    m = torchvision.models.resnet.ResNet(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1])
    m.fc = nn.Sequential(nn.Linear(512, 64), nn.ReLU(), nn.Linear(64, 16))
    return m


@pytest.mark.parametrize("iters", [1, 3])
@pytest.mark.parametrize("temperature", [1.0, 0.2])
def test_batched_equals_per_sample_reference(iters, temperature):
    model = _small_resnet().double().eval()
    torch.manual_seed(1)
    images = torch.randn(5, 3, 48, 48, dtype=torch.float64)
    maps = ContraCAM(model, iters=iters, temperature=temperature, refine="union", edges=False)(images)
    encoder = nn.Sequential(*list(model.children())[:-2])
    head = nn.Sequential(model.avgpool, nn.Flatten(1), model.fc)
    expected = _reference_contracam(encoder, head, images, iters=iters, temperature=temperature)
    assert maps.dtype == torch.float32 and maps.shape == (5, 1, 48, 48)
    torch.testing.assert_close(maps.double(), expected, atol=1e-5, rtol=0)


def test_external_negatives_match_reference():
    model = _small_resnet().double().eval()
    torch.manual_seed(2)
    images = torch.randn(3, 3, 64, 64, dtype=torch.float64)
    bank = torch.randn(7, 16, dtype=torch.float64)
    maps = ContraCAM(model, iters=2, refine="union", edges=False)(images, negatives=bank)
    encoder = nn.Sequential(*list(model.children())[:-2])
    head = nn.Sequential(model.avgpool, nn.Flatten(1), model.fc)
    expected = _reference_contracam(encoder, head, images, iters=2, bank=bank)
    torch.testing.assert_close(maps.double(), expected, atol=1e-5, rtol=0)


def test_single_image_with_bank_works():
    model = _small_resnet().eval()
    # 96 px: a 3x3 last map (at 32 px it is 1x1, refused since ContraCAM checks the map size)
    maps = ContraCAM(model)(torch.randn(1, 3, 96, 96), negatives=torch.randn(10, 16))
    assert maps.shape == (1, 1, 96, 96)
    assert torch.isfinite(maps).all() and maps.max() == pytest.approx(1.0, abs=1e-6)


# --------------------------------------------------------------------------------------------------
# Analytic toy model: colour detectors. Channel k fires only on pure colour k; channel 3 is a constant
# "background" response. The right answer is known: each image's map must light its own colour.
# --------------------------------------------------------------------------------------------------

COLOURS = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def _colour_model():
    conv = nn.Conv2d(3, 4, kernel_size=1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        for k in range(3):
            conv.weight[k, :, 0, 0] = -0.5
            conv.weight[k, k, 0, 0] = 1.0
        conv.bias[3] = 1.0
    encoder = nn.Sequential(conv, nn.ReLU(), nn.AvgPool2d(4))
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
    return encoder, head


def _scene(objects, size=64):
    """objects: list of (colour index, y0, x0, side); grey background."""
    img = torch.full((3, size, size), 0.5)
    masks = []
    for k, y0, x0, side in objects:
        img[:, y0:y0 + side, x0:x0 + side] = COLOURS[k][:, None, None]
        m = torch.zeros(size, size, dtype=torch.bool)
        m[y0:y0 + side, x0:x0 + side] = True
        masks.append(m)
    return img, masks


def _iou(pred, target):
    inter = (pred & target).sum().item()
    union = (pred | target).sum().item()
    return inter / union


def test_toy_colour_model_lights_the_object():
    encoder, head = _colour_model()
    scenes = [_scene([(0, 8, 8, 24)]), _scene([(1, 32, 24, 20)]), _scene([(2, 16, 36, 24)])]
    images = torch.stack([s[0] for s in scenes])
    maps = ContraCAM(encoder=encoder, head=head)(images)
    for i, (_, masks) in enumerate(scenes):
        assert _iou(maps[i, 0] >= 0.5, masks[0]) > 0.8, f"image {i}"
        assert maps[i, 0][~masks[0]].mean() < 0.1


def test_refinement_finds_a_second_object():
    encoder, head = _colour_model()
    # Image 0 holds a large red and a small green object; the others are blue. One pass weighs each
    # distinctive channel by its pooled share, so the small green object stays under the 0.5 threshold;
    # refinement paints the red object out and the second pass lights green fully.
    scenes = [_scene([(0, 4, 4, 28), (1, 40, 40, 16)]), _scene([(2, 8, 8, 40)]), _scene([(2, 20, 4, 36)])]
    images = torch.stack([s[0] for s in scenes])
    red, green = scenes[0][1]
    one = ContraCAM(encoder=encoder, head=head, iters=1)(images)
    refined, steps = ContraCAM(encoder=encoder, head=head, iters=3)(images, return_steps=True)
    assert _iou(one[0, 0] >= 0.5, red) > 0.9
    assert ((one[0, 0] >= 0.5) & green).sum() < 0.1 * green.sum(), "one pass should miss the green object"
    assert refined[0, 0][green].mean() > 0.6, "refinement should find the green object"
    assert _iou(refined[0, 0] >= 0.5, red | green) > 0.9
    # steps are the plain per-iteration maps; with the reference's plain union and no edge filter the
    # output is their maximum and the first step is the T=1 map
    plain = dict(encoder=encoder, head=head, refine="union", edges=False)
    one_plain = ContraCAM(**plain, iters=1)(images)
    refined_plain, steps_plain = ContraCAM(**plain, iters=3)(images, return_steps=True)
    torch.testing.assert_close(steps[0], one_plain)
    torch.testing.assert_close(steps_plain[0], one_plain)
    torch.testing.assert_close(refined_plain, torch.stack(steps_plain).amax(0))
    torch.testing.assert_close(torch.stack(steps), torch.stack(steps_plain))


# --------------------------------------------------------------------------------------------------
# The model is left exactly as found.
# --------------------------------------------------------------------------------------------------


def _state(model):
    return (
        [(n, m.training) for n, m in model.named_modules()],
        [(n, p.requires_grad, p.grad is None) for n, p in model.named_parameters()],
        [(n, tuple(m.stride)) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)],
        [(n, len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
         for n, m in model.named_modules()],
        {k: v.clone() for k, v in model.state_dict().items()},
    )


def _assert_same_state(a, b):
    for x, y in zip(a[:4], b[:4], strict=True):
        assert x == y
    for k in a[4]:
        assert torch.equal(a[4][k], b[4][k]), k


@pytest.mark.parametrize("expand_res", [False, True])
def test_model_left_as_found(expand_res):
    model = _small_resnet()
    model.train()
    model.layer2.eval()  # mixed modes must survive
    model.layer1[0].conv1.weight.requires_grad_(False)
    before = _state(model)
    ContraCAM(model, iters=2, expand_res=expand_res)(torch.randn(4, 3, 64, 64))
    _assert_same_state(before, _state(model))  # also: BN running stats untouched, no weight grads


def test_model_left_as_found_after_exception():
    model = _small_resnet().train()
    before = _state(model)
    cam = ContraCAM(model, expand_res=True)
    with pytest.raises(ValueError, match="dimension"):
        cam(torch.randn(3, 3, 64, 64), negatives=torch.randn(5, 9))  # wrong embedding size
    _assert_same_state(before, _state(model))

    class Boom(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    model.fc = Boom()
    before = _state(model)
    with pytest.raises(RuntimeError, match="boom"):
        ContraCAM(model, expand_res=True)(torch.randn(2, 3, 64, 64))
    _assert_same_state(before, _state(model))


def test_expand_res_doubles_feature_resolution_and_is_restored():
    model = _small_resnet().eval()
    sizes = []
    handle = model.layer4.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[-2:])))
    try:
        ContraCAM(model)(torch.randn(2, 3, 64, 64))
        ContraCAM(model, expand_res=True)(torch.randn(2, 3, 64, 64))
    finally:
        handle.remove()
    assert sizes == [(2, 2), (4, 4)]
    assert model.layer4[0].conv1.stride == (2, 2) and model.layer4[0].downsample[0].stride == (2, 2)


def test_expand_res_on_generic_encoder_finds_last_strided_convs():
    enc = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                        nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU())
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(8, 4))
    split = EncoderHead(enc, head)
    assert split.last_stage_convs(torch.randn(1, 3, 32, 32)) == [enc[2]]
    maps = ContraCAM(split, expand_res=True)(torch.randn(3, 3, 32, 32))
    assert maps.shape == (3, 1, 32, 32) and enc[2].stride == (2, 2)


# --------------------------------------------------------------------------------------------------
# Numerics under autocast / channels_last, no_grad context.
# --------------------------------------------------------------------------------------------------


def test_autocast_bf16_and_channels_last_close_to_float32():
    model = _small_resnet().eval()
    torch.manual_seed(3)
    images = torch.randn(6, 3, 64, 64)
    ref = ContraCAM(model)(images)
    cl_model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    cl = ContraCAM(cl_model)(images.to(memory_format=torch.channels_last))
    torch.testing.assert_close(cl, ref, atol=1e-4, rtol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        amp = ContraCAM(model)(images)
    assert amp.dtype == torch.float32
    corr = torch.corrcoef(torch.stack([amp.flatten(), ref.flatten()]))[0, 1]
    assert corr > 0.9


def test_works_under_no_grad():
    model = _small_resnet().eval()
    images = torch.randn(3, 3, 64, 64)
    ref = ContraCAM(model)(images)
    with torch.no_grad():
        torch.testing.assert_close(ContraCAM(model)(images), ref)


# --------------------------------------------------------------------------------------------------
# Bad input: a clear error before any work.
# --------------------------------------------------------------------------------------------------


class _CountingEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.conv(x)


@pytest.mark.parametrize(
    ("images", "negatives", "error", "match"),
    [
        (torch.randn(3, 32, 32), None, ValueError, "4-D"),
        (torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8), None, TypeError, "floating point"),
        (torch.randn(1, 3, 32, 32), None, ValueError, "batch of 1"),
        (torch.full((2, 3, 32, 32), math.nan), None, ValueError, "NaN"),
        (torch.randn(2, 3, 32, 32), torch.randn(4, 4, 4), ValueError, r"\(N, D\)"),
        (torch.randn(2, 3, 32, 32), torch.full((4, 4), math.inf), ValueError, "negatives contains NaN"),
        ([[0.0]], None, TypeError, "torch.Tensor"),
    ],
)
def test_bad_input_is_rejected_before_work(images, negatives, error, match):
    enc = _CountingEncoder()
    cam = ContraCAM(encoder=enc, head=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1)))
    with pytest.raises(error, match=match):
        cam(images, negatives=negatives)
    assert enc.calls == 0


def test_bad_construction():
    enc, head = _colour_model()
    with pytest.raises(ValueError, match="iters"):
        ContraCAM(encoder=enc, head=head, iters=0)
    with pytest.raises(ValueError, match="temperature"):
        ContraCAM(encoder=enc, head=head, temperature=0)
    with pytest.raises(TypeError, match="encoder= and head="):
        ContraCAM()
    with pytest.raises(TypeError, match="encoder=..., head=..."):
        ContraCAM(nn.Linear(3, 3))


def test_non_spatial_encoder_error_says_how_to_split():
    enc = nn.Sequential(nn.Flatten(1), nn.Linear(3 * 8 * 8, 5))
    with pytest.raises(TypeError, match="spatial map"):
        ContraCAM(encoder=enc, head=nn.Identity())(torch.randn(2, 3, 8, 8))


def test_inference_mode_is_rejected():
    enc, head = _colour_model()
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        ContraCAM(encoder=enc, head=head)(torch.rand(2, 3, 16, 16))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    model = _small_resnet().eval()
    images = torch.randn(4, 3, 64, 64)
    ref = ContraCAM(model, iters=2)(images)
    out = ContraCAM(model.cuda(), iters=2)(images.cuda())
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), ref, atol=1e-3, rtol=0)
