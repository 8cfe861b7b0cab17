"""The solo-learn callback with a real Lightning Trainer on the CPU and a module written to solo-learn's
contract (see test_solo_learn_support.py). The callback is the one the entry point adds (no
``callbacks=``), unless a test says otherwise."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("lightning")
pytest.importorskip("omegaconf")

from test_solo_learn_support import (  # noqa: E402
    CAM_SIZE,
    SIZE,
    STORE_CLS,
    BlobDataset,
    ContractMethod,
    CoordDataset,
    box_store,
    entry_point_on,
    fit,
    make_cfg,
    objaug_callbacks,
    pipeline,
    single_thread,
)

from objaug.integrations.solo_learn import ObjaugConfigError, SoloObjectAwareCallback  # noqa: E402
from objaug.integrations.solo_learn.config import parse_objaug_config  # noqa: E402

__all__ = ["entry_point_on", "single_thread"]  # the autouse fixtures, imported

HALF_PIXEL = 0.5 / SIZE
EPS = 1e-4


def store_block(**extra):
    block = {"enabled": True, "source": "store", "store": {"path": "memory:8", "cls": STORE_CLS}}
    block.update(extra)
    return block


def test_entry_point_adds_the_callback_to_every_trainer():
    import lightning.pytorch as L

    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False)
    found = objaug_callbacks(trainer)
    assert len(found) == 1 and isinstance(found[0], SoloObjectAwareCallback) and found[0].from_entry_point


def test_entry_point_for_pytorch_lightning():
    pl = pytest.importorskip("pytorch_lightning")
    from objaug.integrations.solo_learn.pl_callback import SoloObjectAwareCallback as PLCallback

    found = objaug_callbacks(pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False))
    assert len(found) == 1 and isinstance(found[0], PLCallback) and isinstance(found[0], pl.Callback)


def test_entry_point_discovery_is_cheap():
    """What the factory imports at module level (checked statically, no subprocess): Lightning, torch and
    objaug's config module; not the callback's tensor code, not Hydra/OmegaConf/Kornia (those load in
    ``setup``, only for an enabled block). ``import objaug`` itself is the package __init__'s business."""
    import ast
    from pathlib import Path

    import objaug.integrations.solo_learn as pkg

    root = Path(pkg.__file__).parent
    allowed = {"__future__", "collections.abc", "typing", "dataclasses", "difflib", "math", "contextlib", "logging",
               "warnings", "importlib", "os", "sys", "torch", "lightning.pytorch.callbacks",
               "pytorch_lightning.callbacks", "._hooks", ".config", "._parsers", "._setup", "._keys", "re", "types",
                   "objaug.config"}  # objaug.config: the shared configs, pure Python (no torch)
    for name in ("__init__.py", "callback.py", "pl_callback.py", "_hooks.py", "config.py", "_parsers.py", "_setup.py",
                 "_keys.py"):
        tree = ast.parse((root / name).read_text())
        for node in tree.body:  # module level only; TYPE_CHECKING blocks are not executed
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mods = ["." * node.level + (node.module or "")]
            else:
                continue
            assert set(mods) <= allowed, f"{name} imports {mods} at module level"


def test_store_crop_changes_what_training_step_sees():
    module = ContractMethod(make_cfg(store_block(crop={"flip_prob": 0.0})))
    trainer = fit(module, CoordDataset(8), steps=2)
    (cb,) = objaug_callbacks(trainer)
    assert cb.active
    store = cb.engine.store
    assert len(module.seen) == 2
    expected = box_store(8)
    for step, request in zip(module.seen, store.requests, strict=True):
        assert torch.equal(request, step["indexes"])  # the store is asked for the batch's own images
        for x in step["X"]:  # both views re-cropped inside each image's own box, at the view's size
            assert x.shape == (4, 3, SIZE, SIZE)
            box = expected.boxes[step["indexes"], 0]
            xs, ys = x[:, 0], x[:, 1]
            assert (xs.amin((1, 2)) >= torch.clamp(box[:, 0], min=HALF_PIXEL) - EPS).all()
            assert (xs.amax((1, 2)) <= torch.clamp(box[:, 2], max=1 - HALF_PIXEL) + EPS).all()
            assert (ys.amin((1, 2)) >= torch.clamp(box[:, 1], min=HALF_PIXEL) - EPS).all()
            assert (ys.amax((1, 2)) <= torch.clamp(box[:, 3], max=1 - HALF_PIXEL) + EPS).all()
            # a real crop, not the full frame; the right image (channel 2 = index / 1000)
            assert ((xs.amax((1, 2)) - xs.amin((1, 2))) < 0.45).all()
            assert torch.allclose(x[:, 2].mean((1, 2)), step["indexes"].float() / 1000, atol=1e-6)
        assert not torch.equal(step["X"][0], step["X"][1])  # independent crops per view


