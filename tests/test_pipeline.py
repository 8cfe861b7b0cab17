"""Tests for the batched multi-view pipeline (objaug.augment.pipeline) and presets (objaug.augment.views)."""

from __future__ import annotations

import dataclasses

import kornia.augmentation as K
import pytest
import torch
from torch import Tensor, nn

from objaug.augment.pipeline import IMAGENET_NORMALIZE, ObjectAwareAugment, ViewConfig
from objaug.augment.views import byol_views, moco_v2_views, simclr_views
from objaug.functional.crop import crop_and_resize

CUDA = torch.cuda.is_available()

# Views with every photometric op off, so outputs can be compared with the geometric kernels.
PLAIN = dict(cj_prob=0.0, random_gray_scale=0.0, gaussian_blur=0.0, solarization_prob=0.0)


def _boxes(b: int) -> tuple[Tensor, Tensor]:
    boxes = torch.tensor([[0.1, 0.1, 0.5, 0.6], [0.4, 0.3, 0.95, 0.9], [0.0, 0.0, 0.3, 0.3]]).expand(b, 3, 4)
    valid = torch.rand(b, 3) < 0.7
    return boxes.clone(), valid


def test_shapes_dtypes_and_normalisation() -> None:
    torch.manual_seed(0)
    images = torch.rand(6, 3, 48, 64)
    boxes, valid = _boxes(6)
    views = [ViewConfig(input_size=32, hf_prob=0.5, **PLAIN),
             ViewConfig(input_size=(24, 16), normalize=None, **PLAIN)]
    aug = ObjectAwareAugment(views)
    out, params = aug(images, boxes, valid, return_params=True)
    assert [tuple(o.shape) for o in out] == [(6, 3, 32, 32), (6, 3, 24, 16)]
    assert all(o.dtype == torch.float32 for o in out)
    mean = torch.tensor(IMAGENET_NORMALIZE["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_NORMALIZE["std"]).view(1, 3, 1, 1)
    ref0 = crop_and_resize(images, params[0]["crop_boxes"], 32, flip=params[0]["flip"])
    torch.testing.assert_close(out[0], (ref0 - mean) / std)
    ref1 = crop_and_resize(images, params[1]["crop_boxes"], (24, 16), flip=params[1]["flip"])
    torch.testing.assert_close(out[1], ref1)
    # Both views come from the same box; crops lie inside it.
    assert torch.equal(params[0]["box_index"], params[1]["box_index"])
    assert torch.equal(params[0]["object"], valid.any(1))
    for p in params:
        assert (p["crop_boxes"][:, :2] >= p["regions"][:, :2] - 1e-6).all()
        assert (p["crop_boxes"][:, 2:] <= p["regions"][:, 2:] + 1e-6).all()
    # float64 in, float64 out.
    out64 = aug(images.double(), boxes.double(), valid)
    assert all(o.dtype == torch.float64 for o in out64)


def test_mask_follows_crop_and_flip() -> None:
    torch.manual_seed(0)
    images = torch.rand(8, 3, 40, 40)
    masks = images[:, 1:2].clone()
    boxes, valid = _boxes(8)
    aug = ObjectAwareAugment([ViewConfig(input_size=20, normalize=None, hf_prob=0.5, **PLAIN)] * 2)
    out, params = aug(images, boxes, valid, masks=masks, return_params=True)
    for view, p in zip(out, params, strict=True):
        torch.testing.assert_close(p["masks"], view[:, 1:2])
    flips = torch.cat([p["flip"] for p in params])
    assert flips.any() and not flips.all()
    # hf_prob=1 mirrors exactly the unflipped crop.
    aug1 = ObjectAwareAugment([ViewConfig(input_size=20, normalize=None, hf_prob=1.0, **PLAIN)])
    (v,), (p,) = aug1(images, boxes, valid, return_params=True)
    assert p["flip"].all()
    torch.testing.assert_close(v, crop_and_resize(images, p["crop_boxes"], 20).flip(-1))


def test_seeded_determinism_and_no_boxes_is_plain_rrc() -> None:
    images = torch.rand(4, 3, 32, 32)
    aug = ObjectAwareAugment(simclr_views(16))
    torch.manual_seed(7)
    a, pa = aug(images, return_params=True)
    torch.manual_seed(7)
    b = aug(images)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    assert not pa[0]["object"].any() and (pa[0]["box_index"] == -1).all()
    torch.manual_seed(8)
    c = aug(images)
    assert not torch.equal(a[0], c[0])


def test_photometric_ops_follow_config() -> None:
    torch.manual_seed(0)
    images = torch.rand(4, 3, 32, 32)
    gray = ObjectAwareAugment([ViewConfig(input_size=16, normalize=None, **{**PLAIN, "random_gray_scale": 1.0})])
    (v,) = gray(images)
    torch.testing.assert_close(v[:, 0], v[:, 1])
    torch.testing.assert_close(v[:, 1], v[:, 2])
    ops = ObjectAwareAugment(byol_views(16)).ops
    kinds = [[type(op).__name__ for op in o.ops] for o in ops]
    assert kinds == [["_ColorJitter", "RandomGrayscale", "RandomGaussianBlur"],
                     ["_ColorJitter", "RandomGrayscale", "RandomGaussianBlur", "RandomSolarize"]]
    jitter = ops[0].ops[0]
    assert (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue, jitter.p) == (0.4, 0.4, 0.2, 0.1, 0.8)
    assert ops[1].ops[2].p == pytest.approx(0.1) and ops[1].ops[3].p == pytest.approx(0.2)
    assert ops[0].ops[2].flags["kernel_size"] == (13, 13)


def test_cpu_chunks_equal_one_pass() -> None:
    torch.manual_seed(0)
    images = torch.rand(10, 3, 24, 24)
    views = [ViewConfig(input_size=12, **{**PLAIN, "random_gray_scale": 1.0})]
    outs = []
    for chunk in (None, 4, 100):
        torch.manual_seed(1)
        outs.append(ObjectAwareAugment(views, cpu_chunk_size=chunk)(images)[0])
    torch.testing.assert_close(outs[1], outs[0])
    torch.testing.assert_close(outs[2], outs[0])
    torch.manual_seed(2)
    a = ObjectAwareAugment(simclr_views(12), cpu_chunk_size=3)(images)
    torch.manual_seed(2)
    b = ObjectAwareAugment(simclr_views(12), cpu_chunk_size=3)(images)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match="cpu_chunk_size"):
        ObjectAwareAugment(cpu_chunk_size=0)


def test_fast_hue_matches_torchvision_per_image() -> None:
    from torchvision.transforms.v2 import functional as TF

    from objaug.augment.pipeline import _adjust_hue_turns, _ColorJitter

    torch.manual_seed(0)
    images = torch.rand(6, 3, 9, 11)
    images[0] = 0.5  # grey: hue undefined
    images[1, :, :3] = images[1, 0, :3]  # equal channels in places
    factor = torch.tensor([0.3, -0.5, 0.5, -0.1, 0.0, 0.25])
    ref = torch.stack([TF.adjust_hue(im, float(f)) for im, f in zip(images, factor, strict=True)])
    torch.testing.assert_close(_adjust_hue_turns(images, factor), ref, atol=1e-5, rtol=0)
    leaf = images.clone().requires_grad_(True)  # the out-of-place branch, differentiable
    out = _adjust_hue_turns(leaf, factor)
    torch.testing.assert_close(out.detach(), ref, atol=1e-5, rtol=0)
    out.sum().backward()
    assert leaf.grad is not None and torch.isfinite(leaf.grad).all()
    jitter = _ColorJitter(hue=0.5, p=1.0)
    out = jitter(images)
    drawn = jitter._params["hue_factor"]
    ref = torch.stack([TF.adjust_hue(im, float(f)) for im, f in zip(images, drawn, strict=True)])
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_mixup_on_chosen_views_only() -> None:
    pytest.importorskip("objaug.augment.mixup")
    from objaug.augment.mixup import BackgroundMixup

    torch.manual_seed(0)
    b = 16
    images = torch.rand(b, 3, 32, 32)
    masks = torch.zeros(b, 1, 32, 32)
    masks[:, :, 8:24, 10:22] = 1.0
    boxes = torch.tensor([[10 / 32, 8 / 32, 22 / 32, 24 / 32]]).expand(b, 1, 4)
    mix = BackgroundMixup(p=1.0)
    views = [ViewConfig(input_size=32, mixup=True, min_scale=1.0, hf_prob=0.0, normalize=None, **PLAIN),
             ViewConfig(input_size=32, normalize=None, **PLAIN)]
    aug = ObjectAwareAugment(views, box_p=0.0, mixup=mix)  # whole-image crops keep some background
    out, params = aug(images, boxes, masks=masks, return_params=True)
    assert "mixed" in params[0] and "mixed" not in params[1]
    assert params[0]["mixed"].dtype == torch.bool and params[0]["mixed"].shape == (b,)
    assert aug.mixup is mix
    # The default mixup module is created when a view asks for it.
    assert isinstance(ObjectAwareAugment(simclr_views(16, mixup=True)).mixup, BackgroundMixup)
    with pytest.raises(ValueError, match="mixup=True"):
        aug(images, boxes)


class _FakeCAM:
    """Returns a fixed square blob and records what it was called with."""

    def __init__(self) -> None:
        self.calls: list[Tensor] = []
        self.negatives: list[Tensor | None] = []

    def __call__(self, images: Tensor, negatives: Tensor | None = None) -> Tensor:
        self.calls.append(images)
        self.negatives.append(negatives)
        maps = torch.zeros(images.shape[0], 1, *images.shape[-2:])
        maps[:, :, 4:20, 8:28] = 1.0
        return maps


def test_cam_path_normalises_and_derives_boxes() -> None:
    torch.manual_seed(0)
    images = torch.rand(4, 3, 32, 32)
    cam = _FakeCAM()
    boxes, valid = _boxes(4)
    aug = ObjectAwareAugment(simclr_views(16), cam=cam)
    assert "cam" not in dict(aug.named_children())
    aug(images, boxes, valid)  # boxes given and no mixup: no CAM pass
    assert not cam.calls
    pytest.importorskip("objaug.boxes")
    out, params = aug(images, return_params=True)
    assert len(cam.calls) == 1
    mean = torch.tensor(IMAGENET_NORMALIZE["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_NORMALIZE["std"]).view(1, 3, 1, 1)
    torch.testing.assert_close(cam.calls[0], (images - mean) / std)
    assert params[0]["object"].all()
    # The derived boxes contain the blob (rows 4:20, columns 8:28 of 32).
    reg = params[0]["regions"]
    assert (reg[:, 0] <= 8 / 32 + 1e-6).all() and (reg[:, 2] >= 28 / 32 - 1e-6).all()
    assert "masks" in params[0]
    bank = torch.randn(10, 8)  # e.g. a MoCo queue: passed through to the CAM
    aug(images, negatives=bank)
    assert cam.negatives == [None, bank]
    with pytest.raises(ValueError, match="no cam"):
        ObjectAwareAugment(simclr_views(16))(images, boxes, valid, negatives=bank)


def test_real_contracam_smoke() -> None:
    contracam = pytest.importorskip("objaug.contracam")
    pytest.importorskip("objaug.boxes")
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU())
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 8))
    cam = contracam.ContraCAM(encoder=encoder, head=head)
    aug = ObjectAwareAugment(simclr_views(16, mixup=True), cam=cam)
    out = aug(torch.rand(4, 3, 32, 32))
    assert [tuple(o.shape) for o in out] == [(4, 3, 16, 16)] * 2


