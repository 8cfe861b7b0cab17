"""Where each ContraCAM iteration's map comes from: one class per map source, behind one interface.

:class:`objaug.ContraCAM` runs the shared part of every source (input checks, the model's state, the
refinement loop, upsampling, per-image normalisation, the union over iterations, the edge filter); a
:class:`MapSource` computes one iteration's raw map of a batch at the model's map resolution. The
``source=`` string of ContraCAM (and of the CLI and configs) names a registered class.

Adding a source (as pytorch-grad-cam adds a method by subclassing)::

    @register_map_source
    class MySource(MapSource):
        name = "mine"                       # ContraCAM(model, source="mine")
        uses_negatives = False              # its maps contrast nothing: negatives= are ignored, with a warning
        unused_options = frozenset({"temperature", "hard_negatives"})

        def maps(self, x, state):
            grid = self.features(x)         # (B, C, h, w), checked; no autograd
            return grid.norm(dim=1, keepdim=True)

Two sources ship: :class:`ContrastiveGradCAM` (``"gradcam"``, the default, method.md section 1) and
:class:`ClassTokenAttention` (``"attention"``, Vision Transformers with a class token).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from objaug.encoder_head import EncoderHead
from objaug.functional.cam import bank_copies, contrastive_score, gradcam_map, nearest_negatives
from objaug.split_vit import ViTEncoderHead
from objaug.validation import check_choice, check_map_size, check_negatives_left

__all__ = [
    "MAP_SOURCES",
    "ClassTokenAttention",
    "ContrastiveGradCAM",
    "MapSource",
    "check_unused_options",
    "map_source_class",
    "register_map_source",
]


class MapSource:
    """One refinement iteration's raw map of a batch, for :class:`objaug.ContraCAM`.

    Subclasses set :attr:`name` and implement :meth:`maps`; they may override :meth:`check_model` (refuse
    a model they cannot explain, at construction) and :meth:`start` (per-call state, e.g. the keys of a
    contrastive score, kept across the iterations of one call). :meth:`maps` must not read values back to
    the host (it runs on accelerators and under ``torch.compile``).

    Args:
        split: the model cut into encoder and head (:func:`objaug.split_model`).
        temperature: ContraCAM's ``temperature`` (> 0).
        hard_negatives: ContraCAM's ``hard_negatives`` (``None`` or >= 1).

    Attributes:
        name: the ``source=`` string that selects the class.
        uses_negatives: whether the maps contrast each image with negatives (the batch's other images
            and ``negatives=``); if False, ``negatives=`` passed to ContraCAM are ignored with a warning and a
            batch of one image is fine.
        unused_options: ContraCAM constructor options without effect on this source; ContraCAM refuses a
            non-default value of any of them, naming it and the source.
    """

    name: ClassVar[str] = ""
    uses_negatives: ClassVar[bool] = True
    unused_options: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, split: EncoderHead, *, temperature: float = 1.0, hard_negatives: int | None = None,
                 expand_res: bool = False) -> None:
        self.split = split
        self.temperature = float(temperature)
        self.hard_negatives = hard_negatives
        self.expand_res = expand_res
        self._warned_small = False

    @classmethod
    def check_model(cls, split: EncoderHead, model: object) -> None:
        """Refuse a model this source cannot explain (``TypeError``); ``model`` is the object given by the user."""

    def start(self, bank: Tensor | None, *, check_negatives: bool = False) -> Any:
        """The state of one ContraCAM call, passed to every :meth:`maps` of it.

        Args:
            bank: (N, D) unit-norm external negatives in the working dtype, or ``None``.
            check_negatives: refuse a batch of one image with no negative left
                (:func:`objaug.validation.check_negatives_left`; sources without negatives ignore it).
        """
        return None

    def maps(self, x: Tensor, state: Any) -> Tensor:
        """The raw maps of one iteration.

        Args:
            x: (B, C, H, W) images of this iteration (the originals, then with the found regions filled),
                normalised as the model expects, on the model's device.
            state: what :meth:`start` returned for this call.

        Returns:
            (B, 1, h, w) non-negative maps at the model's map resolution, float32 (float64 for a float64
            model), on ``x``'s device; ContraCAM upsamples and normalises them.
        """
        raise NotImplementedError

    def features(self, x: Tensor) -> Tensor:
        """The encoder's map of ``x`` without autograd, checked to be a spatial map worth localising in.

        Raises:
            TypeError: the encoder does not return (B, C, h, w).
            ValueError: a 1x1 map (nothing to localise).
        """
        with torch.no_grad():
            feats = self.split.encoder(x)
        if feats.ndim != 4:
            raise TypeError(
                f"The encoder returned shape {tuple(feats.shape)}, not a spatial map (B, C, h, w). Pass an "
                "encoder that stops at the last spatial stage: ContraCAM(encoder=..., head=...)."
            )
        warning = check_map_size(feats, self.split, expand_res=self.expand_res)  # the fix suits ViTs and CNNs
        if warning is not None and not self._warned_small:
            self._warned_small = True
            warnings.warn(warning, UserWarning, stacklevel=5)
        return feats


#: The registered map sources by ``source=`` name (:func:`register_map_source`).
MAP_SOURCES: dict[str, type[MapSource]] = {}


def register_map_source(cls: type[MapSource]) -> type[MapSource]:
    """Class decorator: make ``cls`` selectable as ``ContraCAM(source=cls.name)``.

    Raises:
        TypeError: ``cls`` is not a :class:`MapSource` subclass.
        ValueError: an empty name, or one already registered by another class.
    """
    if not (isinstance(cls, type) and issubclass(cls, MapSource)):
        raise TypeError(f"register_map_source takes a MapSource subclass, got {cls!r}.")
    if not cls.name or MAP_SOURCES.get(cls.name, cls) is not cls:
        raise ValueError(f"a map source needs a new, non-empty name; {cls.name!r} is "
                         f"{'empty' if not cls.name else 'taken by ' + MAP_SOURCES[cls.name].__name__}.")
    MAP_SOURCES[cls.name] = cls
    return cls


def map_source_class(name: object) -> type[MapSource]:
    """The :class:`MapSource` registered as ``name``.

    Raises:
        TypeError: not a string.
        ValueError: no source of that name (the message lists the registered ones and the nearest).
    """
    return MAP_SOURCES[check_choice(name, "source", tuple(MAP_SOURCES))]


@dataclass
class _Contrast:
    """One ContraCAM call's state of :class:`ContrastiveGradCAM`: the keys (the original images' embeddings,
    fixed at the first iteration), every iteration's embeddings (the in-batch negatives) and which
    negatives each image contrasts with."""

    bank: Tensor | None
    check_negatives: bool = False
    keys: Tensor | None = None
    in_batch: list[Tensor] = field(default_factory=list)
    batch_mask: Tensor | None = None
    bank_mask: Tensor | None = None


@register_map_source
class ContrastiveGradCAM(MapSource):
    """The contrastive Grad-CAM of method.md section 1 (``source="gradcam"``, the default).

    One forward of the encoder without autograd, then the gradient of each image's contrastive score
    (:func:`objaug.functional.cam.contrastive_score`: its own embedding against the batch's other images
    at every iteration so far and the bank) with respect to the feature map, through the head only
    (``torch.func.vjp``: no weight gradients, and one graph under ``torch.compile``); the map is
    :func:`objaug.functional.cam.gradcam_map`. The keys and the hard-negative choice
    (:func:`objaug.functional.cam.nearest_negatives`) are fixed at the first iteration.
    """

    name = "gradcam"

    def start(self, bank: Tensor | None, *, check_negatives: bool = False) -> _Contrast:
        return _Contrast(bank, check_negatives)

    def _embedding(self, feats: Tensor) -> Tensor:
        z = self.split.head(feats)
        if z.ndim != 2:
            raise TypeError(f"The head returned shape {tuple(z.shape)}; it must return embeddings (B, D).")
        return F.normalize(z.to(torch.promote_types(z.dtype, torch.float32)), dim=1)

    def maps(self, x: Tensor, state: _Contrast) -> Tensor:
        feats = self.features(x)
        z, pull = torch.func.vjp(self._embedding, feats)  # type: ignore[misc]  # (output, vjp_fn) without aux
        bank = state.bank
        if bank is not None and bank.shape[1] != z.shape[1]:
            hint = " (transposed? pass negatives.T)" if bank.shape[0] == z.shape[1] else ""
            raise ValueError(f"negatives have dimension {bank.shape[1]} but the model's embeddings have "
                             f"{z.shape[1]}{hint}.")
        if state.keys is None:
            state.keys = z
            if self.hard_negatives is not None:
                state.batch_mask, state.bank_mask = nearest_negatives(z, self.hard_negatives, bank)
            elif bank is not None:  # a bank embedded from the same images holds each one's copy
                state.bank_mask = ~bank_copies(z, bank)
            if state.check_negatives:  # reads the mask of a batch of one only (decided from the shape)
                check_negatives_left(state.bank_mask, batch=z.shape[0])
        state.in_batch.append(z)
        keys, in_batch, masks = state.keys, list(state.in_batch), (state.batch_mask, state.bank_mask)

        def score(embeddings: Tensor) -> Tensor:
            return contrastive_score(embeddings, keys, in_batch, bank=bank, temperature=self.temperature,
                                     batch_mask=masks[0], bank_mask=masks[1]).sum()

        (grads,) = pull(torch.func.grad(score)(z))
        return gradcam_map(feats, grads)


@register_map_source
class ClassTokenAttention(MapSource):
    """The last block's class-token self-attention over the patches, averaged over heads (``source="attention"``).

    DINO's localisation map, for Vision Transformers that :func:`objaug.split_model` recognises and that
    have a class token (:meth:`objaug.split_vit.ViTEncoderHead.attention_maps`). No backward, no negatives:
    ``temperature`` and ``hard_negatives`` have no effect and are refused; ``negatives=`` are ignored with a
    warning.
    """

    name = "attention"
    uses_negatives = False
    unused_options = frozenset({"temperature", "hard_negatives"})

    @classmethod
    def check_model(cls, split: EncoderHead, model: object) -> None:
        if not isinstance(split, ViTEncoderHead):
            raise TypeError(f"source='attention' needs a Vision Transformer that objaug.split_model recognises "
                            f"(timm, torchvision or lightly ViT), got a {type(model).__name__}. Use "
                            "source='gradcam' (the default) for other models.")

    def maps(self, x: Tensor, state: None) -> Tensor:
        assert isinstance(self.split, ViTEncoderHead)
        grid = self.features(x)
        with torch.no_grad():
            return self.split.attention_maps(grid)


def check_unused_options(cls: type[MapSource], options: Mapping[str, tuple[object, object]]) -> None:
    """Refuse a non-default ContraCAM option that ``cls`` ignores, naming the option and the source.

    Args:
        cls: the chosen source.
        options: ContraCAM option name -> ``(value given, its default)``.

    Raises:
        ValueError: e.g. ``temperature=0.2`` with ``source="attention"``.
    """
    for option in sorted(cls.unused_options & options.keys()):
        value, default = options[option]
        if value != default:
            raise ValueError(f"{option}={value!r} has no effect with source={cls.name!r} (its maps contrast "
                             f"nothing); drop {option}= or use source='gradcam'.")