def test_flip_and_whole_frame_crops():
    module = ContractMethod(make_cfg(store_block(crop={"box_p": 0.0, "flip_prob": 1.0, "scale": [0.2, 0.5]})))
    fit(module, CoordDataset(8), steps=1)
    x = module.seen[0]["X"][0]
    assert (x[:, 0, :, 0] > x[:, 0, :, -1]).all()  # flipped: x decreases left to right
    span = (x[:, 0].amax((1, 2)) - x[:, 0].amin((1, 2))) * (x[:, 1].amax((1, 2)) - x[:, 1].amin((1, 2)))
    assert (span < 0.55).all()  # area fraction of the whole frame within crop.scale (minus half pixels)


def test_min_box_pixels_grows_the_store_boxes_to_the_whole_frame():
    crop = {"flip_prob": 0.0, "scale": [1.0, 1.0], "ratio": [1.0, 1.0], "min_box_pixels": SIZE}
    module = ContractMethod(make_cfg(store_block(crop=crop)))
    fit(module, CoordDataset(8), steps=1)
    assert parse_objaug_config({"crop": {"min_box_pixels": SIZE}}).crop.min_box_pixels == SIZE
    for x in module.seen[0]["X"]:  # every box side grown to SIZE pixels: the crop is the whole frame
        xs, ys = x[:, 0], x[:, 1]
        for c in (xs, ys):
            torch.testing.assert_close(c.amin((1, 2)), torch.full((4,), HALF_PIXEL), atol=1e-3, rtol=0)
            torch.testing.assert_close(c.amax((1, 2)), torch.full((4,), 1 - HALF_PIXEL), atol=1e-3, rtol=0)


def test_only_configured_views_are_rewritten():
    cfg = make_cfg(store_block(views=[1]), pipelines=[pipeline(full=False, flip=0.5), pipeline()])
    module = ContractMethod(cfg)
    fit(module, CoordDataset(8), steps=1)
    x0, x1 = module.seen[0]["X"]
    frames = torch.stack([CoordDataset(8)[i][1][0] for i in range(4)])
    assert torch.equal(x0, frames)  # view 0 untouched
    assert not torch.equal(x1, frames)


def test_mixup_on_view_zero_with_store_masks():
    block = store_block(crop={"box_p": 0.0, "scale": [0.9, 1.0]}, mixup={"enabled": True, "views": [0], "p": 1.0})
    module = ContractMethod(make_cfg(block))
    trainer = fit(module, CoordDataset(8), steps=1)
    (cb,) = objaug_callbacks(trainer)
    mixed = cb.engine.last_info["mixed"]
    assert set(mixed) == {0} and bool(mixed[0].any())
    x0 = module.seen[0]["X"][0]
    idx = module.seen[0]["indexes"].float() / 1000
    # mixed images borrow background pixels from their partner (perm): channel 2 (the image id) changes
    perm = cb.engine.mixers["0"]._params["perm"]
    changed = (x0[:, 2] - idx.view(-1, 1, 1)).abs().amax((1, 2)) > 1e-4
    assert torch.equal(changed, mixed[0] & (perm != torch.arange(4)))
    assert torch.allclose(module.seen[0]["X"][1][:, 2], idx.view(-1, 1, 1).expand(4, SIZE, SIZE), atol=1e-6)  # unmixed


