"""View presets with lightly 1.6's default augmentation parameters, for :class:`ObjectAwareAugment`.

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
from typing import Any

from objaug.augment.pipeline import ViewConfig

__all__ = ["byol_views", "moco_v2_views", "simclr_views"]


def _views(base: dict[str, Any], n: int, mixup: bool, overrides: dict[str, Any]) -> list[ViewConfig]:
    cfg = ViewConfig(**{**base, **overrides})
    views = [cfg] * n
    if mixup:
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


def simclr_views(input_size: int = 224, *, mixup: bool = False, **overrides: Any) -> list[ViewConfig]:
    """Two identical SimCLR views (lightly 1.6 ``SimCLRTransform`` defaults).

    ``RandomResizedCrop(scale=(0.08, 1))``, flip 0.5, ``ColorJitter(0.8, 0.8, 0.8, 0.2)`` with p 0.8,
    grayscale 0.2, Gaussian blur 0.5 (sigma in (0.1, 2)), ImageNet normalisation.

    Args:
        input_size: output size of both views.
        mixup: apply background mixup to the first view (the reference code mixes view 1 only).
        **overrides: any :class:`ViewConfig` field, applied to both views.
    """
    return _views(_SIMCLR, 2, mixup, {"input_size": input_size, **overrides})


def moco_v2_views(input_size: int = 224, *, mixup: bool = False, **overrides: Any) -> list[ViewConfig]:
    """Two identical MoCo v2 views (lightly 1.6 ``MoCoV2Transform`` defaults).

    ``RandomResizedCrop(scale=(0.2, 1))``, flip 0.5, ``ColorJitter(0.4, 0.4, 0.4, 0.1)`` with p 0.8,
    grayscale 0.2, Gaussian blur 0.5 (sigma in (0.1, 2)), ImageNet normalisation.
    ``mixup`` mixes the first view (the MoCo query, as the reference code).
    """
    return _views(_MOCO_V2, 2, mixup, {"input_size": input_size, **overrides})


def byol_views(input_size: int = 224, *, mixup: bool = False, **overrides: Any) -> list[ViewConfig]:
    """The two asymmetric BYOL views (lightly 1.6 ``BYOLView1Transform`` / ``BYOLView2Transform``).

    Both: ``RandomResizedCrop(scale=(0.08, 1))``, flip 0.5, ``ColorJitter(0.4, 0.4, 0.2, 0.1)`` with
    p 0.8, grayscale 0.2, sigma in (0.1, 2), ImageNet normalisation. View 1: blur 1.0, no
    solarisation; view 2: blur 0.1, solarisation 0.2. ``mixup`` mixes view 1 (as the reference code).
    """
    v1 = ViewConfig(**{**_BYOL, "gaussian_blur": 1.0, "solarization_prob": 0.0, "input_size": input_size,
                       **overrides})
    v2 = ViewConfig(**{**_BYOL, "gaussian_blur": 0.1, "solarization_prob": 0.2, "input_size": input_size,
                       **overrides})
    if mixup:
        v1 = dataclasses.replace(v1, mixup=True)
    return [v1, v2]
