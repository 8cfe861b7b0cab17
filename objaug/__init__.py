"""objaug: object-aware self-supervised learning.

Batched ContraCAM (a class activation map for contrastive models), CAM-to-box/mask conversion, and
two Kornia-based batched augmentations that use them (object-aware random crop, background mixup),
after Mo et al., "Object-aware Contrastive Learning for Debiased Scene Representation", NeurIPS 2021.

Adapters for Lightly and solo-learn live in ``objaug.integrations.lightly`` and
``objaug.integrations.solo_learn``; importing ``objaug`` imports neither library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from objaug.lazy import lazy_exports

if TYPE_CHECKING:
    from objaug.augment.crop import ObjectAwareRandomResizedCrop
    from objaug.augment.mixup import BackgroundMixup
    from objaug.augment.pipeline import ObjectAwareAugment
    from objaug.augment.views import ViewConfig, byol_views, moco_v2_views, simclr_views
    from objaug.boxes import boxes_from_cam, boxes_from_steps, boxes_to_pixels
    from objaug.config import BoxConfig, CamConfig, ScheduleConfig
    from objaug.constants import IMAGENET_NORMALIZE
    from objaug.contracam import ContraCAM
    from objaug.encoder_head import EncoderHead
    from objaug.masks import (
        masks_from_uint8,
        masks_to_uint8,
        otsu_thresholds,
        resize_masks,
        soft_masks,
        threshold_masks,
    )
    from objaug.metrics import (
        best_box_iou,
        box_corloc,
        center_box_prior,
        center_boxes,
        map_contrast,
        mask_iou,
        pairwise_box_iou,
    )
    from objaug.objects import Objects, find_objects
    from objaug.provider import ObjectProvider
    from objaug.split import split_model
    from objaug.store import ObjectStore

# Names are imported on first use: `import objaug` stays cheap (it runs for every Lightning Trainer,
# through objaug's callback entry points) and imports kornia only when an augmentation is used.
_EXPORTS: dict[str, str] = {
    "ObjectAwareRandomResizedCrop": "objaug.augment.crop",
    "BackgroundMixup": "objaug.augment.mixup",
    "IMAGENET_NORMALIZE": "objaug.constants",
    "ObjectAwareAugment": "objaug.augment.pipeline",
    "ViewConfig": "objaug.augment.views",
    "byol_views": "objaug.augment.views",
    "moco_v2_views": "objaug.augment.views",
    "simclr_views": "objaug.augment.views",
    "boxes_from_cam": "objaug.boxes",
    "boxes_from_steps": "objaug.boxes",
    "boxes_to_pixels": "objaug.boxes",
    "BoxConfig": "objaug.config",
    "CamConfig": "objaug.config",
    "ScheduleConfig": "objaug.config",
    "Objects": "objaug.objects",
    "find_objects": "objaug.objects",
    "ObjectProvider": "objaug.provider",
    "ContraCAM": "objaug.contracam",
    "masks_from_uint8": "objaug.masks",
    "masks_to_uint8": "objaug.masks",
    "otsu_thresholds": "objaug.masks",
    "resize_masks": "objaug.masks",
    "soft_masks": "objaug.masks",
    "threshold_masks": "objaug.masks",
    "best_box_iou": "objaug.metrics",
    "box_corloc": "objaug.metrics",
    "center_box_prior": "objaug.metrics",
    "center_boxes": "objaug.metrics",
    "map_contrast": "objaug.metrics",
    "mask_iou": "objaug.metrics",
    "pairwise_box_iou": "objaug.metrics",
    "EncoderHead": "objaug.encoder_head",
    "split_model": "objaug.split",
    "ObjectStore": "objaug.store",
}

__version__ = "0.1.0.dev0"

__all__ = ["__version__", *sorted(_EXPORTS)]


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
