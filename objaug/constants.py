"""Constants shared across objaug: ImageNet statistics, the image file endings objaug reads, model precisions."""

from __future__ import annotations

__all__ = ["IMAGENET_MEAN", "IMAGENET_NORMALIZE", "IMAGENET_STD", "IMAGE_EXTENSIONS", "PRECISIONS"]

#: ImageNet per-channel mean (RGB, images in [0, 1]).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
#: ImageNet per-channel standard deviation (RGB, images in [0, 1]).
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: ImageNet statistics, as ``lightly.transforms.utils.IMAGENET_NORMALIZE``.
IMAGENET_NORMALIZE: dict[str, tuple[float, float, float]] = {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}
#: File name endings (lower case) of the images objaug lists in a folder (store precompute, ``objaug cam``).
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff",
                                     ".ppm", ".pgm", ".pbm")
#: Autocast precisions of a model run (``"fp32"``: no autocast), e.g. ``objaug precompute --precision``.
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
