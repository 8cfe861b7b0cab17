"""The ``objaug:`` block of a solo-learn config: schema, defaults and validation.

Pure Python (no torch, no lightning): :func:`parse_objaug_config` takes the block as a ``dict`` or an
OmegaConf ``DictConfig`` and returns a frozen :class:`ObjaugConfig`, or raises
:class:`ObjaugConfigError` naming the offending key (``objaug.crop.scale``), what was wrong and the
allowed values. :func:`check_solo_pipelines` checks the block against solo-learn's ``augmentations``
list (the views it re-crops must be delivered as full frames). :func:`schema_rows` lists every key
with its type, default and meaning (``docs/solo-learn.md`` is written from it and tested against it).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from objaug.config import BoxConfig, CamConfig, ScheduleConfig, config_from_mapping, describe_fields

from ._parsers import (
    ObjaugConfigError,
    _bool,
    _choice,
    _float,
    _int,
    _optional,
    _otsu_or,
    _pair,
    _Parser,
    _str,
    _target,
    _views,
)

__all__ = [
    "CropConfig",
    "LogMapsConfig",
    "MixupConfig",
    "ObjaugConfig",
    "ObjaugConfigError",
    "OnlineConfig",
    "StoreConfig",
    "check_solo_pipelines",
    "full_frame_fixes",
    "parse_objaug_config",
    "schema_rows",
    "view_pipelines",
]




# ----------------------------------------------------------------------------------------------- schema
@dataclass(frozen=True)
class CropConfig:
    box_p: float = 1.0
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    flip_prob: float = 0.5
    box_sampling: str = "uniform"
    center_suppressed: bool = False
    alpha: float = 0.6
    antialias: bool = True
    attempts: int = 10
    min_box_pixels: int = 0


@dataclass(frozen=True)
class MixupConfig:
    enabled: bool = False
    views: tuple[int, ...] = (0,)
    p: float = 0.4
    threshold: float | Literal["otsu"] = "otsu"
    fallback_mass: float | None = 0.9
    queue_size: int = 50
    source: str = "tiled-strip"
    start_step: int = 0


@dataclass(frozen=True)
class OnlineConfig:
    """``objaug.online``: the solo-learn-specific keys, plus the CAM settings and the schedule.

    The keys of :class:`objaug.config.CamConfig` (``online.iters``, ``online.map_source``, ...) and of
    :class:`objaug.config.ScheduleConfig` (``online.every_n_steps``, ``online.start_step``) are written flat under
    ``online`` in the YAML and kept here as :attr:`cam` and :attr:`schedule`.
    """

    model: str = "auto"
    view: int | None = None
    cache: str = "index"
    cache_size: int | None = None
    cache_mask_size: int = 32
    all_gather_negatives: bool = False
    cam: CamConfig = field(default_factory=CamConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)


@dataclass(frozen=True)
class LogMapsConfig:
    """``objaug.log_maps``: when and how many images; the maps use ``objaug.online``'s and ``objaug.boxes``'
    settings (one CAM config per run)."""

    every_n_steps: int = 0
    num_images: int = 8


@dataclass(frozen=True)
class StoreConfig:
    path: str | None = None
    cls: str = "objaug.store:ObjectStore"


@dataclass(frozen=True)
class ObjaugConfig:
    enabled: bool = False
    source: str = "online"
    views: tuple[int, ...] = (0, 1)
    check_pipelines: bool = True
    crop: CropConfig = field(default_factory=CropConfig)
    mixup: MixupConfig = field(default_factory=MixupConfig)
    boxes: BoxConfig = field(default_factory=BoxConfig)
    online: OnlineConfig = field(default_factory=OnlineConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    log_maps: LogMapsConfig = field(default_factory=LogMapsConfig)


# One row per key: (dotted key, type shown in docs, parser, meaning). Parsers take (value, key) and
# return the clean value or raise ObjaugConfigError.
_SCHEMA: list[tuple[str, str, _Parser, str]] = [
    ("enabled", "bool", _bool, "Switch the callback on. Without the block, or with `false`, it does nothing."),
    ("source", "`store` \\| `online`", _choice("store", "online"),
     "Where boxes and masks come from: a precomputed store read by the batch's indexes, or ContraCAM of "
     "the model being trained. Unset: `store` when `store.path` is given, else `online`."),
    ("views", "list[int]", _views(),
     "Indexes into solo-learn's list of views `X` that are re-cropped on the device. Their pipelines must "
     "deliver full frames (`rrc` scale 1.0 or `rrc.enabled: false`, `horizontal_flip.prob: 0`)."),
    ("check_pipelines", "bool", _bool,
     "Refuse configs whose target pipelines do not deliver full, unflipped frames (turn off only for "
     "custom data pipelines that do)."),
    ("crop.box_p", "float in [0, 1]", _float(0.0, 1.0),
     "Probability of cropping inside an object box (per image); otherwise, or without a box, a plain "
     "RandomResizedCrop of the whole frame. `0` gives on-device RandomResizedCrops only (mixup-only setups)."),
    ("crop.scale", "[min, max]", _pair(0.0, 1.0, "area fraction of the chosen box, 0 < min <= max <= 1"),
     "Area fraction of the crop relative to the chosen box (or frame), as RandomResizedCrop's `scale`."),
    ("crop.ratio", "[min, max]", _pair(0.0, math.inf, "crop width / height in pixels"),
     "Aspect-ratio range of the crop (width / height)."),
    ("crop.flip_prob", "float in [0, 1]", _float(0.0, 1.0),
     "Horizontal flip applied with the crop (replaces the pipeline's `horizontal_flip.prob`, which must be 0)."),
    ("crop.box_sampling", "`uniform` \\| `area`", _choice("uniform", "area"),
     "How an image's box is chosen: uniformly (the paper) or proportionally to its area. All re-cropped "
     "views of an image use the same box."),
    ("crop.center_suppressed", "bool", _bool,
     "ContrastiveCrop's centre-suppressed placement of the crop inside the box (Beta(alpha, alpha) offsets)."),
    ("crop.alpha", "float > 0", _float(0.0, None, open_low=True),
     "The Beta parameter of `center_suppressed` (0.6 in ContrastiveCrop)."),
    ("crop.antialias", "bool", _bool,
     "Area-filtered resampling when a crop is shrunk (`roi_align`); `false`: plain bilinear, cheaper."),
    ("crop.attempts", "int >= 1", _int(1), "Candidate crops drawn per image (torchvision: 10)."),
    ("crop.min_box_pixels", "int >= 0", _int(0),
     "A chosen box side shorter than this many pixels (of the full frames on the device, i.e. `crop_size`) "
     "is grown around its centre to this size before the crop, so a tiny box is not zoomed into a blur; "
     "`0`: boxes as they are."),
    ("mixup.enabled", "bool", _bool, "Background mixup on `mixup.views` (after the crop, masks cropped alike)."),
    ("mixup.views", "list[int]", _views(), "Views that are mixed; a subset of `views` (the paper: view 0)."),
    ("mixup.p", "float in [0, 1]", _float(0.0, 1.0), "Probability that an eligible image is mixed (paper: 0.4)."),
    ("mixup.threshold", "`otsu` \\| float in (0, 1]", _otsu_or(_float(0.0, 1.0, open_low=True)),
     "Mask threshold of the object rectangle: `otsu` (per image, from each mask's histogram) or a number "
     "(paper: 0.2; on diffuse maps it mixes almost nothing)."),
    ("mixup.fallback_mass", "`null` \\| float in (0, 1]", _optional(_float(0.0, 1.0, open_low=True)),
     "Where the object rectangle covers the whole frame (nothing to mix), use the rectangle holding this share "
     "of the soft mask's mass along each axis instead; `null`: the paper's rule (such images stay unmixed)."),
    ("mixup.queue_size", "int >= 0", _int(0), "FIFO queue of recent backgrounds (paper: 50; 0 disables it)."),
    ("mixup.source", "`tiled-strip` \\| `batch`", _choice("tiled-strip", "batch"),
     "How backgrounds are built: the paper's tiled strip, or the image with its object mean-filled."),
    ("mixup.start_step", "int >= 0", _int(0),
     "Training batches before the first mixed one (the mixup views are left unmixed until then; the objects are "
     "found on the `online` schedule as usual): e.g. half the run, to switch mixup on once the encoder "
     "recognises objects."),
    ("online.model", "`auto` \\| `online` \\| `momentum`", _choice("auto", "online", "momentum"),
     "`online`: `backbone` + `projector`; `momentum`: `momentum_backbone` + `momentum_projector`; `auto`: "
     "momentum if the method has it, else online."),
    ("online.view", "int or null", _optional(_int(0)), "The view the CAM is computed on (default: `views[0]`)."),
    ("online.cache", "`index` \\| `none`", _choice("index", "none"),
     "Between CAM batches: reuse boxes/masks cached per dataset index (`index`), or crop the whole "
     "frame without mixup (`none`)."),
    ("online.cache_size", "int or null", _optional(_int(1)),
     "Number of cache slots (dataset length); default: `len(train_dataloader.dataset)`."),
    ("online.cache_mask_size", "int >= 4", _int(4), "Side of the cached masks (uint8), when mixup is on."),
    ("online.all_gather_negatives", "bool", _bool,
     "DDP: add the other ranks' embeddings as ContraCAM negatives (one extra forward per CAM batch)."),
    ("store.path", "str", _optional(_str), "`store`: path of the precomputed object store (required)."),
    ("store.cls", "`module:Name`", _target,
     "`store`: the store class or factory, called with the path; must offer `get_batch(indexes)` -> "
     "(boxes (B,K,4), valid (B,K), masks (B,1,h,w) or None)."),
    ("log_maps.every_n_steps", "int >= 0", _int(0),
     "Log the maps of a fixed batch (the first `log_maps.num_images` images of the first batch's view "
     "`online.view`, before objaug re-crops it) every N optimizer steps to the Trainer's loggers (TensorBoard, "
     "W&B, else PNGs under the log directory), with `online.model`'s current weights and `online.map_source`; "
     "`0`: off. Works with `enabled: false` too (see the maps before augmenting with them)."),
    ("log_maps.num_images", "int >= 2", _int(2), "Images in the logged batch."),
]

_SECTIONS = {"crop": CropConfig, "mixup": MixupConfig, "boxes": BoxConfig, "online": OnlineConfig,
             "store": StoreConfig, "log_maps": LogMapsConfig}

#: Keys that are the fields of objaug's shared configs, one default and one description for every entry point:
#: (section, attribute of the section's config holding it or None for the section itself, config class).
_DERIVED: tuple[tuple[str, str | None, type], ...] = (
    ("online", "cam", CamConfig),
    ("online", "schedule", ScheduleConfig),
    ("boxes", None, BoxConfig),
)


def _derived_keys() -> dict[str, tuple[str, str | None, type]]:
    """``"section.field"`` -> (section, attribute, config class) of every key derived from a shared config."""
    keys = {}
    for section, attr, cls in _DERIVED:
        for f in dataclasses.fields(cls):
            keys[f"{section}.{f.name}"] = (section, attr, cls)
    return keys


def schema_rows() -> list[tuple[str, str, str, str]]:
    """Every key of the block: ``(dotted key, type, default as YAML, meaning)``."""
    default = ObjaugConfig()
    rows = []
    for key, type_, _, doc in _SCHEMA:
        value: Any = default
        for part in key.split("."):
            value = getattr(value, part)
        rows.append((key, type_, _yaml(value), doc))
    for section, _, cls in _DERIVED:
        for name, kind, value, doc in describe_fields(cls):
            rows.append((f"{section}.{name}", kind, _yaml(value), doc))
    return rows


def _yaml(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    if isinstance(value, float):
        text = f"{value:.4g}"
        return text if any(c in text for c in ".e") else text + ".0"
    return str(value)


# ----------------------------------------------------------------------------------------------- parsing
def _to_plain(block: Any) -> Any:
    """DictConfig / ListConfig -> dict / list (resolving interpolations); other values unchanged."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - solo-learn always has omegaconf
        return block
    if isinstance(block, DictConfig | ListConfig):
        try:
            return OmegaConf.to_container(block, resolve=True)
        except Exception as err:  # omegaconf's InterpolationResolutionError & co.: name the key, in one message
            raise ObjaugConfigError(f"objaug: an interpolation in the block cannot be resolved ({type(err).__name__}: "
                                    f"{err}). Fix the ${{...}} reference, or write the value out.") from None
    return block


