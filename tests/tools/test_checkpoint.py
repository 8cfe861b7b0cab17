"""Tests of objaug.tools.checkpoint: every supported checkpoint layout round-trips into a fresh model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from objaug.tools.archs import build_projector, tiny_resnet
from objaug.tools.checkpoint import CheckpointError, extract_state_dict, load_weights


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    m = tiny_resnet(width=4)
    # non-trivial BatchNorm buffers so that buffers are checked too
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-1, 1)
            mod.running_var.uniform_(0.5, 2)
    return m


def _assert_same(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def _prefixed(model: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + k: v.clone() for k, v in model.state_dict().items()}


def test_plain_state_dict(tmp_path):
    src, dst = _model(0), _model(1)
    torch.save(src.state_dict(), tmp_path / "plain.pt")
    rep = load_weights(dst, tmp_path / "plain.pt")
    _assert_same(src, dst)
    assert rep.source == "plain" and rep.prefix == "" and not rep.index_mapped
    assert len(rep.loaded) == len(src.state_dict())


def test_lightning_checkpoint_with_model_prefix(tmp_path):
    src, dst = _model(0), _model(1)
    ckpt = {"epoch": 3, "global_step": 10, "state_dict": _prefixed(src, "model.backbone."),
            "hyper_parameters": {"lr": 0.1, "name": "x"}}
    torch.save(ckpt, tmp_path / "l.ckpt")
    rep = load_weights(dst, tmp_path / "l.ckpt")
    _assert_same(src, dst)
    assert rep.source == "state_dict" and rep.prefix == "model.backbone."


def test_solo_learn_layout_backbone_and_projector(tmp_path):
    src, dst = _model(0), _model(1)
    momentum = _model(2)
    proj_src, proj_dst = build_projector("16-8", 32), build_projector("16-8", 32)
    assert proj_src is not None and proj_dst is not None
    sd = _prefixed(src, "backbone.")
    sd.update(_prefixed(momentum, "momentum_backbone."))
    sd.update(_prefixed(proj_src, "projector."))
    sd["classifier.weight"] = torch.randn(10, 32)
    torch.save({"state_dict": sd, "epoch": 1}, tmp_path / "solo.ckpt")
    rep = load_weights(dst, tmp_path / "solo.ckpt")
    _assert_same(src, dst)  # backbone. wins the tie against momentum_backbone.
    assert rep.prefix == "backbone."
    prep = load_weights(proj_dst, tmp_path / "solo.ckpt")
    _assert_same(proj_src, proj_dst)
    assert prep.prefix == "projector."
    # the momentum copy on request
    load_weights(dst, tmp_path / "solo.ckpt", key_prefix="momentum_backbone")
    _assert_same(momentum, dst)


def test_lightly_sequential_layout(tmp_path):
    src, dst = _model(0), _model(1)
    backbone = nn.Sequential(*list(src.children())[:-1])  # lightly's resnet backbone (no fc)

    class SimCLRLike(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone
            self.projection_head = nn.Linear(32, 8)

    torch.save(SimCLRLike().state_dict(), tmp_path / "lightly.pt")
    sd = torch.load(tmp_path / "lightly.pt", weights_only=True)
    assert "backbone.0.weight" in sd and "backbone.4.0.conv1.weight" in sd
    rep = load_weights(dst, tmp_path / "lightly.pt")
    _assert_same(src, dst)
    assert rep.prefix == "backbone." and rep.index_mapped
    # a lightly Lightning checkpoint nests the same keys under state_dict
    torch.save({"state_dict": sd}, tmp_path / "lightly.ckpt")
    dst2 = _model(3)
    load_weights(dst2, tmp_path / "lightly.ckpt")
    _assert_same(src, dst2)


def test_in_memory_state_and_explicit_prefix():
    src, dst = _model(0), _model(1)
    rep = load_weights(dst, {"encoder.conv1.weight": torch.zeros(1)} | _prefixed(src, "module."),
                       key_prefix="module.")
    _assert_same(src, dst)
    assert rep.prefix == "module."


def test_torchvision_classifier_keys_are_ignored():
    src = _model(0)
    src.fc = nn.Linear(32, 5)
    dst = _model(1)  # fc is Identity
    rep = load_weights(dst, src.state_dict())
    assert rep.unexpected == ["fc.weight", "fc.bias"]
    assert "ignored 2" in rep.summary()


def test_mismatch_error_lists_keys_and_suggests_prefix():
    dst = _model(1)
    other = tiny_resnet(width=8)
    with pytest.raises(CheckpointError, match="(?s)Shape mismatches.*--key-prefix"):
        load_weights(dst, _prefixed(other, "backbone."))
    with pytest.raises(CheckpointError, match="(?s)0 of .* tensors match.*Top-level key groups"):
        load_weights(dst, {"foo.bar": torch.zeros(2), "baz.qux": torch.zeros(3)})
    src = _model(0)
    sd = _prefixed(src, "backbone.")
    del sd["backbone.layer4.0.conv1.weight"]
    with pytest.raises(CheckpointError, match="layer4.0.conv1.weight"):
        load_weights(dst, sd)
    rep = load_weights(dst, sd, strict=False)
    assert rep.missing == ["layer4.0.conv1.weight"]


def test_missing_num_batches_tracked_is_fine():
    src, dst = _model(0), _model(1)
    sd = {k: v for k, v in src.state_dict().items() if not k.endswith("num_batches_tracked")}
    load_weights(dst, sd)
    assert torch.equal(src.conv1.weight, dst.conv1.weight)


class Config:  # a non-tensor object, like an OmegaConf config in solo-learn checkpoints
    lr = 0.1


def test_unsafe_pickle_is_refused_clearly(tmp_path):
    src, dst = _model(0), _model(1)
    torch.save({"state_dict": src.state_dict(), "hyper_parameters": Config()}, tmp_path / "cfg.ckpt")
    with pytest.raises(CheckpointError, match="(?s)Config.*trusted=True"):
        load_weights(dst, tmp_path / "cfg.ckpt")
    load_weights(dst, tmp_path / "cfg.ckpt", trusted=True)
    _assert_same(src, dst)


def test_missing_file_and_bad_objects(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_weights(_model(0), tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="Could not read"):
        load_weights(_model(0), tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="No state dict"):
        extract_state_dict({"epoch": 1})


@pytest.mark.parametrize("head_name, spec", [("SimCLRProjectionHead", "bn,nobias,bnlast:16-8"),
                                             ("MoCoProjectionHead", "16-8"),
                                             ("BYOLProjectionHead", "bn,nobias:16-8")])
def test_projector_specs_load_lightly_heads(head_name, spec):
    modules = pytest.importorskip("lightly.models.modules")
    torch.manual_seed(0)
    head = getattr(modules, head_name)(32, 16, 8)
    for mod in head.modules():
        if isinstance(mod, nn.BatchNorm1d):
            mod.running_mean.uniform_(-1, 1)
    proj = build_projector(spec, 32)
    assert proj is not None
    rep = load_weights(proj, {f"projection_head.{k}": v for k, v in head.state_dict().items()})
    assert rep.prefix == "projection_head.layers."
    x = torch.randn(4, 32)
    assert torch.allclose(proj.eval()(x), head.eval()(x), atol=1e-6)


def test_projector_spec_errors():
    with pytest.raises(ValueError, match="Unknown projector flag"):
        build_projector("bm:16-8", 32)
    with pytest.raises(ValueError, match="not valid"):
        build_projector("16x8", 32)
    assert build_projector("none", 32) is None
