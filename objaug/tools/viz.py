"""Pictures of maps and boxes without cv2 or matplotlib (torch, torchvision and PIL only).

* :func:`jet`: a jet-like colormap in torch, (B, 1, H, W) values in [0, 1] -> (B, 3, H, W) RGB.
* :func:`overlay_cam`: blend a colour-mapped map over images -> uint8.
* :func:`draw_boxes`: draw normalised xyxy boxes (valid ones in colour, the whole-image fallback of an
  image without boxes in grey) -> uint8.
* :func:`mask_to_rgb`, :func:`to_uint8`, :func:`denormalize`, :func:`make_grid`, :func:`save_png`.
* :func:`with_titles`: a band of column titles over a grid.
* :func:`plot_object_aware_views`: Lightly's ``plot_augmented_images`` for objaug: each image with its
  source boxes, then its object-aware views (the batched ``ObjectAwareAugment`` or the per-image Lightly
  transforms).

Pictures are ``uint8`` on the CPU; functions that take images accept float in [0, 1] or ``uint8``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
import torchvision.utils as tvu
from torch import Tensor

from objaug.constants import IMAGENET_MEAN, IMAGENET_STD

if TYPE_CHECKING:
    from objaug.augment.pipeline import ObjectAwareAugment

__all__ = ["BOX_COLORS", "FALLBACK_COLOR", "IMAGENET_MEAN", "IMAGENET_STD", "denormalize", "draw_boxes",
           "jet", "make_grid", "mask_to_rgb", "overlay_cam", "plot_object_aware_views", "save_png", "to_uint8",
           "with_titles"]

#: Colours of valid boxes (cycled by slot index).
BOX_COLORS: tuple[tuple[int, int, int], ...] = ((0, 255, 0), (255, 0, 255), (0, 255, 255), (255, 255, 0),
                                                (255, 128, 0), (0, 128, 255), (255, 0, 0), (255, 255, 255))
#: Colour of the fallback whole-image box drawn when an image has no valid box.
FALLBACK_COLOR: tuple[int, int, int] = (128, 128, 128)


def jet(values: Tensor) -> Tensor:
    """Jet-like colormap: dark blue (0, 0, 0.5) at 0, cyan, yellow, dark red (0.5, 0, 0) at 1.

    Args:
        values: (B, 1, H, W), (1, H, W) or (H, W) floating values; clamped to [0, 1].

    Returns:
        Float RGB in [0, 1]: (B, 3, H, W) for 4-D input, (3, H, W) otherwise.
    """
    v = values.float().clamp(0.0, 1.0)
    if v.ndim == 2:
        v = v.unsqueeze(0)
    if v.shape[-3] != 1:
        v = v.unsqueeze(-3)
    r = (1.5 - (4 * v - 3).abs()).clamp(0.0, 1.0)
    g = (1.5 - (4 * v - 2).abs()).clamp(0.0, 1.0)
    b = (1.5 - (4 * v - 1).abs()).clamp(0.0, 1.0)
    return torch.cat([r, g, b], dim=-3)


def to_uint8(images: Tensor) -> Tensor:
    """Float images in [0, 1] -> uint8 (rounded, clamped); uint8 input is returned as is."""
    if images.dtype == torch.uint8:
        return images
    return (images.float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def denormalize(images: Tensor, mean: Sequence[float] = IMAGENET_MEAN,
                std: Sequence[float] = IMAGENET_STD) -> Tensor:
    """Undo ``(x - mean) / std`` channel normalisation: (B, C, H, W) -> float in [0, 1] (clamped)."""
    m = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return (images * s + m).clamp(0.0, 1.0)


def overlay_cam(images: Tensor, maps: Tensor, *, alpha: float = 0.5) -> Tensor:
    """Blend jet-coloured maps over images.

    Args:
        images: (B, 3, H, W) float RGB in [0, 1] (de-normalised) or uint8.
        maps: (B, 1, h, w) float in [0, 1]; resized bilinearly to (H, W) if needed.
        alpha: weight of the colour map (0 = image only, 1 = map only).

    Returns:
        (B, 3, H, W) uint8 ``round(255 * ((1 - alpha) * image + alpha * jet(map)))``.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}.")
    if maps.ndim != 4 or maps.shape[1] != 1 or maps.shape[0] != images.shape[0]:
        raise ValueError(f"maps must be (B, 1, h, w) with B={images.shape[0]}, got {tuple(maps.shape)}.")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}.")
    img = images.float() / 255.0 if images.dtype == torch.uint8 else images.float().clamp(0.0, 1.0)
    m = maps.float().to(img.device)
    if m.shape[-2:] != img.shape[-2:]:
        m = F.interpolate(m, size=img.shape[-2:], mode="bilinear", align_corners=False)
    return to_uint8((1.0 - alpha) * img + alpha * jet(m))