def _unknown(key: str, allowed: Sequence[str], prefix: str) -> ObjaugConfigError:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" Did you mean {prefix}{close[0]}?" if close else ""
    return ObjaugConfigError(f"Unknown key {prefix}{key} in the objaug block.{hint} Allowed keys under "
                             f"{prefix.rstrip('.') or 'objaug'}: {', '.join(sorted(allowed))}.")


def parse_objaug_config(block: Any) -> ObjaugConfig:
    """Validate an ``objaug:`` block and fill in the defaults.

    Args:
        block: a mapping (``dict`` or OmegaConf ``DictConfig``) with the keys of :func:`schema_rows`;
            nested sections as mappings. ``None`` or an empty mapping gives the (disabled) defaults.

    Returns:
        The frozen :class:`ObjaugConfig`.

    Raises:
        ObjaugConfigError: an unknown key (with the closest allowed one), a wrong type or an impossible
            value (naming the key as ``objaug.section.key`` and the allowed values), or options that
            contradict each other (e.g. ``mixup.views`` not within ``views``, ``source: store``
            without ``store.path``).
    """
    block = _to_plain(block)
    if block is None:
        block = {}
    if not isinstance(block, Mapping):
        raise ObjaugConfigError(f"objaug must be a mapping of options (e.g. objaug: {{enabled: true, ...}}), "
                                f"got {block!r}.")
    parsers = {key: parser for key, _, parser, _ in _SCHEMA}
    derived = _derived_keys()
    top_allowed = [k for k in parsers if "." not in k] + list(_SECTIONS)
    top: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    shared: dict[tuple[str, str | None], dict[str, Any]] = {(sec, attr): {} for sec, attr, _ in _DERIVED}
    for key, value in block.items():
        if not isinstance(key, str):
            raise ObjaugConfigError(f"objaug keys must be strings, got {key!r}.")
        if key in _SECTIONS:
            value = {} if value is None else value
            if not isinstance(value, Mapping):
                raise ObjaugConfigError(f"objaug.{key} must be a mapping of options, got {value!r}.")
            allowed = [k.split(".", 1)[1] for k in [*parsers, *derived] if k.startswith(key + ".")]
            for sub, sub_value in value.items():
                dotted = f"{key}.{sub}"
                if sub not in allowed:
                    raise _unknown(str(sub), allowed, f"objaug.{key}.")
                if dotted in derived:
                    section, attr, _ = derived[dotted]
                    shared[(section, attr)][str(sub)] = sub_value
                else:
                    sections[key][sub] = parsers[dotted](sub_value, f"objaug.{dotted}")
        elif key in parsers:
            top[key] = parsers[key](value, f"objaug.{key}")
        else:
            raise _unknown(key, top_allowed, "objaug.")
    for (section, attr), values in shared.items():
        cls = next(c for sec, a, c in _DERIVED if (sec, a) == (section, attr))
        built_config = _shared_config(cls, values, f"objaug.{section}.")
        if attr is None:
            sections[section] = dataclasses.asdict(built_config)
        else:
            sections[section][attr] = built_config
    built = {name: cls(**sections[name]) for name, cls in _SECTIONS.items()}
    if "source" not in top:  # unset: the store when one is named, else ContraCAM of the model being trained
        top["source"] = "store" if built["store"].path is not None else "online"
    config = ObjaugConfig(**top, **built)
    _cross_check(config)
    return config


