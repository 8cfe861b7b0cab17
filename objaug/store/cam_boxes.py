"""Read the ``boxes.json`` that ``objaug cam`` writes, as boxes for :class:`ObjectAwareDataset`.

``objaug cam photos/ --out cam_out`` lists, per image, its boxes normalised to [0, 1] (``boxes_norm``)
and their ``valid`` flags; :func:`load_cam_boxes` turns that into the ``(N, K, 4)`` / ``(N, K)`` tensors
that ``ObjectAwareDataset(dataset, boxes=..., valid=...)`` takes, optionally reordered to a dataset's
own file order. Not a hot path: plain Python over the JSON records.

Paths (version 2): every image's ``file`` is absolute and ``relative`` is its path relative to the folder of
``boxes.json``, so the file loads from any working directory, and still finds the images when the images and
the output folder are moved together. Version 1 files (paths as given on the command line, relative to the
directory ``objaug cam`` ran in) are still read; their relative paths resolve against the current directory.
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
        files: the N image paths, in the order of the rows (absolute for version 2 files).
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
    if doc["version"] not in (1, 2):
        raise _fail(p, f"version {doc['version']!r} is not supported (this objaug reads versions 1 and 2)")
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
    return _where(p, rec)[0], boxes, valid


def _where(p: Path, rec: dict[str, Any]) -> list[str]:
    """Where an entry's image may be: the first existing of ``file`` and the JSON's folder / ``relative`` first.

    Version 1 entries have only ``file`` (relative to the directory ``objaug cam`` ran in, i.e. the current
    directory at best).
    """
    candidates = [os.fspath(rec["file"])]
    relative = rec.get("relative")
    if isinstance(relative, str):
        candidates.append(os.path.normpath(os.path.join(p.parent.absolute(), relative)))
    existing = [c for c in candidates if os.path.exists(c)]
    return existing + [c for c in candidates if c not in existing]


def _missing(p: Path, doc: dict[str, Any], f: str | os.PathLike[str], n_found: int) -> ValueError:
    """The error for a file of ``order`` that the JSON does not list: skipped, or not among the images."""
    asked = os.fspath(f)
    real = os.path.realpath(asked)
    shown = repr(asked) if os.path.isabs(asked) else f"{asked!r}, i.e. {real!r} from the current directory"
    where = f"load_cam_boxes(path={str(p)!r}): order lists {shown}"
    for rec in doc.get("skipped") or []:
        if isinstance(rec, dict) and "file" in rec and real in {os.path.realpath(c) for c in _where(p, rec)}:
            return ValueError(f"{where}, which `objaug cam` skipped ({rec.get('error', 'unreadable')}): remove it "
                              "from the dataset, or fix the file and run `objaug cam` again.")
    folders = sorted({os.path.dirname(os.path.realpath(_where(p, r)[0])) for r in doc["images"]})
    near = ", ".join(repr(d) for d in folders[:3]) + (f" and {len(folders) - 3} more" if len(folders) > 3 else "")
    hint = ("none of order's files matched so far: the dataset is another folder, or the images moved without "
            "the output folder" if n_found == 0 else f"{n_found} earlier files of order matched")
    return ValueError(f"{where}, which is not among its {len(doc['images'])} images (in {near}); {hint}. Run "
                      "`objaug cam` on the dataset's own files.")


def load_cam_boxes(path: str | os.PathLike[str], *, order: Sequence[str | os.PathLike[str]] | None = None) -> CamBoxes:
    """Load ``objaug cam``'s ``boxes.json`` as boxes for ``ObjectAwareDataset(dataset, boxes=, valid=)``.

    Args:
        path: the ``boxes.json`` file, or the ``--out`` directory that holds it.
        order: the dataset's image files, in its index order (e.g. ``[p for p, _ in
            ImageFolder(root).samples]``, relative to the current directory or absolute): the rows are reordered
            to match, files compared by their resolved paths (a version 2 file's images are found from any
            working directory). ``None``: the JSON's order (``objaug cam``'s sorted file order).

    Returns:
        :class:`CamBoxes` ``(boxes, valid, files)``: ``boxes`` ``(N, K, 4)`` float32 normalised xyxy in
        [0, 1], ``valid`` ``(N, K)`` bool, ``files`` the N image paths (version 2: absolute, the JSON's
        ``file`` or, where that does not exist, its ``relative`` path joined to the JSON's folder; in
        ``order``'s order if given).

    Raises:
        TypeError: ``path`` not a path; ``order`` not a sequence of paths (a single path, indexes).
        FileNotFoundError: ``path`` is neither the file nor a directory holding ``boxes.json``.
        ValueError: not JSON, not an ``objaug cam`` file, a malformed record (``valid`` flags that are not JSON
            booleans, e.g. the string ``"false"``), records with different box counts, or a file of ``order``
            that the JSON does not list (the message says whether ``objaug cam`` skipped it, and where the JSON's
            images are).

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
        where: dict[str, int] = {}
        for row, rec in enumerate(doc["images"]):
            for candidate in _where(p, rec):
                where.setdefault(os.path.realpath(candidate), row)
        picked: list[tuple[str, list[list[float]], list[bool]]] = []
        for f in order:
            found = where.get(os.path.realpath(os.fspath(f)))
            if found is None:
                raise _missing(p, doc, f, len(picked))
            picked.append(records[found])
        records = picked
    k = counts.pop()
    boxes = torch.tensor([b for _, b, _ in records], dtype=torch.float32).reshape(len(records), k, 4)
    valid = torch.tensor([v for _, _, v in records], dtype=torch.bool).reshape(len(records), k)
    return CamBoxes(boxes, valid, [f for f, _, _ in records])
