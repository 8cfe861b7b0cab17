"""objaug: object-aware self-supervised learning.

Batched ContraCAM (a class activation map for contrastive models), CAM-to-box/mask conversion, and
two Kornia-based batched augmentations that use them (object-aware random crop, background mixup),
after Mo et al., "Object-aware Contrastive Learning for Debiased Scene Representation", NeurIPS 2021.

Adapters for Lightly and solo-learn live in ``objaug.integrations.lightly`` and
``objaug.integrations.solo_learn``; importing ``objaug`` imports neither library.
"""

from objaug.augment.crop import ObjectAwareRandomResizedCrop
from objaug.augment.mixup import BackgroundMixup
from objaug.augment.pipeline import IMAGENET_NORMALIZE, ObjectAwareAugment, ViewConfig
from objaug.augment.presets import byol_views, moco_v2_views, simclr_views
from objaug.boxes import boxes_from_cam, boxes_to_pixels
from objaug.contracam import ContraCAM
from objaug.masks import masks_from_uint8, masks_to_uint8, resize_masks, soft_masks, threshold_masks
from objaug.metrics import best_box_iou, box_corloc, center_box_prior, center_boxes, mask_iou, pairwise_box_iou
from objaug.split import EncoderHead, split_model
from objaug.store import ObjectStore

__version__ = "0.1.0.dev0"

__all__ = [
    "IMAGENET_NORMALIZE",
    "BackgroundMixup",
    "ContraCAM",
    "EncoderHead",
    "ObjectAwareAugment",
    "ObjectAwareRandomResizedCrop",
    "ObjectStore",
    "ViewConfig",
    "__version__",
    "best_box_iou",
    "box_corloc",
    "boxes_from_cam",
    "boxes_to_pixels",
    "byol_views",
    "center_box_prior",
    "center_boxes",
    "mask_iou",
    "masks_from_uint8",
    "masks_to_uint8",
    "moco_v2_views",
    "pairwise_box_iou",
    "resize_masks",
    "simclr_views",
    "soft_masks",
    "split_model",
    "threshold_masks",
]
