"""objaug's input validation, one home for every public entry point: same mistake, same error type and wording.

Every check raises before any work is done, with a message that names the argument, says what was
wrong and how to fix it. One rule for the type of the error: a value of the wrong type raises
``TypeError`` (bools are not numbers), a value of the right type that is impossible raises
``ValueError`` (see :mod:`objaug.validation.scalars`).

The modules, by what they check:

* :mod:`~objaug.validation.scalars`: scalar options (numbers, flags, choices, pairs, sizes, paths);
* :mod:`~objaug.validation.tensors`: image, mask and index tensors by metadata (shape, dtype, device);
* :mod:`~objaug.validation.boxes`: the (B, K, 4) box layout and the boxes' values;
* :mod:`~objaug.validation.values`: value checks of a batch, one device synchronisation each
  (:func:`check_finite`, :func:`check_range`, :func:`check_batch_values`), optional on hot paths;
* :mod:`~objaug.validation.models`: a model and the images it must take, the views of a pipeline.

Every check is imported from this package (``from objaug.validation import check_int``).
"""

from objaug.validation.boxes import check_box_layout, check_box_settings, check_box_values, check_boxes
from objaug.validation.models import (
    check_image_size,
    check_map_size,
    check_model_input,
    check_views,
    map_size_fix,
)
from objaug.validation.scalars import (
    BOX_SAMPLING,
    check_antialias,
    check_bool,
    check_box_sampling,
    check_choice,
    check_fallback_mass,
    check_file_path,
    check_float,
    check_int,
    check_no_effect,
    check_normalize,
    check_optional_bool,
    check_optional_int,
    check_optional_size,
    check_pair,
    check_path,
    check_paths,
    check_positive_float,
    check_probability,
    check_size,
    check_source_options,
    check_threshold,
)
from objaug.validation.tensors import (
    check_device,
    check_image_batch,
    check_indexes,
    check_mask_batch,
    check_same_batch,
    check_same_device,
)
from objaug.validation.values import check_batch_values, check_finite, check_negatives_left, check_range

__all__ = [
    "BOX_SAMPLING",
    "check_antialias",
    "check_batch_values",
    "check_bool",
    "check_box_layout",
    "check_box_sampling",
    "check_box_settings",
    "check_box_values",
    "check_boxes",
    "check_choice",
    "check_device",
    "check_fallback_mass",
    "check_file_path",
    "check_finite",
    "check_float",
    "check_image_batch",
    "check_image_size",
    "check_indexes",
    "check_int",
    "check_map_size",
    "check_mask_batch",
    "check_model_input",
    "check_negatives_left",
    "check_no_effect",
    "check_normalize",
    "check_optional_bool",
    "check_optional_int",
    "check_optional_size",
    "check_pair",
    "check_path",
    "check_paths",
    "check_positive_float",
    "check_probability",
    "check_range",
    "check_same_batch",
    "check_same_device",
    "check_size",
    "check_source_options",
    "check_threshold",
    "check_views",
    "map_size_fix",
]
