"""ContraCAM's options for weak encoders: hard negatives, the edge filter, weighted refinement, map-size checks.

Each against an independent reference written here (float64 loops) or an analytic case whose answer is known.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from objaug.contracam import ContraCAM
from objaug.functional.cam import contrastive_score, edge_refine, nearest_negatives

# ------------------------------------------------------------------------------------------ nearest negatives


def test_nearest_negatives_on_a_constructed_embedding_set():
    # two tight clusters on the unit circle: each point's 2 nearest are its own cluster mates
    angles = torch.tensor([0.0, 0.05, -0.05, 3.0, 3.05, 2.95], dtype=torch.float64)
    keys = torch.stack([angles.cos(), angles.sin()], dim=1)
    batch_mask, bank_mask = nearest_negatives(keys, 2)
    assert bank_mask is None
    expected = torch.zeros(6, 6, dtype=torch.bool)
    for group in ([0, 1, 2], [3, 4, 5]):
        for i in group:
            for j in group:
                expected[i, j] = i != j
    assert torch.equal(batch_mask, expected)


def test_nearest_negatives_search_the_bank_jointly():
    keys = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=1)
    bank = F.normalize(torch.tensor([[1.0, 0.1], [-1.0, 0.0], [0.1, 1.0]]), dim=1)
    batch_mask, bank_mask = nearest_negatives(keys, 1, bank)
    # image 0's nearest is bank 0 (not image 1, orthogonal); image 1's is bank 2
    assert not batch_mask.any()
    assert torch.equal(bank_mask, torch.tensor([[True, False, False], [False, False, True]]))
    # k larger than the candidates: everything but the image itself
    batch_mask, bank_mask = nearest_negatives(keys, 99, bank)
    assert torch.equal(batch_mask, ~torch.eye(2, dtype=torch.bool)) and bank_mask.all()


def test_a_bank_embedded_from_the_same_images_never_offers_the_image_itself():
    # the bank holds a copy of each image (as ContraCAM.embed over the training set does) plus one stranger
    keys = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]]), dim=1)
    stranger = F.normalize(torch.tensor([[-1.0, 0.2]]), dim=1)
    bank = torch.cat([keys.flip(0), stranger])  # copies in another order, then the stranger
    batch_mask, bank_mask = nearest_negatives(keys, 1, bank)
    # without the exclusion each image's nearest would be its own copy (similarity 1)
    copy_of = torch.tensor([2, 1, 0])
    assert not bank_mask[torch.arange(3), copy_of].any()
    # image 2 (at 45 degrees) is equally near images 0 and 1, and their bank copies: it takes one of them
    assert int(batch_mask[2].sum() + bank_mask[2].sum()) == 1
    # asking for everything: all candidates but the image itself and its copy, and never the diagonal
    batch_mask, bank_mask = nearest_negatives(keys, 99, bank)
    assert torch.equal(batch_mask, ~torch.eye(3, dtype=torch.bool))
    expected = torch.ones(3, 4, dtype=torch.bool)
    expected[torch.arange(3), copy_of] = False
    assert torch.equal(bank_mask, expected)


def test_masked_score_equals_a_per_sample_sum():
    g = torch.Generator().manual_seed(0)
    b, d, n = 5, 8, 4
    z = F.normalize(torch.randn(b, d, generator=g, dtype=torch.float64), dim=1)
    past = [F.normalize(torch.randn(b, d, generator=g, dtype=torch.float64), dim=1) for _ in range(2)]
    bank = F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
    batch_mask, bank_mask = nearest_negatives(past[0], 3, bank)
    got = contrastive_score(z, past[0], past, bank=bank, temperature=0.3, batch_mask=batch_mask,
                            bank_mask=bank_mask)
    for i in range(b):
        terms = [float(z[i] @ p[j]) / 0.3 for p in past for j in range(b) if j != i and batch_mask[i, j]]
        terms += [float(z[i] @ bank[m]) / 0.3 for m in range(n) if bank_mask[i, m]]
        expected = float(z[i] @ past[0][i]) / 0.3 - np.log(np.sum(np.exp(terms)))
        assert float(got[i]) == pytest.approx(expected, abs=1e-10)


def _shared_background_model():
    """Channels = colours: 0-1 are two 'background' colours shared by groups, 2-9 objects, one per image."""
    encoder = nn.Identity()
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
    return encoder, head


def _group_scene(bg: int, obj: int, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.zeros(10, size, size)
    x[bg] = 1.0
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[8:20, 10:22] = True
    x[bg][mask] = 0.0
    x[obj][mask] = 1.0
    return x, mask


def test_hard_negatives_light_the_object_not_the_shared_background():
    # Contextual bias in miniature: image 0 shows object A on background 0; image 1 another object (B) on the
    # same background; images 2-7 show object A on background 1. Against all negatives, A is what image 0
    # shares with six of its seven negatives and the background is what sets it apart, so the background
    # lights up. Against its nearest neighbour (image 1, same background) only the object differs.
    encoder, head = _shared_background_model()
    scenes = [_group_scene(0, 2), _group_scene(0, 3)] + [_group_scene(1, 2) for _ in range(6)]
    images = torch.stack([s[0] for s in scenes])
    mask = scenes[0][1]
    plain = ContraCAM(encoder=encoder, head=head, edges=False)(images)
    hard = ContraCAM(encoder=encoder, head=head, edges=False, hard_negatives=1)(images)
    assert plain[0, 0][~mask].min() > 0.95 and plain[0, 0][mask].max() < 0.05, "all negatives: the background"
    assert hard[0, 0][mask].min() > 0.95 and hard[0, 0][~mask].max() < 0.05, "nearest negative: the object"


def _small_net(seed: int) -> tuple[nn.Module, nn.Module]:
    """A float64 two-conv encoder (8 channels, stride 2) and a pooled linear head (6-D embeddings)."""
    torch.manual_seed(seed)
    encoder = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1))
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(8, 6))
    return encoder.double(), head.double()


def test_hard_negatives_equal_a_per_sample_reference():
    encoder, head = _small_net(seed=0)
    images = torch.randn(6, 3, 16, 16, dtype=torch.float64)
    got = ContraCAM(encoder=encoder, head=head, hard_negatives=2, edges=False)(images)
    # reference: one image at a time, its 2 nearest neighbours found by sorting
    with torch.no_grad():
        feats = encoder(images)
        keys = F.normalize(head(feats), dim=1)
    for i in range(6):
        sims = [(float(keys[i] @ keys[j]), j) for j in range(6) if j != i]
        nearest = [j for _, j in sorted(sims, reverse=True)[:2]]
        a = feats[i].clone().requires_grad_(True)
        z = F.normalize(head(a[None]), dim=1)[0]
        score = z @ keys[i] - torch.logsumexp(torch.stack([z @ keys[j] for j in nearest]), 0)
        (g,) = torch.autograd.grad(score, a)
        cam = torch.relu((g.mean(dim=(1, 2)).clamp_min(0)[:, None, None] * a.detach()).sum(0))
        cam = F.interpolate(cam[None, None], size=(16, 16), mode="bicubic", align_corners=False)[0, 0]
        cam = (cam - cam.min()) / (cam - cam.min()).max()
        torch.testing.assert_close(got[i, 0].double(), cam, atol=1e-5, rtol=0)


def test_a_bank_holding_the_batch_itself_never_offers_an_image_its_own_copy():
    # The bank is the embedding of image 0 (as a bank of the training set holds the batch's own images). For
    # image 0 it is a copy of itself, never a negative, so its map is the map without a bank. Were the copy a
    # negative: with hard_negatives=1 it would be image 0's only negative (the positive and the negative
    # cancel, a flat map); with all negatives and a refinement pass it changes the masked image's gradient.
    encoder, head = _small_net(seed=1)
    images = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    for hard, iters in ((1, 1), (None, 2)):
        cam = ContraCAM(encoder=encoder, head=head, edges=False, refine="union", hard_negatives=hard, iters=iters)
        bank = cam.embed(images[:1])
        plain = cam(images)
        torch.testing.assert_close(cam(images, bank)[0], plain[0], atol=1e-6, rtol=0)
        if hard is None:  # a near-copy that is not the image (cosine < 1 - 1e-5) is a negative: the map changes
            other = F.normalize(bank + 0.05 * torch.randn_like(bank), dim=1)
            assert (cam(images, other)[0] - plain[0]).abs().max() > 1e-3


# ------------------------------------------------------------------------------------------ edge filter


def _box_mean_reflect(x: np.ndarray, r: int) -> np.ndarray:
    p = np.pad(x, r, mode="reflect")
    out = np.zeros_like(x)
    for y in range(x.shape[0]):
        for xx in range(x.shape[1]):
            out[y, xx] = p[y:y + 2 * r + 1, xx:xx + 2 * r + 1].mean()
    return out


def _guided_filter_reference(guide: np.ndarray, src: np.ndarray, r: int, eps: float) -> np.ndarray:
    """He et al. 2010, Algorithm 1, written with explicit window means (grey guide)."""
    mean_i = _box_mean_reflect(guide, r)
    mean_p = _box_mean_reflect(src, r)
    cov = _box_mean_reflect(guide * src, r) - mean_i * mean_p
    var = _box_mean_reflect(guide * guide, r) - mean_i ** 2
    a = cov / (var + eps)
    b = mean_p - a * mean_i
    return _box_mean_reflect(a, r) * guide + _box_mean_reflect(b, r)


def test_edge_filter_equals_the_guided_filter_reference():
    g = torch.Generator().manual_seed(3)
    images = torch.rand(2, 3, 12, 14, generator=g, dtype=torch.float64) * 2 - 1
    maps = torch.rand(2, 1, 12, 14, generator=g, dtype=torch.float64)
    got = edge_refine(maps, images, radius=2, eps=0.05)
    for i in range(2):
        guide = images[i].mean(0).numpy()
        guide = (guide - guide.min()) / (guide.max() - guide.min())
        ref = np.maximum(_guided_filter_reference(guide, maps[i, 0].numpy(), 2, 0.05), 0)
        np.testing.assert_allclose(got[i, 0].numpy(), ref, atol=1e-10)


def test_edge_filter_snaps_a_blurred_map_to_a_step_edge():
    # the image: a bright square on a dark background; the map: a blurred, shifted version of the square
    img = torch.zeros(1, 3, 48, 48)
    img[..., 12:36, 12:36] = 1.0
    truth = img[:, :1] > 0.5
    blurred = F.avg_pool2d(F.pad(truth.float(), (9, 7, 9, 7), mode="replicate"), 17, stride=1)
    before = ((blurred >= 0.5) ^ truth).sum()
    after_map = edge_refine(blurred, img, radius=3, eps=1e-3)
    after_map = after_map / after_map.max()
    after = ((after_map >= 0.5) ^ truth).sum()
    assert after < 0.5 * before, (int(before), int(after))


# ------------------------------------------------------------------------------------------ refinement, map size


def test_weighted_refinement_keeps_a_diffuse_later_iteration_below_the_first():
    # colour model: image 0 holds red (object), the rest of each image a per-image noise texture; after red
    # is painted out the second pass is diffuse. Weighted refinement scales it down by the area ratio.
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 3, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
    images = torch.rand(3, 3, 32, 32) * 0.3
    images[0, :, 8:16, 8:16] = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    union, steps = ContraCAM(encoder=conv, head=head, iters=2, edges=False, refine="union")(images, return_steps=True)
    weighted, wsteps = ContraCAM(encoder=conv, head=head, iters=2, edges=False)(images, return_steps=True)
    torch.testing.assert_close(torch.stack(steps), torch.stack(wsteps))  # steps are the plain maps either way
    a0 = (steps[0] >= 0.5).float().mean(dim=(1, 2, 3))
    a1 = (steps[1] >= 0.5).float().mean(dim=(1, 2, 3))
    w = (a0 / a1).clamp(max=1).view(-1, 1, 1, 1)
    torch.testing.assert_close(weighted, torch.maximum(steps[0], steps[1] * w))
    assert (a1 > a0).any(), "the test needs a diffuse second iteration"
    assert (weighted <= union + 1e-6).all()


def test_pooled_maps_are_refused_and_tiny_maps_warned():
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
    pooled = nn.AdaptiveAvgPool2d(1)
    with pytest.raises(ValueError, match=r"1x1 map.*stops before the global pooling"):
        ContraCAM(encoder=pooled, head=head)(torch.rand(2, 3, 32, 32))
    two = nn.AdaptiveAvgPool2d(2)
    cam = ContraCAM(encoder=two, head=head)
    with pytest.warns(UserWarning, match=r"only 2x2.*expand_res=True"):
        cam(torch.rand(2, 3, 32, 32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cam(torch.rand(2, 3, 32, 32))  # once per ContraCAM
        ContraCAM(encoder=nn.AdaptiveAvgPool2d(3), head=head)(torch.rand(2, 3, 32, 32))  # 3x3 is fine


@pytest.mark.parametrize("kwargs, match", [
    (dict(hard_negatives=0), "hard_negatives"),
    (dict(hard_negatives=True), "hard_negatives"),
    (dict(edges=1), "edges must be a bool"),
    (dict(edge_radius=0.0), "edge_radius"),
    (dict(edge_eps=-1.0), "edge_eps"),
    (dict(refine="max"), "refine must be"),
    (dict(temperature=float("inf")), "temperature must be a number > 0.0"),
])
def test_bad_options_are_refused(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        ContraCAM(encoder=nn.Identity(), head=nn.Flatten(1), **kwargs)


def test_box_mean_and_edge_filter_equal_kornia():
    import kornia.filters as KF

    from objaug.functional.cam import box_mean, minmax_normalize

    g = torch.Generator().manual_seed(5)
    x = torch.rand(2, 1, 30, 26, generator=g, dtype=torch.float64)
    for r in (1, 4, 9):
        torch.testing.assert_close(box_mean(x, r), KF.box_blur(x, 2 * r + 1, border_type="reflect"))
    images = torch.randn(2, 3, 30, 26, generator=g, dtype=torch.float64)
    guide = minmax_normalize(images.mean(dim=1, keepdim=True), eps=1e-12)
    expected = KF.guided_blur(guide, x, 9, 0.02).clamp_min(0)
    torch.testing.assert_close(edge_refine(x, images, radius=4, eps=0.02), expected)


def test_embed_is_the_eval_mode_embedding_and_leaves_the_model_as_found():
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(8, 5))
    encoder.train()
    images = torch.randn(4, 3, 12, 12)
    cam = ContraCAM(encoder=encoder, head=head)
    running = encoder[1].running_mean.clone()
    z = cam.embed(images)
    assert encoder.training and head.training and torch.equal(encoder[1].running_mean, running)
    encoder.eval(), head.eval()
    with torch.no_grad():
        expected = F.normalize(head(encoder(images)), dim=1)
    torch.testing.assert_close(z, expected)
    with pytest.raises(ValueError, match="4-D"):
        cam.embed(torch.randn(3, 12, 12))
