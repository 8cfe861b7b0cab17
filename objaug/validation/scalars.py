"""Checks of the scalar options (numbers, flags, choices, pairs, sizes, paths), under one rule.

The rule, the same for every option of every public constructor and function:

* a value of the **wrong type** raises ``TypeError`` (``iters="3"``, ``queue_size=2.0``,
  ``check_inputs="yes"``). Bools are flags, not numbers: ``True`` where an int or a float is expected
  is a wrong type too;
* a value of the right type that is **impossible** raises ``ValueError`` (``iters=0``, ``p=1.5``,
  ``threshold=float("nan")``, ``box_sampling="random"``).

Every message names the argument, says what was wrong and how to fix it.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Mapping, Sequence
from typing import TypeVar

__all__ = [
    "BOX_SAMPLING",
    "check_antialias",
    "check_bool",
    "check_box_sampling",
    "check_choice",
    "check_fallback_mass",
    "check_float",
    "check_int",
    "check_no_effect",
    "check_optional_bool",
    "check_optional_int",
    "check_pair",
    "check_file_path",
    "check_path",
    "check_paths",
    "check_positive_float",
    "check_probability",
    "check_size",
    "check_source_options",
    "check_threshold",
    "interval_text",
]

#: the type of :func:`check_choice`'s choices: strings or ints.
Choice = TypeVar("Choice", str, int)

#: The ways of choosing one of an image's boxes (``box_sampling`` / ``mode``).
BOX_SAMPLING: tuple[str, ...] = ("uniform", "area")


def _is_int(value: object) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    """An int or a float that is not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _wrong_type(name: str, expected: str, value: object) -> TypeError:
    """The ``TypeError`` of an option ``name`` that should be ``expected`` (e.g. "an int >= 1")."""
    text = f"{name} must be {expected}, got {type(value).__name__} {value!r}."
    if isinstance(value, bool):
        text += f" A bool is a flag, not a number: pass the number itself ({name}=1, not {name}=True)."
    elif isinstance(value, str):
        text += f" Pass the value itself, not a string (e.g. {name}=3, not {name}='3')."
    return TypeError(text)


def interval_text(low: float | None, high: float | None, *, low_open: bool = False, high_open: bool = False) -> str:
    """The interval an option must lie in, in words: ``"in (0.0, 1.0]"``, ``">= 0"``, ``"> 0.0"``, ...

    Args:
        low, high: the interval's ends (``None``: unbounded on that side).
        low_open, high_open: whether that end is excluded.

    Returns:
        The words, or ``""`` when both ends are ``None``.
    """
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high}"
    return ""


def check_bool(value: object, name: str) -> bool:
    """A flag: ``True`` or ``False``.

    Args:
        value: the option's value.
        name: the argument's name (for the message).

    Returns:
        ``value``.

    Raises:
        TypeError: not a bool (``"yes"``, ``1``, ``None``).
    """
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool (True or False), got {type(value).__name__} {value!r}.")
    return value


def check_optional_bool(value: object, name: str, *, none: str) -> bool | None:
    """A flag or ``None`` (a default decided elsewhere).

    Args:
        value: the option's value.
        name: the argument's name (for the message).
        none: what ``None`` means, for the message (e.g. ``"the augmenter's check_inputs"``).

    Returns:
        ``value``.

    Raises:
        TypeError: neither a bool nor ``None`` (``"yes"``, ``1``).
    """
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"{name} must be True, False or None ({none}), got {type(value).__name__} {value!r}.")
    return value


def check_int(value: object, name: str, *, low: int, high: int | None = None, why: str = "") -> int:
    """An integer option in ``[low, high]``.

    Args:
        value: the option's value.
        name: the argument's name (for the message).
        low: the smallest value allowed.
        high: the largest value allowed (``None``: no upper bound).
        why: appended to the requirement in the message, e.g. ``" (the views' side in pixels)"``.

    Returns:
        ``value``.

    Raises:
        TypeError: not an int (a float, a string, a bool).
        ValueError: an int outside ``[low, high]``.
    """
    expected = f"an int >= {low}" if high is None else f"an int in [{low}, {high}]"
    if not _is_int(value):
        raise _wrong_type(name, expected + why, value)
    assert isinstance(value, int)
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be {expected}{why}, got {value}.")
    return value


