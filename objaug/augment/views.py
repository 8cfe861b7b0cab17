"""The views of :class:`objaug.augment.pipeline.ObjectAwareAugment`: :class:`ViewConfig` and its presets.

:class:`ViewConfig` holds one view's augmentation settings (lightly's parameter names); the presets
give lightly 1.6's default parameters.

The numbers are copied from lightly 1.6.0 (objaug does not import lightly):

* ``lightly/transforms/simclr_transform.py``: ``SimCLRTransform`` / ``SimCLRViewTransform``.
* ``lightly/transforms/moco_transform.py``: ``MoCoV2Transform`` (a ``SimCLRTransform`` with MoCo v2's
  values).
* ``lightly/transforms/byol_transform.py``: ``BYOLView1Transform`` / ``BYOLView2Transform``.

All use ImageNet normalisation (``lightly.transforms.utils.IMAGENET_NORMALIZE``), Gaussian-blur sigmas
``(0.1, 2)``, horizontal flip 0.5, and no vertical flip or rotation (``vf_prob=0``, ``rr_prob=0``, which
objaug does not implement). ``tests/test_pipeline.py`` checks these values against lightly's objects.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from objaug.constants import IMAGENET_NORMALIZE
from objaug.validation import (
    check_bool,
    check_float,
    check_int,
    check_normalize,
    check_pair,
    check_probability,
    check_size,
)

__all__ = ["REFERENCE_SIZE", "ViewConfig", "byol_views", "moco_v2_views", "scaled_to_size", "simclr_views"]

#: The image side (ImageNet's 224 px) that the presets' blur sigmas and minimum crop scale were set for.
REFERENCE_SIZE = 224
#: ``scaled_to_size`` never raises a preset's minimum crop scale above this.
_MAX_SCALED_MIN_SCALE = 0.5


@dataclass(frozen=True)
class ViewConfig:
    """Augmentation settings of one view, with lightly's parameter names and SimCLR's defaults.

    The defaults are those of ``lightly.transforms.SimCLRViewTransform`` (lightly 1.6); see
    the presets below for the MoCo v2 and BYOL views. Order of operations, as lightly:
    random resized crop (object-aware), horizontal flip, colour jitter (applied with ``cj_prob``),
    random grayscale, Gaussian blur, solarisation, normalisation, then background mixup if ``mixup``.

    Attributes:
        input_size: output size (int or (height, width)).
        min_scale: minimum crop area fraction (of the chosen box, or of the image).
        max_scale: maximum crop area fraction (lightly: always 1.0).
        ratio: crop width / height range (torchvision's default).
        cj_prob: probability of applying colour jitter.
        cj_strength: multiplies the four jitter strengths.
        cj_bright, cj_contrast, cj_sat, cj_hue: jitter strengths (torchvision ``ColorJitter`` semantics).
        random_gray_scale: probability of converting to grayscale (3 channels kept).
        gaussian_blur: probability of a Gaussian blur.
        sigmas: (min, max) of the uniformly drawn blur sigma, in output pixels.
        kernel_size: blur kernel size; ``None`` = ``2 * ceil(3 * sigmas[1]) + 1`` (13 for sigma 2), which
            covers +-3 sigma as PIL's ``GaussianBlur`` (lightly's) effectively does.
        solarization_prob: probability of solarising (pixels >= 0.5 become 1 - value).
        hf_prob: probability of a horizontal flip.
        normalize: ``{"mean": ..., "std": ...}`` or ``None`` for no normalisation.
        mixup: apply background mixup to this view (after normalisation, as the reference code;
            needs soft masks).
        object_crop: crop inside the image's chosen box; ``False`` gives a plain whole-image crop
            for this view (e.g. a global view).
        min_box_pixels: a chosen box side shorter than this many pixels of the input frames is grown around
            the box's centre to this size before the crop is drawn in it
            (:func:`objaug.functional.crop.grow_small_boxes`), so a 10-pixel box is not zoomed into a blur;
            ``0`` (default): boxes as they are. Whole-frame crops are unaffected.
    """

    input_size: int | tuple[int, int] = 224
    min_scale: float = 0.08
    max_scale: float = 1.0
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    cj_prob: float = 0.8
    cj_strength: float = 1.0
    cj_bright: float = 0.8
    cj_contrast: float = 0.8
    cj_sat: float = 0.8
    cj_hue: float = 0.2
    random_gray_scale: float = 0.2
    gaussian_blur: float = 0.5
    sigmas: tuple[float, float] = (0.1, 2.0)
    kernel_size: int | None = None
    solarization_prob: float = 0.0
    hf_prob: float = 0.5
    normalize: Mapping[str, Sequence[float]] | None = field(default_factory=lambda: dict(IMAGENET_NORMALIZE))
    mixup: bool = False
    object_crop: bool = True
    min_box_pixels: int = 0

    def __post_init__(self) -> None:
        check_size(self.input_size, "input_size")
        check_int(self.min_box_pixels, "min_box_pixels", low=0,
                  why=" (smallest box side in pixels of the input frames; 0 turns it off)")
        check_pair((self.min_scale, self.max_scale), "(min_scale, max_scale)", 0.0, 1.0,
                    fix="lightly uses min_scale=0.08 (SimCLR, BYOL) or 0.2 (MoCo v2) and max_scale=1.")
        check_pair(self.ratio, "ratio", 0.0, math.inf, fix="Use e.g. ratio=(3/4, 4/3).")
        for name in ("cj_prob", "random_gray_scale", "gaussian_blur", "solarization_prob", "hf_prob"):
            check_probability(getattr(self, name), name)
        for name in ("cj_strength", "cj_bright", "cj_contrast", "cj_sat", "cj_hue"):
            check_float(getattr(self, name), name, low=0.0)
        if self.cj_strength * self.cj_hue > 0.5:
            raise ValueError(f"cj_strength * cj_hue must be <= 0.5 (hue is a fraction of a turn), got "
                             f"{self.cj_strength * self.cj_hue}.")
        check_pair(self.sigmas, "sigmas", 0.0, math.inf, fix="lightly uses sigmas=(0.1, 2).")
        if self.kernel_size is not None:
            check_int(self.kernel_size, "kernel_size", low=1, why=", odd, or None (from sigmas)")
            if self.kernel_size % 2 == 0:
                raise ValueError(f"kernel_size must be odd (a blur kernel has a centre pixel), got "
                                 f"{self.kernel_size}: use {self.kernel_size + 1}, or None (from sigmas).")
        check_normalize(self.normalize)
        check_bool(self.mixup, "mixup")
        check_bool(self.object_crop, "object_crop")

    @property
    def size(self) -> tuple[int, int]:
        """Output (height, width)."""
        return check_size(self.input_size)

    @property
    def blur_kernel_size(self) -> int:
        """The blur kernel size used (``kernel_size`` or the +-3 sigma default)."""
        if self.kernel_size is not None:
            return self.kernel_size
        return 2 * math.ceil(3 * self.sigmas[1]) + 1


def scaled_to_size(settings: Mapping[str, Any], input_size: int | tuple[int, int], *,
                   reference: int = REFERENCE_SIZE) -> dict[str, Any]:
    """A preset's blur sigmas and minimum crop scale for images smaller than ``reference`` pixels.

    The presets' values were set for 224-px ImageNet views: a blur sigma of up to 2 px is 0.9 % of the side
    there, but 3 % at 64 px and 6 % at 32 px, which erases small images' details. With
    ``f = min(1, side / reference)`` (``side``: the shorter output side):

    * ``sigmas`` are multiplied by ``f`` (the same blur relative to the image);
    * ``min_scale`` is divided by ``sqrt(f)`` (capped at 0.5, never lowered): the smallest crop of an
      already low-resolution image keeps more of it (SimCLR's 0.08 becomes 0.15 at 64 px and 0.21 at 32 px).

    Images of ``reference`` pixels or larger get the settings unchanged.

    Args:
        settings: a mapping with ``sigmas`` and ``min_scale`` (a preset's values).
        input_size: the views' output size (int or (height, width)).
        reference: the side the settings were set for.

    Returns:
        ``{"sigmas": (lo, hi), "min_scale": s}``.
    """
    side = min(check_size(input_size))
    f = min(1.0, side / reference)
    lo, hi = settings["sigmas"]
    base = float(settings["min_scale"])
    return {"sigmas": (lo * f, hi * f), "min_scale": max(base, min(_MAX_SCALED_MIN_SCALE, base / math.sqrt(f)))}


def _views(base: dict[str, Any], n: int, mixup: bool, overrides: dict[str, Any],
           scale_to_size: bool = False) -> list[ViewConfig]:
    if scale_to_size:
        base = {**base, **scaled_to_size(base, overrides["input_size"])}
    cfg = ViewConfig(**{**base, **overrides})
    views = [cfg] * n
    if check_bool(mixup, "mixup"):
        views[0] = dataclasses.replace(cfg, mixup=True)
    return views


_SIMCLR: dict[str, Any] = dict(
    min_scale=0.08, cj_prob=0.8, cj_strength=1.0, cj_bright=0.8, cj_contrast=0.8, cj_sat=0.8, cj_hue=0.2,
    random_gray_scale=0.2, gaussian_blur=0.5, sigmas=(0.1, 2.0), solarization_prob=0.0, hf_prob=0.5,
)

_MOCO_V2: dict[str, Any] = dict(
    min_scale=0.2, cj_prob=0.8, cj_strength=1.0, cj_bright=0.4, cj_contrast=0.4, cj_sat=0.4, cj_hue=0.1,
    random_gray_scale=0.2, gaussian_blur=0.5, sigmas=(0.1, 2.0), solarization_prob=0.0, hf_prob=0.5,
)

_BYOL: dict[str, Any] = dict(
    min_scale=0.08, cj_prob=0.8, cj_strength=1.0, cj_bright=0.4, cj_contrast=0.4, cj_sat=0.2, cj_hue=0.1,
    random_gray_scale=0.2, sigmas=(0.1, 2.0), hf_prob=0.5,
)


def simclr_views(input_size: int = 224, *, mixup: bool = False, scale_to_size: bool = False,
                 **overrides: Any) -> list[ViewConfig]:
    """Two identical SimCLR views (lightly 1.6 ``SimCLRTransform`` defaults).

    ``RandomResizedCrop(scale=(0.08, 1))``, flip 0.5, ``ColorJitter(0.8, 0.8, 0.8, 0.2)`` with p 0.8,
    grayscale 0.2, Gaussian blur 0.5 (sigma in (0.1, 2)), ImageNet normalisation.

    Args:
        input_size: output size of both views.
        mixup: apply background mixup to the first view (the reference code mixes view 1 only).
        scale_to_size: for images under 224 px, scale the blur sigmas and the minimum crop scale to the
            image size (:func:`scaled_to_size`; e.g. sigma (0.03, 0.57) and min_scale 0.15 at 64 px).
            ``False`` (default): lightly's values at any size.
        **overrides: any :class:`ViewConfig` field, applied to both views (after ``scale_to_size``).
    """
    return _views(_SIMCLR, 2, mixup, {"input_size": input_size, **overrides}, scale_to_size)


def moco_v2_views(input_size: int = 224, *, mixup: bool = False, scale_to_size: bool = False,
                  **overrides: Any) -> list[ViewConfig]:
    """Two identical MoCo v2 views (lightly 1.6 ``MoCoV2Transform`` defaults).

    ``RandomResizedCrop(scale=(0.2, 1))``, flip 0.5, ``ColorJitter(0.4, 0.4, 0.4, 0.1)`` with p 0.8,
    grayscale 0.2, Gaussian blur 0.5 (sigma in (0.1, 2)), ImageNet normalisation.
    ``mixup`` mixes the first view (the MoCo query, as the reference code); ``scale_to_size`` as
    :func:`simclr_views`.
    """
    return _views(_MOCO_V2, 2, mixup, {"input_size": input_size, **overrides}, scale_to_size)


def byol_views(input_size: int = 224, *, mixup: bool = False, scale_to_size: bool = False,
               **overrides: Any) -> list[ViewConfig]:
    """The two asymmetric BYOL views (lightly 1.6 ``BYOLView1Transform`` / ``BYOLView2Transform``).

    Both: ``RandomResizedCrop(scale=(0.08, 1))``, flip 0.5, ``ColorJitter(0.4, 0.4, 0.2, 0.1)`` with
    p 0.8, grayscale 0.2, sigma in (0.1, 2), ImageNet normalisation. View 1: blur 1.0, no
    solarisation; view 2: blur 0.1, solarisation 0.2. ``mixup`` mixes view 1 (as the reference code);
    ``scale_to_size`` as :func:`simclr_views`.
    """
    base = {**_BYOL, **scaled_to_size(_BYOL, input_size)} if scale_to_size else _BYOL
    v1 = ViewConfig(**{**base, "gaussian_blur": 1.0, "solarization_prob": 0.0, "input_size": input_size,
                       **overrides})
    v2 = ViewConfig(**{**base, "gaussian_blur": 0.1, "solarization_prob": 0.2, "input_size": input_size,
                       **overrides})
    if check_bool(mixup, "mixup"):
        v1 = dataclasses.replace(v1, mixup=True)
    return [v1, v2]
