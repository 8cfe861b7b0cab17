"""objaug for Lightly: object-aware transforms for Lightly pipelines and a device step for training loops.

Pipeline path (per image, CPU, DataLoader workers; needs ``lightly``):

* :class:`ObjectAwareSimCLRTransform`, :class:`ObjectAwareMoCoV2Transform`,
  :class:`ObjectAwareBYOLTransform` (+ their view transforms): Lightly's transforms with the object-aware
  crop;
* :class:`ObjectAwareDataset`: attaches each image's boxes/masks (a store or tensors) by index.

DetCon (Lightly's ``DetConSTransform`` / ``DetConSLoss`` / ``DetConBLoss``) with objaug's objects:

* :class:`ObjectMaskDataset`: each image with a ``tv_tensors.Mask`` of per-object labels (a store,
  ``objaug cam``'s boxes or tensors; rule: :func:`object_label_map`);
* :class:`CAMMaskFn`: a picklable ``mask_fn(image)`` from a trained model's ContraCAM or attention maps.

Training-loop path (the batch, on the device):

* :class:`ObjectAwareStep`: base images in, object-aware views out (online ContraCAM, a store, or boxes
  per call);
* :class:`ObjectAwareCallback` (``objaug.integrations.lightly.lightning``; needs Lightning).

Names are imported lazily, so ``import objaug.integrations.lightly`` itself imports neither lightly nor
Lightning; see ``docs/lightly.md``.
"""

from __future__ import annotations

from objaug.lazy import lazy_exports

_EXPORTS = {
    "ObjectAwareSimCLRTransform": ".simclr_transform",
    "ObjectAwareSimCLRViewTransform": ".simclr_transform",
    "ObjectAwareMoCoV2Transform": ".moco_transform",
    "ObjectAwareBYOLTransform": ".byol_transform",
    "ObjectAwareBYOLView1Transform": ".byol_transform",
    "ObjectAwareBYOLView2Transform": ".byol_transform",
    "ObjectAwareMultiViewTransform": "._object_aware",
    "PerImageObjectAwareCrop": "._object_aware",
    "ObjectAwareDataset": ".dataset",
    "ObjectAwareStep": ".device_step",
    "memory_bank_negatives": ".device_step",
    "ObjectAwareCallback": ".lightning",
    "ObjectMaskDataset": ".mask_dataset",
    "CAMMaskFn": ".cam_mask_fn",
    "object_label_map": ".label_maps",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
