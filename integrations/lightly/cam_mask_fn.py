"""A picklable ``mask_fn`` for Lightly's DetCon: a trained model's ContraCAM (or attention) objects as labels.

Lightly's ``DetConSTransform(mask_fn=...)`` calls ``mask_fn(image)`` once per image, in the DataLoader
workers, and shares the returned integer mask between the two views. :class:`CAMMaskFn` computes that mask
from a frozen snapshot of a trained model: ContraCAM map (or a ViT's class-token attention) of the image
-> object boxes (:func:`objaug.boxes.boxes_from_cam`) -> per-object labels
(:func:`objaug.integrations.lightly.label_maps.object_label_map`: background 0, box slot ``k`` labelled
``k + 1``, each box restricted to its pixels where the map is ``>= mask_threshold``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import PIL.Image
import torch
from torch import Tensor, nn
from torchvision.transforms.v2 import functional as TF

from objaug.config import BoxConfig, CamConfig
from objaug.constants import IMAGENET_NORMALIZE
from objaug.provider import ObjectProvider
from objaug.validation import check_image_batch, check_threshold

from .label_maps import object_label_map

__all__ = ["CAMMaskFn"]


def _frozen_cpu_copy(module: nn.Module | None) -> nn.Module | None:
    """A CPU float32 copy of ``module`` in eval mode without gradients (the original is left untouched)."""
    if module is None:
        return None
    if not isinstance(module, nn.Module):
        raise TypeError(f"expected an nn.Module, got {type(module).__name__}.")
    snapshot = copy.deepcopy(module).to(device="cpu", dtype=torch.float32).eval()
    snapshot.requires_grad_(False)
    return snapshot


class CAMMaskFn:
    """``mask_fn(image) -> (1, H, W) int64`` object labels from a trained model, for ``DetConSTransform``.

    Picklable for DataLoader workers: the pickle holds a frozen CPU float32 copy of ``model`` (and
    ``projector``) taken at construction (weights and buffers; later training of the original does not
    reach it), the ``(N, D)`` negative embeddings and the settings; the :class:`objaug.ContraCAM` object is
    not pickled but rebuilt in each process on first call. The CAM therefore runs on the CPU, one image at
    a time, in the workers (one encoder forward and one head backward per refinement iteration; keep
    images or ``cam_size`` small).

    A single image has nothing to contrast with, so ContraCAM (``source="gradcam"``) needs a bank of
    negatives: ``negative_images`` (a few dozen training images, embedded once here) or ``negatives``
    (``(N, D)`` embeddings of the model's head, e.g. from ``ContraCAM.embed``). A copy of the image itself
    in the bank is ignored. ``source="attention"`` (Vision Transformers with a class token) needs none.

    Args:
        model: the trained encoder (or whole model) ContraCAM explains, as for :class:`objaug.ContraCAM`.
        projector: its projection head, if not part of ``model``.
        cam_config: the CAM settings (:class:`objaug.config.CamConfig`: ``map_source`` ``"gradcam"`` or
            ``"attention"``, ``iters``, ...), as every other entry point takes them. With ``bank > 0`` the
            embeddings of the last ``bank`` images this process labelled are added to the negatives (the
            provider's online bank; each DataLoader worker keeps its own).
        negatives: ``(N, D)`` float negative embeddings.
        negative_images: ``(N, 3, H, W)`` float images in ``[0, 1]`` (any size; resized to ``cam_size``)
            embedded into ``negatives`` at construction.
        cam_size: run the CAM on the image resized to this ``(h, w)`` (or int); ``None``: the image's size.
        normalize: ``{"mean", "std"}`` applied before the model (ImageNet, as Lightly's transforms); ``None``
            for none.
        box_config: how boxes are read off the maps (:class:`objaug.config.BoxConfig`); the objects are those of
            :func:`objaug.objects.find_objects`, the definition every entry point shares.
        use_masks: restrict each box to its pixels where the map is ``>= mask_threshold``; ``False``: whole
            boxes.
        mask_threshold: that threshold, in ``(0, 1]``.

    Returns (on call):
        ``(1, H, W)`` int64 labels at the image's size (the image: PIL, ``(3, H, W)`` uint8, or float in
        ``[0, 1]``), background 0, at most ``box_config.max_boxes + 1`` (default 5) labels.

    Raises:
        TypeError / ValueError: at construction, a model ContraCAM cannot split, ``source="attention"`` on a
            model without class-token attention, ``source="gradcam"`` without negatives, bad sizes or
            thresholds; on call, an image that is not one 3-channel image.

    Example:
        >>> from lightly.transforms import DetConSTransform
        >>> mask_fn = CAMMaskFn(model.backbone, projector=model.projection_head, negative_images=images[:64])
        >>> transform = DetConSTransform(mask_fn=mask_fn)    # dataset yields images only
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        projector: nn.Module | None = None,
        cam_config: CamConfig | None = None,
        negatives: Tensor | None = None,
        negative_images: Tensor | None = None,
        cam_size: int | Sequence[int] | None = None,
        normalize: Mapping[str, Sequence[float]] | None = IMAGENET_NORMALIZE,
        box_config: BoxConfig | None = None,
        use_masks: bool = True,
        mask_threshold: float = 0.5,
    ) -> None:
        self.model = _frozen_cpu_copy(model)
        self.projector = _frozen_cpu_copy(projector)
        # cam_size, normalize, the CAM and box settings: checked and applied by the one provider of objects
        self.provider = ObjectProvider(cam_config, box_config, cam_size=cam_size, normalize=normalize)
        self.cam_config, self.box_config = self.provider.cam_config, self.provider.box_config
        source = self.cam_config.map_source
        self.use_masks = bool(use_masks)
        self.mask_threshold = check_threshold(mask_threshold, "mask_threshold")
        self._cam: Any = None
        cam = self._contracam()  # refuses a model it cannot split, attention on a CNN, bad iters
        if negatives is not None and negative_images is not None:
            raise ValueError("Pass negatives=(N, D) embeddings or negative_images=(N, 3, H, W), not both.")
        if negative_images is not None:
            images = check_image_batch(negative_images, "negative_images", channels=3)
            with torch.no_grad():
                negatives = cam.embed(self.provider.cam_input(images.detach().cpu().float()))
        if negatives is not None and (not isinstance(negatives, Tensor) or negatives.ndim != 2
                                      or not negatives.is_floating_point() or negatives.shape[0] < 1):
            raise ValueError(f"negatives must be a float (N, D) tensor with N >= 1, got "
                             f"{getattr(negatives, 'shape', type(negatives).__name__)}.")
        if negatives is None and source == "gradcam":
            raise ValueError("CAMMaskFn sees one image at a time, and ContraCAM needs other images to contrast it "
                             "with: pass negative_images=(N, 3, H, W) (a few dozen training images, embedded once) or "
                             "negatives=(N, D) embeddings, or use source='attention' with a Vision Transformer.")
        self.negatives = None if negatives is None else negatives.detach().cpu().float()

    def _contracam(self) -> Any:
        if self._cam is None:
            assert self.model is not None
            self._cam = self.provider.build_cam(self.model, projector=self.projector)
        return self._cam

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cam"] = None  # rebuilt in the worker
        return state

    def __repr__(self) -> str:
        n = None if self.negatives is None else tuple(self.negatives.shape)
        return (f"CAMMaskFn(model={type(self.model).__name__}, {self.cam_config}, {self.box_config}, "
                f"cam_size={self.provider.cam_size}, negatives={n}, use_masks={self.use_masks})")

    def __call__(self, image: Any) -> Tensor:
        """The ``(1, H, W)`` int64 label map of one image (PIL, or a ``(3, H, W)`` uint8 / float [0, 1] tensor)."""
        if isinstance(image, PIL.Image.Image):
            x = TF.to_dtype(TF.to_image(image.convert("RGB")), torch.float32, scale=True)
        elif isinstance(image, Tensor) and image.ndim == 3:
            x = image.as_subclass(Tensor).detach().cpu()
            x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        else:
            raise TypeError(f"mask_fn takes one image (PIL or a (3, H, W) tensor), got "
                            f"{type(image).__name__} {tuple(getattr(image, 'shape', ()))}.")
        x = check_image_batch(x[None], "image", channels=3)
        size = (int(x.shape[-2]), int(x.shape[-1]))
        found = self.provider.compute(self._contracam(), x, negatives=self.negatives)
        maps = found.masks_at(size)
        assert maps is not None
        boxes, valid = found.boxes, found.valid
        labels = object_label_map(boxes, valid, size, masks=maps if self.use_masks else None,
                                  threshold=self.mask_threshold)
        return labels[0]