def check_optional_int(value: object, name: str, *, low: int, none: str, why: str = "") -> int | None:
    """``None`` or an integer option ``>= low``.

    Args:
        value: the option's value.
        name: the argument's name (for the message).
        low: the smallest int allowed.
        none: what ``None`` means, for the message (e.g. ``"all negatives"``).
        why: appended to the requirement in the message.

    Returns:
        ``value``.

    Raises:
        TypeError: neither ``None`` nor an int.
        ValueError: an int below ``low``.
    """
    if value is None:
        return None
    expected = f"None ({none}) or an int >= {low}{why}"
    if not _is_int(value):
        raise _wrong_type(name, expected, value)
    assert isinstance(value, int)
    if value < low:
        raise ValueError(f"{name} must be {expected}, got {value}.")
    return value


def check_float(
    value: object,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    what: str = "a number",
    why: str = "",
) -> float:
    """A finite number (int or float, not bool) in the interval from ``low`` to ``high``.

    Args:
        value: the option's value.
        name: the argument's name (for the message).
        low, high: the interval's ends (``None``: unbounded on that side).
        low_open, high_open: whether that end is excluded.
        what: the kind of value, for the message (``"a probability"``).
        why: appended to the requirement in the message, e.g. ``" (the paper uses 0.01)"``.

    Returns:
        ``float(value)``.

    Raises:
        TypeError: not a number (a string, a bool, ``None``).
        ValueError: NaN, infinite, or outside the interval.
    """
    expected = f"{what} {interval_text(low, high, low_open=low_open, high_open=high_open) or 'finite'}{why}"
    if not _is_number(value):
        raise _wrong_type(name, expected, value)
    x = float(value)  # type: ignore[arg-type]
    inside = math.isfinite(x)
    if inside and low is not None:
        inside = x > low if low_open else x >= low
    if inside and high is not None:
        inside = x < high if high_open else x <= high
    if not inside:
        raise ValueError(f"{name} must be {expected}, got {value!r}.")
    return x


def check_probability(p: object, name: str = "p") -> float:
    """A probability in [0, 1] (see :func:`check_float`)."""
    return check_float(p, name, low=0.0, high=1.0, what="a probability")


def check_positive_float(value: object, name: str) -> float:
    """A finite number > 0 (see :func:`check_float`)."""
    return check_float(value, name, low=0.0, low_open=True)


def check_threshold(threshold: object, name: str = "threshold") -> float:
    """A mask cut-off in (0, 1] (masks are in [0, 1]; see :func:`check_float`)."""
    return check_float(threshold, name, low=0.0, high=1.0, low_open=True, why=" (masks are in [0, 1])")


def check_fallback_mass(value: object) -> float | None:
    """Background mixup's ``fallback_mass``: ``None`` (the paper's rule) or a mass share in (0, 1].

    Raises:
        TypeError: neither ``None`` nor a number.
        ValueError: a number outside (0, 1].
    """
    if value is None:
        return None
    return check_float(value, "fallback_mass", low=0.0, high=1.0, low_open=True, why=" (e.g. 0.9)",
                       what="None (the paper's rule) or the share of the mask's mass the fallback rectangle "
                            "keeps, a number")


def check_choice(value: object, name: str, choices: Sequence[Choice]) -> Choice:
    """One of a few strings, or one of a few ints.

    Args:
        value: the option's value.
        name: the argument's name (for the message).
        choices: the allowed values, all strings or all ints.

    Returns:
        ``value``.

    Raises:
        TypeError: not of the choices' type (a bool is not an int).
        ValueError: of that type but not one of ``choices``.
    """
    expected = "one of " + ", ".join(repr(c) for c in choices)
    if all(isinstance(c, str) for c in choices):
        right_type = isinstance(value, str)
    else:
        right_type = _is_int(value)
    if not right_type:
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r}.")
    if value not in choices:
        close = difflib.get_close_matches(value, [str(c) for c in choices], n=1) if isinstance(value, str) else []
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{name} must be {expected}, got {value!r}.{hint}")
    return value  # type: ignore[return-value]


