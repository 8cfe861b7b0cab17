"""ObjectAwareStep on Lightly's own SimCLR / MoCo / BYOL model structures (real lightly modules)."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

pytest.importorskip("lightly")

from lightly.loss import NegativeCosineSimilarity, NTXentLoss  # noqa: E402
from lightly.models.modules import (  # noqa: E402
    BYOLPredictionHead,
    BYOLProjectionHead,
    MoCoProjectionHead,
    SimCLRProjectionHead,
)
from lightly.models.utils import deactivate_requires_grad  # noqa: E402

from objaug.augment.pipeline import ViewConfig  # noqa: E402
from objaug.augment.views import byol_views, moco_v2_views, simclr_views  # noqa: E402
from objaug.config import BoxConfig, CamConfig, ScheduleConfig  # noqa: E402
from objaug.integrations.lightly.device_step import ObjectAwareStep, memory_bank_negatives  # noqa: E402
from objaug.masks import masks_from_uint8, masks_to_uint8  # noqa: E402

SIZE = 64  # 2x2 last maps for resnet18 (32 px gives 1x1, which ContraCAM refuses)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def resnet_backbone() -> nn.Module:
    """Lightly's examples: ``nn.Sequential(*list(resnet18().children())[:-1])``."""
    return nn.Sequential(*list(torchvision.models.resnet18().children())[:-1])


class SimCLR(nn.Module):  # examples/pytorch/simclr.py
    def __init__(self):
        super().__init__()
        self.backbone = resnet_backbone()
        self.projection_head = SimCLRProjectionHead(512, 512, 128)

    def forward(self, x):
        return self.projection_head(self.backbone(x).flatten(start_dim=1))


class MoCo(nn.Module):  # examples/pytorch/moco.py
    def __init__(self):
        super().__init__()
        self.backbone = resnet_backbone()
        self.projection_head = MoCoProjectionHead(512, 512, 128)
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)

    def forward(self, x):
        return self.projection_head(self.backbone(x).flatten(start_dim=1))

    def forward_momentum(self, x):
        return self.projection_head_momentum(self.backbone_momentum(x).flatten(start_dim=1)).detach()


class BYOL(nn.Module):  # examples/pytorch/byol.py
    def __init__(self):
        super().__init__()
        self.backbone = resnet_backbone()
        self.projection_head = BYOLProjectionHead(512, 1024, 256)
        self.prediction_head = BYOLPredictionHead(256, 1024, 256)
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)


def images(b: int = 8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 3, SIZE, SIZE, generator=g) * 0.3
    for i in range(b):  # one bright square per image, at varying places
        y0, x0 = (i * 5) % 16, (i * 7) % 16
        x[i, i % 3, y0:y0 + 14, x0:x0 + 14] = 1.0
    return x


def buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.named_buffers()}


def assert_untouched(model: nn.Module, before: dict[str, torch.Tensor], modes: dict[str, bool]) -> None:
    after = dict(model.named_buffers())
    assert before.keys() == after.keys()
    for k, v in before.items():
        assert torch.equal(v, after[k]), f"buffer {k} changed (BatchNorm statistics updated by the CAM pass?)"
    assert all(p.grad is None for p in model.parameters()), "the CAM pass left gradients on parameters"
    assert {n: m.training for n, m in model.named_modules()} == modes


def modes(model: nn.Module) -> dict[str, bool]:
    return {n: m.training for n, m in model.named_modules()}


# ------------------------------------------------------------------------------------------ model structures
def test_simclr_online_encoder_cam():
    torch.manual_seed(0)
    model = SimCLR().train()
    before, m = buffers(model), modes(model)
    step = ObjectAwareStep(simclr_views(SIZE), model=model)
    views = step(images())
    assert len(views) == 2 and all(v.shape == (8, 3, SIZE, SIZE) and v.dtype == torch.float32 for v in views)
    assert all(not v.requires_grad for v in views)
    assert_untouched(model, before, m)
    boxes, valid = step.last_objects.boxes, step.last_objects.valid
    assert boxes.shape == (8, 4, 4) and valid.shape == (8, 4) and valid.any(1).all()
    params = step.last_params  # one dict per view: where each crop came from
    assert len(params) == 2 and all(p["crop_boxes"].shape == (8, 4) for p in params)
    assert all(p["object"].dtype == torch.bool and p["object"].shape == (8,) for p in params)
    # the model is not registered in the step (not moved / saved with it)
    assert not any(p is q for p in step.parameters() for q in model.parameters())
    assert step.state_dict() == {} or all(not k.startswith("cam") for k in step.state_dict())


