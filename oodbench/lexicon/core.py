"""The :class:`Lexicon` type, the :data:`LEXICONS` registry and where lexicon loaders may cache."""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oodbench.registry import Registry

log = logging.getLogger(__name__)

POS_VALUES = ("noun", "adj")


@dataclass(frozen=True)
class Lexicon:
    """Candidate words with their part of speech (``"noun"`` or ``"adj"``) and where they came from.

    Each word appears once, tagged by the first word file that holds it. ``noun_words`` (when the source
    knows it) is every word that some noun file holds, also those tagged ``adj`` because an adjective file
    came first: rules that treat "a word that is also a noun" apart (OpenOOD-VLM's bank) need it.
    """

    words: list[str]
    pos: list[str]
    source: str
    noun_words: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if len(self.words) != len(self.pos):
            raise ValueError(f"lexicon has {len(self.words)} words but {len(self.pos)} part-of-speech tags")
        bad = sorted(set(self.pos) - set(POS_VALUES))
        if bad:
            raise ValueError(f"lexicon part-of-speech tags must be 'noun' or 'adj', got {bad[:5]}")

    def __len__(self) -> int:
        return len(self.words)

    @property
    def sha256(self) -> str:
        """sha256 of the content (words and tags, in order); the source string is not part of it."""
        h = hashlib.sha256()
        for word, pos in zip(self.words, self.pos):
            h.update(f"{word}\t{pos}\n".encode())
        return h.hexdigest()

    def count(self, pos: str) -> int:
        return sum(1 for p in self.pos if p == pos)

    def of_pos(self, pos: str) -> list[str]:
        """The words tagged ``pos``, in lexicon order."""
        return [w for w, p in zip(self.words, self.pos) if p == pos]


#: Lexicon name -> loader ``(options) -> Lexicon``; ``options`` come from the benchmark definition.
LEXICONS: Registry[Callable[[dict[str, Any]], Lexicon]] = Registry(
    "lexicon", hint="A benchmark names its lexicon; --words FILE gives your own word list instead.",
    sources=["oodbench.lexicon.wordnet:register", "oodbench.plugins:load_plugins"])

_CACHE_DIR: contextvars.ContextVar[Path | None] = contextvars.ContextVar("oodbench_lexicon_cache",
                                                                  default=None)


def lexicon_cache_dir() -> Path:
    """Where loaders keep their caches: the ``cache_dir`` given to :func:`load_lexicon`, else the default."""
    given = _CACHE_DIR.get()
    if given is not None:
        return given
    from oodbench.features import default_cache_dir

    return default_cache_dir()


@contextlib.contextmanager
def _cache_dir_scope(cache_dir: Path | None) -> Iterator[None]:
    token = _CACHE_DIR.set(Path(cache_dir).expanduser() if cache_dir is not None else None)
    try:
        yield
    finally:
        _CACHE_DIR.reset(token)