def test_mixup_start_step_leaves_the_first_batches_unmixed():
    """``mixup.start_step: 2``: batches 0 and 1 are cropped but not mixed, batch 2 on mixes as configured."""
    block = store_block(crop={"box_p": 0.0, "scale": [0.9, 1.0]},
                        mixup={"enabled": True, "views": [0], "p": 1.0, "start_step": 2})
    module = ContractMethod(make_cfg(block))
    trainer = fit(module, CoordDataset(8), steps=3)
    (cb,) = objaug_callbacks(trainer)
    changed = []
    for seen in module.seen:
        idx = seen["indexes"].float() / 1000  # channel 2 is the image's id unless a background was borrowed
        changed.append((seen["X"][0][:, 2] - idx.view(-1, 1, 1)).abs().amax((1, 2)) > 1e-4)
    assert not changed[0].any() and not changed[1].any()
    # batch 2 mixes every image (p = 1); those whose partner is another image show its id (as in the test above)
    mixed = cb.engine.last_info["mixed"]
    perm = cb.engine.mixers["0"]._params["perm"]
    assert set(mixed) == {0} and bool(mixed[0].all())
    assert torch.equal(changed[2], perm != torch.arange(4))


def test_mixup_start_step_needs_mixup():
    with pytest.raises(ObjaugConfigError, match=r"objaug.mixup.start_step=5 has no effect.*mixup.enabled"):
        parse_objaug_config(store_block(mixup={"start_step": 5}))


@pytest.mark.parametrize("block", [None, {"enabled": False}, {}])
def test_inert_without_block_or_disabled(block):
    module = ContractMethod(make_cfg(block))
    trainer = fit(module, CoordDataset(8), steps=1)
    assert not objaug_callbacks(trainer)[0].active
    frames = torch.stack([CoordDataset(8)[i][1][0] for i in range(4)])
    assert all(torch.equal(x, frames) for x in module.seen[0]["X"])


def test_inert_without_cfg_or_augmentations():
    module = ContractMethod(make_cfg(store_block()))
    del module.cfg
    trainer = fit(module, CoordDataset(8), steps=1)
    assert not objaug_callbacks(trainer)[0].active
    module = ContractMethod(make_cfg(store_block()))
    del module.cfg["augmentations"]  # a linear-eval style config
    with pytest.warns(UserWarning, match="stays inactive"):
        trainer = fit(module, CoordDataset(8), steps=1)
    assert not objaug_callbacks(trainer)[0].active


@pytest.mark.parametrize(
    ("block", "match"),
    [
        (store_block(crop={"scael": [0.1, 1.0]}), r"objaug\.crop\.scael.*Did you mean objaug\.crop\.scale"),
        (store_block(source="cam"), r"objaug\.source must be one of 'store', 'online'"),
        (store_block(crop={"scale": [0.5, 2.0]}), r"objaug\.crop\.scale must satisfy 0.0 < min <= max <= 1.0"),
        (store_block(views=[0, 5]), r"view 5 does not exist"),
        ({"enabled": True, "source": "store"}, r"objaug\.store\.path is not set"),
        (store_block(mixup={"enabled": True, "views": [1]}, views=[0]), r"mixup\.views \[1\] must be a subset"),
    ],
)
def test_bad_block_fails_before_training(block, match):
    module = ContractMethod(make_cfg(block))
    with pytest.raises(ObjaugConfigError, match=match):
        fit(module, CoordDataset(8), steps=1)
    assert module.seen == []


def test_pipeline_that_is_not_full_frame_is_refused():
    cfg = make_cfg(store_block(), pipelines=[pipeline(full=False), pipeline()])
    with pytest.raises(ObjaugConfigError, match=r"augmentations\[0\]\.rrc\.crop_min_scale: 1\.0"):
        fit(ContractMethod(cfg), CoordDataset(8), steps=1)
    cfg = make_cfg(store_block(), pipelines=[pipeline(), pipeline(flip=0.5)])
    with pytest.raises(ObjaugConfigError, match=r"augmentations\[1\]\.horizontal_flip\.prob: 0\.0"):
        fit(ContractMethod(cfg), CoordDataset(8), steps=1)