def test_moco_momentum_encoder_with_memory_bank_negatives():
    torch.manual_seed(1)
    model = MoCo().train()
    criterion = NTXentLoss(memory_bank_size=(64, 128))
    bank, ptr = criterion.memory_bank.bank.clone(), criterion.memory_bank.bank_ptr.clone()
    before, m = buffers(model), modes(model)
    seen: list[torch.Tensor | None] = []

    step = ObjectAwareStep(moco_v2_views(SIZE), model=model.backbone_momentum,
                           projector=model.projection_head_momentum, criterion=criterion)
    cam = step.cam

    def spy(x, negatives=None):
        seen.append(negatives)
        return cam(x, negatives=negatives)

    object.__setattr__(step, "cam", spy)
    x_query, x_key = step(images())
    assert x_query.shape == x_key.shape == (8, 3, SIZE, SIZE)
    assert seen[0] is not None and seen[0].shape == (64, 128)
    assert torch.equal(seen[0], bank)
    assert torch.equal(criterion.memory_bank.bank, bank) and torch.equal(criterion.memory_bank.bank_ptr, ptr)
    assert_untouched(model, before, m)
    assert all(not p.requires_grad for p in model.backbone_momentum.parameters())
    # the training step afterwards still works and updates the bank as usual
    loss = criterion(model(x_query), model.forward_momentum(x_key))
    loss.backward()
    assert not torch.equal(criterion.memory_bank.bank, bank)


def test_from_model_finds_the_encoders_and_the_loss():
    moco, simclr = MoCo(), SimCLR()
    moco.criterion = NTXentLoss(memory_bank_size=(16, 128))
    step = ObjectAwareStep.from_model(moco, moco_v2_views(SIZE))
    assert step.cam.split.encoder[0] is moco.backbone_momentum[0] and step.criterion is moco.criterion
    assert step.cam.split.head[-1] is moco.projection_head_momentum
    step = ObjectAwareStep.from_model(simclr, simclr_views(SIZE))
    assert step.cam.split.encoder[0] is simclr.backbone[0] and step.criterion is None
    with pytest.raises(TypeError, match="backbone"):
        ObjectAwareStep.from_model(nn.Linear(2, 2))


def test_memory_bank_negatives_helper():
    assert memory_bank_negatives(NTXentLoss()) is None
    assert memory_bank_negatives(NTXentLoss(memory_bank_size=(16, 8))).shape == (16, 8)
    assert memory_bank_negatives(object()) is None


def test_byol_momentum_encoder_and_a_mixup_view():
    torch.manual_seed(2)
    model = BYOL().train()
    before, m = buffers(model), modes(model)
    step = ObjectAwareStep(byol_views(SIZE, mixup=True), model=model.backbone_momentum,
                           projector=model.projection_head_momentum)
    v1, v2 = step(images())
    assert v1.shape == v2.shape == (8, 3, SIZE, SIZE)
    assert_untouched(model, before, m)
    assert step.augment._params[0]["masks"].shape == (8, 1, SIZE, SIZE)


def test_cam_on_a_smaller_copy_of_the_images():
    torch.manual_seed(3)
    model = SimCLR()
    step = ObjectAwareStep(simclr_views(SIZE, mixup=True), model=model, cam_size=48)
    views = step(images(b=4, seed=1))
    assert views[0].shape == (4, 3, SIZE, SIZE)
    assert step.augment._params[0]["masks"].shape == (4, 1, SIZE, SIZE)


# ------------------------------------------------------------------------------------------ training
def test_a_few_optimisation_steps_lower_the_loss():
    """SimCLR trained through the step (the online CAM runs on the model between optimiser steps).

    Each step trains on fresh views plus one fixed pair of views; the loss on the fixed pair goes down
    (the CAM pass leaves no gradient, mode or BatchNorm change behind that would disturb training).
    """
    torch.manual_seed(4)
    model = SimCLR()
    criterion = NTXentLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06)
    step = ObjectAwareStep(simclr_views(SIZE), model=model)
    x = images(b=8)
    f0, f1 = (v.clone() for v in step(x))

    def fixed_loss() -> float:
        with torch.no_grad():
            return float(criterion(model(f0), model(f1)))

    start = fixed_loss()
    for _ in range(3):
        x0, x1 = step(x)
        loss = criterion(model(torch.cat([f0, x0])), model(torch.cat([f1, x1])))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert fixed_loss() < start - 0.05