def mask_to_rgb(masks: Tensor) -> Tensor:
    """(B, 1, H, W) bool/float masks -> (B, 3, H, W) uint8 grey pictures (0 black, 1 white)."""
    return to_uint8(masks.float().clamp(0.0, 1.0).expand(-1, 3, -1, -1))


def draw_boxes(images: Tensor, boxes: Tensor, valid: Tensor, *, width: int = 1,
               colors: Sequence[tuple[int, int, int]] = BOX_COLORS,
               fallback_color: tuple[int, int, int] | None = FALLBACK_COLOR) -> Tensor:
    """Draw normalised xyxy boxes on images.

    Valid boxes are drawn in ``colors[k % len(colors)]`` for slot k. An image with no valid box gets
    its slot-0 box (the whole-image fallback of ``boxes_from_cam``) drawn in ``fallback_color``
    (skipped if ``None``). Pixel coordinates are ``x * W`` and ``y * H`` with the right/bottom edges
    moved in by one pixel so that a box ending at 1.0 lands on the last pixel.

    Args:
        images: (B, 3, H, W) float in [0, 1] or uint8.
        boxes: (B, K, 4) normalised xyxy.
        valid: (B, K) bool.
        width: line width in pixels.
        colors: RGB colours of valid boxes.
        fallback_color: RGB colour of the fallback box, or ``None``.

    Returns:
        (B, 3, H, W) uint8 on the CPU.
    """
    if boxes.ndim != 3 or boxes.shape[-1] != 4 or valid.shape != boxes.shape[:2]:
        raise ValueError(f"boxes must be (B, K, 4) and valid (B, K), got {tuple(boxes.shape)} and "
                         f"{tuple(valid.shape)}.")
    if images.shape[0] != boxes.shape[0]:
        raise ValueError(f"images and boxes have different batch sizes ({images.shape[0]} vs {boxes.shape[0]}).")
    imgs = to_uint8(images).cpu()
    h, w = imgs.shape[-2:]
    scale = torch.tensor([w, h, w, h], dtype=torch.float32)
    px = boxes.detach().float().cpu().clamp(0.0, 1.0) * scale
    px[..., 2] = (px[..., 2] - 1).clamp(min=0)
    px[..., 3] = (px[..., 3] - 1).clamp(min=0)
    px[..., 2] = torch.maximum(px[..., 2], px[..., 0])
    px[..., 3] = torch.maximum(px[..., 3], px[..., 1])
    px = px.round()
    ok = valid.detach().cpu().bool()
    out = []
    for i in range(imgs.shape[0]):  # drawing is per image in torchvision (not a hot path)
        img = imgs[i]
        idx = ok[i].nonzero().flatten().tolist()
        if idx:
            img = tvu.draw_bounding_boxes(img, px[i, idx], colors=[colors[k % len(colors)] for k in idx],
                                          width=width)
        elif fallback_color is not None:
            img = tvu.draw_bounding_boxes(img, px[i, :1], colors=[fallback_color], width=width)
        out.append(img)
    return torch.stack(out)


def make_grid(images: Tensor | Sequence[Tensor], *, nrow: int = 8, padding: int = 2,
              pad_value: int = 255) -> Tensor:
    """Tile (B, 3, H, W) images (or a list of (3, H, W) images, float [0, 1] or uint8) into one
    (3, H', W') uint8 picture (``torchvision.utils.make_grid``)."""
    if isinstance(images, Tensor):
        batch = to_uint8(images).cpu()
    else:
        batch = torch.stack([to_uint8(t).cpu() for t in images])
    grid = tvu.make_grid(batch, nrow=nrow, padding=padding, pad_value=pad_value)
    return grid


def save_png(image: Tensor, path: str | os.PathLike[str], *, nrow: int = 8) -> str:
    """Save a (3, H, W) or (1, H, W) image, or a (B, 3, H, W) batch (tiled with :func:`make_grid`), as a
    PNG via PIL. Float input is taken to be in [0, 1]. Creates missing parent directories.

    Returns:
        The path written, as a string.
    """
    from PIL import Image

    t = image.detach()
    if t.ndim == 4:
        t = make_grid(t, nrow=nrow)
    if t.ndim == 2:
        t = t.unsqueeze(0)
    if t.ndim != 3 or t.shape[0] not in (1, 3):
        raise ValueError(f"save_png needs (3, H, W), (1, H, W), (H, W) or (B, 3, H, W), got {tuple(image.shape)}.")
    arr = to_uint8(t).cpu().permute(1, 2, 0).numpy()
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(path, format="PNG")
    return path


