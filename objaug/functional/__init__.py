"""Pure, batched tensor kernels under objaug's stateful classes (each testable on its own)."""

from objaug.functional.cam import contrastive_score, fill_masked, gradcam_map, minmax_normalize, upsample_maps
from objaug.functional.components import connected_components
from objaug.functional.crop import (
    apply_crop,
    crop_and_resize,
    crop_matrix,
    default_valid,
    grow_small_boxes,
    object_crop_params,
    sample_box_index,
    sample_regions,
    sample_resized_crop_boxes,
)
from objaug.functional.mixup import (
    BackgroundMixupOutput,
    background_mixup,
    largest_strip,
    mask_bounding_boxes,
    mass_rectangles,
    mean_fill_backgrounds,
    object_rectangles,
    tiled_strip_backgrounds,
)

__all__ = [
    "BackgroundMixupOutput",
    "apply_crop",
    "background_mixup",
    "connected_components",
    "contrastive_score",
    "crop_and_resize",
    "crop_matrix",
    "default_valid",
    "fill_masked",
    "gradcam_map",
    "largest_strip",
    "mask_bounding_boxes",
    "mass_rectangles",
    "mean_fill_backgrounds",
    "object_rectangles",
    "minmax_normalize",
    "object_crop_params",
    "sample_box_index",
    "grow_small_boxes",
    "sample_regions",
    "sample_resized_crop_boxes",
    "tiled_strip_backgrounds",
    "upsample_maps",
]
