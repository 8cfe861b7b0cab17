"""objaug inspect: summarise an object store and draw some of its boxes and masks.

Examples:
    objaug inspect boxes_store
    objaug inspect boxes_store --data train/ --num 32 --picture samples.png
    objaug inspect boxes_store --json --verify

Prints the number of samples and shards, how many were skipped (and why), the coverage (fraction of
the non-skipped samples with at least one box), the share of masks background mixup can mix (with its
defaults and with the paper's rule, on up to 2,048 evenly spaced samples), the boxes-per-image histogram,
the size on disk per sample, the dataset, model and settings the store was made with. Draws a grid (default:
STORE_inspect.png beside the store): for each of --num evenly spaced samples, the image with its
boxes, then its soft mask over the image with the boxes. With --data/--dataset the dataset is
checked against the store (length and fingerprint) and its images are drawn; without it boxes and
masks are drawn on blank grey canvases. On an unfinished store (an interrupted or running
``objaug precompute``) it prints the progress instead, "k of n shards (i of N images) done", and exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from objaug.cli import fail

HELP = "summarise an object store (count, coverage, skipped, settings) and draw its boxes and masks"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Register the ``inspect`` options."""
    p.add_argument("store", metavar="STORE", help="the store directory")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", metavar="DIR", help="the store's image folder (to draw the images)")
    src.add_argument("--dataset", metavar="MODULE:CALLABLE", help="the store's dataset callable")
    p.add_argument("--picture", metavar="PNG", default=None,
                   help="where to save the grid (default: STORE_inspect.png beside the store)")
    p.add_argument("--no-picture", action="store_true", help="print the summary only")
    p.add_argument("--num", type=int, default=16, help="samples drawn, evenly spaced (default 16)")
    p.add_argument("--verify", action="store_true", help="check every shard's SHA-256 against the manifest")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def _fail(message: str) -> int:
    return fail("inspect", message)


def summarize(store: Any) -> dict[str, Any]:
    """The summary printed by ``objaug inspect`` (JSON-able)."""
    import numpy as np
    import torch

    from objaug.boxes import frame_only

    m = store.manifest
    allb = store.all_boxes()
    valid = allb.valid.numpy()
    skipped = store.is_skipped(np.arange(len(store))).numpy()
    nboxes = valid[~skipped].sum(axis=1)
    hist = {str(k): int((nboxes == k).sum()) for k in range(store.max_boxes + 1)}
    b = allb.boxes.numpy()[~skipped]
    v = valid[~skipped]
    areas = ((b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]))[v]
    # found, but every box is (nearly) the whole frame
    whole_frame = int(frame_only(allb.boxes[torch.from_numpy(~skipped)], torch.from_numpy(v)).sum())
    mixable = _mixable(store, np.flatnonzero(~skipped))
    shard_bytes = sum(int(e["bytes"]) for e in m["shards"])
    files_bytes = shard_bytes + os.path.getsize(store.path / "manifest.json")
    n = len(store)
    return {
        "store": str(store.path),
        "format": f"{m['format']} v{m['version']}",
        "samples": n,
        "shards": len(m["shards"]),
        "shard_size": store.shard_size,
        "ok": m["summary"]["ok"],
        "skipped": m["summary"]["skipped"],
        "with_box": m["summary"]["with_box"],
        "coverage": m["summary"]["coverage"],
        "whole_frame": whole_frame,
        **mixable,
        "boxes_per_image": hist,
        "mean_box_area": float(areas.mean()) if areas.size else 0.0,
        "bytes_per_sample": round(files_bytes / n, 1),
        "bytes_total": files_bytes,
        "mask_size": list(store.mask_size),
        "max_boxes": store.max_boxes,
        "dataset": m["dataset"],
        "model": m["model"],
        "settings": m["settings"],
        "skipped_samples": m["skipped"][:20],
    }


def _mixable(store: Any, ok: Any, at_most: int = 2048) -> dict[str, Any]:
    """Share of the stored masks that background mixup can mix (their rectangle leaves a strip), on up to
    ``at_most`` evenly spaced readable samples: with ``BackgroundMixup``'s defaults and the paper's rule."""
    import numpy as np
    import torch

    from objaug.augment.mixup import BackgroundMixup
    from objaug.functional.mixup import largest_strip

    if len(ok) == 0:
        return {"mixable_sampled": 0, "mixable_defaults": 0.0, "mixable_paper": 0.0}
    idx = torch.as_tensor(ok[np.unique(np.linspace(0, len(ok) - 1, min(at_most, len(ok))).round().astype(int))])
    masks = store.get_batch(idx).masks.float()
    h, w = masks.shape[-2:]
    shares = [float((largest_strip(mix.object_rectangles(masks), h, w)[1] > 0).float().mean())
              for mix in (BackgroundMixup(), BackgroundMixup(threshold=0.2, fallback_mass=None))]
    return {"mixable_sampled": len(idx), "mixable_defaults": shares[0], "mixable_paper": shares[1]}


