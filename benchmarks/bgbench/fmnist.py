"""bgbench data v3-fm (issue 26): Fashion-MNIST items pasted on data v2's background photos.

Data v2 has 142 training objects for 9 classes, so an SSL encoder sees each object ~25 times and learns the
objects slowly (docs/benchmarks.md). This data keeps v2's photos, groups, regions and test families, and
replaces the Tux Paint cut-outs by Fashion-MNIST items (Debian's ``dataset-fashion-mnist``, fetched at run
time into the ignored cache like v2's packages; never committed):

* **Classes**: the 10 Fashion-MNIST classes without Shirt (too close to T-shirt, Pullover and Coat): 9
  classes, each tied to one of v2's 9 background groups (:data:`HOME_FM`).
* **Items**: mask = grey level > :data:`MASK_LEVEL`, the grey levels tinted by a random colour per item
  (hue uniform, saturation 0.35-0.85, value 0.7-1), cropped to the mask's box; the longer side is pasted at
  :data:`SINGLE_SCALE_FM` of the image side (:data:`MULTI_SCALE_FM` in the scenes).
* **Item splits**: ``train`` items come from the Fashion-MNIST training set, **one different item per
  training row**; ``val`` items are other training-set items (never in a training row), ``test`` items come
  from the Fashion-MNIST test set.
* **Splits**: ``train`` (home fraction of each class on its home group) and ``train_unbiased`` (the same rows
  on uniformly random groups), as v2; four test families of 4 splits (``original``, ``mixed_same``,
  ``mixed_rand``, ``only_fg``): ``val_`` (training items, val regions), ``val_heldout_`` (val items, val
  regions: for choosing settings on objects never seen in training), the main family (training items, test
  regions) and ``heldout_`` (test items, test regions); ``multi_train`` / ``multi_test`` scenes of 2-4
  training items (train / test regions).

Build from the repository root::

    .venv/bin/python -m benchmarks.bgbench.fmnist --seed 0 --size 64
"""

from __future__ import annotations

import argparse
import colorsys
import dataclasses
import gzip
import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .build import _multi as _multi_v1
from .build import _Pool, _reusable, _scaled, check_build_args, scene_of, test_family_of, write_manifest, write_splits
from .fetch import DEFAULT_CACHE, check_root, fetch
from .sources import Cutout
from .v2 import GROUPS_V2, PACKAGES_V2, _background, _fill, _train_pair, load_sources_v2, object_share

__all__ = ["CLASSES_FM", "FAMILIES_FM", "HOME_FM", "MASK_LEVEL", "MULTI_SCALE_FM", "PACKAGES_FM", "SINGLE_SCALE_FM",
           "SPLITS_FM", "build_fm", "default_out_fm", "fm_cutouts", "read_idx"]

BUILDER_VERSION_FM = 1
#: Debian packages: data v2's and the Fashion-MNIST package.
PACKAGES_FM: tuple[str, ...] = (*PACKAGES_V2, "dataset-fashion-mnist")
FMNIST_DIR = "usr/share/datasets/fashion-mnist"
#: Fashion-MNIST label -> class name; label 6 (Shirt) is left out.
_FM_NAMES = ("t_shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot")
CLASSES_FM: tuple[str, ...] = tuple(n for n in _FM_NAMES if n != "shirt")
HOME_FM: dict[str, str] = {"t_shirt": "sky", "trouser": "water", "pullover": "grass", "dress": "rock",
                           "coat": "wood", "sandal": "leaves", "sneaker": "dusk", "bag": "forest",
                           "ankle_boot": "flowers"}
#: Grey level (0-255) above which an item pixel belongs to the item's mask.
MASK_LEVEL = 25
SINGLE_SCALE_FM = (0.5, 0.8)
MULTI_SCALE_FM = (0.3, 0.5)
_BG = ("original", "mixed_same", "mixed_rand", "only_fg")
#: Test families: name prefix -> (item split, background region).
FAMILIES_FM: dict[str, tuple[str, str]] = {"val_": ("train", "val"), "val_heldout_": ("val", "val"),
                                           "": ("train", "test"), "heldout_": ("test", "test")}
SPLITS_FM: tuple[str, ...] = ("train", "train_unbiased", *(f + b for f in FAMILIES_FM for b in _BG),
                              "multi_train", "multi_test")


