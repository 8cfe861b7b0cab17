"""The callback's logic, shared by the ``lightning`` and ``pytorch_lightning`` callback classes.

Imports neither Lightning package (:func:`callback_class` builds the callback class on the right
``Callback`` base, for :mod:`.callback` and :mod:`.pl_callback`) and nothing heavy at import time: the
tensor code of :mod:`.views` is imported in ``setup`` only when an enabled ``objaug`` block is found.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ._keys import library_message, yaml_keys
from .config import ObjaugConfig, ObjaugConfigError, check_solo_pipelines, full_frame_fixes, parse_objaug_config

if TYPE_CHECKING:
    from .views import BoxStore, SoloObjectAware

__all__ = ["ObjectAwareHooks"]

def _cfg_get(node: Any, key: str) -> Any:
    if node is None:
        return None
    if isinstance(node, Mapping) or hasattr(node, "get"):
        try:
            return node.get(key)
        except Exception:  # noqa: BLE001 - a struct DictConfig without the key, or an odd mapping
            return getattr(node, key, None)
    return getattr(node, key, None)


def _uses_channels_last(module: torch.nn.Module) -> bool:
    for p in module.parameters():
        if p.ndim == 4:
            return p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
    return False


def _dataset_length(trainer: Any) -> int | None:
    loaders = getattr(trainer, "train_dataloader", None)
    if callable(loaders) and not hasattr(loaders, "dataset"):
        loaders = None
    if isinstance(loaders, list | tuple) and len(loaders) == 1:
        loaders = loaders[0]
    if isinstance(loaders, Mapping) and len(loaders) == 1:
        loaders = next(iter(loaders.values()))
    dataset = getattr(loaders, "dataset", None)
    try:
        return len(dataset) if dataset is not None else None  # type: ignore[arg-type]
    except TypeError:
        return None


def _as_config_error(err: Exception, where: str) -> ObjaugConfigError:
    """A library error raised while setting up the CAM, re-worded with the block's keys (:mod:`._keys`)."""
    return ObjaugConfigError(f"{where}: {library_message(err)}")


def _build_online_cam(provider: Any, backbone: torch.nn.Module, projector: torch.nn.Module | None, *,
                      when: str) -> Any:
    """The online ContraCAM of the method's modules (``provider``: the engine's
    :class:`objaug.provider.ObjectProvider`); construction mistakes as errors naming the block's keys.

    Called at set-up, so a map source the backbone cannot give (``map_source: attention`` on a ResNet) is refused
    before training starts, and again on the first batch for the dry run (the modules may have been swapped
    since, e.g. by DDP or SyncBatchNorm).
    """
    try:
        return provider.build_cam(backbone, projector=projector)
    except (TypeError, ValueError) as err:
        raise _as_config_error(err, f"objaug.online (checked {when})") from err


def _dry_run(cam: Any, provider: Any, images: Tensor, cam_view: int) -> None:
    """Run the online CAM once on the first batch's first two CAM images, whatever ``online.start_step`` is.

    So a 1x1 map (images too small for the encoder's stride) or a ViT given another image size is refused at
    the first batch, before the first optimisation step, instead of at the first CAM batch thousands of steps
    later. One extra forward (and a backward through the head), once per run.
    """
    size = "x".join(str(s) for s in images.shape[-2:])
    where = f"objaug.online (checked on the first batch: view {cam_view}, {size} images)"
    try:
        from objaug.provider import check_cam_setup

        check_cam_setup(cam, provider.cam_input(images[:2].detach()))
    except (TypeError, ValueError) as err:
        raise _as_config_error(err, where) from err


