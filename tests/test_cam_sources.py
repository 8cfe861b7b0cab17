"""objaug.cam_sources: each ContraCAM map source is a class behind one interface, chosen by source=."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from objaug import ContraCAM
from objaug.cam_sources import (
    MAP_SOURCES,
    ClassTokenAttention,
    ContrastiveGradCAM,
    MapSource,
    map_source_class,
    register_map_source,
)
from objaug.functional.cam import minmax_normalize, upsample_maps


def _encoder_head() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU())
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 8))
    return encoder, head


def test_the_shipped_sources_are_registered_by_name() -> None:
    assert MAP_SOURCES["gradcam"] is ContrastiveGradCAM and MAP_SOURCES["attention"] is ClassTokenAttention
    assert map_source_class("attention") is ClassTokenAttention
    with pytest.raises(ValueError, match="source must be one of 'gradcam', 'attention'"):
        map_source_class("gradcam++")
    with pytest.raises(ValueError, match="source must be"):
        ContraCAM(encoder=nn.Identity(), head=nn.Identity(), source="nope")


def test_contracam_uses_the_chosen_class() -> None:
    encoder, head = _encoder_head()
    cam = ContraCAM(encoder=encoder, head=head)
    assert isinstance(cam.map_source, ContrastiveGradCAM)


class _ChannelNorm(MapSource):
    """A toy source: the feature map's channel norm (no backward, no negatives)."""

    name = "channel-norm-test"
    uses_negatives = False
    unused_options = frozenset({"temperature", "hard_negatives"})

    def maps(self, x: Tensor, state: None) -> Tensor:
        return self.features(x).norm(dim=1, keepdim=True)


def test_a_new_source_is_one_subclass() -> None:
    register_map_source(_ChannelNorm)
    try:
        encoder, head = _encoder_head()
        images = torch.randn(1, 3, 32, 32)  # one image is fine: the source contrasts nothing
        maps = ContraCAM(encoder=encoder, head=head, source="channel-norm-test", edges=False)(images)
        with torch.no_grad():
            expected = minmax_normalize(upsample_maps(encoder(images).norm(dim=1, keepdim=True), (32, 32)))
        torch.testing.assert_close(maps, expected.clamp(0, 1))
        with pytest.raises(ValueError, match="new, non-empty name"):
            register_map_source(type("Twin", (_ChannelNorm,), {}))  # same name, another class
    finally:
        MAP_SOURCES.pop("channel-norm-test")


def test_register_refuses_non_sources() -> None:
    with pytest.raises(TypeError, match="MapSource subclass"):
        register_map_source(int)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        register_map_source(type("NoName", (MapSource,), {}))


@pytest.mark.parametrize("option", [dict(temperature=0.2), dict(hard_negatives=4)])
def test_options_a_source_ignores_are_refused_naming_both(option: dict) -> None:
    register_map_source(_ChannelNorm)
    try:
        encoder, head = _encoder_head()
        name = next(iter(option))
        with pytest.raises(ValueError, match=f"{name}=.*no effect with source='channel-norm-test'"):
            ContraCAM(encoder=encoder, head=head, source="channel-norm-test", **option)
        ContraCAM(encoder=encoder, head=head, source="channel-norm-test", temperature=1.0, hard_negatives=None)
    finally:
        MAP_SOURCES.pop("channel-norm-test")


def test_negatives_with_a_source_that_ignores_them_warn_naming_both() -> None:
    register_map_source(_ChannelNorm)
    try:
        encoder, head = _encoder_head()
        cam = ContraCAM(encoder=encoder, head=head, source="channel-norm-test", edges=False)
        images = torch.randn(2, 3, 32, 32)
        with pytest.warns(UserWarning, match="negatives= have no effect with source='channel-norm-test'"):
            with_bank = cam(images, negatives=torch.randn(5, 8))
        assert torch.equal(with_bank, cam(images))
    finally:
        MAP_SOURCES.pop("channel-norm-test")


def test_attention_refuses_temperature_and_hard_negatives() -> None:
    encoder, head = _encoder_head()
    with pytest.raises(ValueError, match="temperature=0.5 has no effect with source='attention'"):
        ContraCAM(encoder=encoder, head=head, source="attention", temperature=0.5)
    with pytest.raises(ValueError, match="hard_negatives=3 has no effect with source='attention'"):
        ContraCAM(encoder=encoder, head=head, source="attention", hard_negatives=3)
    with pytest.raises(TypeError, match="needs a Vision Transformer"):  # the model check, after the options
        ContraCAM(encoder=encoder, head=head, source="attention")
