"""Method parameters from text (``-p METHOD.NAME=VALUE``, suite files), converted by their declared type.

Conversion follows the field's type hint, read with :func:`typing.get_origin` / :func:`typing.get_args`:
``bool`` (true/false, yes/no, on/off, 1/0), ``int``, ``float``, ``str``, ``Path``, ``Literal[...]`` (one of
the listed values), ``list[X]`` / ``tuple[X, ...]`` (comma-separated items, each converted as ``X``) and
``X | None`` (``none`` or ``null`` gives None). Values that are not strings (from TOML) are checked
against the type and converted where that loses nothing (an int for a float field).

What values are *valid* is declared per field with :func:`param` (a :class:`Domain` of numbers, or a prompt
template) and checked by :meth:`oodbench.scorer.Scorer.check_params`.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

from oodbench.errors import OodbenchError

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_NONE = ("none", "null")


def describe(hint: Any) -> str:
    """A readable name of a type hint: ``int``, ``float or none``, ``one of 'a', 'b'``, ``list of int``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join("none" if a is type(None) else describe(a) for a in args)
    if origin in (list, tuple):
        return f"list of {describe(args[0]) if args else 'str'}"
    return getattr(hint, "__name__", str(hint))


def convert(value: Any, hint: Any, where: str) -> Any:
    """``value`` converted to ``hint``; an :class:`OodbenchError` naming ``where`` when it cannot be."""
    try:
        return _convert(value, hint)
    except (ValueError, TypeError) as exc:
        detail = f" ({exc})" if str(exc) and str(exc) != str(value) else ""
        raise OodbenchError(f"Parameter {where}: cannot read {value!r} as {describe(hint)}{detail}. "
                            "Give a value of that type, e.g. -p METHOD.NAME=VALUE.") from None


def _convert(value: Any, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.strip().lower() in _NONE):
            if type(None) in args:
                return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(value, arg)
            except (ValueError, TypeError) as exc:
                errors.append(str(exc))
        raise ValueError("; ".join(e for e in errors if e))
    if origin is Literal:
        for choice in args:
            if value == choice or (isinstance(value, str) and str(choice) == value.strip()):
                return choice
        raise ValueError(f"not one of {', '.join(repr(a) for a in args)}")
    if origin in (list, tuple):
        item = args[0] if args else str
        items = ([v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str)
                 else list(value) if isinstance(value, (list, tuple)) else None)
        if items is None:
            raise TypeError(f"expected a list, got {type(value).__name__}")
        converted = [_convert(v, item) for v in items]
        return tuple(converted) if origin is tuple else converted
    if hint is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError("expected true or false")
    if hint is int:
        if isinstance(value, bool):
            raise TypeError("expected an integer, got a boolean")
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError("expected an integer")
            return int(value)
        return int(str(value).strip()) if isinstance(value, str) else int(value)
    if hint is float:
        if isinstance(value, bool):
            raise TypeError("expected a number, got a boolean")
        number = float(value.strip()) if isinstance(value, str) else float(value)
        if math.isnan(number):
            raise ValueError("NaN is not a valid value")
        return number
    if hint is Path:
        return Path(str(value)).expanduser()
    if hint is str:
        if not isinstance(value, str):
            raise TypeError(f"expected text, got {type(value).__name__}")
        return value
    return value


# --------------------------------------------------------------------------------------------- domains
@dataclass(frozen=True)
class Domain:
    """The values a numeric parameter may take: optional bounds, each open or closed; always finite.

    ``Domain()`` accepts every finite number. ``None`` passes when the field's type allows it.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def accepts(self, value: float) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))

    def describe(self) -> str:
        """``> 0``, ``>= 1``, ``in [0, 1]``, ``in (0, 1]``, or ``finite``."""
        if self.low is not None and self.high is not None:
            return (f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                    f"{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return "finite"


def param(default: Any, *, gt: float | None = None, ge: float | None = None, lt: float | None = None,
          le: float | None = None, template: bool = False) -> Any:
    """A method parameter with its domain: ``temperature: float = param(1.0, gt=0)``.

    ``gt``/``ge`` and ``lt``/``le`` are open / closed bounds; ``template=True`` marks a prompt template
    (exactly one ``{}``, no other field). :meth:`oodbench.scorer.Scorer.check_params` enforces both.
    """
    meta: dict[str, Any] = {}
    if template:
        meta["template"] = True
    else:
        meta["domain"] = Domain(low=gt if gt is not None else ge, high=lt if lt is not None else le,
                                low_open=gt is not None, high_open=lt is not None)
    return field(default=default, metadata=meta)