class ObjectAwareHooks:
    """Object-aware crop and background mixup for solo-learn, switched on by ``cfg.objaug``.

    A Lightning callback (the concrete classes are :class:`objaug.integrations.solo_learn.SoloObjectAwareCallback`
    for ``lightning`` and ``objaug.integrations.solo_learn.pl_callback.SoloObjectAwareCallback`` for
    ``pytorch_lightning``), added to a Trainer through Lightning's ``callbacks_factory`` entry points
    once objaug is installed and solo-learn imported (see :func:`._setup.entry_point_wanted`). It reads
    ``pl_module.cfg.objaug`` (solo-learn keeps its whole config as
    ``self.cfg``) in ``setup``; without a ``cfg``, without the block, with ``enabled: false``, or on a
    module whose config has no ``augmentations`` (solo-learn's linear / kNN scripts) it does nothing.
    Otherwise it validates the block (:func:`~objaug.integrations.solo_learn.config.parse_objaug_config`
    and :func:`~objaug.integrations.solo_learn.config.check_solo_pipelines`) and, in
    ``on_train_batch_start``, rewrites the views of solo-learn's batch ``[indexes, [X_1..X_n], targets]``
    in place (the same list object is then passed to ``training_step``).

    If the views' pipelines crop or flip (a stock solo-learn config plus ``+objaug.enabled=true``), ``setup``
    makes the training loader's own transform deliver full frames for this run (restored at ``teardown``)
    and says so; where that transform is not solo-learn's, it raises one error listing every override.
    Once engaged, it prints a short summary on rank 0, on stderr (:func:`._setup.describe`: views, source,
    refresh schedule, crop, mixup, the pipeline settings it changed, old -> new); inert, it is silent.

    Args:
        config: an ``objaug`` block (mapping or :class:`ObjaugConfig`) to use instead of
            ``pl_module.cfg.objaug`` (for non-solo-learn modules with the same batch contract).
        store: an object store instance for ``source: store`` (instead of opening
            ``objaug.store.cls(objaug.store.path)``).
        from_entry_point: set by the entry-point factories. Such an instance stays inert when the Trainer
            also has an explicitly passed objaug callback (so views are never augmented twice).
    """

    _objaug_solo_callback = True

    def __init__(
        self,
        config: Mapping[str, Any] | ObjaugConfig | None = None,
        *,
        store: BoxStore | None = None,
        from_entry_point: bool = False,
    ) -> None:
        self._config_arg = config
        self._store_arg = store
        self.from_entry_point = from_entry_point
        self.active = False
        self.config: ObjaugConfig | None = None
        self.engine: SoloObjectAware | None = None
        self._pipeline_changes: list[Any] = []
        self._dry_run_due = False
        self.map_logger: Any = None  # objaug.log_maps (.log_maps.map_logger)

    def __repr__(self) -> str:
        state = "active" if self.active else "inactive"
        return f"{type(self).__name__}({state}{', from entry point' if self.from_entry_point else ''})"

    # ------------------------------------------------------------------ set-up
    def _read_block(self, pl_module: Any) -> Any:
        if self._config_arg is not None:
            return self._config_arg
        return _cfg_get(getattr(pl_module, "cfg", None), "objaug")

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        with yaml_keys():  # library errors name the objaug block's key, not the Python argument
            self._setup(trainer, pl_module, stage)

    def _setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self.active = False
        self._dry_run_due = False
        self.engine = None
        if str(stage) != "fit" and not str(stage).endswith("FITTING"):
            return
        block = self._read_block(pl_module)
        if block is None:
            return
        config = block if isinstance(block, ObjaugConfig) else parse_objaug_config(block)
        self.config = config
        from .log_maps import map_logger

        self.map_logger = map_logger(config, pl_module)  # objaug.log_maps, also with enabled: false
        if not config.enabled:
            return
        others = [cb for cb in getattr(trainer, "callbacks", []) if cb is not self
                  and getattr(cb, "_objaug_solo_callback", False)]
        if self.from_entry_point and any(not getattr(cb, "from_entry_point", False) for cb in others):
            return  # an explicitly passed objaug callback takes over
        explicit = [cb for cb in others if not getattr(cb, "from_entry_point", False)]
        if not self.from_entry_point and explicit:
            raise ObjaugConfigError("The Trainer has two objaug callbacks; pass at most one (installing objaug "
                                    "already adds one that reads cfg.objaug).")
        cfg = getattr(pl_module, "cfg", None)
        augmentations = _cfg_get(cfg, "augmentations")
        if augmentations is None:
            warnings.warn(
                f"objaug is enabled but {type(pl_module).__name__}.cfg has no `augmentations` list (not a "
                "solo-learn pretraining config, e.g. the linear or kNN scripts): objaug stays inactive.",
                stacklevel=2,
            )
            return
        check_solo_pipelines(dataclasses.replace(config, check_pipelines=False), augmentations)  # views exist
        fixes = full_frame_fixes(config, augmentations) if config.check_pipelines else []
        n_crops = getattr(pl_module, "num_crops", None)
        if isinstance(n_crops, int) and max(config.views) >= n_crops:
            raise ObjaugConfigError(f"objaug.views {list(config.views)} refers to a view beyond the method's "
                                    f"num_crops={n_crops}.")

        from .views import SoloObjectAware, load_store, pick_cam_model

        store = None
        model: str | None = None
        if config.source == "store":
            store = self._store_arg if self._store_arg is not None else load_store(config)
        engine = SoloObjectAware(config, store=store)
        if config.source != "store":
            backbone, projector, which = pick_cam_model(pl_module, config.online.model)  # fails early without it
            _build_online_cam(engine.provider, backbone, projector, when="at set-up")
            self._dry_run_due = True
            prefix = "momentum_" if which == "momentum" else ""
            model = f"{prefix}backbone + {prefix}projector"
            batch_size = _cfg_get(_cfg_get(cfg, "optimizer"), "batch_size")
            if isinstance(batch_size, int) and batch_size < 2 and not config.online.all_gather_negatives:
                raise ObjaugConfigError(
                    f"objaug.source=online needs at least 2 images per batch (optimizer.batch_size={batch_size}): "
                    "ContraCAM contrasts each image with the others of its batch."
                )
            name = type(getattr(trainer, "strategy", None)).__name__.lower()
            if "fsdp" in name or "deepspeed" in name:
                raise ObjaugConfigError(f"objaug.source=online runs the model's modules directly and does not "
                                        f"support the {type(trainer.strategy).__name__} strategy; use DDP or "
                                        "a single device, or source=store.")
        from ._setup import describe, full_frame_data_pipeline

        changes = full_frame_data_pipeline(trainer, config, augmentations, fixes) if fixes else []
        if changes is None:  # not solo-learn's own transform: one message with every override to add
            check_solo_pipelines(config, augmentations)
        self._pipeline_changes = changes or []
        self.engine = engine
        self.active = True
        message = describe(config, n_views=getattr(pl_module, "num_crops", None), model=model,
                           changes=self._pipeline_changes)
        self._say(trainer, message)

    def _say(self, trainer: Any, message: str) -> None:
        """``message`` once, on global rank 0, on stderr (:func:`._setup.say`; not through logging, which
        solo-learn's ``hydra/job_logging: disabled`` silences)."""
        if not getattr(trainer, "is_global_zero", True):
            return
        from ._setup import say

        say(message)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        with yaml_keys():
            self._on_train_start(trainer, pl_module)

    def _on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if not self.active or self.engine is None:
            return
        assert self.config is not None
        store: Any = self.engine.store
        if store is not None and hasattr(store, "__len__"):
            n_data = _dataset_length(trainer)
            n_store = len(store)
            if n_data is not None and n_store != n_data:
                raise ObjaugConfigError(
                    f"objaug.store.path={self.config.store.path!r} holds {n_store} samples but the training "
                    f"dataset has {n_data}: the store must be computed on the same dataset, in the same index "
                    "order (for solo-learn's custom datasets: torchvision.datasets.ImageFolder(train_path))."
                )
        if not self.engine.uses_cache:
            return
        size = self.config.online.cache_size or _dataset_length(trainer)
        if size is None:
            raise ObjaugConfigError("objaug.online.cache='index' needs the dataset length: set "
                                    "objaug.online.cache_size (or use cache: none).")
        self.engine.allocate_cache(int(size), pl_module.device)

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if self.engine is not None:
            self.engine.release_cache()
        if self._pipeline_changes:
            from ._setup import restore

            restore(self._pipeline_changes)
            self._pipeline_changes = []

    # ------------------------------------------------------------------ per batch
    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if self.map_logger is not None:  # the fixed batch of objaug.log_maps, before objaug re-crops it
            self.map_logger.on_train_batch_start(trainer, pl_module, batch, batch_idx)
        if not self.active or self.engine is None:
            return
        from objaug.stats import log_stats

        from .views import pick_cam_model, views_of

        config, engine = self.config, self.engine
        assert config is not None
        views = views_of(batch)
        indexes = batch[0]
        if not isinstance(indexes, Tensor):
            raise TypeError(f"objaug expects the first item of the batch to be the dataset indexes (a tensor), "
                            f"got {type(indexes).__name__}.")

        world = int(getattr(trainer, "world_size", 1) or 1)
        cam_view = config.online.view if config.online.view is not None else config.views[0]
        plugin = getattr(trainer, "precision_plugin", None)
        context = getattr(plugin, "forward_context", None) or contextlib.nullcontext
        cam: Any = None
        negatives: Callable[[], Tensor | None] | None = None
        backbone = None
        due = engine.cam_due()
        dry_run = self._dry_run_due and views[cam_view].shape[0] >= 2
        if dry_run or due:  # one CAM of the modules as they are now (DDP may have wrapped them)
            backbone, projector, _ = pick_cam_model(pl_module, config.online.model)
            cam = _build_online_cam(engine.provider, backbone, projector, when=f"at batch {batch_idx}")
        if dry_run:
            assert backbone is not None
            self._dry_run_due = False
            first = views[cam_view][:2].detach()
            if _uses_channels_last(backbone):
                first = first.contiguous(memory_format=torch.channels_last)
            with context():
                _dry_run(cam, engine.provider, first, cam_view)
        if not due:  # the dry run's CAM only
            cam, backbone = None, None
        if cam is not None:
            if config.online.all_gather_negatives and world > 1:
                rank = int(getattr(trainer, "global_rank", 0) or 0)
                images = views[cam_view].detach()

                def negatives() -> Tensor | None:
                    return engine.gathered_negatives(cam, images, trainer.strategy.all_gather, rank)
            elif views[cam_view].shape[0] < 2:
                raise ValueError(
                    "objaug.source=online needs at least 2 images per batch on each device (ContraCAM contrasts "
                    "each image with the others of its batch); use a larger optimizer.batch_size, or "
                    "objaug.online.all_gather_negatives: true under DDP."
                )
        with yaml_keys():  # e.g. a CAM the model cannot give, at a CAM batch: named by its key
            engine.step(views, indexes, cam=cam, cam_view=cam_view, context=context,
                        channels_last=backbone is not None and _uses_channels_last(backbone), negatives=negatives,
                        gather=trainer.strategy.all_gather if world > 1 else None)
        if callable(getattr(pl_module, "log", None)):  # objaug/boxed, /whole_frame, /mixed, ... (objaug.stats)
            log_stats(pl_module.log, engine.stats, batch_size=int(indexes.shape[0]), sync_dist=world > 1)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.map_logger is not None:
            self.map_logger.on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


_CLASSES: dict[str, type] = {}


def callback_class(package: str) -> type:
    """The objaug solo-learn callback as a subclass of ``<package>.callbacks.Callback``.

    Args:
        package: ``"lightning.pytorch"`` or ``"pytorch_lightning"`` (imported here, on first use).

    Returns:
        ``SoloObjectAwareCallback(config=None, *, store=None, from_entry_point=False)``, one class per package
        (cached: ``isinstance`` checks stay stable).
    """
    if package not in _CLASSES:
        base = importlib.import_module(package + ".callbacks").Callback

        def __init__(self: Any, config: Mapping[str, Any] | ObjaugConfig | None = None, *,
                     store: BoxStore | None = None, from_entry_point: bool = False) -> None:
            base.__init__(self)
            ObjectAwareHooks.__init__(self, config, store=store, from_entry_point=from_entry_point)

        _CLASSES[package] = type("SoloObjectAwareCallback", (ObjectAwareHooks, base), {
            "__init__": __init__, "__doc__": ObjectAwareHooks.__doc__, "_lightning_package": package,
            "__module__": "objaug.integrations.solo_learn.callback" if package == "lightning.pytorch"
            else "objaug.integrations.solo_learn.pl_callback"})
    return _CLASSES[package]
