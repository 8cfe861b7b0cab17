"""Errors of objaug's library raised while the solo-learn callback sets up (or runs) name the YAML key
(``objaug.online.map_source``), not the Python argument (``source='gradcam'``): the real library errors, and
a real Trainer with the entry-point callback on a module written to solo-learn's contract."""

from __future__ import annotations

import pytest
import torch
import torchvision

from objaug.augment.mixup import BackgroundMixup
from objaug.contracam import ContraCAM
from objaug.integrations.solo_learn._keys import translate, yaml_keys
from objaug.integrations.solo_learn.config import ObjaugConfigError


def _resnet() -> torch.nn.Module:
    model = torchvision.models.resnet18()
    model.fc = torch.nn.Identity()
    return model


def test_contracam_errors_name_the_online_keys():
    with pytest.raises(TypeError) as plain:  # what the library says, for Python users
        ContraCAM(_resnet(), source="attention")
    assert "source='attention' needs a Vision Transformer" in str(plain.value)
    with pytest.raises(ObjaugConfigError) as err, yaml_keys():
        ContraCAM(_resnet(), source="attention")
    message = str(err.value)
    assert message.startswith("objaug.online.map_source=attention needs a Vision Transformer")
    assert "Use objaug.online.map_source=gradcam (the default)" in message
    assert "source=" not in message.replace("map_source=", "")
    assert isinstance(err.value.__cause__, TypeError)  # the original is chained
    with pytest.raises(ObjaugConfigError, match=r"^objaug\.online\.iters must be an int >= 1, got 0"), yaml_keys():
        ContraCAM(_resnet(), iters=0)


def test_the_same_argument_name_is_read_by_the_part_that_raised():
    with pytest.raises(ObjaugConfigError, match=r"^objaug\.mixup\.p must be a probability in \[0\.0, 1\.0\], got "
                                                r"1\.5"), yaml_keys():
        BackgroundMixup(p=1.5)
    with pytest.raises(ObjaugConfigError, match=r"^objaug\.mixup\.queue_size must be an int >= 0"), yaml_keys():
        BackgroundMixup(queue_size=-1)


def test_other_errors_pass_unchanged():
    with pytest.raises(ValueError, match=r"^source must be") as err, yaml_keys():
        raise ValueError("source must be 'a' or 'b'")  # not objaug's library: not translated
    assert not isinstance(err.value, ObjaugConfigError)
    with pytest.raises(ObjaugConfigError, match=r"^objaug\.crop\.p must"), yaml_keys():
        raise ObjaugConfigError("objaug.crop.p must be a number")
    with pytest.raises(RuntimeError), yaml_keys():
        raise RuntimeError("source=1")


def test_translate_rules():
    keys = {"source": "objaug.online.map_source", "expand_res": "objaug.online.expand_res"}
    assert translate("Use ContraCAM(source='gradcam') here.", keys) == "Use objaug.online.map_source=gradcam here."
    assert translate("Use larger images, expand_res=True (stride 1)", keys) == (
        "Use larger images, objaug.online.expand_res=true (stride 1)")
    assert translate("resource='x' and sources must", keys) is None  # whole names only
    assert translate("nothing here", keys) is None
    assert translate("CamConfig.iters must be an int >= 1, got 0. BoxConfig.connectivity must be 4 or 8", {}) == (
        "objaug.online.iters must be an int >= 1, got 0. objaug.boxes.connectivity must be 4 or 8")


def test_shared_config_errors_name_the_keys():
    from objaug.config import CamConfig

    with pytest.raises(ObjaugConfigError) as err, yaml_keys():
        CamConfig(map_source="attention", expand_res=True)
    message = str(err.value)
    assert message.startswith("objaug.online.expand_res=true needs a CNN's strided last stage, but "
                              "objaug.online.map_source=attention is for Vision Transformers")
    assert "or use objaug.online.map_source=gradcam on a CNN" in message


lightning = pytest.importorskip("lightning")
pytest.importorskip("omegaconf")

from test_solo_learn_support import (  # noqa: E402
    CAM_SIZE,
    SIZE,
    BlobDataset,
    ContractMethod,
    entry_point_on,
    fit,
    make_cfg,
    pipeline,
    single_thread,
)

__all__ = ["entry_point_on", "single_thread"]


def test_attention_on_a_resnet_is_named_by_its_key_in_a_real_run():
    block = {"enabled": True, "source": "online", "online": {"map_source": "attention"}}
    cfg = make_cfg(block, pipelines=[pipeline(crop_size=CAM_SIZE), pipeline(crop_size=CAM_SIZE)])
    with pytest.raises(ObjaugConfigError, match=r"objaug\.online\.map_source=attention needs a Vision Transformer"):
        fit(ContractMethod(cfg, record=False), BlobDataset(size=CAM_SIZE), steps=1)


def test_a_1x1_map_names_the_expand_res_key_in_a_real_run():
    cfg = make_cfg({"enabled": True, "source": "online"})  # 32-pixel frames: ResNet-18 maps are 1x1
    with pytest.raises(ObjaugConfigError, match=r"1x1 map.*objaug\.online\.expand_res=true"):
        fit(ContractMethod(cfg, record=False), BlobDataset(size=SIZE), steps=1)
