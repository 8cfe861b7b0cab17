"""bgbench's raw material: cut-outs (object RGBA images with classes) and background photos (with groups).

Two sources with one interface, :func:`load_sources`:

* ``"debian"``: real photo cut-outs among the Tux Paint stamps (package ``tuxpaint-stamps-default``) and
  real photos from ``tuxpaint-data`` (templates) and ``mate-backgrounds`` (nature wallpapers); see
  :func:`debian_sources`. Every choice below was checked by eye on contact sheets of every class.
* ``"generated"``: a tiny synthetic stand-in (textured shapes, noise textures) so that the pipeline runs
  anywhere, e.g. in CI; see :func:`generated_sources`.

Cut-outs: a stamp is kept if it is a PNG with transparency whose opaque part (alpha > 127) has at least
:data:`MIN_COLOURS` distinct RGB colours (photos; flat clip art has far fewer) and :data:`MIN_AREA` pixels,
is not under a ``cartoon``/``toys`` folder, is not in :data:`EXCLUDE`, and its folder maps to a class in
:data:`CLASS_RULES`. Per class, about :data:`TEST_FRACTION` of the objects (at least 2) are held out for
test, chosen by a fixed hash (the same for every build seed), keeping near-duplicates (:data:`SUBJECTS`)
on one side.

Backgrounds: each photo has a usable area (normalised ``[x0, y0, x1, y1]``, cutting away e.g. sky above a
field or black borders), split along its longer side into a train region (the first 70%) and a held-out
test region (the last 30%).
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["BACKGROUNDS", "CLASS_RULES", "EXCLUDE", "GROUPS", "HOME", "Cutout", "Photo", "Sources",
           "count_colours", "debian_sources", "generated_sources", "load_sources"]

STAMPS = "usr/share/tuxpaint/stamps"
MIN_COLOURS = 700
MIN_AREA = 500
TEST_FRACTION = 0.3
TRAIN_SHARE = 0.7
#: Folder names whose stamps are drawings or toys, never photos of the real thing.
CLIPART_DIRS = ("cartoon", "toys")

#: Classes (index = label) and the stamp path prefixes (under ``usr/share/tuxpaint/stamps/``) that map to
#: them; the first class with a matching prefix wins (so ``mammals/aquatic/`` goes to ``sea_animal`` and the
#: hoofed mammals to ``hoofed_mammal`` before the rest of ``mammals/``).
CLASS_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("bird", ("animals/birds/",)),
    ("sea_animal", ("animals/fish/", "animals/shellfish/", "animals/mammals/aquatic/")),
    ("hoofed_mammal", ("animals/mammals/bovines/", "animals/mammals/deer/", "animals/mammals/equines/",
                       "animals/mammals/camel/", "animals/mammals/giraffe.png", "animals/mammals/hippopotamus.png",
                       "animals/mammals/pig", "animals/mammals/rhino_black.png", "animals/mammals/wildboar.png")),
    ("mammal", ("animals/mammals/", "animals/marsupials/")),  # apes, bears, cats, dogs, rodents+rabbits, ...
    ("fruit", ("food/fruit/",)),
    ("vegetable", ("food/vegetables/",)),
    ("flower", ("plants/flowers/",)),
    ("tool", ("household/tools/",)),
    ("vehicle", ("vehicles/", "military/vehicles/")),
    ("instrument", ("hobbies/music/",)),
)

#: Stamps that pass the colour test but are left out (path under the stamps folder: why).
EXCLUDE: dict[str, str] = {
    "animals/birds/albino_peahen.png": "stands in a large patch of grass",
    "animals/mammals/cats/tiger_sumatran.png": "walks on a strip of grass",
    "animals/mammals/cats/lion.png": "lies on a strip of grass",
    "animals/mammals/dogs/fox.png": "stands on a tree stump (part of the cut-out)",
    "animals/marsupials/koala.png": "sits on a branch (part of the cut-out)",
    "animals/mammals/hedgehog.png": "clip art (passes the colour test through antialiasing)",
    "animals/mammals/dogs/dog.png": "a painting, not a photo",
    "animals/mammals/aquatic/whale.png": "a painting, not a photo",
    "household/tools/cementmixer.png": "a machine, not a hand tool",
    "household/tools/measuring_tape_mirror.png": "mirror image of measuring_tape.png",
    "vehicles/construction/dumper_mirror.png": "mirror image of dumper.png",
    "military/vehicles/bradley_mirror.png": "mirror image of bradley.png",
    "vehicles/wheel_tractor.png": "a lone wheel, not a vehicle",
    "vehicles/ship/walnutBoat.png": "a toy boat in a walnut shell",
}

#: Near-duplicate stamps (same subject, one class): kept together on the train or the test side.
SUBJECTS: dict[str, tuple[str, ...]] = {
    "apple": ("apple_fuji", "apple_granny_smith", "apple_green", "apple_red", "apple_sierra_beauty"),
    "apricot": ("apricot", "Apricot_whole"),
    "strawberry": ("strawberry", "Strawberry2"),
    "orange": ("orange", "mandarine", "orange_seville", "sliced_orange"),
    "garlic": ("garlic", "garlics"),
    "lettuce": ("lettuce", "redlettuce"),
    "pepper": ("pepper", "yellowpepper"),
    "gnu": ("gnu-baby-stand", "gnu-baby", "gnu-sitting", "gnu-stand"),
    "pig": ("pig", "pig_golden", "pig_golden2"),
    "cattle": ("cow", "cow_white", "bull", "zebu"),
    "sheep": ("sheep", "sheep_lamb", "ram"),
    "camel": ("camel", "dromedary"),
    "deer": ("deer", "doe"),
    "donkey": ("donkey", "donkey_eating"),
    "rabbit": ("rabbit", "rabbit-2", "rabbit_little"),
    "bear": ("bear", "european-bear"),
    "mouse": ("mouse", "rat"),
    "heron": ("heron_greatblue", "heron_greatblue_flying"),
    "guineafowl": ("guineafowl", "helmeted_guineafowl"),
    "penguin": ("little-penguin", "magellanic_penguin", "penguin"),
    "gull": ("seagull", "silver-gull"),
    "mallard": ("duck", "drake"),
    "chicken": ("hen", "chicken_profile", "rooster"),
    "guitar": ("guitar2", "guitar_classical", "guitar_electric", "guitar_electric_bass"),
    "wrench": ("wrench", "wrench_adjustable", "wrench_plumbers"),
}

#: Background groups (index = group id).
GROUPS: tuple[str, ...] = ("sky", "water", "grass", "rock", "leaves", "wood", "bark", "machine", "treetops",
                           "flowers")
#: Home background group of each class of :data:`CLASS_RULES`, by name.
HOME: dict[str, str] = {
    "bird": "sky", "sea_animal": "water", "hoofed_mammal": "grass", "mammal": "rock", "flower": "leaves",
    "fruit": "wood", "vegetable": "bark", "tool": "machine", "vehicle": "treetops", "instrument": "flowers",
}
_T, _M = "usr/share/tuxpaint/templates/", "usr/share/backgrounds/mate/nature/"
_ALL = (0.0, 0.0, 1.0, 1.0)
#: Background photos: (group, path under the extracted root, usable area as normalised x0, y0, x1, y1).
#: Left out: lighthouse.jpg (a building against the sky, no usable area of one kind).
BACKGROUNDS: tuple[tuple[str, str, tuple[float, float, float, float]], ...] = (
    ("sky", _T + "sun_behind_clouds.jpg", _ALL),
    ("sky", _M + "Storm.jpg", (0.0, 0.0, 1.0, 0.58)),  # the storm clouds, above the road
    ("sky", _T + "trees_at_dusk.jpg", (0.01, 0.0, 0.99, 1.0)),  # bare branches on a dusk sky
    ("water", _T + "ocean_splash.jpg", _ALL),
    ("water", _T + "ocean_waves.jpg", _ALL),
    ("water", _T + "jellyfish.jpg", _ALL),
    ("water", _M + "Aqua.jpg", _ALL),  # a water drop
    ("grass", _M + "GreenMeadow.jpg", _ALL),
    ("grass", _T + "sheep.jpg", (0.0, 0.45, 1.0, 1.0)),  # the field below the horizon
    ("grass", _M + "Dune.jpg", (0.0, 0.45, 1.0, 1.0)),  # dune grass below the sea line
    ("grass", _T + "corn_maze.jpg", _ALL),
    ("rock", _T + "cliff.jpg", (0.0, 0.4, 1.0, 1.0)),  # the rock face below the sky
    ("rock", _T + "mudstone.jpg", _ALL),
    ("rock", _T + "rocks.jpg", _ALL),
    ("leaves", _M + "Blinds.jpg", _ALL),
    ("leaves", _M + "RainDrops.jpg", _ALL),
    ("leaves", _T + "sun_behind_leaves.jpg", _ALL),
    ("leaves", _M + "LadyBird.jpg", _ALL),
    ("wood", _M + "Wood.jpg", _ALL),  # pale planks; one large photo
    ("bark", _T + "burnt_bark.jpg", _ALL),
    ("bark", _T + "mossy_bark.jpg", (0.0, 0.06, 1.0, 0.94)),  # black bars above and below
    ("bark", _T + "mossy_log.jpg", _ALL),
    ("machine", _T + "wool_mill_machine.jpg", _ALL),
    ("machine", _T + "spiders_web.jpg", _ALL),  # dark, blurred workshop-like scene
    ("treetops", _T + "redwoods_above.jpg", _ALL),
    ("treetops", _T + "trees_above.jpg", _ALL),
    ("flowers", _M + "FreshFlower.jpg", _ALL),
    ("flowers", _M + "Garden.jpg", _ALL),
    ("flowers", _M + "YellowFlower.jpg", _ALL),
    ("flowers", _M + "TwoWings.jpg", _ALL),
)


@dataclass(frozen=True)
class Cutout:
    """One object cut-out.

    Attributes:
        name: path relative to the extracted root (debian) or a generator description (generated).
        label: class index.
        split: ``"train"`` or ``"test"``.
        colours: distinct RGB colours inside the mask (alpha > 127) of the original image.
        rgba: (h, w, 4) uint8, cropped to the mask's box plus its antialiased rim, longer side at most the
            ``max_side`` it was loaded with.
    """

    name: str
    label: int
    split: str
    colours: int
    rgba: np.ndarray


@dataclass(frozen=True)
class Photo:
    """One background photo.

    Attributes:
        name: path relative to the extracted root, or a generator description.
        group: background group index.
        image: the photo (RGB, possibly shrunk); crops are taken from it.
        train_region: normalised ``(x0, y0, x1, y1)`` that training crops come from.
        test_region: normalised ``(x0, y0, x1, y1)``, disjoint from ``train_region``, for test crops.
    """

    name: str
    group: int
    image: Image.Image
    train_region: tuple[float, float, float, float]
    test_region: tuple[float, float, float, float]


@dataclass(frozen=True)
class Sources:
    """Everything the builder composites: classes, background groups, cut-outs and photos."""

    source: str
    classes: list[str]
    groups: list[str]
    home: list[int]
    cutouts: list[Cutout]
    photos: list[Photo]


def count_colours(rgba: np.ndarray) -> int:
    """Distinct RGB colours of the pixels with alpha > 127 of an (h, w, 4) uint8 image."""
    px = rgba[rgba[..., 3] > 127][:, :3].astype(np.int64)
    return int(np.unique(px[:, 0] << 16 | px[:, 1] << 8 | px[:, 2]).size)


def _crop_and_shrink(rgba: np.ndarray, max_side: int) -> np.ndarray:
    """Crop to the box of alpha > 127 grown by one pixel (the antialiased rim), then shrink to ``max_side``."""
    ys, xs = np.nonzero(rgba[..., 3] > 127)
    y0, y1 = max(ys.min() - 1, 0), min(ys.max() + 2, rgba.shape[0])
    x0, x1 = max(xs.min() - 1, 0), min(xs.max() + 2, rgba.shape[1])
    out = rgba[y0:y1, x0:x1]
    h, w = out.shape[:2]
    if max(h, w) > max_side:
        f = max_side / max(h, w)
        size = (max(1, round(w * f)), max(1, round(h * f)))
        out = np.asarray(Image.fromarray(out, "RGBA").resize(size, Image.Resampling.BILINEAR))  # premultiplied
    return np.ascontiguousarray(out)


def _class_of(rel: str) -> int | None:
    for i, (_, prefixes) in enumerate(CLASS_RULES):
        if rel.startswith(prefixes):
            return i
    return None


def _subject(label: int, stem: str) -> str:
    for subject, stems in SUBJECTS.items():
        if stem in stems:
            return f"{label}/{subject}"
    return f"{label}/{stem}"


def _assign_splits(labels: Sequence[int], stems: Sequence[str], folders: Sequence[str]) -> list[str]:
    """Hold out ~TEST_FRACTION (>= 2) of each class for test, by a fixed hash, whole subjects at a time.

    Subjects are taken from the class's folders in turn (e.g. ``hobbies/music/string`` then ``.../percussion``)
    so the test objects are not all from one sub-kind; a subject that would overshoot by 2+ is skipped.
    """
    def key(s: str) -> str:
        return hashlib.sha1(s.encode()).hexdigest()

    splits = ["train"] * len(labels)
    for c in sorted(set(labels)):
        idx = [i for i, lab in enumerate(labels) if lab == c]
        want = max(2, round(TEST_FRACTION * len(idx)))
        members: dict[str, list[int]] = {}
        folder_of: dict[str, str] = {}
        for i in idx:
            s = _subject(c, stems[i])
            members.setdefault(s, []).append(i)
            folder_of.setdefault(s, folders[i])
        queues = {f: sorted((s for s in members if folder_of[s] == f), key=key) for f in set(folder_of.values())}
        order = []
        while any(queues.values()):
            for f in sorted(queues, key=key):
                if queues[f]:
                    order.append(queues[f].pop(0))
        taken = 0
        for s in order:
            if taken >= want:
                break
            if taken + len(members[s]) > want + 1:
                continue
            for i in members[s]:
                splits[i] = "test"
            taken += len(members[s])
    return splits


def _split_regions(area: tuple[float, float, float, float], w: int, h: int
                   ) -> tuple[tuple[float, float, float, float], tuple[float, float, float, float]]:
    """Split a usable area along its longer side (in pixels): first 70% train, last 30% test."""
    x0, y0, x1, y1 = area
    if (x1 - x0) * w >= (y1 - y0) * h:
        xm = x0 + TRAIN_SHARE * (x1 - x0)
        return (x0, y0, xm, y1), (xm, y0, x1, y1)
    ym = y0 + TRAIN_SHARE * (y1 - y0)
    return (x0, y0, x1, ym), (x0, ym, x1, y1)


def _shrink_photo(im: Image.Image, max_short: int) -> Image.Image:
    if min(im.size) <= max_short:
        return im
    f = max_short / min(im.size)
    return im.resize((round(im.width * f), round(im.height * f)), Image.Resampling.BILINEAR, reducing_gap=2.0)


def debian_sources(root: str | os.PathLike[str], *, max_side: int = 128, max_short: int = 768) -> Sources:
    """Cut-outs and photos from the extracted Debian packages (see the module docstring for the rules).

    Args:
        root: extracted root (``fetch.fetch()`` or a folder with ``usr/share/tuxpaint/...``).
        max_side: cut-outs are shrunk to this longer side (twice the largest pasted size is plenty).
        max_short: photos are shrunk to this shorter side.

    Returns:
        The :class:`Sources` (classes in :data:`CLASS_RULES` order, groups in :data:`GROUPS` order).
    """
    root = Path(root)
    stamps = root / STAMPS
    names, labels, colours, images = [], [], [], []
    for path in sorted(stamps.rglob("*.png")):
        rel = path.relative_to(stamps).as_posix()
        label = _class_of(rel)
        if label is None or rel in EXCLUDE or set(rel.split("/")[:-1]) & set(CLIPART_DIRS):
            continue
        with Image.open(path) as im:
            if im.mode not in ("RGBA", "LA", "PA") and "transparency" not in im.info:
                continue
            rgba = np.asarray(im.convert("RGBA"))
        n_col = count_colours(rgba)
        if n_col < MIN_COLOURS or int((rgba[..., 3] > 127).sum()) < MIN_AREA:
            continue
        names.append(f"{STAMPS}/{rel}")
        labels.append(label)
        colours.append(n_col)
        images.append(_crop_and_shrink(rgba, max_side))
    splits = _assign_splits(labels, [Path(n).stem for n in names], [str(Path(n).parent) for n in names])
    cutouts = [Cutout(n, lab, s, k, im) for n, lab, s, k, im in zip(names, labels, splits, colours, images,
                                                                    strict=True)]
    photos = []
    for group, rel, area in BACKGROUNDS:
        with Image.open(root / rel) as im:
            full = im.convert("RGB")
        train, test = _split_regions(area, *full.size)
        photos.append(Photo(rel, GROUPS.index(group), _shrink_photo(full, max_short), train, test))
    classes = [name for name, _ in CLASS_RULES]
    return Sources("debian", classes, list(GROUPS), [GROUPS.index(HOME[c]) for c in classes], cutouts, photos)


# --------------------------------------------------------------------------- generated stand-in

_GEN_SHAPES = ("disc", "square", "triangle", "star", "cross", "ring")
_GEN_GROUPS = ("stripes", "checks", "blotches", "waves", "speckle", "gradient")


def _shape_inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    r, t = np.hypot(u, v), np.arctan2(v, u)
    if shape == "disc":
        return r < 0.9
    if shape == "square":
        return np.maximum(abs(u), abs(v)) < 0.75
    if shape == "triangle":
        return (v < 0.7) & (v > 2.0 * abs(u) - 1.0)
    if shape == "star":
        return r < 0.55 + 0.35 * np.cos(5 * t)
    if shape == "cross":
        return ((abs(u) < 0.3) & (abs(v) < 0.9)) | ((abs(v) < 0.3) & (abs(u) < 0.9))
    return (r < 0.9) & (r > 0.5)  # ring


def _gen_cutout(rng: np.random.Generator, label: int, side: int) -> np.ndarray:
    """A textured shape with an antialiased alpha (4x supersampled): (side, side, 4) uint8."""
    ss = 4 * side
    g = (np.arange(ss) + 0.5) / ss * 2 - 1
    v, u = np.meshgrid(g, g, indexing="ij")
    a, sx = rng.uniform(0, math.pi), rng.uniform(0.8, 1.2)
    ur, vr = (u * math.cos(a) - v * math.sin(a)) * sx, (u * math.sin(a) + v * math.cos(a)) / sx
    alpha = _shape_inside(_GEN_SHAPES[label % len(_GEN_SHAPES)], ur, vr).astype(np.float32)
    alpha = alpha.reshape(side, 4, side, 4).mean(axis=(1, 3))
    hue = (label / len(_GEN_SHAPES) + rng.uniform(-0.04, 0.04)) % 1.0
    base = np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.6, 0.9), rng.uniform(0.7, 1.0)), np.float32)
    gs = (np.arange(side) + 0.5) / side
    yy, xx = np.meshgrid(gs, gs, indexing="ij")
    wave = 0.8 + 0.2 * np.sin(rng.uniform(8, 20) * (xx * math.cos(a) + yy * math.sin(a)))
    rgb = base * wave[..., None] + rng.normal(0, 0.04, (side, side, 3))
    out = np.concatenate([np.clip(rgb, 0, 1), alpha[..., None]], axis=-1)
    return np.round(out * 255).astype(np.uint8)


def _gen_background(rng: np.random.Generator, group: int, h: int, w: int) -> np.ndarray:
    """A muted texture whose pattern and colour family depend on the group: (h, w, 3) uint8."""
    yy, xx = np.meshgrid(np.arange(h) / 32.0, np.arange(w) / 32.0, indexing="ij")
    kind = _GEN_GROUPS[group % len(_GEN_GROUPS)]
    f = rng.uniform(2.5, 3.5)
    if kind == "stripes":
        p = np.sin(f * 2 * yy)
    elif kind == "checks":
        p = np.sign(np.sin(f * xx) * np.sin(f * yy))
    elif kind == "blotches":
        p = np.sin(f * xx + 2 * np.sin(yy)) * np.cos(f * yy + 2 * np.cos(xx))
    elif kind == "waves":
        p = np.sin(f * (xx + yy) + np.sin(2 * xx))
    elif kind == "speckle":
        p = rng.uniform(-1, 1, (h, w))
    else:
        p = 2 * xx / xx.max() - 1
    hue = (group / len(_GEN_GROUPS) + 0.5 / len(_GEN_GROUPS) + rng.uniform(-0.03, 0.03)) % 1.0
    base = np.array(colorsys.hsv_to_rgb(hue, 0.3, 0.55), np.float32)
    rgb = base * (1 + 0.25 * p[..., None]) + rng.normal(0, 0.03, (h, w, 3))
    return np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def generated_sources(*, n_classes: int = 6, per_class: int = 5, photos_per_group: int = 2, side: int = 48,
                      photo_hw: tuple[int, int] = (120, 200)) -> Sources:
    """A synthetic stand-in with the same structure as :func:`debian_sources` (no files; fixed content).

    Class c is a textured shape (disc, square, triangle, star, cross, ring) in a hue family; group g a muted
    texture (stripes, checks, blotches, waves, speckle, gradient); class c's home is group c.

    Args:
        n_classes: classes and background groups (at most 6).
        per_class: cut-outs per class (about 30%, at least 2, are test objects).
        photos_per_group: "photos" per background group.
        side: cut-out side in pixels.
        photo_hw: (height, width) of each generated photo.

    Returns:
        The :class:`Sources`.
    """
    if not 2 <= n_classes <= len(_GEN_SHAPES) or per_class < 3:
        raise ValueError(f"generated_sources needs 2 <= n_classes <= 6 and per_class >= 3, got {n_classes}, "
                         f"{per_class}.")
    rng = np.random.default_rng(12345)  # the content is fixed; build seeds only change the compositing
    classes = list(_GEN_SHAPES[:n_classes])
    labels = [c for c in range(n_classes) for _ in range(per_class)]
    names = [f"generated:{classes[c]}#{k}" for c in range(n_classes) for k in range(per_class)]
    splits = _assign_splits(labels, names, [classes[c] for c in labels])
    cutouts = []
    for name, label, split in zip(names, labels, splits, strict=True):
        rgba = _gen_cutout(rng, label, side)
        cutouts.append(Cutout(name, label, split, count_colours(rgba), _crop_and_shrink(rgba, side)))
    groups = list(_GEN_GROUPS[:n_classes])
    photos = []
    for g in range(n_classes):
        for k in range(photos_per_group):
            img = Image.fromarray(_gen_background(rng, g, *photo_hw))
            train, test = _split_regions(_ALL, img.width, img.height)
            photos.append(Photo(f"generated:{groups[g]}#{k}", g, img, train, test))
    return Sources("generated", classes, groups, list(range(n_classes)), cutouts, photos)


def load_sources(source: str, *, root: str | os.PathLike[str] | None = None, size: int = 64) -> Sources:
    """The :class:`Sources` of ``source`` (``"debian"`` needs ``root``, the extracted packages)."""
    if source == "generated":
        return generated_sources()
    if source == "debian":
        if root is None:
            raise ValueError("the debian source needs root= (the extracted packages; see bgbench.fetch).")
        return debian_sources(root, max_side=2 * size, max_short=12 * size)
    raise ValueError(f"source must be 'debian' or 'generated', got {source!r}.")