def _wrap(text: str, width: float, measure: Callable[[str], float], max_lines: int = 2) -> list[str]:
    """Greedy word wrap of ``text`` into at most ``max_lines`` lines of at most ``width`` pixels; a word wider
    than a line is truncated, words beyond the last line are dropped."""
    lines: list[str] = []
    for word in text.split():
        while len(word) > 1 and measure(word) > width:
            word = word[:-1]
        if lines and measure(lines[-1] + " " + word) <= width:
            lines[-1] += " " + word
        elif len(lines) < max_lines:
            lines.append(word)
        else:
            break
    return lines or [""]


def with_titles(grid: Tensor, titles: Sequence[str], tile: int, padding: int = 2) -> Tensor:
    """Put a band of column titles (PIL's default font) over a grid, each title within its column.

    A title wider than its tile is wrapped at spaces onto a second line (a word wider than the tile is
    truncated, words beyond the second line dropped), so titles of neighbouring columns never overlap, even
    at 64 px or smaller tiles.

    Args:
        grid: ``(3, H, W)`` uint8 grid from :func:`make_grid`.
        titles: one title per column, left to right.
        tile: the width of one tile in pixels (without padding).
        padding: the grid's padding in pixels.

    Returns:
        ``(3, H + band, W)`` uint8; the band is 14 pixels for one line of titles, 25 for two.
    """
    import numpy as np
    from PIL import Image, ImageDraw

    c, h, w = grid.shape
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength
    wrapped = [_wrap(text, max(tile - 2, 1), measure) for text in titles]
    band = 14 + 11 * (max((len(lines) for lines in wrapped), default=1) - 1)
    out = torch.full((c, h + band, w), 255, dtype=torch.uint8)
    out[:, band:] = to_uint8(grid).cpu()
    img = Image.fromarray(out.permute(1, 2, 0).numpy())
    draw = ImageDraw.Draw(img)
    for j, lines in enumerate(wrapped):
        for k, line in enumerate(lines):
            draw.text((padding + j * (tile + padding) + 1, 1 + 11 * k), line, fill=(0, 0, 0))
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)


@torch.no_grad()
def plot_object_aware_views(images: Tensor, augment: ObjectAwareAugment | Any, boxes: Tensor | None = None,
                            valid: Tensor | None = None, masks: Tensor | None = None, *,
                            path: str | os.PathLike[str] | None = None, box_width: int = 1) -> Tensor:
    """One row per image: the image with its source boxes, then each of its views (Lightly's
    ``lightly.utils.debug.plot_augmented_images`` for object-aware views).

    ``augment`` is either the batched :class:`~objaug.augment.pipeline.ObjectAwareAugment` or one of objaug's
    per-image Lightly transforms, the ones trained with in a Lightly pipeline
    (``ObjectAwareSimCLRTransform``, ``ObjectAwareMoCoV2Transform``, ``ObjectAwareBYOLTransform``, or a single
    view such as ``ObjectAwareSimCLRViewTransform``): these are called per image, on the image as a PIL image
    (as a Lightly dataset gives it) with its boxes, ``transform(image, boxes, mask, valid=valid)``.

    The boxes drawn are those the transform crops in: ``boxes``/``valid`` if given, else derived from
    ``masks`` (or from ``augment.cam``'s objects) with the transform's ``box_config``, as the
    transform does; an image without a box shows its grey whole-frame fallback. Views are un-normalised with
    their own normalisation (``ViewConfig.normalize``, or the ``Normalize`` op of a Lightly view's pipeline).
    Every tile is resized to the first view's size; the titles read ``image + boxes``, ``view 1``, ...
    (``(mixup)`` on views with ``mixup=True``), wrapped to fit their tiles.

    Args:
        images: ``(B, 3, H, W)`` float in [0, 1], full frames (any device).
        augment: the :class:`~objaug.augment.pipeline.ObjectAwareAugment` or per-image Lightly transform.
        boxes: ``(B, K, 4)`` normalised xyxy, or ``None``.
        valid: ``(B, K)`` bool, or ``None`` (all valid).
        masks: ``(B, 1, H, W)`` soft masks in [0, 1], or ``None``.
        path: also write the grid as a PNG here.
        box_width: line width of the boxes in pixels.

    Returns:
        ``(3, H', W')`` uint8 grid on the CPU, ``1 + number of views`` tiles a row, ``B`` rows.

    Raises:
        TypeError: ``augment`` is neither; a per-image transform without ``boxes`` or ``masks``.

    Example:
        >>> grid = plot_object_aware_views(images[:4], ObjectAwareAugment(simclr_views(96)), boxes, valid,
        ...                                path="views.png")
        >>> grid = plot_object_aware_views(images[:4], ObjectAwareSimCLRTransform(input_size=64), boxes, valid)
    """
    from objaug.augment.pipeline import ObjectAwareAugment
    from objaug.functional.crop import default_valid
    from objaug.objects import boxes_of_maps
    from objaug.validation import check_file_path, check_image_batch, check_int

    check_image_batch(images, "images", channels=3)
    if path is not None:
        check_file_path(path, "path")
    check_int(box_width, "box_width", low=1)
    per_image = getattr(augment, "accepts_objects", False) and callable(augment)
    if not isinstance(augment, ObjectAwareAugment) and not per_image:
        raise TypeError(f"augment must be an objaug.augment.pipeline.ObjectAwareAugment (build one with "
                        f"ObjectAwareAugment(simclr_views(size))) or one of objaug's per-image Lightly transforms "
                        f"(ObjectAwareSimCLRTransform, ...), got {type(augment).__name__}.")
    if boxes is None and valid is not None:
        raise ValueError("valid was given without boxes; pass boxes=(B, K, 4) too.")
    if boxes is not None:
        valid = default_valid(boxes, valid)
    if masks is None and getattr(augment, "cam", None) is not None:
        found = augment.find_objects(images)
        masks = found.masks
        if boxes is None:
            boxes, valid = found.boxes, found.valid
    if boxes is None and masks is not None:
        boxes, valid = boxes_of_maps(masks, getattr(augment, "box_config", None))
    if isinstance(augment, ObjectAwareAugment):
        views = augment(images, boxes, valid, masks)
        norms: list[Any] = [cfg.normalize for cfg in augment.views]
        size = augment.views[0].size
        titles = ["image + boxes"] + [f"view {i + 1}" + (" (mixup)" if cfg.mixup else "")
                                      for i, cfg in enumerate(augment.views)]
    else:
        if boxes is None or valid is None:
            raise TypeError(f"{type(augment).__name__} crops inside each image's boxes: pass boxes=(B, K, 4) "
                            "(and valid=) or masks=(B, 1, H, W).")
        views, norms = _per_image_views(images, augment, boxes, valid, masks)
        size = (int(views[0].shape[-2]), int(views[0].shape[-1]))
        titles = ["image + boxes"] + [f"view {i + 1}" for i in range(len(views))]
    tiles = [_fit(images, size)]
    for norm, x in zip(norms, views, strict=True):
        x = x.detach().float().cpu()
        tiles.append(_fit(denormalize(x, norm["mean"], norm["std"]) if norm is not None else x, size))
    if boxes is not None and valid is not None and boxes.shape[1] > 0:
        tiles[0] = draw_boxes(tiles[0], boxes, valid, width=box_width)
    rows = torch.stack([to_uint8(t) for t in tiles], dim=1).flatten(0, 1)  # image 0's tiles, image 1's, ...
    grid = with_titles(make_grid(rows, nrow=len(tiles)), titles, size[1])
    if path is not None:
        save_png(grid, path)
    return grid


