"""Read the ``boxes.json`` that ``objaug cam`` writes, as boxes for :class:`ObjectAwareDataset`.

``objaug cam photos/ --out cam_out`` lists, per image, its boxes normalised to [0, 1] (``boxes_norm``)
and their ``valid`` flags; :func:`load_cam_boxes` turns that into the ``(N, K, 4)`` / ``(N, K)`` tensors
that ``ObjectAwareDataset(dataset, boxes=..., valid=...)`` takes, optionally reordered to a dataset's
own file order. Not a hot path: plain Python over the JSON records.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from objaug.validation import check_paths

__all__ = ["CamBoxes", "load_cam_boxes"]

_HOW = "write it with `objaug cam IMAGES --out DIR` and pass DIR or DIR/boxes.json"


class CamBoxes(NamedTuple):
    """The boxes of a ``boxes.json``: unpack as ``boxes, valid, files = load_cam_boxes(path)``.

    Attributes:
        boxes: ``(N, K, 4)`` float32 normalised xyxy in [0, 1] (``K`` = the run's ``--max-boxes``).
        valid: ``(N, K)`` bool; an image whose row is all False had nothing found (whole-frame fallback).
        files: the N image paths, in the order of the rows.
    """

    boxes: Tensor
    valid: Tensor
    files: list[str]


def _fail(path: Path, what: str) -> ValueError:
    return ValueError(f"load_cam_boxes(path={str(path)!r}): {what}; {_HOW}.")


def _read(path: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]]:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"load_cam_boxes(path=...) must be a str or path, got {type(path).__name__}; {_HOW}.")
    p = Path(path)
    if p.is_dir():
        p = p / "boxes.json"
    if not p.is_file():
        raise FileNotFoundError(f"load_cam_boxes(path={str(path)!r}): no such file {str(p)!r}; {_HOW}.")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _fail(p, f"not a JSON file ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list) or "version" not in doc:
        raise _fail(p, "not an `objaug cam` boxes.json (no 'version' and 'images' list)")
    if doc["version"] != 1:
        raise _fail(p, f"version {doc['version']!r} is not supported (this objaug reads version 1)")
    if not doc["images"]:
        raise _fail(p, f"it lists no images ({len(doc.get('skipped') or [])} skipped)")
    return p, doc


def _record(p: Path, i: int, rec: Any) -> tuple[str, list[list[float]], list[bool]]:
    if not isinstance(rec, dict) or not {"file", "boxes_norm", "valid"} <= set(rec):
        raise _fail(p, f"images[{i}] lacks 'file', 'boxes_norm' or 'valid'")
    boxes, valid = rec["boxes_norm"], rec["valid"]
    if not isinstance(boxes, list) or not isinstance(valid, list) or len(boxes) != len(valid):
        raise _fail(p, f"images[{i}] ({rec['file']!r}) has {len(boxes)} boxes_norm but {len(valid)} valid flags")
    for box in boxes:
        if (not isinstance(box, list) or len(box) != 4
                or not all(isinstance(c, (int, float)) and not isinstance(c, bool) and 0.0 <= c <= 1.0 for c in box)
                or box[0] > box[2] or box[1] > box[3]):
            raise _fail(p, f"images[{i}] ({rec['file']!r}) has the box {box!r}; boxes_norm must be "
                           "[x1, y1, x2, y2] in [0, 1] with x1 <= x2 and y1 <= y2")
    if not all(isinstance(v, bool) for v in valid):
        raise _fail(p, f"images[{i}] ({rec['file']!r}) has the valid flags {valid!r}; they must be JSON true/false, "
                       "not strings or numbers (a string 'false' would read as True)")
    return str(rec["file"]), boxes, valid


def load_cam_boxes(path: str | os.PathLike[str], *, order: Sequence[str | os.PathLike[str]] | None = None) -> CamBoxes:
    """Load ``objaug cam``'s ``boxes.json`` as boxes for ``ObjectAwareDataset(dataset, boxes=, valid=)``.

    Args:
        path: the ``boxes.json`` file, or the ``--out`` directory that holds it.
        order: the dataset's image files, in its index order (e.g. ``[p for p, _ in
            ImageFolder(root).samples]``): the rows are reordered to match, files compared by their
            resolved paths. ``None``: the JSON's order (``objaug cam``'s sorted file order).

    Returns:
        :class:`CamBoxes` ``(boxes, valid, files)``: ``boxes`` ``(N, K, 4)`` float32 normalised xyxy in
        [0, 1], ``valid`` ``(N, K)`` bool, ``files`` the N paths as written in the JSON (in ``order``'s
        order if given).

    Raises:
        TypeError: ``path`` not a path; ``order`` not a sequence of paths (a single path, indexes).
        FileNotFoundError: ``path`` is neither the file nor a directory holding ``boxes.json``.
        ValueError: not JSON, not an ``objaug cam`` file, a malformed record (``valid`` flags that are not JSON
            booleans, e.g. the string ``"false"``), records with different box
            counts, or a file of ``order`` that the JSON does not list (skipped or from another folder).

    Example:
        >>> boxes, valid, files = load_cam_boxes("cam_out", order=[p for p, _ in folder.samples])
        >>> data = ObjectAwareDataset(folder, boxes=boxes, valid=valid, transform=ObjectAwareSimCLRTransform())
    """
    p, doc = _read(path)
    records = [_record(p, i, rec) for i, rec in enumerate(doc["images"])]
    counts = {len(v) for _, _, v in records}
    if len(counts) != 1:
        raise _fail(p, f"images have different box counts {sorted(counts)}; expected one --max-boxes for all")
    if order is not None:
        order = check_paths(order, "order")
        where = {os.path.realpath(f): i for i, (f, _, _) in enumerate(records)}
        picked = []
        for f in order:
            i = where.get(os.path.realpath(os.fspath(f)))
            if i is None:
                raise _fail(p, f"order lists {os.fspath(f)!r}, which it does not have (skipped by `objaug cam`, "
                               "or another folder); run `objaug cam` on the dataset's own files")
            picked.append(records[i])
        records = picked
    k = counts.pop()
    boxes = torch.tensor([b for _, b, _ in records], dtype=torch.float32).reshape(len(records), k, 4)
    valid = torch.tensor([v for _, _, v in records], dtype=torch.bool).reshape(len(records), k)
    return CamBoxes(boxes, valid, [f for f, _, _ in records])
