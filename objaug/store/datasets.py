"""The datasets a store is computed from: an image folder, a dataset named by a spec, decoding, fingerprints.

See :mod:`objaug.store.precompute` for the dataset contract (map-style, deterministic; an item is an
image, a tuple whose first element is the image, or a dict with an ``"image"`` key).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from objaug.constants import IMAGE_EXTENSIONS

__all__ = ["ImageFolderFiles", "dataset_fingerprint", "error_text", "files_fingerprint", "folder_files",
           "load_dataset", "load_image", "model_fingerprint"]

_FINGERPRINT_PROBES = 8
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")



class ImageFolderFiles(Dataset):
    """Every image file under ``root`` (recursive), sorted by relative path, as a map-style dataset.

    Items are ``PIL.Image`` objects opened lazily (decoded on first use, so JPEG draft decoding at
    reduced size applies). Files are listed once, at construction: relative POSIX paths sorted as
    Python strings, file names ending in :data:`IMAGE_EXTENSIONS` (any case), hidden files included.

    Fingerprint (:meth:`objaug_fingerprint`): ``"folder-v1:" + sha256`` of the lines
    ``"<relative path>\\t<size in bytes>\\n"`` of all files in order. Cheap (no file is read) and
    sensitive to added, removed, renamed or resized files, not to same-size edits.

    Args:
        root: the folder.
        extensions: file name endings to include.

    Raises:
        FileNotFoundError: ``root`` is not a directory. ValueError: no image file under ``root``.
    """

    def __init__(self, root: str | os.PathLike[str], *, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"root: {self.root} is not a directory.")
        ext = tuple(e.lower() for e in extensions)
        found = []
        for dirpath, _, files in os.walk(self.root):
            for name in files:
                if name.lower().endswith(ext):
                    p = Path(dirpath) / name
                    found.append((p.relative_to(self.root).as_posix(), p.stat().st_size))
        found.sort()
        if not found:
            raise ValueError(f"No image files ({', '.join(ext)}) under {self.root}.")
        self.files: list[str] = [f for f, _ in found]
        self.sizes: list[int] = [s for _, s in found]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Any:
        from PIL import Image

        rel = self.files[index]
        try:
            return Image.open(self.root / rel)
        except Exception as e:
            raise type(e)(f"{rel}: {e}".replace(str(self.root) + os.sep, "")) from None

    def objaug_fingerprint(self) -> str:
        """``"folder-v1:<sha256 of relative paths and sizes>"`` (see the class docstring)."""
        return _folder_digest("folder-v1:", self.files, self.sizes)


def _folder_digest(prefix: str, rels: Sequence[str], sizes: Sequence[int]) -> str:
    h = hashlib.sha256()
    for rel, size in zip(rels, sizes, strict=True):
        h.update(f"{rel}\t{size}\n".encode())
    return prefix + h.hexdigest()


def folder_files(dataset: Any) -> tuple[Path, list[str]] | None:
    """``(root, relative POSIX paths in index order)`` of a dataset that reads one image file per index.

    Recognises :class:`ImageFolderFiles` (the CLI's ``--data``), torchvision's ``ImageFolder`` /
    ``DatasetFolder`` (``root`` + ``samples``), Lightly's ``LightlyDataset`` on a folder (``input_dir`` +
    ``get_filenames()``) and any wrapper with a ``dataset`` attribute of these (``ObjectAwareDataset``);
    ``None`` for anything else.
    """
    if isinstance(dataset, ImageFolderFiles):
        return dataset.root, list(dataset.files)
    root, samples = getattr(dataset, "root", None), getattr(dataset, "samples", None)
    if isinstance(root, str | os.PathLike) and isinstance(samples, list) and all(
            isinstance(x, tuple) and x and isinstance(x[0], str | os.PathLike) for x in samples[:1]):
        return Path(root), [Path(os.path.relpath(x[0], root)).as_posix() for x in samples]
    input_dir, names = getattr(dataset, "input_dir", None), getattr(dataset, "get_filenames", None)
    if isinstance(input_dir, str | os.PathLike) and callable(names):
        return Path(input_dir), [Path(f).as_posix() for f in names()]
    inner = getattr(dataset, "dataset", None)
    if inner is not None and inner is not dataset and hasattr(inner, "__getitem__"):
        return folder_files(inner)
    return None


def _sizes(root: Path, rels: Sequence[str]) -> list[int]:
    return [(root / rel).stat().st_size if (root / rel).is_file() else -1 for rel in rels]


def files_fingerprint(dataset: Any) -> str | None:
    """``"files-v1:" + sha256`` of a folder dataset's files **in sorted order** (see :func:`folder_files`).

    Equal for two datasets that read the same files in different orders, so a mismatch can be told
    apart from a reordering; ``None`` for a dataset that is not a folder of files.
    """
    found = folder_files(dataset)
    if found is None:
        return None
    root, rels = found
    order = sorted(range(len(rels)), key=rels.__getitem__)
    sizes = _sizes(root, rels)
    return _folder_digest("files-v1:", [rels[i] for i in order], [sizes[i] for i in order])


def load_dataset(spec: str) -> Any:
    """Load a dataset from ``"module:callable"`` or ``"path/to/file.py:callable"``.

    The attribute is called with no arguments if it is callable and not already a dataset (has no
    ``__getitem__``), and must give a map-style dataset (see the module docstring for the contract).

    Raises:
        ValueError: malformed spec, or the result is not a map-style dataset.
        ImportError / AttributeError: the module or attribute does not exist.
    """
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"the dataset spec must look like 'package.module:callable' or 'file.py:callable', "
                         f"got {spec!r}.")
    mod_name, _, attr = spec.rpartition(":")
    if not mod_name or not attr:
        raise ValueError(f"the dataset spec must look like 'package.module:callable', got {spec!r}.")
    if mod_name.endswith(".py"):
        path = Path(mod_name)
        if not path.is_file():
            raise FileNotFoundError(f"the dataset spec names no file {path}.")
        name = f"_objaug_dataset_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}"
        mspec = importlib.util.spec_from_file_location(name, path)
        if mspec is None or mspec.loader is None:
            raise ImportError(f"the dataset spec names {path}, which cannot be imported.")
        module = importlib.util.module_from_spec(mspec)
        sys.modules[name] = module  # so that DataLoader workers started with spawn can unpickle it
        mspec.loader.exec_module(module)
    else:
        module = importlib.import_module(mod_name)
    if not hasattr(module, attr):
        names = sorted(n for n in vars(module) if not n.startswith("_"))[:12]
        raise AttributeError(f"the dataset spec {spec!r}: {mod_name} defines no {attr!r} (it defines "
                             f"{', '.join(names) or 'nothing public'}).")
    obj = getattr(module, attr)
    if callable(obj) and not hasattr(obj, "__getitem__"):
        obj = obj()
    if isinstance(obj, str | bytes) or not (hasattr(obj, "__len__") and hasattr(obj, "__getitem__")):
        raise ValueError(f"the dataset spec {spec!r} gave a {type(obj).__name__}, not a map-style dataset "
                         "(it needs __len__ and __getitem__).")
    return obj


def _extract_image(item: Any) -> Any:
    if isinstance(item, dict):
        if "image" not in item:
            raise KeyError(f"dataset item is a dict without an 'image' key (keys: {sorted(item)[:8]}).")
        return item["image"]
    if isinstance(item, tuple | list):
        if not item:
            raise ValueError("dataset item is an empty tuple.")
        return item[0]
    return item


def _image_bytes(image: Any) -> bytes:
    """Canonical bytes of an image for fingerprinting (shape, dtype and pixel data)."""
    if isinstance(image, Tensor):
        t = image.detach().cpu().contiguous()
        return f"{tuple(t.shape)}|{t.dtype}|".encode() + t.reshape(-1).view(torch.uint8).numpy().tobytes()
    arr = np.ascontiguousarray(np.asarray(image))
    return f"{arr.shape}|{arr.dtype}|".encode() + arr.tobytes()


def dataset_fingerprint(dataset: Any) -> str:
    """A string that identifies a dataset's contents, stored in the manifest and checked on resume.

    * ``dataset.objaug_fingerprint`` (a string, or a method returning one) if the dataset has it
      (:class:`ImageFolderFiles` does: paths and file sizes);
    * for a dataset that reads a folder of files (:func:`folder_files`: torchvision's ``ImageFolder``,
      Lightly's ``LightlyDataset``, wrappers of them), the same ``"folder-v1:"`` digest of its relative
      paths and sizes in index order: the same folder read in the same order fingerprints alike,
      whichever wrapper reads it;
    * else ``"sampled-v1:" + sha256`` of the dataset's class name, its length and the pixels of up
      to 8 evenly spaced samples (indices ``round(linspace(0, n - 1, 8))``; a sample that fails to
      load contributes its exception's class name).
    """
    custom = getattr(dataset, "objaug_fingerprint", None)
    if custom is not None:
        value = custom() if callable(custom) else custom
        if not isinstance(value, str):
            raise TypeError(f"dataset.objaug_fingerprint must be (or return) a str, got {type(value).__name__}.")
        return value
    found = folder_files(dataset)
    if found is not None:
        root, rels = found
        return _folder_digest("folder-v1:", rels, _sizes(root, rels))
    return sampled_fingerprint(dataset)


def sampled_fingerprint(dataset: Any) -> str:
    """``"sampled-v1:" + sha256`` of the class name, the length and up to 8 samples' pixels (see
    :func:`dataset_fingerprint`; also how stores made before folder fingerprints identify a folder)."""
    n = len(dataset)
    h = hashlib.sha256(f"{type(dataset).__module__}.{type(dataset).__qualname__}|{n}|".encode())
    probes = sorted({int(round(x)) for x in np.linspace(0, n - 1, min(n, _FINGERPRINT_PROBES))}) if n else []
    for i in probes:
        try:
            data = _image_bytes(_extract_image(dataset[i]))
        except Exception as e:  # noqa: BLE001 - a broken sample is part of the identity
            data = f"error:{type(e).__name__}".encode()
        h.update(f"{i}|{len(data)}|".encode())
        h.update(data)
    return "sampled-v1:" + h.hexdigest()


def model_fingerprint(*modules: nn.Module | None) -> str:
    """``"sha256:..."`` of the modules' state dicts (names, dtypes, shapes, bytes), in order."""
    h = hashlib.sha256()
    for i, m in enumerate(modules):
        if m is None:
            continue
        for name, t in sorted(m.state_dict().items()):
            t = t.detach().cpu().contiguous()
            h.update(f"{i}|{name}|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return "sha256:" + h.hexdigest()


def _to_tensor(image: Any, size: int) -> Tensor:
    """An image (PIL, tensor, numpy) -> (3, size, size) float32 in [0, 1]."""
    from PIL import Image

    if isinstance(image, Image.Image):
        if getattr(image, "format", None) == "JPEG":
            # Decode at a reduced DCT scale that is still >= size (big JPEGs: much faster); a no-op
            # for an image that is already loaded.
            image.draft("RGB", (size, size))
        img = image.convert("RGB")
        if img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BILINEAR)
        return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255.0)
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
            raise ValueError(f"numpy images must be (H, W) or (H, W, C) with C in 1, 3, 4, got {arr.shape}.")
        t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)
    elif isinstance(image, Tensor):
        t = image.detach().cpu()
        if t.ndim == 2:
            t = t.unsqueeze(0)
        if t.ndim != 3 or t.shape[0] not in (1, 3, 4):
            raise ValueError(f"tensor images must be (C, H, W) with C in 1, 3, 4, got {tuple(t.shape)}.")
    else:
        raise TypeError(f"unsupported image type {type(image).__name__} (use PIL, a tensor or a numpy array).")
    if t.dtype == torch.uint8:
        x = t.float().div_(255.0)
    elif t.is_floating_point():
        x = t.float()
    else:
        raise TypeError(f"image tensors must be uint8 or floating point, got {t.dtype}.")
    x = x[:3] if x.shape[0] == 4 else x
    x = x.expand(3, -1, -1) if x.shape[0] == 1 else x
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x.unsqueeze(0), size=(size, size), mode="bilinear", align_corners=False,
                          antialias=True).squeeze(0)
    return x.contiguous()


def load_image(dataset: Any, index: int, size: int) -> Tensor:
    """Item ``index`` of ``dataset`` as precompute sees it before normalisation: (3, size, size) float32
    RGB in [0, 1] (squashed to size x size). Raises whatever loading the item raises."""
    return _to_tensor(_extract_image(dataset[index]), size)


def error_text(error: BaseException) -> str:
    """``"Type: message"`` of a sample's loading error, without memory addresses (``<... at 0x7f...>``),
    so that the store's list of skipped samples is reproducible."""
    return _ADDRESS.sub("", f"{type(error).__name__}: {error}".strip())