def _view_normalize(view: Any) -> dict[str, Sequence[float]] | None:
    """The mean/std of the ``Normalize`` op in a Lightly view's ``transform`` pipeline, if any."""
    for op in getattr(getattr(view, "transform", None), "transforms", []):
        if type(op).__name__ == "Normalize":
            return {"mean": list(op.mean), "std": list(op.std)}
    return None


def _per_image_views(images: Tensor, augment: Any, boxes: Tensor, valid: Tensor,
                     masks: Tensor | None) -> tuple[list[Tensor], list[dict[str, Sequence[float]] | None]]:
    """Views of a per-image Lightly transform, one image at a time (as PIL images): ``(views, norms)``, one
    ``(B, 3, h, w)`` tensor and one normalisation per view."""
    from torchvision.transforms.functional import to_pil_image

    single = not hasattr(augment, "transforms")  # one view transform, not a multi-view one
    per_view: list[list[Tensor]] = []
    for i in range(images.shape[0]):
        pil = to_pil_image(images[i].detach().float().cpu().clamp(0.0, 1.0))
        b, v = boxes[i].detach().cpu().float(), valid[i].detach().cpu()
        m = None if masks is None else masks[i].detach().cpu().float()
        if single:
            out: Any = [augment(pil, b[v])]
        else:
            out = augment(pil, b, m, valid=v)
            out = out[0] if isinstance(out, tuple) else out  # (views, masks) with return_masks
        if not per_view:
            per_view = [[] for _ in out]
        for j, x in enumerate(out):
            per_view[j].append(x[0] if isinstance(x, tuple) else x)
    views = [torch.stack(xs) for xs in per_view]
    norms = [_view_normalize(augment)] if single else [_view_normalize(t) for t in augment.transforms]
    return views, norms


def _fit(images: Tensor, size: tuple[int, int]) -> Tensor:
    """(B, 3, h, w) float [0, 1] -> (B, 3, *size) float [0, 1] on the CPU (bilinear, antialiased)."""
    x = images.detach().float().cpu().clamp(0.0, 1.0)
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True).clamp_(0.0, 1.0)
