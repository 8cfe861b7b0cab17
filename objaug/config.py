"""One configuration object per concept, shared by every entry point.

* :class:`CamConfig`: how ContraCAM computes a batch's maps (map source, iterations, temperature, refinement,
  edges, hard negatives and bank, ``expand_res``, ...).
* :class:`BoxConfig`: how boxes are read off the maps (threshold, minimum area, margin, box slots, overlap of
  refined iterations, connectivity, the map size boxes are searched at).
* :class:`ScheduleConfig`: when an online CAM runs during training (every N batches after a warm-up).

The library (:func:`objaug.objects.find_objects`, :class:`objaug.provider.ObjectProvider`), ``objaug cam`` and
``objaug precompute`` (their flags are generated from these fields by :mod:`objaug.cli.options`),
:func:`objaug.store.precompute`, the Lightly ``ObjectAwareStep`` and the solo-learn block (its ``online`` and
``boxes`` keys are derived from these fields) all take these objects, so every option reaches every door with
one default. Each field's ``metadata["help"]`` is its one description (CLI help, the solo-learn docs table).

A config validates itself when built: a value of the wrong type raises ``TypeError``, a value of the right
type that is impossible (or options that contradict each other) raises ``ValueError``, naming the field.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from objaug.validation.scalars import check_bool, check_choice, check_float, check_int, check_source_options

__all__ = ["BoxConfig", "CamConfig", "ScheduleConfig", "config_from_mapping", "describe_fields", "ensure_config"]

MAP_SOURCES: tuple[str, ...] = ("gradcam", "attention")
INTERPOLATIONS: tuple[str, ...] = ("bicubic", "bilinear", "nearest")
REFINE_RULES: tuple[str, ...] = ("weighted", "union")


def _doc(text: str, *, kind: str) -> dict[str, str]:
    """Field metadata: ``help`` (one description for every door) and ``kind`` (shown type, e.g. ``int >= 1``)."""
    return {"help": text, "kind": kind}


# ---------------------------------------------------------------------- field checks
# Every check is objaug.validation's (one rule: a wrong type raises TypeError, an impossible value ValueError),
# with the field named ``<Config>.<field>`` so a door can re-word it with its own key names.
def _need_int(owner: str, name: str, value: object, *, low: int, optional: bool = False) -> None:
    if optional and value is None:
        return
    check_int(value, f"{owner}.{name}", low=low, why=" (or unset)" if optional else "")


def _need_float(owner: str, name: str, value: object, *, low: float, high: float | None = None,
                open_low: bool = False, open_high: bool = False) -> None:
    check_float(value, f"{owner}.{name}", low=low, high=high, low_open=open_low, high_open=open_high)


# ---------------------------------------------------------------------- the configs
@dataclass(frozen=True)
class CamConfig:
    """How ContraCAM computes the maps of a batch (see :class:`objaug.contracam.ContraCAM`).

    Attributes:
        map_source: where each iteration's map comes from.
        iters: refinement iterations T.
        mask_iters: masks from the first k iterations only.
        temperature: softmax temperature of the contrastive score.
        hard_negatives: nearest negatives per image.
        bank: embeddings contrasted beyond the batch.
        expand_res: stride 1 in the last stage.
        interpolation: upsampling of the maps.
        edges: guided-filter edge refinement of the output map.
        edge_radius: the edge filter's radius.
        edge_eps: the edge filter's regulariser.
        refine: how iterations are merged.
    """

    map_source: Literal["gradcam", "attention"] = field(default="gradcam", metadata=_doc(
        "Where each iteration's map comes from: `gradcam` (ContraCAM's contrastive Grad-CAM) or `attention` "
        "(the last block's class-token attention of a Vision Transformer with a class token; no backward, no "
        "negatives).", kind="`gradcam` \\| `attention`"))
    iters: int = field(default=1, metadata=_doc(
        "Refinement iterations T (each costs one forward); boxes are found on every iteration's own map. "
        "The paper uses 10 for boxes and 1 for mixup masks.", kind="int >= 1"))
    mask_iters: int | None = field(default=None, metadata=_doc(
        "Masks from the first k iterations only (they equal ContraCAM(iters=k)'s output) while boxes use all "
        "`iters`: the paper's split is iters 10, mask_iters 1. Unset: the output of all `iters`.",
        kind="int >= 1 or null"))
    temperature: float = field(default=1.0, metadata=_doc(
        "Softmax temperature of the contrastive score (the reference uses 1; 0.1-0.2 helps weak encoders).",
        kind="float > 0"))
    hard_negatives: int | None = field(default=None, metadata=_doc(
        "Contrast each image with only its K nearest negatives (in the batch and the bank); unset: all of them.",
        kind="int >= 1 or null"))
    bank: int = field(default=0, metadata=_doc(
        "Embeddings contrasted beyond the batch: offline (cam, precompute) this many samples spread evenly over "
        "the dataset; online (training) the embeddings of up to this many recent CAM images. An image's own "
        "copy is never its negative. 0: none.", kind="int >= 0"))
    expand_res: bool = field(default=False, metadata=_doc(
        "Stride 1 in the last stage of a CNN (2x finer maps, 4x that stage's cost); not for Vision Transformers.",
        kind="bool"))
    interpolation: Literal["bicubic", "bilinear", "nearest"] = field(default="bicubic", metadata=_doc(
        "Upsampling of the maps to the image size.", kind="`bicubic` \\| `bilinear` \\| `nearest`"))
    edges: bool = field(default=True, metadata=_doc(
        "Guided-filter edge refinement of the output map (masks snap to the image's edges).", kind="bool"))
    edge_radius: float = field(default=0.05, metadata=_doc(
        "The edge filter's radius as a fraction of the image's short side.", kind="float in (0, 0.5]"))
    edge_eps: float = field(default=0.01, metadata=_doc(
        "The edge filter's regulariser (larger: smoother).", kind="float > 0"))
    refine: Literal["weighted", "union"] = field(default="weighted", metadata=_doc(
        "How iterations are merged: `weighted` (a later, more diffuse map is scaled down by its area ratio) or "
        "`union` (the reference's pixel-wise max).", kind="`weighted` \\| `union`"))

    def __post_init__(self) -> None:
        owner = "CamConfig"
        check_choice(self.map_source, f"{owner}.map_source", MAP_SOURCES)
        _need_int(owner, "iters", self.iters, low=1)
        _need_int(owner, "mask_iters", self.mask_iters, low=1, optional=True)
        _need_float(owner, "temperature", self.temperature, low=0.0, open_low=True)
        _need_int(owner, "hard_negatives", self.hard_negatives, low=1, optional=True)
        _need_int(owner, "bank", self.bank, low=0)
        check_bool(self.expand_res, f"{owner}.expand_res")
        check_choice(self.interpolation, f"{owner}.interpolation", INTERPOLATIONS)
        check_bool(self.edges, f"{owner}.edges")
        _need_float(owner, "edge_radius", self.edge_radius, low=0.0, high=0.5, open_low=True)
        _need_float(owner, "edge_eps", self.edge_eps, low=0.0, open_low=True)
        check_choice(self.refine, f"{owner}.refine", REFINE_RULES)
        self._cross_check()

    def _cross_check(self) -> None:
        if self.mask_iters is not None and self.mask_iters > self.iters:
            raise ValueError(f"CamConfig.mask_iters={self.mask_iters} is more than iters={self.iters}: masks come "
                             f"from the first mask_iters of the iters iterations. Use mask_iters <= iters.")
        check_source_options(self.map_source, hard_negatives=self.hard_negatives, temperature=self.temperature,
                             bank=self.bank, expand_res=self.expand_res, prefix="CamConfig.", source_name="map_source")

    @property
    def source(self) -> str:
        """``map_source`` under ContraCAM's argument name (``source=``)."""
        return self.map_source

    def contracam_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :class:`objaug.contracam.ContraCAM` these settings give."""
        return {"iters": self.iters, "temperature": self.temperature, "expand_res": self.expand_res,
                "interpolation": self.interpolation, "hard_negatives": self.hard_negatives, "edges": self.edges,
                "edge_radius": self.edge_radius, "edge_eps": self.edge_eps, "refine": self.refine,
                "source": self.map_source}

    def build(self, model: Any = None, *, encoder: Any = None, head: Any = None, projector: Any = None,
              check_finite: bool = True) -> Any:
        """A :class:`objaug.contracam.ContraCAM` with these settings (see its arguments)."""
        from objaug.contracam import ContraCAM

        return ContraCAM(model, encoder=encoder, head=head, projector=projector, check_finite=check_finite,
                         **self.contracam_kwargs())


@dataclass(frozen=True)
class BoxConfig:
    """How boxes are read off CAM maps (:func:`objaug.boxes.boxes_from_cam` / :func:`~objaug.boxes.boxes_from_steps`).

    Attributes:
        threshold: binarisation threshold.
        min_area: smallest component kept.
        margin: padding of each box.
        max_boxes: box slots per image.
        overlap: how much a refined iteration's box may overlap an earlier one.
        connectivity: 4 or 8.
        map_size: search boxes on a downsampled copy of the maps.
    """

    threshold: float = field(default=0.5, metadata=_doc(
        "Map threshold: a pixel >= threshold is foreground (the paper's 0.5).", kind="float in (0, 1]"))
    min_area: float = field(default=0.01, metadata=_doc(
        "Smallest component kept, as a fraction of the image area (the paper's 1 %).", kind="float in [0, 1)"))
    margin: float = field(default=0.2, metadata=_doc(
        "Padding of each box on every side, as a fraction of its own width/height (the paper's 20 %).",
        kind="float >= 0"))
    max_boxes: int = field(default=4, metadata=_doc(
        "Box slots per image (largest components first).", kind="int >= 1"))
    overlap: float = field(default=0.3, metadata=_doc(
        "Refined maps: a later iteration's box overlapping an earlier one by more than this (intersection over "
        "the smaller box) is dropped.", kind="float in [0, 1]"))
    connectivity: int = field(default=4, metadata=_doc(
        "Pixel connectivity of the components (the paper's 4, or 8).", kind="4 \\| 8"))
    map_size: int | None = field(default=None, metadata=_doc(
        "Search the boxes on an area-downsampled map_size x map_size copy of larger maps (cost control; boxes "
        "are normalised, so they apply to the full images). Unset: the maps as they are.",
        kind="int >= 4 or null"))

    def __post_init__(self) -> None:
        owner = "BoxConfig"
        _need_float(owner, "threshold", self.threshold, low=0.0, high=1.0, open_low=True)
        _need_float(owner, "min_area", self.min_area, low=0.0, high=1.0, open_high=True)
        _need_float(owner, "margin", self.margin, low=0.0)
        _need_int(owner, "max_boxes", self.max_boxes, low=1)
        _need_float(owner, "overlap", self.overlap, low=0.0, high=1.0)
        check_choice(self.connectivity, f"{owner}.connectivity", (4, 8))
        _need_int(owner, "map_size", self.map_size, low=4, optional=True)

    def cam_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`objaug.boxes.boxes_from_cam`."""
        return {"threshold": self.threshold, "min_area": self.min_area, "margin": self.margin,
                "max_boxes": self.max_boxes, "connectivity": self.connectivity}

    def steps_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`objaug.boxes.boxes_from_steps`."""
        return {**self.cam_kwargs(), "overlap": self.overlap}


@dataclass(frozen=True)
class ScheduleConfig:
    """When the online CAM runs during training.

    Attributes:
        every_n_steps: the CAM runs on every N-th batch.
        start_step: batches before the first CAM.
    """

    every_n_steps: int = field(default=1, metadata=_doc(
        "Compute CAMs on every N-th training batch only; the batches in between read each sample's cached "
        "boxes and masks by dataset index.", kind="int >= 1"))
    start_step: int = field(default=0, metadata=_doc(
        "No CAM before this training batch (whole-frame crops, no mixup): let the model learn first.",
        kind="int >= 0"))

    def __post_init__(self) -> None:
        _need_int("ScheduleConfig", "every_n_steps", self.every_n_steps, low=1)
        _need_int("ScheduleConfig", "start_step", self.start_step, low=0)


# ---------------------------------------------------------------------- generic helpers
C = TypeVar("C")


def describe_fields(cls: type) -> list[tuple[str, str, Any, str]]:
    """``(name, kind, default, help)`` of every field of a config class, in declaration order."""
    rows = []
    for f in dataclasses.fields(cls):
        rows.append((f.name, f.metadata.get("kind", ""), f.default, f.metadata.get("help", "")))
    return rows


def ensure_config(value: C | None, cls: type[C], name: str) -> C:
    """``value`` if it is a ``cls``, ``cls()`` (the defaults) if it is ``None``.

    Raises:
        TypeError: anything else, naming the argument ``name``.
    """
    if value is None:
        return cls()
    if not isinstance(value, cls):
        raise TypeError(f"{name} must be an objaug.config.{cls.__name__} (or None for the defaults), got "
                        f"{type(value).__name__}.")
    return value


def config_from_mapping(cls: type[C], values: Mapping[str, Any] | None, *, prefix: str | None = None) -> C:
    """Build a config from a mapping of field values, refusing unknown keys (with the closest name).

    Args:
        cls: :class:`CamConfig`, :class:`BoxConfig` or :class:`ScheduleConfig`.
        values: field name -> value (``None``: all defaults).
        prefix: how the fields are named to the user (``"objaug.online."``), used in messages instead of
            ``"CamConfig."``.

    Raises:
        TypeError / ValueError: as the config's own checks, with ``prefix`` in the message.
    """
    values = dict(values or {})
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    owner = cls.__name__
    shown = prefix if prefix is not None else f"{owner}."
    for key in values:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" Did you mean {shown}{close[0]}?" if close else ""
            raise ValueError(f"Unknown option {shown}{key}.{hint} Allowed: {', '.join(names)}.")
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        if prefix is None:
            raise
        raise type(err)(str(err).replace(f"{owner}.", prefix)) from None