def read_idx(path: Path) -> np.ndarray:
    """An idx file (``.gz``) of the MNIST format as a numpy array (uint8 images (N, 28, 28) or labels (N,))."""
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _tint(rng: np.random.Generator) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.35, 0.85), rng.uniform(0.7, 1.0)), np.float32)


def _item(grey: np.ndarray, tint: np.ndarray) -> np.ndarray:
    """(h, w, 4) uint8 RGBA of one item: tinted grey levels, alpha = mask, cropped to the mask's box."""
    mask = grey > MASK_LEVEL
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    g = grey[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.float32)
    rgb = np.clip(np.rint(g[..., None] * tint), 0, 255).astype(np.uint8)
    alpha = np.where(mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], 255, 0).astype(np.uint8)
    return np.concatenate([rgb, alpha[..., None]], axis=-1)


def fm_cutouts(root: Path, seed: int, n_train: int, n_val: int, n_test: int) -> list[Cutout]:
    """The items as :class:`.sources.Cutout` (labels re-indexed without Shirt), per class ``n_train`` train,
    ``n_val`` val (both from the training set, disjoint) and ``n_test`` test items (the test set)."""
    rng = np.random.default_rng([seed, 300])
    d = root / FMNIST_DIR
    out: list[Cutout] = []
    for part, splits in (("train", (("train", n_train), ("val", n_val))), ("t10k", (("test", n_test),))):
        images = read_idx(d / f"{part}-images-idx3-ubyte.gz")
        labels = read_idx(d / f"{part}-labels-idx1-ubyte.gz")
        for c, name in enumerate(CLASSES_FM):
            idx = rng.permutation(np.flatnonzero(labels == _FM_NAMES.index(name)))
            idx = idx[(images[idx] > MASK_LEVEL).reshape(len(idx), -1).sum(1) >= 40]  # no near-empty items
            start = 0
            for split, n in splits:
                if start + n > len(idx):
                    raise ValueError(f"class {name} has {len(idx)} usable {part} items, {start + n} asked.")
                for i in idx[start:start + n]:
                    rgba = _item(images[i], _tint(rng))
                    out.append(Cutout(f"fashion-mnist/{part}/{int(i)}", c, split, int(len(np.unique(
                        rgba[..., :3][rgba[..., 3] > 0].reshape(-1, 3), axis=0))), rgba))
                start += n
    return out


def default_out_fm(seed: int, size: int, home_fraction: float, cache: Path | None = None) -> Path:
    """``<cache>/data-v3fm-s<seed>-<size>px-h<home%>``."""
    name = f"data-v3fm-s{seed}-{size}px-h{round(100 * home_fraction)}"
    return Path(cache if cache is not None else DEFAULT_CACHE) / name


