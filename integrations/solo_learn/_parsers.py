"""Value parsers of the solo-learn ``objaug:`` block (plain Python values, no tensors): each takes
``(value, key)`` and returns the clean value or raises :class:`ObjaugConfigError` naming the key, what was
wrong and what is allowed."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any


class ObjaugConfigError(ValueError):
    """A bad ``objaug:`` block (or a solo-learn config that cannot work with it)."""


_Parser = Callable[[Any, str], Any]


def _type_name(value: Any) -> str:
    return type(value).__name__


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ObjaugConfigError(f"{key} must be true or false, got {value!r} ({_type_name(value)}).")
    return value


def _int(low: int | None = None, high: int | None = None) -> _Parser:
    def parse(value: Any, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ObjaugConfigError(f"{key} must be an integer{_range(low, high)}, got {value!r} "
                                    f"({_type_name(value)}).")
        if (low is not None and value < low) or (high is not None and value > high):
            raise ObjaugConfigError(f"{key} must be an integer{_range(low, high)}, got {value}.")
        return value
    return parse


def _optional(parser: _Parser) -> _Parser:
    def parse(value: Any, key: str) -> Any:
        return None if value is None else parser(value, key)
    return parse


def _range(low: float | None, high: float | None, *, open_low: bool = False, open_high: bool = False) -> str:
    """`` in [low, high]`` and the like (with its leading space), or ``""`` without bounds."""
    # objaug's wording of an interval; imported here, not at module level, because the entry-point
    # factory imports this module for every Trainer and must stay cheap (the package imports torch).
    from objaug.validation.scalars import interval_text

    text = interval_text(low, high, low_open=open_low, high_open=open_high)
    return f" {text}" if text else ""


def _float(low: float | None = None, high: float | None = None, *, open_low: bool = False,
           open_high: bool = False) -> _Parser:
    def parse(value: Any, key: str) -> float:
        where = _range(low, high, open_low=open_low, open_high=open_high)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ObjaugConfigError(f"{key} must be a number{where}, got {value!r} ({_type_name(value)}).")
        v = float(value)
        bad = math.isnan(v) or math.isinf(v)
        if low is not None:
            bad |= v <= low if open_low else v < low
        if high is not None:
            bad |= v >= high if open_high else v > high
        if bad:
            raise ObjaugConfigError(f"{key} must be a number{where}, got {value}.")
        return v
    return parse


def _otsu_or(number: _Parser) -> _Parser:
    def parse(value: Any, key: str) -> float | str:
        if isinstance(value, str) and value != "otsu":
            raise ObjaugConfigError(f"{key} must be 'otsu' or a number in (0.0, 1.0], got {value!r}.")
        return "otsu" if value == "otsu" else number(value, key)
    return parse


def _choice(*allowed: str) -> _Parser:
    def parse(value: Any, key: str) -> str:
        from objaug.validation import check_choice  # here: the entry point's discovery imports this module cheaply

        try:  # objaug's one choice check: lists the choices and suggests the nearest one
            return check_choice(value, key, allowed)
        except (TypeError, ValueError) as err:
            raise ObjaugConfigError(str(err)) from None
    return parse


def _str(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise ObjaugConfigError(f"{key} must be a non-empty string, got {value!r} ({_type_name(value)}).")
    return value


def _target(value: Any, key: str) -> str:
    value = _str(value, key)
    module, _, attr = value.partition(":")
    if not module or not attr:
        raise ObjaugConfigError(f"{key} must name a class or function as 'package.module:Name', got {value!r}.")
    return value


def _pair(low: float, high: float, what: str) -> _Parser:
    def parse(value: Any, key: str) -> tuple[float, float]:
        if (isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) != 2
                or any(isinstance(v, bool) or not isinstance(v, int | float) for v in value)):
            raise ObjaugConfigError(f"{key} must be a [min, max] pair of numbers ({what}), got {value!r}.")
        a, b = float(value[0]), float(value[1])
        if not (low < a <= b <= high) or math.isnan(a) or math.isnan(b):
            hi = "inf" if math.isinf(high) else high
            raise ObjaugConfigError(f"{key} must satisfy {low} < min <= max <= {hi} ({what}), got {list(value)}.")
        return (a, b)
    return parse


def _views(*, empty_ok: bool = False) -> _Parser:
    def parse(value: Any, key: str) -> tuple[int, ...]:
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if (isinstance(value, str | bytes) or not isinstance(value, Sequence)
                or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in value)):
            raise ObjaugConfigError(f"{key} must be a list of view indexes (integers >= 0 into solo-learn's "
                                    f"list of crops X), got {value!r}.")
        if len(set(value)) != len(value):
            raise ObjaugConfigError(f"{key} lists a view twice: {list(value)}.")
        if not value and not empty_ok:
            raise ObjaugConfigError(f"{key} must list at least one view, e.g. [0, 1].")
        return tuple(int(v) for v in value)
    return parse