# ----------------------------------------------------------------------------- presets vs lightly
def _lightly_view(transform: object) -> dict[str, object]:
    """Read one lightly view transform's parameters from its torchvision Compose."""
    got: dict[str, object] = {}
    for op in transform.transform.transforms:  # type: ignore[attr-defined]
        name = type(op).__name__
        if name == "RandomResizedCrop":
            got["input_size"] = tuple(op.size)
            got["min_scale"], got["max_scale"] = op.scale
            got["ratio"] = tuple(op.ratio)
        elif name == "RandomHorizontalFlip":
            got["hf_prob"] = op.p
        elif name == "RandomApply":
            cj = op.transforms[0]
            got["cj_prob"] = op.p
            got["cj_bright"] = cj.brightness[1] - 1
            got["cj_contrast"] = cj.contrast[1] - 1
            got["cj_sat"] = cj.saturation[1] - 1
            got["cj_hue"] = cj.hue[1]
        elif name == "RandomGrayscale":
            got["random_gray_scale"] = op.p
        elif name == "GaussianBlur":
            got["gaussian_blur"] = op.prob
            got["sigmas"] = tuple(float(s) for s in op.sigmas)
        elif name == "RandomSolarization":
            got["solarization_prob"] = op.prob
        elif name == "Normalize":
            got["normalize"] = {"mean": tuple(op.mean), "std": tuple(op.std)}
        elif name in ("RandomVerticalFlip",):
            assert op.p == 0.0
        elif name in ("RandomRotate", "RandomRotateDegrees"):
            assert op.prob == 0.0
    got.setdefault("solarization_prob", 0.0)
    return got


