"""Download and extract the Debian packages that hold bgbench's real images (no root install).

``apt-get download NAME`` fetches each ``.deb`` into ``<cache>/debs`` and ``dpkg -x`` unpacks it into
``<cache>/root`` (so files land in ``<cache>/root/usr/share/...``). Idempotent: a package whose marker file
``<cache>/root/.bgbench-<name>`` exists is skipped. The images are GPL-2 and are never committed: the cache
(default ``benchmarks/.cache/bgbench/``) is ignored by git.

Example::

    >>> root = fetch()  # doctest: +SKIP
    >>> (root / "usr/share/tuxpaint/stamps").is_dir()  # doctest: +SKIP
    True
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["DEFAULT_CACHE", "PACKAGES", "FetchError", "check_root", "fetch"]

#: Debian packages with the cut-outs (stamps) and the background photos.
PACKAGES: tuple[str, ...] = ("tuxpaint-stamps-default", "tuxpaint-data", "mate-backgrounds")
#: Default cache folder (ignored by git).
DEFAULT_CACHE: Path = Path(__file__).resolve().parents[1] / ".cache" / "bgbench"
#: Folders (relative to the extracted root) that a usable root must have.
REQUIRED_DIRS: tuple[str, ...] = (
    "usr/share/tuxpaint/stamps",
    "usr/share/tuxpaint/templates",
    "usr/share/backgrounds/mate/nature",
)

_HOW_TO_FIX = (
    "bgbench's real images come from Debian packages ({pkgs}). Fix: run on Debian/Ubuntu with apt "
    "(`apt-get download` needs no root, but may need `apt-get update` first), or extract the packages "
    "elsewhere (`apt-get download {pkgs} && for f in *.deb; do dpkg -x $f ROOT; done`) and pass "
    "`--root ROOT` (build(root=ROOT)); or build the synthetic stand-in with `--source generated`."
)


class FetchError(RuntimeError):
    """The Debian packages could not be fetched or extracted (the message says why and how to fix it)."""


def _fail(what: str) -> FetchError:
    return FetchError(f"{what}\n{_HOW_TO_FIX.format(pkgs=' '.join(PACKAGES))}")


def check_root(root: str | os.PathLike[str]) -> Path:
    """Check that ``root`` is an extracted-packages folder (has the stamps, templates and wallpapers).

    Args:
        root: folder with ``usr/share/...`` inside.

    Returns:
        ``root`` as a resolved :class:`~pathlib.Path`.

    Raises:
        FetchError: a required folder is missing.
    """
    path = Path(root).expanduser().resolve()
    missing = [d for d in REQUIRED_DIRS if not (path / d).is_dir()]
    if missing:
        raise _fail(f"{path} is not an extracted root of {', '.join(PACKAGES)}: missing {', '.join(missing)}.")
    return path


def _run(cmd: list[str], cwd: Path) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as exc:  # vanished binary, permission
        raise _fail(f"`{' '.join(cmd)}` could not run: {exc}") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-800:]
        raise _fail(f"`{' '.join(cmd)}` failed (exit {proc.returncode}) in {cwd}:\n{tail}")


def fetch(cache_dir: str | os.PathLike[str] | None = None, *, packages: tuple[str, ...] = PACKAGES) -> Path:
    """Download and extract ``packages`` (default :data:`PACKAGES`) into ``<cache_dir>/root`` (skipping
    extracted ones).

    Args:
        cache_dir: cache folder; default :data:`DEFAULT_CACHE` (``benchmarks/.cache/bgbench``).
        packages: the Debian packages (data v2 adds two wallpaper packages: ``v2.PACKAGES_V2``).

    Returns:
        The extracted root ``<cache_dir>/root`` (checked with :func:`check_root`).

    Raises:
        FetchError: ``apt-get`` or ``dpkg`` is missing, or a download or extraction failed.
    """
    cache = Path(cache_dir if cache_dir is not None else DEFAULT_CACHE).expanduser().resolve()
    debs, root = cache / "debs", cache / "root"
    todo = [p for p in packages if not (root / f".bgbench-{p}").exists()]
    if not todo:
        return check_root(root)
    for tool in ("apt-get", "dpkg"):
        if shutil.which(tool) is None:
            raise _fail(f"`{tool}` is not on PATH, so {', '.join(todo)} cannot be downloaded/extracted.")
    debs.mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    for pkg in todo:
        found = sorted(debs.glob(f"{pkg}_*.deb"))
        if not found:
            _run(["apt-get", "download", pkg], cwd=debs)
            found = sorted(debs.glob(f"{pkg}_*.deb"))
            if not found:
                raise _fail(f"`apt-get download {pkg}` left no {pkg}_*.deb in {debs}.")
        _run(["dpkg", "-x", str(found[-1]), str(root)], cwd=debs)
        (root / f".bgbench-{pkg}").write_text(found[-1].name + "\n")
    return check_root(root)
