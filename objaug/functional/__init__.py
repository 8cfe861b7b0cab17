"""Pure, batched tensor kernels under objaug's stateful classes (each testable on its own)."""

from objaug.functional.cam import contrastive_score, fill_masked, gradcam_map, minmax_normalize, upsample_maps
from objaug.functional.components import connected_components
from objaug.functional.crop import apply_crop, crop_and_resize, crop_matrix, sample_box_index
from objaug.functional.mixup import background_mixup, largest_strip, mask_bounding_boxes

__all__ = [
    "apply_crop",
    "background_mixup",
    "connected_components",
    "contrastive_score",
    "crop_and_resize",
    "crop_matrix",
    "fill_masked",
    "gradcam_map",
    "largest_strip",
    "mask_bounding_boxes",
    "minmax_normalize",
    "sample_box_index",
    "upsample_maps",
]