def _ours(cfg: ViewConfig) -> dict[str, object]:
    s = cfg.cj_strength
    return {
        "input_size": cfg.size, "min_scale": cfg.min_scale, "max_scale": cfg.max_scale, "ratio": cfg.ratio,
        "hf_prob": cfg.hf_prob, "cj_prob": cfg.cj_prob, "cj_bright": s * cfg.cj_bright,
        "cj_contrast": s * cfg.cj_contrast, "cj_sat": s * cfg.cj_sat, "cj_hue": s * cfg.cj_hue,
        "random_gray_scale": cfg.random_gray_scale, "gaussian_blur": cfg.gaussian_blur,
        "sigmas": tuple(float(x) for x in cfg.sigmas), "solarization_prob": cfg.solarization_prob,
        "normalize": {k: tuple(v) for k, v in cfg.normalize.items()} if cfg.normalize else None,
    }


@pytest.mark.parametrize("name", ["simclr", "moco_v2", "byol"])
def test_presets_match_lightly(name: str) -> None:
    transforms = pytest.importorskip("lightly.transforms")
    lightly_cls = {"simclr": transforms.SimCLRTransform, "moco_v2": transforms.MoCoV2Transform,
                   "byol": transforms.BYOLTransform}[name]
    ours = {"simclr": simclr_views, "moco_v2": moco_v2_views, "byol": byol_views}[name]()
    theirs = lightly_cls().transforms
    assert len(ours) == len(theirs) == 2
    for cfg, view in zip(ours, theirs, strict=True):
        expected = _lightly_view(view)
        got = _ours(cfg)
        for key, value in expected.items():
            if isinstance(value, dict):
                assert isinstance(got[key], dict), (name, key)
                for k in value:
                    assert got[key][k] == pytest.approx(value[k]), (name, key, k)  # type: ignore[index]
            else:
                assert got[key] == pytest.approx(value), (name, key)
        assert not cfg.mixup and cfg.object_crop