def _shared_config(cls: type, values: dict[str, Any], prefix: str) -> Any:
    """One of objaug's shared configs from the block's keys, its errors as :class:`ObjaugConfigError` naming keys."""
    try:
        return config_from_mapping(cls, values, prefix=prefix)
    except (TypeError, ValueError) as err:
        raise ObjaugConfigError(str(err)) from None


def _cross_check(c: ObjaugConfig) -> None:
    if c.mixup.enabled:
        extra = [v for v in c.mixup.views if v not in c.views]
        if extra:
            raise ObjaugConfigError(
                f"objaug.mixup.views {list(c.mixup.views)} must be a subset of objaug.views {list(c.views)}: a "
                f"mixed view needs its mask cropped with it. Add {extra} to objaug.views."
            )
    if c.mixup.start_step and not c.mixup.enabled:
        raise ObjaugConfigError(f"objaug.mixup.start_step={c.mixup.start_step} has no effect: objaug.mixup.enabled "
                                "is false. Set objaug.mixup.enabled: true, or drop objaug.mixup.start_step.")
    if c.source == "store" and c.enabled and c.store.path is None:
        raise ObjaugConfigError("objaug.source is 'store' but objaug.store.path is not set: give the path of the "
                                "precomputed object store (objaug.store.path=/path/to/store), or use "
                                "objaug.source=online.")
    if c.source == "online" and c.online.view is not None and c.online.view not in c.views:
        raise ObjaugConfigError(
            f"objaug.online.view={c.online.view} must be one of objaug.views {list(c.views)}: the CAM must be "
            "computed on a full-frame view."
        )


