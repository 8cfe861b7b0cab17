"""Set-up helpers of the solo-learn callback: full frames from solo-learn's own data pipeline, the summary
of what objaug engaged (and where it is printed), and whether the entry-point factory should add the callback.

Imports nothing heavy (no Lightning, no torchvision): the data pipeline is recognised by duck typing
(solo-learn's ``FullTransformPipeline.transforms`` -> ``NCropAugmentation.transform`` -> a torchvision
``Compose`` whose ``transforms`` hold a ``RandomResizedCrop`` and a ``RandomHorizontalFlip``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, TextIO

from .config import ObjaugConfig, ObjaugConfigError, view_pipelines

__all__ = ["ENV", "Change", "describe", "entry_point_factory", "entry_point_wanted", "full_frame_data_pipeline",
           "restore", "say"]

#: environment variable read by the entry-point factories: ``1`` always adds the callback, ``0`` never,
#: unset (or ``auto``) adds it only when solo-learn (the ``solo`` package) has been imported.
ENV = "OBJAUG_SOLO_LEARN"

_ON = {"1", "true", "yes", "on"}
_OFF = {"0", "false", "no", "off"}



class Change(NamedTuple):
    """One setting of solo-learn's data pipeline changed for the run (undone by :func:`restore`).

    Attributes:
        target: the torchvision transform changed (``RandomResizedCrop`` or ``RandomHorizontalFlip``).
        attr: its attribute (``"scale"`` or ``"p"``).
        before: the value it had.
        after: the value it has for the run.
        pipeline: the index of the pipeline in solo-learn's ``augmentations`` list.
    """

    target: Any
    attr: str
    before: Any
    after: Any
    pipeline: int


def entry_point_wanted() -> bool:
    """Whether the ``callbacks_factory`` entry points should add the (inert until configured) callback.

    At Trainer construction the factory sees no model and no config, so it cannot read ``cfg.objaug``. What it
    can tell: solo-learn's ``main_pretrain.py`` imports ``solo`` (its methods) before it builds the Trainer, so
    without ``solo`` in ``sys.modules`` no solo-learn model can be trained by this Trainer and the callback
    (and Lightning's "Adding 1 callbacks from entry point ..." line) is left out. ``OBJAUG_SOLO_LEARN=1`` adds it
    anyway (a non-solo-learn module with a ``cfg.objaug`` block), ``OBJAUG_SOLO_LEARN=0`` never.

    Returns:
        True when the factory should return the callback.
    """
    value = os.environ.get(ENV, "auto").strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    return "solo" in sys.modules


def _ops(pipeline: Any) -> list[Any] | None:
    """The list of transforms of one solo-learn pipeline (``NCropAugmentation`` or a bare ``Compose``)."""
    node = pipeline
    for _ in range(4):  # NCropAugmentation -> (BaseTransform ->) Compose
        ops = getattr(node, "transforms", None)
        if isinstance(ops, list):
            return ops
        node = getattr(node, "transform", None)
        if node is None:
            return None
    return None


def _train_transform(trainer: Any) -> Any:
    """The training dataset's ``transform``, as ``setup`` sees it (the loop has not built its loaders yet)."""
    source = getattr(getattr(trainer, "fit_loop", None), "_data_source", None)
    loader = getattr(source, "instance", None)
    if isinstance(loader, Sequence) and len(loader) == 1:
        loader = loader[0]
    if isinstance(loader, Mapping) and len(loader) == 1:
        loader = next(iter(loader.values()))
    return getattr(getattr(loader, "dataset", None), "transform", None)


def full_frame_data_pipeline(trainer: Any, config: ObjaugConfig, augmentations: Any,
                             fixes: list[tuple[int, int, str, float, Any]]) -> list[Change] | None:
    """Make solo-learn's data pipelines of ``config.views`` deliver full, unflipped frames, in place.

    For every pipeline named in ``fixes`` (see :func:`~objaug.integrations.solo_learn.config.full_frame_fixes`),
    the ``RandomResizedCrop`` of the training dataset's transform gets ``scale = (1.0, 1.0)`` and the
    ``RandomHorizontalFlip`` gets ``p = 0.0`` (what ``rrc.crop_min_scale = crop_max_scale = 1.0`` and
    ``horizontal_flip.prob = 0.0`` would have built). The DataLoader workers start after ``setup``, so they
    see the change. Nothing is changed unless every needed change can be made.

    Args:
        trainer: the Lightning Trainer, in ``setup`` (the loader passed to ``fit``).
        config: the validated block.
        augmentations: solo-learn's ``augmentations`` list (as in the module's ``cfg``).
        fixes: the settings that are wrong (non-empty).

    Returns:
        The changes made (for :func:`restore`), or None when the pipeline was not recognised (a datamodule,
        a custom dataset or transform): then nothing was changed.

    Raises:
        ObjaugConfigError: a pipeline to change also delivers views that objaug does not re-crop (they
            would lose their random crop): names the views and the fix.
    """
    pipelines = view_pipelines(augmentations)
    per_pipeline = getattr(_train_transform(trainer), "transforms", None)
    n_pipelines = max(pipelines, default=-1) + 1
    if not isinstance(per_pipeline, Sequence) or len(per_pipeline) != n_pipelines:
        return None
    plan: list[tuple[Any, str, Any, int]] = []
    for i in sorted({i for _, i, *_ in fixes}):
        others = [v for v, p in enumerate(pipelines) if p == i and v not in config.views]
        if others:
            raise ObjaugConfigError(
                f"objaug re-crops views {list(config.views)} but their pipeline augmentations[{i}] also delivers "
                f"views {others}, which objaug does not re-crop: add {others} to objaug.views, or give objaug's "
                "views a pipeline of their own."
            )
        ops = _ops(per_pipeline[i]) or []
        keys = {key for _, j, key, *_ in fixes if j == i}
        crops = [op for op in ops if type(op).__name__ == "RandomResizedCrop" and hasattr(op, "scale")]
        flips = [op for op in ops if type(op).__name__ == "RandomHorizontalFlip" and hasattr(op, "p")]
        if keys & {"rrc.crop_min_scale", "rrc.crop_max_scale"}:
            if len(crops) != 1:
                return None
            plan.append((crops[0], "scale", (1.0, 1.0), i))
        if "horizontal_flip.prob" in keys:
            if len(flips) != 1:
                return None
            plan.append((flips[0], "p", 0.0, i))
    done: list[Change] = []
    for obj, attr, value, i in plan:
        done.append(Change(obj, attr, getattr(obj, attr), value, i))
        setattr(obj, attr, value)
    return done


def restore(changes: list[Change]) -> None:
    """Undo :func:`full_frame_data_pipeline` (at teardown: the data pipeline is left as it was found)."""
    for change in reversed(changes):
        setattr(change.target, change.attr, change.before)


def _value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "(" + ", ".join(_value(v) for v in value) + ")"
    return repr(value)


def _schedule(config: ObjaugConfig) -> str:
    """When the boxes are (re)computed: the store's per-batch read, or the online CAM's refresh schedule."""
    if config.source == "store":
        return "none needed: the store is read by dataset index on every batch"
    o, every, start = config.online, config.online.schedule.every_n_steps, config.online.schedule.start_step
    first = f"from batch {start}" + (" (whole-frame crops, no mixup before it)" if start else "")
    if every == 1:
        return f"a fresh CAM on every batch {first}"
    between = ("boxes (and masks) cached per image are reused" if o.cache == "index"
               else "whole-frame crops, no mixup")
    return f"a fresh CAM every {every} batches {first}; in between {between} (online.cache: {o.cache})"


def _pipeline_lines(config: ObjaugConfig, changes: Sequence[Change] | None) -> list[str]:
    if not config.check_pipelines:
        return ["solo-learn's data pipeline: not checked (objaug.check_pipelines: false)"]
    if not changes:
        return ["solo-learn's data pipeline: unchanged (it already delivers full, unflipped frames)"]
    lines = ["solo-learn's data pipeline, changed for this run (objaug crops and flips these views; restored when "
             "training ends):"]
    for i in sorted({c.pipeline for c in changes}):
        done = ", ".join(f"{type(c.target).__name__} {c.attr} {_value(c.before)} -> {_value(c.after)}"
                         for c in changes if c.pipeline == i)
        lines.append(f"  augmentations[{i}]: {done}")
    return lines


def describe(config: ObjaugConfig, *, n_views: int | None = None, model: str | None = None,
             changes: Sequence[Change] | None = None) -> str:
    """A short summary of what objaug engaged, a few lines starting with ``objaug:``.

    It says that objaug is on, which views it re-crops, where the boxes come from and when they are refreshed,
    the crop and mixup settings, and which settings of solo-learn's data pipeline it changed (old -> new).

    Args:
        config: the validated, enabled block.
        n_views: how many views solo-learn delivers (shown when known).
        model: the modules the online CAM uses (e.g. ``"momentum_backbone + momentum_projector"``).
        changes: what :func:`full_frame_data_pipeline` changed (None or empty: nothing).

    Returns:
        The summary (lines joined by newlines, no trailing newline).
    """
    of = f" of {n_views}" if n_views is not None else ""
    if config.source == "store":
        source = f"store {config.store.path} ({config.store.cls})"
    else:
        o = config.online
        view = o.view if o.view is not None else config.views[0]
        cam = o.cam
        source = (f"online {'class-token attention' if cam.map_source == 'attention' else 'ContraCAM'} of "
                  f"{model or o.model} on view {view} ({cam.iters} iteration{'s' if cam.iters != 1 else ''})")
    c = config.crop
    crop = (f"box_p={c.box_p:g} scale=[{c.scale[0]:g}, {c.scale[1]:g}] ratio=[{c.ratio[0]:.3g}, {c.ratio[1]:.3g}] "
            f"flip={c.flip_prob:g} sampling={c.box_sampling}")
    m = config.mixup
    start = f" from batch {m.start_step}" if m.start_step else ""
    mixup = (f"on{start}, views {list(m.views)} p={m.p:g} threshold={m.threshold} queue={m.queue_size} "
             f"({m.source})" if m.enabled else "off")
    lines = [f"objaug: on (objaug.enabled: true), object-aware crop of views {list(config.views)}{of} on the device",
             f"  boxes: {source}", f"  refresh: {_schedule(config)}", f"  crop: {crop}", f"  mixup: {mixup}"]
    lines += ["  " + line for line in _pipeline_lines(config, changes)]
    return "\n".join(lines)


def say(message: str, *, stream: TextIO | None = None) -> None:
    """Print ``message`` to ``stream`` (default: the current ``sys.stderr``), flushed.

    Not through :mod:`logging`: solo-learn's configs set ``hydra/job_logging: disabled``, whose logging config
    raises the root level to ERROR and disables every logger that exists (Lightning's included), so
    ``rank_zero_info`` prints nothing there; a warning would be filtered or shown once per place. The caller
    decides the rank (the callback prints on global rank 0 only).
    """
    print(message, file=stream if stream is not None else sys.stderr, flush=True)


def entry_point_factory(cls: type) -> Callable[[], list[Any]]:
    """The ``callbacks_factory`` entry point for ``cls``: one inert-until-configured callback, or none
    (see :func:`entry_point_wanted`)."""

    def callbacks_factory() -> list[Any]:
        return [cls(from_entry_point=True)] if entry_point_wanted() else []

    return callbacks_factory
