"""Batched, Kornia-based object-aware augmentations."""

from objaug.augment.crop import ObjectAwareRandomResizedCrop
from objaug.augment.mixup import BackgroundMixup
from objaug.augment.pipeline import IMAGENET_NORMALIZE, ObjectAwareAugment, ViewConfig
from objaug.augment.views import byol_views, moco_v2_views, simclr_views

__all__ = [
    "IMAGENET_NORMALIZE",
    "BackgroundMixup",
    "ObjectAwareAugment",
    "ObjectAwareRandomResizedCrop",
    "ViewConfig",
    "byol_views",
    "moco_v2_views",
    "simclr_views",
]