# ----------------------------------------------------------------------------------------------- solo-learn
def _get(node: Any, key: str, default: Any = None) -> Any:
    if isinstance(node, Mapping):
        return node.get(key, default)
    return getattr(node, key, default)


def view_pipelines(augmentations: Any) -> list[int]:
    """For solo-learn's ``augmentations`` list, the pipeline index of every view in ``X`` (in order).

    solo-learn's ``FullTransformPipeline`` returns the ``num_crops`` views of pipeline 0, then those of
    pipeline 1, and so on.
    """
    augmentations = _to_plain(augmentations)
    if isinstance(augmentations, Mapping) or not isinstance(augmentations, Sequence):
        raise ObjaugConfigError("cfg.augmentations must be solo-learn's list of pipelines (one item per "
                                f"pipeline), got {type(augmentations).__name__}.")
    out: list[int] = []
    for i, item in enumerate(augmentations):
        n = _get(item, "num_crops", None)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ObjaugConfigError(f"augmentations[{i}].num_crops must be an integer >= 0, got {n!r}.")
        out.extend([i] * n)
    return out


def check_solo_pipelines(config: ObjaugConfig, augmentations: Any) -> list[int]:
    """Check the block against solo-learn's ``augmentations`` list; return the view -> pipeline map.

    Every view in ``objaug.views`` must exist, and (if ``check_pipelines``) its pipeline must deliver the
    full frame unflipped: ``rrc.enabled: false`` or ``rrc.crop_min_scale == rrc.crop_max_scale == 1.0``,
    and ``horizontal_flip.prob == 0``. Otherwise the boxes and masks (which describe the full image)
    would not line up with the view.

    Raises:
        ObjaugConfigError: naming the view, its pipeline and the key to change.
    """
    augmentations = _to_plain(augmentations)
    pipelines = view_pipelines(augmentations)
    n = len(pipelines)
    used = set(config.views) | (set(config.mixup.views) if config.mixup.enabled else set())
    if config.online.view is not None:
        used.add(config.online.view)
    for v in sorted(used):
        if v >= n:
            raise ObjaugConfigError(
                f"objaug: view {v} does not exist: solo-learn delivers {n} views (the sum of "
                f"augmentations[*].num_crops), indexes 0..{n - 1}. Fix objaug.views / objaug.mixup.views."
            )
    if not config.check_pipelines:
        return pipelines
    fixes = full_frame_fixes(config, augmentations)
    if fixes:
        views = sorted({v for v, *_ in fixes})
        wanted = "; ".join(f"augmentations[{i}].{key}: {want} (got {got})" for _, i, key, want, got in fixes)
        hydra = " ".join(f"augmentations.{i}.{key}={want}" for _, i, key, want, _ in fixes)
        raise ObjaugConfigError(
            f"objaug re-crops views {views} on the device, so their pipelines must deliver the full, unflipped "
            f"frame (the boxes describe the full image): set {wanted}. On the command line: {hydra}. The crop is "
            "then drawn by objaug.crop.scale and the flip by objaug.crop.flip_prob. (Or set "
            "objaug.check_pipelines: false if your data pipeline already delivers full frames.)"
        )
    return pipelines