def check_source_options(source: str, *, hard_negatives: int | None, temperature: float, bank: int = 0,
                         expand_res: bool = False, prefix: str = "", source_name: str = "source") -> None:
    """Refuse CAM options that have no effect with the chosen map source (one rule for every door).

    The ``"attention"`` source reads a Vision Transformer's class-token attention: no negatives, no
    contrastive score, no strided last stage. So ``hard_negatives``, a ``bank``, a ``temperature`` other than 1
    and ``expand_res`` would be accepted and ignored; each is refused, naming both options.

    Args:
        source: the map source (``"gradcam"`` or ``"attention"``), already checked.
        hard_negatives, temperature, bank, expand_res: the other options, already checked.
        prefix: how the options are named to the user (``"CamConfig."``; ``""`` for keyword arguments).
        source_name: the map source's own name (``"source"`` for ContraCAM, ``"map_source"`` for CamConfig).

    Raises:
        ValueError: an option without effect for ``source``.
    """
    if source != "attention":
        return
    ignored = [name for name, value, default in (("hard_negatives", hard_negatives, None), ("bank", bank, 0),
                                                 ("temperature", temperature, 1.0)) if value != default]
    if ignored:
        names = ", ".join(ignored)
        raise ValueError(f"{prefix}{source_name}='attention' uses no negatives and no contrastive score, so {names} "
                         f"would have no effect. Drop {names}, or use {source_name}='gradcam'.")
    if expand_res:
        raise ValueError(f"{prefix}expand_res=True needs a CNN's strided last stage, but {source_name}='attention' is "
                         "for Vision Transformers (their map is the patch grid). Drop expand_res, or use "
                         f"{source_name}='gradcam' on a CNN.")


def check_no_effect(options: dict[str, object], *, why: str, fix: str) -> None:
    """Refuse options that were set but would have no effect (accepted then ignored is a bug too).

    Args:
        options: option name -> value; an option counts as set when its value is not ``None``.
        why: why they would have no effect, e.g. ``"there is no CAM (neither model= nor cam=)"``.
        fix: how to repair the call, e.g. ``"pass model=, or drop them"``.

    Raises:
        ValueError: some option is set, naming every one that is.
    """
    set_here = [name for name, value in options.items() if value is not None]
    if set_here:
        names = ", ".join(set_here)
        raise ValueError(f"{names} would have no effect: {why}. {fix[:1].upper()}{fix[1:]}.")


def check_antialias(value: object, name: str = "antialias") -> bool | str:
    """Anti-aliasing of a downscale: ``True``, ``False`` or ``"auto"`` (only when the crop shrinks).

    Raises:
        TypeError: neither a bool nor a string.
        ValueError: a string other than ``"auto"``.
    """
    if isinstance(value, str) and value != "auto":
        close = " Did you mean 'auto'?" if difflib.get_close_matches(value.lower(), ["auto"], n=1) else ""
        raise ValueError(f"{name} must be True, False or 'auto', got {value!r}.{close}")
    if not isinstance(value, bool | str):
        raise TypeError(f"{name} must be True, False or 'auto', got {type(value).__name__} {value!r}.")
    return value


def check_box_sampling(value: object, name: str = "box_sampling") -> str:
    """``"uniform"`` or ``"area"`` (see :data:`BOX_SAMPLING` and :func:`check_choice`)."""
    return check_choice(value, name, BOX_SAMPLING)


def check_pair(value: object, name: str, low: float, high: float, *, fix: str) -> tuple[float, float]:
    """A ``(min, max)`` pair of numbers with ``low < min <= max <= high``.

    Args:
        value: the option's value.
        name: the argument's name (for the message).
        low, high: the bounds.
        fix: how to repair a pair of impossible values (ends the ``ValueError``'s message).

    Returns:
        ``(min, max)`` as floats.

    Raises:
        TypeError: not a tuple or list of two numbers.
        ValueError: the numbers are out of order, out of bounds or NaN.
    """
    if not isinstance(value, tuple | list) or len(value) != 2 or not all(_is_number(v) for v in value):
        raise TypeError(f"{name} must be a (min, max) pair of floats, got {value!r}.")
    a, b = float(value[0]), float(value[1])
    if math.isnan(a) or math.isnan(b) or not low < a <= b <= high:
        raise ValueError(f"{name} must satisfy {low} < min <= max <= {high}, got {value!r}. {fix}")
    return a, b


def check_size(size: object, name: str = "size") -> tuple[int, int]:
    """An output size: an int ``S`` (for ``S x S``) or a ``(height, width)`` pair of ints, all positive.

    Raises:
        TypeError: neither an int nor a pair of ints.
        ValueError: a side <= 0.
    """
    pair = (size, size) if _is_int(size) else size
    if not isinstance(pair, tuple | list) or len(pair) != 2 or not all(_is_int(s) for s in pair):
        raise TypeError(f"{name} must be an int or an (height, width) pair of ints, got {size!r}.")
    height, width = int(pair[0]), int(pair[1])
    if height <= 0 or width <= 0:
        raise ValueError(f"{name} must be positive, got {(height, width)}.")
    return height, width