def _digest(a: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def build_fm(out: Path | None = None, *, seed: int = 0, size: int = 64, n_train_per_class: int = 240,
             n_test_per_class: int = 64, n_multi_train: int = 1500, n_multi_test: int = 400,
             home_fraction: float = 0.8, cache: Path | None = None, root: Path | None = None,
             force: bool = False) -> Path:
    """Build (or reuse) a v3-fm dataset and return its folder.

    Args:
        out: output folder (default :func:`default_out_fm`).
        seed: data seed (items, tints, placements, backgrounds).
        size: image side.
        n_train_per_class: training rows (= training items) per class.
        n_test_per_class: rows per class of each test split; also val and test items per class.
        n_multi_train: training scenes.
        n_multi_test: test scenes.
        home_fraction: share of each class's training rows on its home group.
        cache: cache folder of the Debian packages (default ``benchmarks/.cache/bgbench``).
        root: already extracted packages (skips apt).
        force: rebuild even if an identical build exists.

    Returns:
        The dataset folder (manifest ``"format": 2``, ``"data_version": "v3-fm"``; :mod:`.data` loads it).
    """
    check_build_args("debian", size, n_train_per_class, n_test_per_class, n_multi_train, n_multi_test,
                     home_fraction)
    cache_dir = Path(cache) if cache is not None else DEFAULT_CACHE
    out_dir = Path(out) if out is not None else default_out_fm(seed, size, home_fraction, cache_dir)
    params = {"builder_version": BUILDER_VERSION_FM, "n_train_per_class": n_train_per_class,
              "n_test_per_class": n_test_per_class, "n_multi_train": n_multi_train, "n_multi_test": n_multi_test,
              "single_scale": list(SINGLE_SCALE_FM), "multi_scale": list(MULTI_SCALE_FM), "mask_level": MASK_LEVEL}
    if not force and _reusable(out_dir, "debian", seed, size, home_fraction, params, format_version=2,
                               splits=SPLITS_FM):
        return out_dir
    t0 = time.perf_counter()
    root_dir = check_root(root) if root is not None else fetch(cache_dir, packages=PACKAGES_FM)
    t_fetch = time.perf_counter() - t0
    photos = load_sources_v2("debian", root=root_dir, size=size)
    cutouts = fm_cutouts(root_dir, seed, n_train_per_class, n_test_per_class, n_test_per_class)
    src = dataclasses.replace(photos, classes=list(CLASSES_FM), cutouts=cutouts,
                              home=[GROUPS_V2.index(HOME_FM[c]) for c in CLASSES_FM])
    pool = _Pool(src, min_photos=2, why=" (mixed_same uses another one)")
    t_sources = time.perf_counter() - t0 - t_fetch

    def stream(k: int) -> np.random.Generator:
        return np.random.default_rng([seed, 400 + k])

    splits: dict[str, dict[str, np.ndarray]] = {}
    splits["train"], splits["train_unbiased"] = _train_pair(pool, stream(0), n_train_per_class, home_fraction, size,
                                                            scale=SINGLE_SCALE_FM)
    for k, (prefix, (items, region)) in enumerate(FAMILIES_FM.items()):
        splits.update(test_family_of(
            pool, stream(1 + k), n_test_per_class, size, objects=items, names=[prefix + b for b in _BG],
            scale=SINGLE_SCALE_FM, empty=lambda n: _empty(n, size), fill=_fill,
            background=_backgrounds_of(pool, region, size)))
    for k, (name, region, n) in enumerate((("multi_train", "train", n_multi_train),
                                           ("multi_test", "test", n_multi_test))):
        def scene(pool_: _Pool, rng: np.random.Generator, _split: str, size_: int, region: str = region
                  ) -> tuple[Any, ...]:
            return scene_of(pool_, rng, size_, objects="train", scaled=_scaled, scale=MULTI_SCALE_FM,
                            background=lambda r, p: _background(r, pool_, p, region, size_))
        splits[name] = _multi_v1(pool, stream(10 + k), region, n, size, scene=scene)
    write_splits(out_dir, splits, SPLITS_FM)
    manifest = {
        "format": 2, "data_version": "v3-fm", "source": "debian", "seed": seed, "size": size,
        "classes": list(CLASSES_FM), "bg_groups": list(GROUPS_V2), "home": src.home, "home_fraction": home_fraction,
        "objects": {s: sum(c.split == s for c in cutouts) for s in ("train", "val", "test")},
        "splits": {n: {"file": f"{n}.npz", "n": int(len(splits[n]["images"])),
                       "kind": "multi" if n.startswith("multi") else "single",
                       "sha1_images": _digest(splits[n]["images"])} for n in SPLITS_FM},
        "families": {p or "main": {"objects": o, "region": r} for p, (o, r) in FAMILIES_FM.items()},
        "params": params,
        "stats": {n: object_share(splits[n]) for n in ("train", "original", "heldout_original", "multi_train")},
    }
    write_manifest(out_dir, manifest, t0, t_fetch, t_sources)
    return out_dir


def _backgrounds_of(pool: _Pool, region: str, size: int) -> Callable[[np.random.Generator, int], Any]:
    """``background(rng, photo)`` of a region for :func:`.build.test_family_of` (v2's crops and grey)."""
    return lambda r, p: _background(r, pool, p, region, size)


def _empty(n: int, size: int) -> dict[str, np.ndarray]:
    from .v2 import _empty_single

    return _empty_single(n, size)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: build a v3-fm dataset and print its folder and split sizes."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bgbench.fmnist", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--home-fraction", type=float, default=0.8)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args(argv)
    out = build_fm(a.out, seed=a.seed, size=a.size, home_fraction=a.home_fraction, force=a.force)
    man = json.loads((out / "manifest.json").read_text())
    print(out)
    print("splits: " + ", ".join(f"{k} {v['n']}" for k, v in man["splits"].items()))
    print(f"built in {man['build_seconds']['total']} s; stats {man['stats']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