def test_explicit_callback_replaces_the_entry_point_one():
    store = box_store(8)
    explicit = SoloObjectAwareCallback(store_block(store={"path": "unused"}), store=store)
    module = ContractMethod(make_cfg(None))
    trainer = fit(module, CoordDataset(8), steps=1, callbacks=[explicit])
    cbs = objaug_callbacks(trainer)
    assert len(cbs) == 2
    assert [cb.active for cb in cbs if cb.from_entry_point] == [False] and explicit.active
    assert len(store.requests) == 1  # augmented once, by the explicit callback


def test_online_cam_momentum_bf16_channels_last():
    block = {"enabled": True, "source": "online", "online": {"model": "momentum"},
             "mixup": {"enabled": True, "views": [0]}, "boxes": {"map_size": 16}}
    module = ContractMethod(make_cfg(block), momentum=True, channels_last=True)
    module = module.to(memory_format=torch.channels_last)
    bn = module.momentum_backbone.bn1
    dtypes = []  # the momentum encoder runs only in the CAM: it must run under the trainer's autocast
    module.momentum_backbone.layer4.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    trainer = fit(module, BlobDataset(8), steps=1, precision="bf16-mixed")
    assert dtypes == [torch.bfloat16] * 2  # the first batch's set-up dry run (2 images), then the CAM
    (cb,) = objaug_callbacks(trainer)
    assert cb.engine.last_info["cam"] is True and cb.engine.batches_seen == 1
    assert module.seen[0]["autocast"]
    # the momentum encoder is never run in train mode by anyone: the CAM left its BN statistics alone
    assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean)) and int(bn.num_batches_tracked) == 0
    assert module.momentum_backbone.training and module.training
    frames = torch.stack([BlobDataset(8)[i][1][0] for i in range(4)])
    assert not torch.equal(module.seen[0]["X"][0], frames)
    assert all(torch.isfinite(x).all() for step in module.seen for x in step["X"])


class _Recorder:
    """Reads the objaug callback's per-batch info after each training step."""

    def __init__(self):
        import lightning.pytorch as L

        outer = self

        class Rec(L.Callback):
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                info = objaug_callbacks(trainer)[-1].engine.last_info
                outer.cam.append(info["cam"])
                outer.object.append(info["object"].clone())

        self.cam: list[bool] = []
        self.object: list[torch.Tensor] = []
        self.callback = Rec()


def test_online_cache_every_n_steps():
    block = {"enabled": True, "source": "online", "online": {"model": "online", "every_n_steps": 2},
             "boxes": {"map_size": 16, "threshold": 0.3}}
    module = ContractMethod(make_cfg(block), record=False)
    rec = _Recorder()
    trainer = fit(module, BlobDataset(4), steps=3, batch_size=4, callbacks=[rec.callback])  # same 4 images each step
    (cb,) = objaug_callbacks(trainer)
    assert rec.cam == [True, False, True]  # step 1 reads the boxes cached per index on step 0
    assert bool(rec.object[1].any())  # cached boxes were used for object crops
    assert cb.engine.cache_boxes is None  # released in teardown


def test_online_cache_none_gives_whole_frame_crops_between_cam_batches():
    block = {"enabled": True, "source": "online", "online": {"every_n_steps": 2, "cache": "none"},
             "boxes": {"map_size": 16, "threshold": 0.3}}
    rec = _Recorder()
    fit(ContractMethod(make_cfg(block), record=False), BlobDataset(4), steps=2, batch_size=4,
        callbacks=[rec.callback])
    assert rec.cam == [True, False] and not bool(rec.object[1].any())