def test_preset_options() -> None:
    v = simclr_views(96, mixup=True, min_scale=0.3)
    assert v[0].mixup and not v[1].mixup and v[0].size == (96, 96) and v[1].min_scale == 0.3
    b = byol_views(mixup=True)
    assert b[0].mixup and not b[1].mixup and b[0].gaussian_blur == 1.0 and b[1].solarization_prob == 0.2
    assert dataclasses.replace(v[1], hf_prob=0.0).hf_prob == 0.0


# ----------------------------------------------------------------------------- bad inputs
def test_bad_configs_and_inputs() -> None:
    with pytest.raises(ValueError, match="min_scale"):
        ViewConfig(min_scale=0.0)
    with pytest.raises(ValueError, match="cj_prob"):
        ViewConfig(cj_prob=1.5)
    with pytest.raises(ValueError, match="cj_hue"):
        ViewConfig(cj_hue=0.6)
    with pytest.raises(ValueError, match="kernel_size"):
        ViewConfig(kernel_size=4)
    with pytest.raises(ValueError, match="normalize"):
        ViewConfig(normalize={"mean": (0.5,), "std": (0.5,)})
    with pytest.raises(TypeError, match="size"):
        ViewConfig(input_size=22.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ViewConfig"):
        ObjectAwareAugment([{"input_size": 224}])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="box_sampling"):
        ObjectAwareAugment(box_sampling="big")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cam"):
        ObjectAwareAugment(cam=3)
    aug = ObjectAwareAugment(simclr_views(8))
    images = torch.rand(2, 3, 16, 16)
    boxes, valid = _boxes(2)
    with pytest.raises(ValueError, match="3 channels"):
        aug(torch.rand(2, 1, 16, 16))
    with pytest.raises(TypeError, match="floating point"):
        aug((images * 255).byte())
    with pytest.raises(ValueError, match=r"images must lie in .*un-normalised"):
        aug(images * 2)
    with pytest.raises(ValueError, match="batch size"):
        aug(images, boxes[:1], valid[:1])
    with pytest.raises(ValueError, match="valid was given without boxes"):
        aug(images, valid=valid)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        aug(images, boxes + 1, valid)
    with pytest.raises(ValueError, match="masks"):
        aug(images, masks=torch.rand(2, 1, 8, 8))
    ObjectAwareAugment(simclr_views(8), check_inputs=False)(images * 2)


