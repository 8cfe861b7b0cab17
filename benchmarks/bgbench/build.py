"""Build a bgbench dataset: cut-outs composited on background crops (format: ``benchmarks/bgbench/FORMAT.md``).

From the repository root (``benchmarks`` is a namespace package, so ``-m`` works without installing)::

    .venv/bin/python -m benchmarks.bgbench.build --source debian --seed 0 --size 64 [--out DIR]
    .venv/bin/python -m benchmarks.bgbench.build --source generated   # synthetic stand-in, no Debian files

``--source debian`` first fetches three Debian packages with ``apt-get download`` into
``benchmarks/.cache/bgbench`` (see :mod:`.fetch`; ``--root DIR`` uses an already extracted folder instead).

Compositing (numpy + PIL): a background is a random square crop of a photo's train or test region (side
50-100% of the shorter side of the photo's test region, so train and test crops have one scale law), resized
to S x S and randomly mirrored. An object is resized so its longer side is 35-75% of S (20-50% in multi-object
scenes), randomly mirrored, put at a random position fully inside the image and alpha-composited with its
antialiased alpha; its mask is resized alpha > 127. In multi-object scenes (2-4 objects, class-balanced,
distinct objects, background of a uniformly random group) later objects occlude earlier ones; a placement is
resampled (up to 30 times, else the scene keeps fewer objects; a scene with < 2 is redrawn) when any object
would keep less than 40% of its mask visible. Every split draws from its own random stream
``np.random.default_rng([seed, split_index])``: the same seed gives identical arrays.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

if __package__ in (None, ""):  # run as a file: python benchmarks/bgbench/build.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.bgbench.data import FORMAT_VERSION, MULTI_SPLITS, ONLY_FG_GREY, SPLITS, TEST_SPLITS, default_out
from benchmarks.bgbench.fetch import DEFAULT_CACHE, check_root, fetch
from benchmarks.bgbench.sources import Cutout, Photo, Sources, load_sources

__all__ = ["BUILDER_VERSION", "build", "main"]

#: Bumped whenever the output of a given seed changes (a cached dataset with another version is rebuilt).
BUILDER_VERSION = 1
SINGLE_SCALE = (0.35, 0.75)
MULTI_SCALE = (0.20, 0.50)
CROP_FRAC = (0.5, 1.0)
MIN_VISIBLE = 0.4
K = 4
_RESAMPLE_TRIES = 30


def _box(mask: np.ndarray) -> np.ndarray:
    """Tight normalised xyxy box (pixel-edge convention) of an (S, S) bool mask; zeros if empty."""
    s = mask.shape[0]
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return np.zeros(4, np.float32)
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float32) / s


def _crop(rng: np.random.Generator, photo: Photo, split: str, size: int) -> np.ndarray:
    """A random square crop of the photo's ``split`` region, resized to (size, size, 3) uint8, maybe mirrored."""
    w, h = photo.image.size
    t = photo.test_region
    ref = min((t[2] - t[0]) * w, (t[3] - t[1]) * h)
    r = photo.train_region if split == "train" else photo.test_region
    rx0, ry0, rx1, ry1 = r[0] * w, r[1] * h, r[2] * w, r[3] * h
    side = min(rng.uniform(*CROP_FRAC) * ref, rx1 - rx0, ry1 - ry0)
    x0, y0 = rng.uniform(rx0, rx1 - side), rng.uniform(ry0, ry1 - side)
    im = photo.image.resize((size, size), Image.Resampling.BILINEAR, box=(x0, y0, x0 + side, y0 + side))
    arr = np.asarray(im)
    return np.ascontiguousarray(arr[:, ::-1]) if rng.random() < 0.5 else arr


def _scaled(rng: np.random.Generator, cut: Cutout, size: int, scale: tuple[float, float]) -> np.ndarray:
    """The cut-out resized so its longer side is U(scale) * size, maybe mirrored: (h, w, 4) uint8."""
    h0, w0 = cut.rgba.shape[:2]
    f = rng.uniform(*scale) * size / max(h0, w0)
    wh = (min(size, max(1, round(w0 * f))), min(size, max(1, round(h0 * f))))
    arr = np.asarray(Image.fromarray(cut.rgba, "RGBA").resize(wh, Image.Resampling.BILINEAR))
    return np.ascontiguousarray(arr[:, ::-1]) if rng.random() < 0.5 else arr