def _print_summary(s: dict[str, Any]) -> None:
    print(f"store:        {s['store']} ({s['format']})")
    print(f"samples:      {s['samples']} in {s['shards']} shard(s) of {s['shard_size']}; ok {s['ok']}, "
          f"skipped {s['skipped']}")
    objects = s["with_box"] - s["whole_frame"]
    print(f"coverage:     {s['coverage']:.4f} ({s['with_box']} of {s['ok']} with >= 1 box: {objects} with an object "
          f"box, {s['whole_frame']} whose boxes are all the whole frame; {s['ok'] - s['with_box']} nothing found)")
    print(f"mixup:        {100 * s['mixable_defaults']:.1f} % of {s['mixable_sampled']} sampled masks leave a "
          f"background strip with BackgroundMixup's defaults, "
          f"{100 * s['mixable_paper']:.1f} % with the paper's rule (threshold 0.2)")
    hist = ", ".join(f"{k}: {v}" for k, v in s["boxes_per_image"].items())
    print(f"boxes/image:  {hist}; mean box area {s['mean_box_area']:.3f}")
    print(f"size:         {s['bytes_total']} bytes, {s['bytes_per_sample']} bytes/sample "
          f"(masks {s['mask_size'][0]}x{s['mask_size'][1]}, {s['max_boxes']} boxes)")
    d = s["dataset"]
    print(f"dataset:      {d.get('kind', '?')} {d.get('source', '')} length {d['length']} "
          f"fingerprint {d['fingerprint'][:40]}")
    model = s["model"]
    ck = model.get("checkpoint")
    ck_s = f"{ck['name']} sha256 {ck['sha256'][:12]}" if isinstance(ck, dict) else str(ck)
    print(f"model:        arch {model.get('arch', '?')}, checkpoint {ck_s}, weights {model['weights'][:19]}")
    print("settings:     " + ", ".join(f"{k}={v}" for k, v in sorted(s["settings"].items())))
    for e in s["skipped_samples"][:10]:
        print(f"  skipped {e['index']}: {e['error']}")


def draw(store: Any, dataset: Any | None, indexes: list[int], path: str) -> str:
    """Draw the grid of ``indexes`` (image + boxes, mask overlay + boxes) and save it as a PNG."""
    import torch

    from objaug.store.datasets import load_image
    from objaug.tools.viz import draw_boxes, make_grid, overlay_cam, save_png

    size = int(min(224, max(64, store.settings.get("image_size", 112))))
    batch = store.get_batch(torch.tensor(indexes, dtype=torch.int64), mask_size=size)
    canvases = torch.full((len(indexes), 3, size, size), 0.5)
    if dataset is not None:
        for j, i in enumerate(indexes):  # drawing a handful of samples: a loop is fine here
            try:
                canvases[j] = load_image(dataset, i, size)
            except Exception:  # noqa: BLE001 - an unreadable sample stays a blank canvas
                pass
    width = max(1, size // 100)
    left = draw_boxes(canvases, batch.boxes, batch.valid, width=width)
    right = draw_boxes(overlay_cam(canvases, batch.masks, alpha=0.5 if dataset is not None else 0.7),
                       batch.boxes, batch.valid, width=width)
    tiles = torch.stack([left, right], dim=1).flatten(0, 1)
    return save_png(make_grid(tiles, nrow=8), path)


def _unfinished(args: argparse.Namespace, progress: Any) -> int:
    """An unfinished store: its progress (text or JSON) and exit code 1 (not usable yet)."""
    if args.json:
        print(json.dumps({"complete": False, "shards_done": progress.shards_done, "num_shards": progress.num_shards,
                          "images_done": progress.images_done, "count": progress.length}, indent=1, sort_keys=True))
    else:
        print(f"unfinished:   {progress.describe()}; run the same `objaug precompute` command again to finish "
              "it (finished shards are kept)")
    return 1


def run(args: argparse.Namespace) -> int:
    """Run the ``inspect`` subcommand."""
    import numpy as np

    from objaug.store.datasets import ImageFolderFiles, load_dataset
    from objaug.store.format import StoreError, StoreIncompleteError
    from objaug.store.reader import ObjectStore
    from objaug.store.resume import store_progress

    if args.num < 1:
        return _fail(f"--num must be >= 1, got {args.num}.")
    dataset = None
    try:
        if args.data is not None:
            dataset = ImageFolderFiles(args.data)
        elif args.dataset is not None:
            dataset = load_dataset(args.dataset)
        store = ObjectStore(args.store, dataset=dataset, verify=args.verify)
    except StoreIncompleteError as e:
        progress = store_progress(args.store)
        if progress is None or progress.complete:
            return _fail(str(e))
        return _unfinished(args, progress)
    except (FileNotFoundError, StoreError, ValueError, ImportError, AttributeError) as e:
        return _fail(str(e))
    summary = summarize(store)
    picture = None
    if not args.no_picture:
        picture = args.picture or os.path.normpath(args.store).rstrip(os.sep) + "_inspect.png"
        n = len(store)
        idx = sorted({int(round(x)) for x in np.linspace(0, n - 1, min(args.num, n))})
        draw(store, dataset, idx, picture)
        summary["picture"] = picture
    if args.json:
        print(json.dumps(summary, indent=1, sort_keys=True))
    else:
        _print_summary(summary)
        if picture:
            print(f"picture:      {picture}")
    return 0
