"""Regenerate the documentation's pictures (CPU only, deterministic; ~1-2 minutes).

Run from the repository root:

    .venv/bin/python docs/gen_pictures.py

* ``docs/img/demo.png``: the demo's grid (``objaug demo --seed 0 --steps 450 --threads 1``: the steps the
  default 60 s budget gives on the 2-core machine, fixed so that the picture is reproducible), copied from
  its output; the committed picture is the one the README's figures describe.
  ``--no-demo`` leaves it alone and only redraws ``augment.png`` (bit-reproducible).
* ``docs/img/augment.png``: object-aware crops and background mixup on synthetic scenes with their
  ground-truth boxes (row 1: scenes with boxes; rows 2-3: two object-aware crops of each; row 4: a
  random resized crop of each with background mixup applied to every image).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
IMG = os.path.join(HERE, "img")


def demo_picture() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "demo")
        subprocess.run([sys.executable, "-m", "objaug", "demo", "--seed", "0", "--steps", "450", "--threads", "1",
                        "--out", out],
                       check=True)
        shutil.copyfile(os.path.join(out, "demo_grid.png"), os.path.join(IMG, "demo.png"))


def augment_picture(n: int = 8, size: int = 96) -> None:
    from objaug.augment.crop import ObjectAwareRandomResizedCrop
    from objaug.augment.mixup import BackgroundMixup
    from objaug.tools.synthetic import make_scenes
    from objaug.tools.viz import draw_boxes, make_grid, save_png, to_uint8

    torch.manual_seed(0)
    scenes = make_scenes(n, size=size, max_objects=3, seed=0, backgrounds=None)
    images, masks = scenes.images, scenes.masks.float()
    crop = ObjectAwareRandomResizedCrop(size)
    views1 = crop(images, scenes.boxes, scenes.valid)
    views2 = crop(images, scenes.boxes, scenes.valid)
    plain = ObjectAwareRandomResizedCrop(size, box_p=0.0)  # an ordinary random resized crop (no boxes used)
    views3 = plain(images, scenes.boxes, scenes.valid)
    view_masks = plain(masks, params=plain._params)
    mixup = BackgroundMixup(p=1.0, queue_size=n)
    mixup(views3.roll(1, 0), view_masks.roll(1, 0))  # fill the background queue with other images first
    mixed, _ = mixup(views3, view_masks)
    rows = [draw_boxes(to_uint8(images), scenes.boxes, scenes.valid), to_uint8(views1), to_uint8(views2),
            to_uint8(mixed.clamp(0, 1))]
    save_png(make_grid(torch.cat(rows), nrow=n), os.path.join(IMG, "augment.png"))


if __name__ == "__main__":
    os.makedirs(IMG, exist_ok=True)
    torch.set_num_threads(1)
    augment_picture()
    if "--no-demo" not in sys.argv:
        demo_picture()
    print("wrote", os.path.join(IMG, "augment.png"), "and", os.path.join(IMG, "demo.png"))
