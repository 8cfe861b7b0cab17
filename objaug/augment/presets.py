"""View presets with lightly 1.6's default augmentation parameters (defined in :mod:`objaug.augment.views`).

Kept as the documented import path: ``from objaug.augment.presets import simclr_views`` works as before.
"""

from objaug.augment.views import byol_views, moco_v2_views, simclr_views

__all__ = ["byol_views", "moco_v2_views", "simclr_views"]