def _place(rng: np.random.Generator, rgba: np.ndarray, size: int) -> tuple[int, int]:
    h, w = rgba.shape[:2]
    return int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))


def _paste(canvas: np.ndarray, rgba: np.ndarray, y: int, x: int) -> np.ndarray:
    """Alpha-composite ``rgba`` onto float32 ``canvas`` (S, S, 3) in place; return its (S, S) bool mask."""
    h, w = rgba.shape[:2]
    a = rgba[..., 3:].astype(np.float32) / 255.0
    region = canvas[y:y + h, x:x + w]
    region *= 1.0 - a
    region += rgba[..., :3].astype(np.float32) * a
    mask = np.zeros(canvas.shape[:2], bool)
    mask[y:y + h, x:x + w] = rgba[..., 3] > 127
    return mask


def _to_uint8(canvas: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


class _Pool:
    """Index helpers over the sources: objects by (class, split), photos by group."""

    def __init__(self, src: Any, *, min_photos: int = 1, why: str = "") -> None:
        self.src = src
        self.objs: dict[tuple[int, str], list[int]] = {}
        for i, cut in enumerate(src.cutouts):
            self.objs.setdefault((cut.label, cut.split), []).append(i)
        self.photos: list[list[int]] = [[] for _ in src.groups]
        for i, p in enumerate(src.photos):
            self.photos[p.group].append(i)
        for c in range(len(src.classes)):
            for split in ("train", "test"):
                if not self.objs.get((c, split)):
                    raise ValueError(f"class {src.classes[c]!r} has no {split} objects.")
        if any(len(p) < min_photos for p in self.photos):
            need = "one photo" if min_photos == 1 else f"{min_photos} photos"
            raise ValueError(f"every background group needs at least {need}{why}.")

    def other_group(self, rng: np.random.Generator, g: int) -> int:
        k = int(rng.integers(0, len(self.photos) - 1))
        return k + (k >= g)

    def photo(self, rng: np.random.Generator, g: int, avoid: int = -1) -> int:
        choices = [p for p in self.photos[g] if p != avoid] or self.photos[g]
        return choices[int(rng.integers(0, len(choices)))]


def _balanced(rng: np.random.Generator, items: Sequence[int], n: int) -> list[int]:
    """n items cycling through a shuffled ``items`` (each used n / len(items) times, +-1)."""
    reps = -(-n // len(items))
    out: list[int] = []
    for _ in range(reps):
        out.extend(items[i] for i in rng.permutation(len(items)))
    return out[:n]


def _single_train(pool: _Pool, rng: np.random.Generator, n_per_class: int, home_fraction: float,
                  size: int) -> dict[str, np.ndarray]:
    src = pool.src
    n_off = round(n_per_class * (1.0 - home_fraction))
    rows: list[tuple[int, int, int]] = []  # (class, object, group)
    for c in range(len(src.classes)):
        objs = _balanced(rng, pool.objs[(c, "train")], n_per_class)
        groups = [src.home[c]] * (n_per_class - n_off) + [pool.other_group(rng, src.home[c]) for _ in range(n_off)]
        rows.extend(zip([c] * n_per_class, objs, groups, strict=True))
    order = rng.permutation(len(rows))
    out = _empty_single(len(rows), size)
    for r, i in enumerate(order):
        c, o, g = rows[i]
        p = pool.photo(rng, g)
        canvas = _crop(rng, src.photos[p], "train", size).astype(np.float32)
        rgba = _scaled(rng, src.cutouts[o], size, SINGLE_SCALE)
        mask = _paste(canvas, rgba, *_place(rng, rgba, size))
        _fill_single(out, r, _to_uint8(canvas), mask, c, o, p, g)
    return out


def _empty_single(n: int, size: int, *, bg_box: bool = False) -> dict[str, np.ndarray]:
    out = {"images": np.zeros((n, size, size, 3), np.uint8), "labels": np.zeros(n, np.int64),
           "masks": np.zeros((n, size, size), np.uint8), "boxes": np.zeros((n, 4), np.float32),
           "object_id": np.zeros(n, np.int64), "bg_id": np.zeros(n, np.int64), "bg_group": np.zeros(n, np.int64)}
    if bg_box:  # v2: the background crop of every row, normalised photo coordinates
        out["bg_box"] = np.zeros((n, 4), np.float32)
    return out


def _fill_single(out: dict[str, np.ndarray], r: int, image: np.ndarray, mask: np.ndarray, c: int, o: int,
                 p: int, g: int) -> None:
    out["images"][r], out["masks"][r], out["boxes"][r] = image, mask, _box(mask)
    out["labels"][r], out["object_id"][r], out["bg_id"][r], out["bg_group"][r] = c, o, p, g


def _single_test(pool: _Pool, rng: np.random.Generator, n_per_class: int,
                 size: int) -> dict[str, dict[str, np.ndarray]]:
    """original / mixed_same / mixed_rand / only_fg with the same placements row by row."""
    grey = np.broadcast_to(np.array(ONLY_FG_GREY, np.float32), (size, size, 3))

    def background(r: np.random.Generator, p: int) -> tuple[np.ndarray, None]:
        return (grey.copy() if p < 0 else _crop(r, pool.src.photos[p], "test", size).astype(np.float32)), None

    def fill(out: dict[str, np.ndarray], r: int, canvas: np.ndarray, mask: np.ndarray, c: int, o: int, p: int,
             g: int, _: None) -> None:
        _fill_single(out, r, _to_uint8(canvas), mask, c, o, p, g)

    return test_family_of(pool, rng, n_per_class, size, objects="test", names=TEST_SPLITS, scale=SINGLE_SCALE,
                          empty=lambda n: _empty_single(n, size), background=background, fill=fill)


def test_family_of(pool: _Pool, rng: np.random.Generator, n_per_class: int, size: int, *, objects: str,
                   names: Sequence[str], scale: tuple[float, float], empty: Callable[[int], dict[str, np.ndarray]],
                   background: Callable[[np.random.Generator, int], tuple[np.ndarray, Any]],
                   fill: Callable[..., None]) -> dict[str, dict[str, np.ndarray]]:
    """One test family (v1 and v2): ``names`` = (original, mixed_same, mixed_rand, only_fg) splits sharing
    each row's object, scale, mirror and position; ``background(rng, photo)`` (photo -1: only_fg's grey)
    gives the canvas, ``fill(out, row, canvas, mask, class, object, photo, group, extra)`` writes the row."""
    src = pool.src
    rows = [(c, o) for c in range(len(src.classes)) for o in _balanced(rng, pool.objs[(c, objects)], n_per_class)]
    order = rng.permutation(len(rows))
    outs = {name: empty(len(rows)) for name in names}
    for r, i in enumerate(order):
        c, o = rows[i]
        rgba = _scaled(rng, src.cutouts[o], size, scale)
        y, x = _place(rng, rgba, size)
        home = src.home[c]
        p_orig = pool.photo(rng, home)
        p_same = pool.photo(rng, home, avoid=p_orig)
        g_rand = pool.other_group(rng, home)
        p_rand = pool.photo(rng, g_rand)
        for name, p, g in zip(names, (p_orig, p_same, p_rand, -1), (home, home, g_rand, -1), strict=True):
            canvas, extra = background(rng, p)
            mask = _paste(canvas, rgba, y, x)
            fill(outs[name], r, canvas, mask, c, o, p, g, extra)
    return outs


def _scene(pool: _Pool, rng: np.random.Generator, split: str, size: int
           ) -> tuple[np.ndarray, list[np.ndarray], list[int], list[int], int, int]:
    """One multi-object scene: (image, visible masks, labels, object ids, photo, group)."""
    region = "train" if split == "multi_train" else "test"

    def background(r: np.random.Generator, p: int) -> tuple[np.ndarray, None]:
        return _crop(r, pool.src.photos[p], region, size).astype(np.float32), None

    image, visible, labels, objs, p, g, _ = scene_of(pool, rng, size, objects=region, background=background,
                                                     scaled=_scaled, scale=MULTI_SCALE)
    return image, visible, labels, objs, p, g


def scene_of(pool: _Pool, rng: np.random.Generator, size: int, *, objects: str,
             background: Callable[[np.random.Generator, int], tuple[np.ndarray, Any]],
             scaled: Callable[..., np.ndarray], scale: tuple[float, float]
             ) -> tuple[np.ndarray, list[np.ndarray], list[int], list[int], int, int, Any]:
    """One multi-object scene (v1 and v2): 2-K objects of split ``objects`` on ``background(rng, photo)``.

    Returns (image, visible masks, labels, object ids, photo, group, what ``background`` returned second).
    """
    src = pool.src
    n_classes = len(src.classes)
    obj_split = objects
    n_objects = sum(c.split == obj_split for c in src.cutouts)
    while True:
        g = int(rng.integers(0, len(src.groups)))
        p = pool.photo(rng, g)
        canvas, extra = background(rng, p)
        want = min(int(rng.integers(2, K + 1)), n_objects)
        fulls: list[np.ndarray] = []
        labels: list[int] = []
        objs: list[int] = []
        pastes: list[tuple[np.ndarray, int, int]] = []
        while len(fulls) < want:
            c = int(rng.integers(0, n_classes))
            cands = [o for o in pool.objs[(c, obj_split)] if o not in objs]
            if not cands:
                continue
            o = cands[int(rng.integers(0, len(cands)))]
            rgba = scaled(rng, src.cutouts[o], size, scale)
            for _ in range(_RESAMPLE_TRIES):
                y, x = _place(rng, rgba, size)
                new = np.zeros((size, size), bool)
                new[y:y + rgba.shape[0], x:x + rgba.shape[1]] = rgba[..., 3] > 127
                if not new.any():
                    break
                later = new.copy()
                ok = True
                for j in range(len(fulls) - 1, -1, -1):  # visibility of earlier objects under all later ones
                    if (fulls[j] & ~later).sum() < MIN_VISIBLE * fulls[j].sum():
                        ok = False
                        break
                    later |= fulls[j]
                if ok:
                    fulls.append(new)
                    labels.append(c)
                    objs.append(o)
                    pastes.append((rgba, y, x))
                    break
            else:
                break  # no room: keep fewer objects
        if len(fulls) >= 2:
            break
    visible = []
    for j, full in enumerate(fulls):
        later = np.zeros((size, size), bool)
        for k in range(j + 1, len(fulls)):
            later |= fulls[k]
        visible.append(full & ~later)
    for rgba, y, x in pastes:
        _paste(canvas, rgba, y, x)
    return _to_uint8(canvas), visible, labels, objs, p, g, extra


def _multi(pool: _Pool, rng: np.random.Generator, split: str, n: int, size: int,
           scene: Callable[..., tuple[Any, ...]] | None = None) -> dict[str, np.ndarray]:
    """``n`` multi-object scenes; ``scene(pool, rng, split, size)`` defaults to v1's (v2 passes its own,
    which also returns the background crop box as a seventh element)."""
    scene = scene or _scene
    out: dict[str, np.ndarray] = {
        "images": np.zeros((n, size, size, 3), np.uint8), "masks": np.zeros((n, K, size, size), np.uint8),
        "boxes": np.zeros((n, K, 4), np.float32), "labels": np.full((n, K), -1, np.int64),
        "object_id": np.full((n, K), -1, np.int64), "n_objects": np.zeros(n, np.int64),
        "bg_id": np.zeros(n, np.int64), "bg_group": np.zeros(n, np.int64)}
    for r in range(n):
        image, visible, labels, objs, p, g, *extra = scene(pool, rng, split, size)
        out["images"][r], out["n_objects"][r], out["bg_id"][r], out["bg_group"][r] = image, len(visible), p, g
        if extra:
            out.setdefault("bg_box", np.zeros((n, 4), np.float32))[r] = extra[0]
        for j, m in enumerate(visible):
            out["masks"][r, j], out["boxes"][r, j] = m, _box(m)
            out["labels"][r, j], out["object_id"][r, j] = labels[j], objs[j]
    return out


def _samples(out: Path, splits: dict[str, dict[str, np.ndarray]], classes: Sequence[str], n: int = 10,
             zoom: int = 2) -> Path:
    """Draw ``samples.png``: a labelled row of ``n`` images per split (multi scenes with their visible boxes)."""
    colours = [(255, 40, 40), (40, 220, 40), (40, 120, 255), (255, 220, 0)]
    s = next(iter(splits.values()))["images"].shape[1] * zoom
    pad, left = 4, 90
    sheet = Image.new("RGB", (left + n * (s + pad), len(splits) * (s + pad)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for row, (name, arr) in enumerate(splits.items()):
        y = row * (s + pad)
        draw.text((4, y + s // 2 - 6), name, fill=(0, 0, 0))
        for i in range(min(n, len(arr["images"]))):
            tile = Image.fromarray(arr["images"][i]).resize((s, s), Image.Resampling.NEAREST)
            d = ImageDraw.Draw(tile)
            if name in MULTI_SPLITS:
                for k in range(int(arr["n_objects"][i])):
                    b = arr["boxes"][i, k] * s
                    d.rectangle([b[0], b[1], b[2] - 1, b[3] - 1], outline=colours[k % 4])
            else:
                d.text((2, s - 11), classes[int(arr["labels"][i])][:12], fill=(255, 255, 255))
            sheet.paste(tile, (left + i * (s + pad), y))
    path = out / "samples.png"
    sheet.save(path)
    return path


def build(out: str | os.PathLike[str] | None = None, *, source: str = "debian", seed: int = 0, size: int = 64,
          n_train_per_class: int = 240, n_test_per_class: int = 64, n_multi_train: int = 1500,
          n_multi_test: int = 400, home_fraction: float = 0.9, cache: str | os.PathLike[str] | None = None,
          root: str | os.PathLike[str] | None = None, force: bool = False) -> Path:
    """Build (or reuse) a dataset and return its folder.

    Args:
        out: output folder; default ``<cache>/data-<source>-s<seed>-<size>px``.
        source: ``"debian"`` (real cut-outs and photos; fetched with apt into ``cache`` unless ``root`` is
            given) or ``"generated"`` (synthetic stand-in, no files needed).
        seed: compositing seed (the object train/test split is fixed, the same for every seed).
        size: image side S in pixels.
        n_train_per_class: training images per class.
        n_test_per_class: rows per class of each test split (original, mixed_same, mixed_rand, only_fg).
        n_multi_train: multi-object training scenes (train objects, train regions).
        n_multi_test: multi-object test scenes (test objects, test regions).
        home_fraction: fraction of a class's training images on its home background group (exact count
            ``round(n * home_fraction)``; the rest on uniformly random other groups).
        cache: cache folder for the Debian packages and default outputs (default ``benchmarks/.cache/bgbench``).
        root: an already extracted packages folder (skips the fetch).
        force: rebuild even if ``out`` holds a dataset built with the same parameters.

    Returns:
        The dataset folder (FORMAT.md).

    Raises:
        benchmarks.bgbench.fetch.FetchError: the debian source cannot be fetched (no apt, no network, ...).
        ValueError: bad arguments.
    """
    check_build_args(source, size, n_train_per_class, n_test_per_class, n_multi_train, n_multi_test, home_fraction)
    cache_dir = Path(cache) if cache is not None else DEFAULT_CACHE
    out_dir = Path(out) if out is not None else default_out(source, seed, size, cache_dir)
    params: dict[str, Any] = {
        "builder_version": BUILDER_VERSION, "n_train_per_class": n_train_per_class,
        "n_test_per_class": n_test_per_class, "n_multi_train": n_multi_train, "n_multi_test": n_multi_test,
        "single_scale": list(SINGLE_SCALE), "multi_scale": list(MULTI_SCALE), "crop_frac": list(CROP_FRAC),
        "min_visible": MIN_VISIBLE,
    }
    if not force and _reusable(out_dir, source, seed, size, home_fraction, params):
        return out_dir
    t0 = time.perf_counter()
    src, t_fetch = load_timed(load_sources, source, root, size, lambda: fetch(cache_dir))
    pool = _Pool(src)
    t_sources = time.perf_counter() - t0 - t_fetch

    def stream(name: str) -> np.random.Generator:
        return np.random.default_rng([seed, SPLITS.index(name)])

    splits: dict[str, dict[str, np.ndarray]] = {
        "train": _single_train(pool, stream("train"), n_train_per_class, home_fraction, size)}
    splits.update(_single_test(pool, stream("original"), n_test_per_class, size))
    splits["multi_train"] = _multi(pool, stream("multi_train"), "multi_train", n_multi_train, size)
    splits["multi_test"] = _multi(pool, stream("multi_test"), "multi_test", n_multi_test, size)

    write_splits(out_dir, splits, SPLITS)
    _samples(out_dir, splits, src.classes)
    write_manifest(out_dir, _manifest(src, seed, size, home_fraction, params, splits), t0, t_fetch, t_sources)
    return out_dir


def check_build_args(source: str, size: int, n_train_per_class: int, n_test_per_class: int, n_multi_train: int,
                     n_multi_test: int, home_fraction: float) -> None:
    """The arguments :func:`build` and :func:`.v2.build_v2` share, checked before any work."""
    if source not in ("debian", "generated"):
        raise ValueError(f"source must be 'debian' or 'generated', got {source!r}.")
    if size < 16 or min(n_train_per_class, n_test_per_class) < 1 or min(n_multi_train, n_multi_test) < 0:
        raise ValueError("need size >= 16, at least one train and test image per class, and n_multi >= 0.")
    if not 0.0 <= home_fraction <= 1.0:
        raise ValueError(f"home_fraction must be in [0, 1], got {home_fraction}.")


def load_timed(loader: Callable[..., Any], source: str, root: str | os.PathLike[str] | None, size: int,
               fetch_root: Callable[[], Path]) -> tuple[Any, float]:
    """``(sources, seconds spent fetching)``: the Debian photos (from ``root`` or fetched) or the stand-in."""
    t0 = time.perf_counter()
    if source == "debian":
        root_dir = check_root(root) if root is not None else fetch_root()
        t_fetch = time.perf_counter() - t0
        return loader("debian", root=root_dir, size=size), t_fetch
    return loader("generated", size=size), 0.0


def write_splits(out_dir: Path, splits: dict[str, dict[str, np.ndarray]], names: Sequence[str]) -> None:
    """The split files; the manifest is removed first and written last, so a crash leaves no valid-looking
    folder."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "manifest.json").unlink(missing_ok=True)
    for name in names:
        np.savez_compressed(out_dir / f"{name}.npz", **splits[name])  # type: ignore[arg-type]


def write_manifest(out_dir: Path, manifest: dict[str, Any], t0: float, t_fetch: float, t_sources: float) -> None:
    manifest["build_seconds"] = {"fetch": round(t_fetch, 2), "sources": round(t_sources, 2),
                                 "total": round(time.perf_counter() - t0, 2)}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def _reusable(out: Path, source: str, seed: int, size: int, home_fraction: float, params: dict[str, Any], *,
              format_version: int = FORMAT_VERSION, splits: Sequence[str] = SPLITS) -> bool:
    try:
        man = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    same = (man.get("format") == format_version and man.get("source") == source and man.get("seed") == seed
            and man.get("size") == size and man.get("home_fraction") == home_fraction
            and man.get("params") == params)
    return same and all((out / f"{n}.npz").is_file() for n in splits)


def _manifest(src: Sources, seed: int, size: int, home_fraction: float, params: dict[str, Any],
              splits: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
    def region(r: tuple[float, ...]) -> list[float]:
        return [round(v, 4) for v in r]

    return {
        "format": FORMAT_VERSION, "source": src.source, "seed": seed, "size": size,
        "classes": src.classes, "bg_groups": src.groups, "home": src.home, "home_fraction": home_fraction,
        "objects": [{"id": i, "class": c.label, "path": c.name, "split": c.split, "colours": c.colours}
                    for i, c in enumerate(src.cutouts)],
        "backgrounds": [{"id": i, "group": p.group, "path": p.name, "train_region": region(p.train_region),
                         "test_region": region(p.test_region)} for i, p in enumerate(src.photos)],
        "splits": {name: {"file": f"{name}.npz", "n": int(len(splits[name]["images"])),
                          "kind": "multi" if name in MULTI_SPLITS else "single"} for name in SPLITS},
        "params": params,
    }


def _summary(out: Path, *, title: str = "bgbench dataset", held: str = "test obj", home_fraction: bool = False,
             photo: Callable[[str], str] = lambda path: Path(path).stem, extra: Sequence[str] = ()) -> str:
    """The build's printed summary (v2 passes its title, column name, photo naming and extra lines)."""
    man = json.loads((out / "manifest.json").read_text())
    home = f"home fraction {man['home_fraction']}, " if home_fraction else ""
    lines = [f"{title}: {out}", f"source {man['source']}, seed {man['seed']}, {man['size']} px, "
             f"{home}built in {man.get('build_seconds', {}).get('total', '?')} s"]
    w = max(8, len(held))
    lines.append(f"{'class':<15} {'home group':<11} {'train obj':>9} {held:>{w}}")
    for c, name in enumerate(man["classes"]):
        n_tr = sum(o["class"] == c and o["split"] == "train" for o in man["objects"])
        n_te = sum(o["class"] == c and o["split"] == "test" for o in man["objects"])
        lines.append(f"{name:<15} {man['bg_groups'][man['home'][c]]:<11} {n_tr:>9} {n_te:>{w}}")
    for g, name in enumerate(man["bg_groups"]):
        photos = [photo(b["path"]) for b in man["backgrounds"] if b["group"] == g]
        lines.append(f"group {name:<9} {len(photos)} photo(s): {', '.join(photos)}")
    lines.extend(extra)
    total = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    lines.append("splits: " + ", ".join(f"{k} {v['n']}" for k, v in man["splits"].items())
                 + f"; {total / 2**20:.1f} MiB on disk")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point (see the module docstring)."""
    from benchmarks.bgbench.fetch import FetchError

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--source", choices=("debian", "generated"), default="debian")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: in the cache)")
    ap.add_argument("--cache", type=Path, default=None, help=f"cache folder (default {DEFAULT_CACHE})")
    ap.add_argument("--root", type=Path, default=None, help="already extracted Debian packages (skips apt)")
    for flag, default in (("--n-train-per-class", 240), ("--n-test-per-class", 64), ("--n-multi-train", 1500),
                          ("--n-multi-test", 400)):  # images per class / scenes per split
        ap.add_argument(flag, type=int, default=default)
    ap.add_argument("--home-fraction", type=float, default=None, help="default 0.9 (v1), 0.8 (v2)")
    ap.add_argument("--force", action="store_true", help="rebuild even if an identical build exists")
    ap.add_argument("--train-crops-per-photo", type=int, default=0,
                    help="v2 only: draw training backgrounds from this many fixed crops per photo (0: fresh crops)")
    ap.add_argument("--version", choices=("v1", "v2"), default="v1",
                    help="data version (v2: benchmarks/bgbench/v2.py, issue 13; its default home fraction is 0.8)")
    a = ap.parse_args(argv)
    if a.version == "v2":
        from benchmarks.bgbench.v2 import build_v2, summary_v2

        hf = 0.8 if a.home_fraction is None else a.home_fraction
        try:
            out = build_v2(a.out, source=a.source, seed=a.seed, size=a.size, n_train_per_class=a.n_train_per_class,
                           n_test_per_class=a.n_test_per_class, n_multi_train=a.n_multi_train,
                           n_multi_test=a.n_multi_test, home_fraction=hf, cache=a.cache, root=a.root, force=a.force,
                           train_crops_per_photo=a.train_crops_per_photo)
        except FetchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(summary_v2(out))
        return 0
    if a.home_fraction is None:
        a.home_fraction = 0.9
    try:
        out = build(a.out, source=a.source, seed=a.seed, size=a.size, n_train_per_class=a.n_train_per_class,
                    n_test_per_class=a.n_test_per_class, n_multi_train=a.n_multi_train, n_multi_test=a.n_multi_test,
                    home_fraction=a.home_fraction, cache=a.cache, root=a.root, force=a.force)
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(_summary(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