def test_cache_keeps_float16_boxes_and_uint8_masks():
    from objaug.integrations.solo_learn.views import SoloObjectAware
    from objaug.objects import Objects

    config = parse_objaug_config({"enabled": True, "source": "online", "online": {"every_n_steps": 3},
                                  "mixup": {"enabled": True}})
    eng = SoloObjectAware(config)
    eng.allocate_cache(10, torch.device("cpu"))
    cache = eng.provider.cache
    assert cache is not None and cache.boxes.dtype == torch.float16 and cache.masks is not None
    idx = torch.tensor([3, 7])
    boxes = torch.tensor([[[0.1, 0.2, 0.5, 0.6]] * 4, [[0.0, 0.0, 1.0, 1.0]] * 4])
    valid = torch.tensor([[True, False, False, False], [False] * 4])
    masks = torch.rand(2, 1, 64, 64)
    cache.write(idx, Objects(boxes, valid, masks))
    read = cache.read(torch.tensor([7, 3, 0]))
    b, v, m = read.boxes, read.valid, read.masks
    assert torch.allclose(b[1], boxes[0], atol=1e-3) and torch.equal(v[:2], valid.flip(0))
    assert not v[2].any() and m is not None and m.shape == (3, 1, 32, 32) and m[2].max() == 0
    small = torch.nn.functional.interpolate(masks, size=(32, 32), mode="area")
    assert torch.allclose(m[1], small[0], atol=1 / 255)


def test_a_cache_smaller_than_the_dataset_names_the_yaml_key():
    """The provider's size error names ``objaug.online.cache_size`` (the solo-learn user's key), as a config error."""
    config = parse_objaug_config({"enabled": True, "source": "online", "online": {"every_n_steps": 3}})
    from objaug.integrations.solo_learn.views import SoloObjectAware

    eng = SoloObjectAware(config)
    eng.allocate_cache(10, torch.device("cpu"))
    views = [torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)]
    cam = lambda x, negatives=None, return_steps=False: None  # noqa: E731 (never called: not a refresh batch)
    eng.provider.batches_seen = 1  # a cached batch: reads the cache
    with pytest.raises(ObjaugConfigError, match=r"objaug.online.cache_size=10 is too small for dataset index 12"):
        eng.step(views, torch.tensor([0, 12]), cam=cam)


def test_store_and_dataset_of_different_lengths_are_refused():
    module = ContractMethod(make_cfg(store_block(store={"path": "memory:12", "cls": STORE_CLS})))
    with pytest.raises(ObjaugConfigError, match="holds 12 samples but the training dataset has 8"):
        fit(module, CoordDataset(8), steps=1)


class _Pictures(torch.utils.data.Dataset):
    """BlobDataset's frames as [0, 1] images: what objaug precompute reads (same indexes)."""

    def __init__(self, n):
        self.blobs = BlobDataset(n)

    def __len__(self):
        return len(self.blobs)

    def __getitem__(self, i):
        return (self.blobs[i][1][0] * 0.25 + 0.45).clamp(0, 1)


def test_precomputed_object_store_is_the_default_store(tmp_path):
    import torchvision

    from objaug.store import ObjectStore, precompute

    model = torchvision.models.resnet18()
    model.fc = torch.nn.Identity()
    precompute(_Pictures(8), model, tmp_path / "store", image_size=64, batch_size=8, mask_size=16,
               num_workers=0, progress=False)
    block = {"enabled": True, "source": "store", "store": {"path": str(tmp_path / "store")},
             "mixup": {"enabled": True, "views": [0], "p": 1.0}, "crop": {"box_p": 0.5}}
    module = ContractMethod(make_cfg(block))
    trainer = fit(module, BlobDataset(8), steps=1)
    (cb,) = objaug_callbacks(trainer)
    assert isinstance(cb.engine.store, ObjectStore)
    frames = torch.stack([BlobDataset(8)[i][1][0] for i in range(4)])
    assert all(not torch.equal(x, frames) for x in module.seen[0]["X"])


def test_the_callback_logs_what_objaug_did_each_step():
    block = store_block(crop={"box_p": 1.0}, mixup={"enabled": True, "views": [0], "p": 1.0})
    module = ContractMethod(make_cfg(block))
    trainer = fit(module, CoordDataset(8), steps=2)
    (cb,) = objaug_callbacks(trainer)
    logged = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("objaug/")}
    names = {"objaug/boxed", "objaug/whole_frame", "objaug/mixed", "objaug/boxes_per_image", "objaug/cam_refreshes"}
    assert set(logged) == names | {n + "_step" for n in names} | {n + "_epoch" for n in names}
    assert logged["objaug/boxed"] == 1.0 and logged["objaug/whole_frame"] == 0.0  # every image has a real box
    assert logged["objaug/boxed_epoch"] == 1.0 and logged["objaug/cam_refreshes_epoch"] == 0.0
    assert logged["objaug/cam_refreshes"] == 0.0  # boxes from the store, no CAM
    assert logged["objaug/boxes_per_image"] >= 1.0
    assert logged["objaug/mixed"] == float(cb.engine.last_info["mixed"][0].float().mean())
    assert cb.engine.stats.steps == 2


