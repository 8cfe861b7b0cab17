"""Errors of objaug's library code, raised while the solo-learn callback sets up, named by the YAML key.

objaug's library checks name their Python argument (``source='attention' needs a Vision Transformer ...``,
``iters must be an int >= 1``); a solo-learn user wrote ``objaug.online.map_source`` in a YAML file. Inside
:func:`yaml_keys`, a ``ValueError`` / ``TypeError`` raised by objaug's library is re-raised as an
:class:`~objaug.integrations.solo_learn.config.ObjaugConfigError` whose message names the key instead
(``objaug.online.map_source=attention needs a Vision Transformer ...``, values in the form of a Hydra
override), chained to the original. :func:`library_message` gives the re-worded message alone (for callers
that raise their own ``ObjaugConfigError``, such as the set-up dry run of the CAM).

Which key an argument name stands for depends on the library part that raised (``source`` is
``objaug.online.map_source`` for ContraCAM, ``objaug.mixup.source`` for background mixup): the innermost
frame of the traceback in a module of :data:`MODULE_KEYS` decides (generic helpers such as
``objaug.validation`` are skipped, so a check raised on behalf of ContraCAM is read as ContraCAM's). An error
that names none of that part's arguments, and ``ObjaugConfigError`` itself, pass through unchanged.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from types import TracebackType

from .config import ObjaugConfigError

__all__ = ["CAM_KEYS", "MODULE_KEYS", "OWNER_SECTIONS", "library_message", "translate", "yaml_keys"]

#: ContraCAM and the model split (the online CAM): library argument -> YAML key.
CAM_KEYS: Mapping[str, str] = {
    "source": "objaug.online.map_source",
    "iters": "objaug.online.iters",
    "temperature": "objaug.online.temperature",
    "expand_res": "objaug.online.expand_res",
}
#: boxes from the maps.
BOX_KEYS: Mapping[str, str] = {
    "threshold": "objaug.boxes.threshold",
    "min_area": "objaug.boxes.min_area",
    "margin": "objaug.boxes.margin",
    "max_boxes": "objaug.boxes.max_boxes",
    "map_size": "objaug.boxes.map_size",
}
#: the object-aware crop.
CROP_KEYS: Mapping[str, str] = {
    "box_p": "objaug.crop.box_p",
    "scale": "objaug.crop.scale",
    "ratio": "objaug.crop.ratio",
    "flip_prob": "objaug.crop.flip_prob",
    "mode": "objaug.crop.box_sampling",
    "box_sampling": "objaug.crop.box_sampling",
    "center_suppressed": "objaug.crop.center_suppressed",
    "alpha": "objaug.crop.alpha",
    "antialias": "objaug.crop.antialias",
    "attempts": "objaug.crop.attempts",
    "min_box_pixels": "objaug.crop.min_box_pixels",
}
#: background mixup.
MIXUP_KEYS: Mapping[str, str] = {
    "p": "objaug.mixup.p",
    "threshold": "objaug.mixup.threshold",
    "fallback_mass": "objaug.mixup.fallback_mass",
    "queue_size": "objaug.mixup.queue_size",
    "source": "objaug.mixup.source",
}
#: the object store.
STORE_KEYS: Mapping[str, str] = {"path": "objaug.store.path"}
#: objaug's shared configs (CamConfig, ScheduleConfig, BoxConfig), whose fields sit flat under ``online`` / ``boxes``.
CONFIG_KEYS: Mapping[str, str] = {
    **BOX_KEYS,
    **CAM_KEYS,
    **{name: f"objaug.online.{name}" for name in ("map_source", "mask_iters", "hard_negatives", "bank",
                                                   "every_n_steps", "start_step")},
}
#: ``Owner.name`` in objaug's config errors (``CamConfig.iters must be ...``) -> the block's section of ``name``.
OWNER_SECTIONS: Mapping[str, str] = {"CamConfig": "objaug.online", "ScheduleConfig": "objaug.online",
                                     "BoxConfig": "objaug.boxes"}

#: module (or package) of objaug's library -> the keys its argument names stand for.
MODULE_KEYS: Mapping[str, Mapping[str, str]] = {
    "objaug.config": CONFIG_KEYS,
    "objaug.provider": CAM_KEYS,
    "objaug.contracam": CAM_KEYS,
    "objaug.split": CAM_KEYS,
    "objaug.split_vit": CAM_KEYS,
    "objaug.functional.cam": CAM_KEYS,
    "objaug.boxes": BOX_KEYS,
    "objaug.functional.components": BOX_KEYS,
    "objaug.functional.crop": CROP_KEYS,
    "objaug.augment.crop": CROP_KEYS,
    "objaug.augment.mixup": MIXUP_KEYS,
    "objaug.functional.mixup": MIXUP_KEYS,
    "objaug.functional._mixup_fast": MIXUP_KEYS,
    "objaug.functional.rectangles": MIXUP_KEYS,
    "objaug.store": STORE_KEYS,
}

_PY_TO_YAML = {"True": "true", "False": "false", "None": "null"}
_OWNER = re.compile(rf"\b({'|'.join(OWNER_SECTIONS)})\.(\w+)")
_KEY_VALUE = re.compile(r"(\bobjaug\.[\w.]+=)(?:'([\w.\-]+)'|\"([\w.\-]+)\"|(True|False|None)\b)")


def _keys_for(tb: TracebackType | None) -> Mapping[str, str] | None:
    """The keys of the innermost traceback frame in a module of :data:`MODULE_KEYS` (None: no such frame)."""
    found = None
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        for name, keys in MODULE_KEYS.items():
            if module == name or module.startswith(name + "."):
                found = keys
        tb = tb.tb_next
    return found


def translate(message: str, keys: Mapping[str, str]) -> str | None:
    """``message`` with objaug's Python names replaced by the block's keys; None if it names none.

    Replaced: ``CamConfig.name`` / ``ScheduleConfig.name`` / ``BoxConfig.name`` -> ``objaug.online.name`` /
    ``objaug.boxes.name`` (:data:`OWNER_SECTIONS`); for the argument names of ``keys``, ``Class(name=value)`` ->
    ``key=value``, ``name=value`` -> ``key=value``, ``name must``/``is``/``needs`` -> ``key must``/... Values after
    a key are then written as in a Hydra override: ``'attention'`` -> ``attention``, ``True``/``False``/``None``
    -> ``true``/``false``/``null``.

    Args:
        message: the library's error message.
        keys: argument name -> YAML key (may be empty: only the ``Owner.name`` rule applies).
    """
    out, n_owner = _OWNER.subn(lambda m: f"{OWNER_SECTIONS[m.group(1)]}.{m.group(2)}", message)
    n_names = 0
    if keys:
        names = "|".join(sorted((re.escape(n) for n in keys), key=len, reverse=True))
        pattern = re.compile(rf"(?:\b[A-Z]\w*\((?P<a>{names})=(?P<av>[^(),]*)\))"
                             rf"|(?<![\w.])(?P<b>{names})(?=\s*=[^=]|\s+(?:must|is|needs)\b)")

        def replace(m: re.Match[str]) -> str:
            if m.group("a"):
                return f"{keys[m.group('a')]}={m.group('av')}"
            return keys[m.group("b")]

        out, n_names = pattern.subn(replace, out)
    if not n_owner + n_names:
        return None
    return _KEY_VALUE.sub(lambda m: m.group(1) + (m.group(2) or m.group(3) or _PY_TO_YAML[m.group(4)]), out)


def library_message(err: BaseException) -> str:
    """``str(err)`` re-worded with the block's keys (see the module docs), or unchanged if it names none."""
    keys = _keys_for(err.__traceback__) or {}
    return translate(str(err), keys) or str(err)


@contextlib.contextmanager
def yaml_keys() -> Iterator[None]:
    """Re-raise objaug library errors that name a Python argument as ``ObjaugConfigError`` naming the YAML key.

    Raises:
        ObjaugConfigError: a ``ValueError``/``TypeError`` from objaug's library whose message names one of the
            raising part's arguments (see the module docs), with the key in its place; the original is chained.
    """
    try:
        yield
    except ObjaugConfigError:
        raise
    except (ValueError, TypeError) as err:
        keys = _keys_for(err.__traceback__)
        message = translate(str(err), keys) if keys is not None else None
        if message is None:
            raise
        raise ObjaugConfigError(f"{message} (from {type(err).__name__} in objaug's library; fix the objaug block "
                                "of the config)") from err