def full_frame_fixes(config: ObjaugConfig, augmentations: Any) -> list[tuple[int, int, str, float, Any]]:
    """What solo-learn's ``augmentations`` must change so that every view in ``objaug.views`` is a full frame.

    Args:
        config: the validated block (its ``views`` are checked).
        augmentations: solo-learn's list of pipelines (list / ``ListConfig``).

    Returns:
        One ``(view, pipeline index, key, wanted value, current value)`` per setting to change, e.g.
        ``(0, 0, "rrc.crop_min_scale", 1.0, 0.08)`` or ``(0, 0, "horizontal_flip.prob", 0.0, 0.5)``; empty
        when the pipelines already deliver full, unflipped frames (``rrc.enabled: false`` or a crop scale of
        exactly ``[1.0, 1.0]``, and no flip). Each pipeline is listed once, under its first view.
    """
    augmentations = _to_plain(augmentations)
    pipelines = view_pipelines(augmentations)
    out: list[tuple[int, int, str, float, Any]] = []
    seen: set[int] = set()
    for v in config.views:
        if v >= len(pipelines) or pipelines[v] in seen:
            continue
        i = pipelines[v]
        seen.add(i)
        item = augmentations[i]
        rrc = _get(item, "rrc", {}) or {}
        if _get(rrc, "enabled", True):
            for key in ("crop_min_scale", "crop_max_scale"):
                got = _get(rrc, key, None)
                if got != 1.0:
                    out.append((v, i, f"rrc.{key}", 1.0, got))
        flip = _get(_get(item, "horizontal_flip", {}) or {}, "prob", 0.0)
        if flip:
            out.append((v, i, "horizontal_flip.prob", 0.0, flip))
    return out
    for v in config.views:
        i = pipelines[v]
        item = augmentations[i]
        rrc = _get(item, "rrc", {}) or {}
        enabled = _get(rrc, "enabled", True)
        lo, hi = _get(rrc, "crop_min_scale", None), _get(rrc, "crop_max_scale", None)
        if enabled and not (lo == 1.0 and hi == 1.0):
            raise ObjaugConfigError(
                f"objaug re-crops view {v} on the device, so its pipeline augmentations[{i}] must deliver the "
                f"full frame: set augmentations[{i}].rrc.crop_min_scale: 1.0 and crop_max_scale: 1.0 (got "
                f"{lo}, {hi}); the random crop is then drawn by objaug.crop.scale. (Or set "
                "objaug.check_pipelines: false if your data pipeline already delivers full frames.)"
            )
        flip = _get(_get(item, "horizontal_flip", {}) or {}, "prob", 0.0)
        if flip:
            raise ObjaugConfigError(
                f"objaug re-crops view {v}, so its pipeline augmentations[{i}] must not flip the frame (the boxes "
                f"would land on the wrong side): set augmentations[{i}].horizontal_flip.prob: 0.0 (got {flip}) "
                "and use objaug.crop.flip_prob instead (0.5 for the usual flip)."
            )
    return pipelines
