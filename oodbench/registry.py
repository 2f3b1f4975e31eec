"""One small generic registry, used for methods, data sets, benchmarks and trainers."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, overload

from oodbench.errors import UnknownNameError, unknown_name_message

T = TypeVar("T")

NAME_RE = re.compile(r"^[a-z0-9]+(?:[-.][a-z0-9]+)*$")


class Registry(Generic[T]):
    """Maps lower-case, dash-separated names to objects.

    >>> r: Registry[int] = Registry("widget")
    >>> r.register("a-b", 1)
    1
    >>> r.get("a-b")
    1
    """

    def __init__(self, kind: str, hint: str = "") -> None:
        self.kind = kind
        self.hint = hint
        self._items: dict[str, T] = {}

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T) -> T: ...

    def register(self, name: str, obj: T | None = None):  # type: ignore[no-untyped-def]
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted."""
        if not NAME_RE.match(name):
            raise ValueError(f"{self.kind} name {name!r} must be lower-case words joined by dashes")

        def add(o: T) -> T:
            if name in self._items and self._items[name] is not o:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = o
            return o

        return add if obj is None else add(obj)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(
                unknown_name_message(self.kind, name, self._items, self.hint)
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
