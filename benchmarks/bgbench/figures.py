"""Pictures of the bgbench protocol: CAM overlays of every model and augmented views of every arm.

* ``cams.png``: rows = the first images of ``original`` (single object) and ``multi_test`` (2-4 objects);
  columns = the image with its ground-truth boxes, then each model's map (ContraCAM at T=``cam_iters`` for
  the SSL models and the random initialisation, Grad-CAM for the supervised model) with its
  ``boxes_from_cam`` boxes. The maps are those of the evaluation (same ContraCAM batch).
* ``views_<arm>.png`` (two-stage boxes/masks of the baseline), ``views_<arm>_oracle.png`` (ground truth)
  and ``views_<arm>_online.png`` (the online run's final model as the CAM): rows = images of the SSL set;
  columns = the image with its boxes, its soft mask (T=1 map), then two draws of the arm's two views.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from objaug import boxes_from_cam
from objaug.config import BoxConfig, CamConfig
from objaug.tools.viz import denormalize, draw_boxes, mask_to_rgb, overlay_cam, to_uint8

from .evaluate import _chunks, contracam_maps, gradcam_maps
from .train import TrainConfig, make_augment

if TYPE_CHECKING:
    from .protocol import Protocol

__all__ = ["labelled_grid", "write_figures"]

GT_COLOUR = (255, 0, 0)


def labelled_grid(tiles: Tensor, labels: Sequence[str], *, zoom: int = 2, pad: int = 2) -> Tensor:
    """A grid of uint8 tiles (rows, cols, 3, H, W) with a text label over each column.

    Args:
        tiles: (R, C, 3, H, W) uint8.
        labels: C column labels.
        zoom: nearest-neighbour upscaling of the tiles.
        pad: white padding between tiles.

    Returns:
        (3, H', W') uint8 picture.
    """
    from PIL import Image, ImageDraw, ImageFont

    r, c, _, h, w = tiles.shape
    big = F.interpolate(tiles.flatten(0, 1).float(), scale_factor=zoom, mode="nearest").to(torch.uint8)
    th, tw = h * zoom, w * zoom
    header = 14
    canvas = Image.new("RGB", (c * (tw + pad) + pad, header + r * (th + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for j, label in enumerate(labels):
        draw.text((pad + j * (tw + pad), 1), label[: max(4, tw // 6)], fill=(0, 0, 0), font=font)
    arr = big.view(r, c, 3, th, tw).permute(0, 1, 3, 4, 2).numpy()
    for i in range(r):
        for j in range(c):
            canvas.paste(Image.fromarray(arr[i, j]), (pad + j * (tw + pad), header + pad + i * (th + pad)))
    return torch.from_numpy(np.array(canvas)).permute(2, 0, 1).contiguous()


def _save(picture: Tensor, path: Path) -> Path:
    from objaug.tools.viz import save_png

    save_png(picture, path)
    return path


def _cam_column(maps: Tensor, images: Tensor, threshold: float) -> Tensor:
    boxes, valid = boxes_from_cam(maps, threshold=threshold)
    return draw_boxes(overlay_cam(images, maps), boxes, valid)


#: Short mode names for picture labels.
_SHORT = {"two-stage": "2st", "online": "onl", "oracle": "orc"}


def cams_figure(proto: Protocol, method: str, seed: int, arms: Sequence[str], modes: Sequence[str], *,
                n_images: int = 4) -> Path:
    """Write ``cams.png`` for one method and seed (see the module docs)."""
    ev = proto.scale.eval
    base = proto.base_cfg(method=method, seed=seed)
    models: list[tuple[str, Any]] = [("baseline", proto.load_ssl(base))]
    for mode in modes:
        for arm in arms:
            if arm != "baseline":
                cfg = dataclasses.replace(base, arm=arm, mode=mode)
                models.append((f"{arm}@{_SHORT[mode]}", proto.load_ssl(cfg)))
    models.append(("random init", proto.ssl_model(base)))
    rows: list[Tensor] = []
    for loc in proto.eval_data.loc.values():
        first = _chunks(loc.images.shape[0], ev.cam_batch)[0].to(loc.images.device)
        images = loc.images[first]
        k = min(n_images, images.shape[0])
        cols = [draw_boxes(to_uint8(images[:k]), loc.boxes[first][:k], loc.valid[first][:k], colors=[GT_COLOUR])]
        for _, model in models:
            _, tn = contracam_maps(model.backbone, model.projector, images, iters=ev.cam_iters,
                                   batch_size=images.shape[0])
            cols.append(_cam_column(tn[:k], images[:k], ev.threshold))
        sup = proto.load_supervised(seed)
        cols.append(_cam_column(gradcam_maps(sup, images[:k], batch_size=k), images[:k], ev.threshold))
        rows.append(torch.stack([c.cpu() for c in cols], dim=1))
    labels = ["image + GT"] + [name for name, _ in models] + ["Grad-CAM sup"]
    zoom = max(2, 128 // proto.size)
    return _save(labelled_grid(torch.cat(rows), labels, zoom=zoom), proto.out / "cams.png")


def views_figure(proto: Protocol, cfg: TrainConfig, objects: dict[str, Any] | None, path: Path, *,
                 n_images: int = 6, draws: int = 2) -> Path:
    """Write the augmented views of one arm.

    Args:
        proto: the protocol (data, device).
        cfg: the run (method, arm, mode, seed).
        objects: the two-stage objects of the baseline (two-stage and baseline pictures), or ``None`` for the
            online mode (the run's final model is the CAM).
        path: output file.
        n_images: images (half single-object, half multi-object scenes).
        draws: independent draws of the two views per image.
    """
    n_single = proto.sup_images.shape[0]
    n_all = proto.ssl_images.shape[0]
    half = n_images // 2
    idx = torch.cat([torch.arange(half), torch.arange(n_single, min(n_all, n_single + n_images - half))])
    images = proto.ssl_images[idx.to(proto.device)]
    augment = make_augment(cfg).to(proto.device)
    boxes = valid = masks = None
    if cfg.mode == "online":
        from objaug.integrations.lightly.device_step import ObjectAwareStep

        model = proto.load_ssl(cfg)
        cam_bb, cam_proj = model.cam_branch()
        step = ObjectAwareStep(augment, model=cam_bb, projector=cam_proj, cam_config=CamConfig(iters=cfg.cam_iters),
                               box_config=BoxConfig(threshold=cfg.box_threshold))
        masks = step.find_objects(images).masks
        boxes, valid = boxes_from_cam(masks, threshold=cfg.box_threshold)
    elif objects is not None:
        sel = idx.numpy()
        boxes = torch.as_tensor(objects["boxes"][sel]).to(proto.device)
        valid = torch.as_tensor(objects["valid"][sel]).to(proto.device)
        masks = torch.as_tensor(objects["masks"][sel]).to(proto.device).float().div_(255.0)
    first = [to_uint8(images)]
    labels = ["image"]
    if boxes is not None and valid is not None and masks is not None and cfg.arm != "baseline":
        first = [draw_boxes(images, boxes, valid), mask_to_rgb(masks)]
        labels = ["image + CAM boxes", "mask (T=1)"]
    cols = [c.cpu() for c in first]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        for d in range(draws):
            with torch.no_grad():
                if cfg.arm == "baseline" or boxes is None:
                    views = augment(images)
                else:
                    views = augment(images, boxes, valid, masks if cfg.arm != "crop" else None)
            for v, view in enumerate(views):
                cols.append(to_uint8(denormalize(view)).cpu())
                labels.append(f"draw {d + 1} view {v + 1}")
    size = max(c.shape[-1] for c in cols)
    cols = [c if c.shape[-1] == size else F.interpolate(c.float(), size=(size, size)).to(torch.uint8) for c in cols]
    zoom = max(2, 128 // size)
    return _save(labelled_grid(torch.stack(cols, dim=1), labels, zoom=zoom), path)


def write_figures(proto: Protocol, method: str, seed: int, arms: Sequence[str], modes: Sequence[str]) -> list[Path]:
    """All pictures for one method and seed; returns their paths."""
    paths = [cams_figure(proto, method, seed, arms, modes)]
    base = proto.base_cfg(method=method, seed=seed)
    objects = proto.objects_for(base) if len(arms) > 1 else None
    for arm in arms:
        if arm == "baseline":
            paths.append(views_figure(proto, base, None, proto.out / "views_baseline.png"))
            continue
        for mode in modes:
            cfg = dataclasses.replace(base, arm=arm, mode=mode)
            suffix = "" if mode == "two-stage" else f"_{mode}"
            paths.append(views_figure(proto, cfg, {"two-stage": objects, "oracle": proto.oracle}.get(mode),
                                      proto.out / f"views_{arm}{suffix}.png"))
    return paths