# ----------------------------------------------------------------------------- CUDA
@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_cuda_views_on_device() -> None:
    torch.manual_seed(0)
    aug = ObjectAwareAugment(byol_views(32)).cuda()
    boxes, valid = _boxes(8)
    out = aug(torch.rand(8, 3, 64, 64, device="cuda"), boxes.cuda(), valid.cuda())
    assert all(o.is_cuda and o.shape == (8, 3, 32, 32) for o in out)
    assert isinstance(K.ColorJitter, type)


def test_kornia_private_hooks_still_exist():
    """The two private kornia names objaug relies on (no public equivalent; see their comments)."""
    import kornia.augmentation as K
    from kornia.augmentation._2d.base import _input_metadata_only

    from objaug.augment.crop import ObjectAwareRandomResizedCrop

    assert callable(getattr(K.ColorJitter, "_adjust_hue_turns", None))
    # the fixed-shape colour jitter (objaug.augment.pipeline._ColorJitter.apply_transform) reads these
    from kornia.augmentation._2d.intensity.base import _clamp_unit_range

    jitter = K.ColorJitter(0.1, 0.1, 0.1, 0.1)
    assert callable(_clamp_unit_range) and jitter._fixed_order is None
    assert all(callable(getattr(jitter, f"_{n}_fn")) for n in ("brightness", "contrast", "saturation"))
    marked = ObjectAwareRandomResizedCrop.compute_transformation
    assert _input_metadata_only(lambda: None).__dict__.get("_kornia_input_metadata_only") is not None
    assert marked.__dict__.get("_kornia_input_metadata_only") is marked