# ------------------------------------------------------------------------------------------ sources of boxes
PLAIN = ViewConfig(input_size=8, cj_prob=0.0, random_gray_scale=0.0, gaussian_blur=0.0, normalize=None, hf_prob=0.0)


def two_colour(b: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Blue images with a red box at (x 0.25..0.75, y 0.5..1.0)."""
    x = torch.zeros(b, 3, 16, 16)
    x[:, 2] = 1.0
    x[:, :, 8:16, 4:12] = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    return x, torch.tensor([[0.25, 0.5, 0.75, 1.0]]).expand(b, 1, 4).clone()


class Store:
    def __init__(self, boxes):
        self.boxes = boxes
        self.requests: list[torch.Tensor] = []

    def get_batch(self, indexes):
        self.requests.append(indexes)
        return self.boxes[indexes], torch.ones(len(indexes), 1, dtype=torch.bool)


def test_boxes_from_a_store_by_index():
    torch.manual_seed(5)
    x, boxes = two_colour()
    store = Store(boxes.repeat(3, 1, 1))  # 12 samples
    step = ObjectAwareStep([PLAIN, PLAIN], store=store)
    views = step(x, indexes=torch.tensor([3, 7, 0, 11]))
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    assert all(torch.allclose(v, red.expand_as(v)) for v in views)
    assert store.requests[0].tolist() == [3, 7, 0, 11]
    with pytest.raises(ValueError, match="indexes"):
        step(x)


def test_explicit_boxes_and_transform_batch():
    torch.manual_seed(6)
    x, boxes = two_colour()
    step = ObjectAwareStep([PLAIN, PLAIN])
    batch = [x, torch.zeros(4), {"boxes": boxes, "valid": torch.ones(4, 1, dtype=torch.bool)}]
    out = step.transform_batch(batch)
    x0, x1 = out[0]
    assert torch.allclose(x0, torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).expand_as(x0))
    assert out[1] is batch[1] and len(out) == 3


def test_refresh_every_n_steps_caches_boxes_by_index():
    torch.manual_seed(7)
    model = SimCLR()
    calls: list[int] = []
    step = ObjectAwareStep(simclr_views(SIZE), model=model, schedule=ScheduleConfig(every_n_steps=3), num_samples=20)
    cam = step.cam

    def counting(x, negatives=None):
        calls.append(x.shape[0])
        return cam(x, negatives=negatives)

    object.__setattr__(step, "cam", counting)
    x = images()
    idx = torch.arange(8)
    step(x, indexes=idx)  # call 1: refresh
    cached = (step.last_objects.boxes, step.last_objects.valid)
    step(x[:4], indexes=idx[:4])  # call 2: cache
    assert torch.equal(step.last_objects.boxes, cached[0][:4]) and torch.equal(step.last_objects.valid, cached[1][:4])
    step(x[:4], indexes=torch.tensor([10, 11, 0, 1]))  # call 3: cache; 10 and 11 never computed
    assert not step.last_objects.valid[:2].any() and torch.equal(step.last_objects.valid[2:], cached[1][:2])
    step(x, indexes=idx)  # call 4: refresh
    assert calls == [8, 8]
    with pytest.raises(ValueError, match="indexes"):
        step(x)


def test_bad_input_and_configuration_give_clear_errors():
    model = SimCLR()
    step = ObjectAwareStep(simclr_views(SIZE), model=model)
    with pytest.raises(ValueError, match="4-D"):
        step(torch.rand(3, SIZE, SIZE))
    with pytest.raises(ValueError, match=r"\(B, K, 4\)"):
        step(torch.rand(2, 3, SIZE, SIZE), boxes=torch.rand(2, 4))
    with pytest.raises(ValueError, match="batch size"):
        step(torch.rand(2, 3, SIZE, SIZE), boxes=torch.rand(3, 1, 4))
    with pytest.raises(ValueError, match="channels"):
        step(torch.rand(2, 1, SIZE, SIZE))
    with pytest.raises(ValueError, match=r"\(B,\)"):
        ObjectAwareStep([PLAIN], store=Store(torch.zeros(4, 1, 4)))(torch.rand(2, 3, 16, 16),
                                                                      indexes=torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="No source of objects"):
        ObjectAwareStep([PLAIN])(torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match="num_samples"):
        ObjectAwareStep(simclr_views(SIZE), model=model, schedule=ScheduleConfig(every_n_steps=5))
    with pytest.raises(ValueError, match="every_n_steps"):
        ObjectAwareStep(simclr_views(SIZE), model=model, schedule=ScheduleConfig(every_n_steps=0))
    with pytest.raises(TypeError, match="not both"):
        ObjectAwareStep(simclr_views(SIZE), model=model, cam=lambda x, negatives=None: x)
    with pytest.raises(TypeError, match="get_batch"):
        ObjectAwareStep(simclr_views(SIZE), store=object())
    with pytest.raises(ValueError, match="threshold"):
        ObjectAwareStep(simclr_views(SIZE), model=model, box_config=BoxConfig(threshold=2.0))
    # the bank of a MoCo head of another dimension: ContraCAM says so
    step = ObjectAwareStep(simclr_views(SIZE), model=model, criterion=NTXentLoss(memory_bank_size=(16, 64)))
    with pytest.raises(ValueError, match="dimension"):
        step(images(b=2))


def test_byol_loss_runs_on_the_views():
    torch.manual_seed(8)
    model = BYOL()
    step = ObjectAwareStep(byol_views(SIZE), model=model.backbone_momentum, projector=model.projection_head_momentum)
    x0, x1 = step(images(b=4))
    p0 = model.prediction_head(model.projection_head(model.backbone(x0).flatten(1)))
    z1 = model.projection_head_momentum(model.backbone_momentum(x1).flatten(1)).detach()
    loss = NegativeCosineSimilarity()(p0, z1)
    loss.backward()
    assert torch.isfinite(loss)


def test_mask_iters_masks_from_the_first_steps_boxes_from_all():
    """The paper's split: boxes from T=3 (here) refined maps, mixup masks from the T=1 map, one CAM call."""
    from objaug import ContraCAM, boxes_from_steps

    torch.manual_seed(0)
    model = SimCLR().eval()
    x = images()
    step = ObjectAwareStep(simclr_views(SIZE, mixup=True), model=model, cam_config=CamConfig(iters=3, mask_iters=1))
    seen: dict[str, torch.Tensor] = {}
    forward = step.augment.forward

    def spy(images, *args, objects=None, **kw):
        seen["boxes"], seen["masks"] = objects.boxes, objects.masks
        return forward(images, *args, objects=objects, **kw)

    object.__setattr__(step.augment, "forward", spy)
    step(x)
    norm = (x - step.provider.cam_mean) / step.provider.cam_std
    union, steps = ContraCAM(model, iters=3)(norm, return_steps=True)
    # masks of the first iteration equal ContraCAM(iters=1)'s output (its edge refinement included)
    torch.testing.assert_close(seen["masks"], ContraCAM(model, iters=1)(norm))
    assert not torch.allclose(seen["masks"], union)  # refinement changed the union
    # refined boxes are each iteration's own (objaug.boxes_from_steps), not the union's components
    torch.testing.assert_close(seen["boxes"], boxes_from_steps(steps)[0])
    with pytest.raises(ValueError, match="mask_iters"):
        CamConfig(iters=3, mask_iters=4)
    with pytest.raises(ValueError, match="mask_iters needs cam="):
        ObjectAwareStep(simclr_views(SIZE, mixup=True), cam=lambda im, negatives=None: im[:, :1],
                        cam_config=CamConfig(mask_iters=1))


def test_mixup_with_cached_masks_between_refreshes():
    """Masks are cached per index (uint8) with the boxes: mixup views work with every_n_steps > 1."""
    torch.manual_seed(3)
    model = SimCLR().eval()
    step = ObjectAwareStep(simclr_views(SIZE, mixup=True), model=model, schedule=ScheduleConfig(every_n_steps=2),
                           num_samples=8, cache_mask_size=8)
    x, idx = images(), torch.arange(8)
    step(x, indexes=idx)  # refresh: CAM, written to the cache
    fresh = step.last_objects
    assert fresh.origin == "cam" and step.provider.cache is not None and step.provider.cache.masks is not None
    step(x, indexes=idx)  # cached: the same boxes, the masks as stored (uint8 at 8 px)
    cached = step.last_objects
    assert cached.origin == "cache" and cached.masks is not None and cached.masks.shape == (8, 1, 8, 8)
    torch.testing.assert_close(cached.boxes, fresh.boxes)
    expected = masks_from_uint8(masks_to_uint8(F.interpolate(fresh.masks, size=(8, 8), mode="area")))
    torch.testing.assert_close(cached.masks, expected)
    assert "mixed" in step.last_params[0]


def test_mixup_start_step_mixes_from_that_call_on():
    """Calls before ``mixup_start_step`` give the mixup view unmixed (the same pixels as a step without mixup,
    same seed); from that call on it is mixed. The objects are found on every call all the same."""
    from objaug.augment.mixup import BackgroundMixup

    x = images()
    boxes = torch.tensor([[0.1, 0.1, 0.6, 0.6]]).expand(8, 1, 4).contiguous()
    masks = torch.zeros(8, 1, SIZE, SIZE)
    masks[..., 8:36, 8:36] = 1.0
    late = ObjectAwareStep(simclr_views(SIZE, mixup=True), mixup=BackgroundMixup(p=1.0, queue_size=0),
                           mixup_start_step=2, check_inputs=False)
    plain = ObjectAwareStep(simclr_views(SIZE), check_inputs=False)
    late.stats.check_every = 2  # the "nothing mixed" warning must not count the calls before the start
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for call in range(3):
            torch.manual_seed(call)
            views = late(x, boxes=boxes, masks=masks)
            torch.manual_seed(call)
            reference = plain(x, boxes=boxes, masks=masks)
            if call < 2:
                assert "mixed" not in late.last_params[0]
                assert torch.isnan(late.stats.shares()["mixed"])
                torch.testing.assert_close(views[0], reference[0])
            else:
                assert bool(late.last_params[0]["mixed"].all())
                assert not torch.allclose(views[0], reference[0])
    assert late.calls == 3 and float(late.stats.shares(last=True)["mixed"]) == 1.0


def test_mixup_start_step_needs_a_mixup_view():
    with pytest.raises(ValueError, match="mixup_start_step=3 has no effect: no view has mixup=True"):
        ObjectAwareStep(simclr_views(SIZE), mixup_start_step=3)
    with pytest.raises(ValueError, match="mixup_start_step"):
        ObjectAwareStep(simclr_views(SIZE, mixup=True), mixup_start_step=-1)


def test_masks_alone_are_boxed_with_the_steps_box_config():
    """Masks passed without boxes are read with the step's ``box_config`` (not a default) and count as a call."""
    from objaug.objects import boxes_of_maps

    masks = torch.zeros(8, 1, SIZE, SIZE)
    masks[..., 4:20, 4:20] = 0.6
    masks[..., 40:60, 30:62] = 1.0
    config = BoxConfig(threshold=0.8, margin=0.0)
    step = ObjectAwareStep(simclr_views(SIZE), box_config=config)
    step(images(), masks=masks)
    expected = boxes_of_maps(masks, config)
    torch.testing.assert_close(step.last_objects.boxes, expected[0])
    assert torch.equal(step.last_objects.valid, expected[1])
    assert not torch.equal(expected[1], boxes_of_maps(masks)[1])  # the default config finds the second box too
    assert step.calls == 1


# ------------------------------------------------------------------------------------------ Vision Transformers
@pytest.mark.filterwarnings("ignore::FutureWarning")  # DINOProjectionHead uses weight_norm
def test_vit_online_cam_with_lightlys_masked_vit_and_the_attention_source():
    timm = pytest.importorskip("timm")
    from lightly.models.modules import DINOProjectionHead, MaskedVisionTransformerTIMM

    from objaug.contracam import ContraCAM

    class DINOViT(nn.Module):  # lightly's DINO / MAE examples: a masked-ViT backbone and a projection head
        def __init__(self):
            super().__init__()
            vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=SIZE,
                                    patch_size=8, depth=2)
            self.backbone = MaskedVisionTransformerTIMM(vit=vit)
            self.projection_head = DINOProjectionHead(192, 64, 16, 32)

        def forward(self, x):
            return self.projection_head(self.backbone(x))

    torch.manual_seed(0)
    model = DINOViT().train()
    before, m = buffers(model), modes(model)
    for cam in (None, ContraCAM(model, source="attention")):
        step = ObjectAwareStep(simclr_views(SIZE, mixup=True), model=model) if cam is None else \
            ObjectAwareStep(simclr_views(SIZE), cam=cam)
        views = step(images())
        assert len(views) == 2 and all(v.shape == (8, 3, SIZE, SIZE) for v in views)
        boxes, valid = step.last_objects.boxes, step.last_objects.valid
        assert boxes.shape == (8, 4, 4) and valid.any(1).all()
        assert_untouched(model, before, m)