@pytest.mark.parametrize("map_source", ["gradcam", "attention"])
def test_online_cam_with_a_vit_backbone(map_source):
    timm = pytest.importorskip("timm")
    from torch import nn

    block = {"enabled": True, "source": "online", "online": {"map_source": map_source},
             "mixup": {"enabled": True, "views": [0]}, "boxes": {"map_size": 16}}
    module = ContractMethod(make_cfg(block))
    torch.manual_seed(0)  # solo-learn's `backbone.name: vit_tiny`: a timm VisionTransformer, num_classes=0
    module.backbone = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0,
                                        img_size=CAM_SIZE, patch_size=8, depth=2)
    module.projector = nn.Sequential(nn.Linear(192, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 32))
    fused = {n: m.fused_attn for n, m in module.backbone.named_modules() if hasattr(m, "fused_attn")}
    trainer = fit(module, BlobDataset(8), steps=1)
    (cb,) = objaug_callbacks(trainer)
    assert cb.engine.last_info["cam"] is True
    frames = torch.stack([BlobDataset(8)[i][1][0] for i in range(4)])
    assert not torch.equal(module.seen[0]["X"][0], frames)
    assert module.backbone.training
    assert fused == {n: m.fused_attn for n, m in module.backbone.named_modules() if hasattr(m, "fused_attn")}


@pytest.mark.parametrize("every", [50, 1])
def test_stats_are_logged_as_epoch_means_in_runs_shorter_than_the_logging_interval(tmp_path, every):
    """solo-learn's default log_every_n_steps=50 and a 3-step run: the objaug/* numbers still reach the logger, as
    epoch values equal to the mean of the batches' own numbers (recorded after each batch by a spy)."""
    import csv

    import lightning.pytorch as L
    from lightning.pytorch.loggers import CSVLogger

    per_batch: list[dict[str, float]] = []

    class Spy(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            stats = objaug_callbacks(trainer)[0].engine.stats
            per_batch.append({k: float(v) for k, v in stats.shares(last=True).items()})

    cfg = make_cfg(store_block(crop={"box_p": 0.5}, mixup={"enabled": True, "p": 0.5},
                               store={"path": "memory:12", "cls": STORE_CLS}))
    trainer = fit(ContractMethod(cfg, record=False), CoordDataset(n=12), steps=3, callbacks=[Spy()],
                  logger=CSVLogger(str(tmp_path), name="run"), log_every_n_steps=every)
    with open(trainer.logger.experiment.metrics_file_path, newline="") as f:
        rows = list(csv.DictReader(f))
    names = ["boxed", "whole_frame", "mixed", "boxes_per_image"]
    (epoch,) = [r for r in rows if r.get("objaug/boxed_epoch")]
    assert len(per_batch) == 3 and {b["boxed"] for b in per_batch} != {per_batch[0]["boxed"]}  # values differ
    for name in names:  # equal batch sizes: the epoch value is the plain mean of the batches' values
        expected = sum(b[name] for b in per_batch) / 3
        assert float(epoch[f"objaug/{name}_epoch"]) == pytest.approx(expected, abs=1e-6), name
    assert float(epoch["objaug/cam_refreshes_epoch"]) == 0.0  # a store: no CAM
    steps = [r for r in rows if r.get("objaug/boxed_step")]
    if every == 1:  # the per-step values are still there, batch by batch
        assert [float(r["objaug/boxed_step"]) for r in steps] == pytest.approx([b["boxed"] for b in per_batch])
    else:
        assert len(steps) < 3  # at most the last step (Lightning's logging interval): the epoch row is what remains
