"""One small generic registry, used for methods, data sets, benchmarks, lexicons, weights and trainers.

Registries fill lazily, through one mechanism: a registry is built with *sources*, each run once, the
first time the registry is looked at (``get``, ``names``, ``in``, ...). A source is a callable taking the
registry, or a ``"module:function"`` string imported only then, so that defining a registry imports
nothing and costs nothing. :func:`entry_point_source` makes a source from an entry-point group, which is
how built-in and third-party methods and trainers arrive.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar, Union, overload

from oodbench.errors import UnknownNameError, unknown_name_message

T = TypeVar("T")

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[a-z0-9]+(?:[-.][a-z0-9]+)*$")

Source = Union[Callable[["Registry[Any]"], None], str]


def resolve_object(ref: str) -> Any:
    """The object named by ``"package.module:attribute"`` (imported now)."""
    module, _, attr = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """Maps lower-case, dash-separated names to objects; fills itself from its sources on first use.

    >>> r: Registry[int] = Registry("widget")
    >>> r.register("a-b", 1)
    1
    >>> r.get("a-b")
    1
    """

    def __init__(self, kind: str, hint: str = "", *, sources: Sequence[Source] = ()) -> None:
        self.kind = kind
        self.hint = hint
        self._items: dict[str, T] = {}
        self._pending: list[Source] = list(sources)

    def add_source(self, source: Source) -> None:
        """Run ``source`` (once) the next time the registry is looked at."""
        self._pending.append(source)

    def _fill(self) -> None:
        while self._pending:
            source = self._pending.pop(0)  # popped first: a source may look at this registry itself
            try:
                fn = resolve_object(source) if isinstance(source, str) else source
                fn(self)
            except BaseException:
                self._pending.insert(0, source)  # a failed source is tried again next time
                raise

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T) -> T: ...

    def register(self, name: str, obj: T | None = None):  # type: ignore[no-untyped-def]
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted.

        Registering does not fill the registry from its sources; the same object under the same name
        twice is a no-op, another object under a taken name an error.
        """
        if not NAME_RE.match(name):
            raise ValueError(f"{self.kind} name {name!r} must be lower-case words joined by dashes")

        def add(o: T) -> T:
            if name in self._items and self._items[name] is not o:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = o
            return o

        return add if obj is None else add(obj)

    def get(self, name: str) -> T:
        self._fill()
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(
                unknown_name_message(self.kind, name, self._items, self.hint)
            ) from None

    def names(self) -> list[str]:
        self._fill()
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        self._fill()
        return sorted(self._items.items())

    def __contains__(self, name: object) -> bool:
        self._fill()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._fill()
        return len(self._items)


def entry_point_source(group: str, adapt: Callable[[str, Any], T] | None = None) -> Callable[[Registry[T]], None]:
    """A source that registers every entry point of ``group``: ``name -> adapt(name, loaded object)``.

    A plug-in that fails to load is logged and skipped, so that it cannot take the others down. When the
    same name is offered twice (two installs of one package), the first wins.
    """

    def fill(registry: Registry[T]) -> None:
        from importlib.metadata import entry_points

        for ep in entry_points(group=group):
            if ep.name in registry._items:
                continue
            try:
                obj = ep.load()
                registry.register(ep.name, adapt(ep.name, obj) if adapt else obj)
            except Exception:  # a broken plug-in must not take the others down with it
                log.exception("could not load %s plug-in %r (%s)", group, ep.name, ep.value)

    return fill