def check_optional_size(size: object, name: str, *, none: str) -> tuple[int, int] | None:
    """:func:`check_size`, or ``None`` (which means ``none``, said in the type error)."""
    if size is None:
        return None
    try:
        return check_size(size, name)
    except TypeError:
        raise TypeError(f"{name} must be None ({none}), an int or an (height, width) pair of ints, "
                        f"got {size!r}.") from None


def check_normalize(normalize: object, name: str = "normalize") -> dict[str, tuple[float, float, float]] | None:
    """A normalisation for a model's input: ``None`` or ``{"mean": 3 numbers, "std": 3 numbers > 0}``.

    Returns:
        ``None``, or a copy ``{"mean": (3 floats), "std": (3 floats)}``.

    Raises:
        TypeError: neither ``None`` nor a mapping, or values that are not numbers.
        ValueError: other keys, not 3 values each, or a std <= 0.
    """
    if normalize is None:
        return None
    if not isinstance(normalize, Mapping):
        raise TypeError(f"{name} must be None or a dict with keys 'mean' and 'std', got "
                        f"{type(normalize).__name__} {normalize!r}.")
    if set(normalize) != {"mean", "std"}:
        raise ValueError(f"{name} must be None or a dict with keys 'mean' and 'std', got {normalize!r}.")
    values = {key: normalize[key] for key in ("mean", "std")}
    if not all(isinstance(v, Sequence) and all(_is_number(x) for x in v) for v in values.values()):
        raise TypeError(f"{name}['mean'] and {name}['std'] must be sequences of numbers, got {normalize!r}.")
    mean, std = values["mean"], values["std"]
    if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
        raise ValueError(f"{name} needs 3 means and 3 positive stds (one per RGB channel), got {normalize!r}.")
    return {"mean": (float(mean[0]), float(mean[1]), float(mean[2])),
            "std": (float(std[0]), float(std[1]), float(std[2]))}


def check_paths(paths: object, name: str) -> list[str | os.PathLike[str]]:
    """A sequence of filesystem paths (``str`` or ``os.PathLike``), not a single path.

    Raises:
        TypeError: not a sequence, a single path, or an item that is not a path (an index, ``None``).
    """
    if isinstance(paths, str | os.PathLike) or not isinstance(paths, Sequence):
        what = "a single path" if isinstance(paths, str | os.PathLike) else type(paths).__name__
        raise TypeError(f"{name} must be a sequence of file paths (str or pathlib.Path), got {what}: pass a list, "
                        f"e.g. {name}=[path for path, _ in folder.samples].")
    for i, item in enumerate(paths):
        if not isinstance(item, str | os.PathLike):
            raise TypeError(f"{name}[{i}] must be a file path (str or pathlib.Path), got {type(item).__name__} "
                            f"{item!r}: {name} lists the dataset's image files in its index order, e.g. "
                            f"{name}=[path for path, _ in folder.samples], not indexes.")
    return list(paths)


def check_file_path(path: object, name: str = "path") -> str | os.PathLike[str]:
    """A path to write a file at: a ``str`` or ``os.PathLike`` that is not a directory nor under a file.

    Missing parent directories are fine (the writers create them).

    Raises:
        TypeError: not a ``str`` or ``os.PathLike``.
        ValueError: an existing directory, or a path under an existing file.
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"{name} must be a file path (str or pathlib.Path), got {type(path).__name__} {path!r}.")
    if os.path.isdir(path):
        raise ValueError(f"{name}={os.fspath(path)!r} is a directory; pass a file path in it, e.g. "
                         f"{os.path.join(os.fspath(path), 'views.png')!r}.")
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent) if os.path.dirname(parent) != parent else ""
    if parent and not os.path.isdir(parent):
        raise ValueError(f"{name}={os.fspath(path)!r} lies under {parent!r}, which is a file, not a directory; "
                         "pass a path in a directory.")
    return path


def check_path(path: object, name: str = "path") -> str | os.PathLike[str]:
    """A filesystem path: a ``str`` or ``os.PathLike``.

    Raises:
        TypeError: anything else.
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"{name} must be a directory path (str or pathlib.Path), got {type(path).__name__} "
                        f"{path!r}.")
    return path
