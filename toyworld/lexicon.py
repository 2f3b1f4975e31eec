"""The ``toyworld`` lexicon: the toy world's whole vocabulary, as candidate words for NegLabel / ZOC-lite.

Object names are nouns (ID class names included: methods remove the ID names themselves); texture,
colour and size words are adjectives. Option ``parts`` picks which groups to include (default all:
``["objects", "textures", "colours", "sizes"]``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from oodbench.errors import OodbenchError
from oodbench.toyworld.world import World, load_world

if TYPE_CHECKING:
    from oodbench.lexicon import Lexicon

log = logging.getLogger(__name__)

#: part name -> (part of speech, the world's words of that part)
PARTS: dict[str, tuple[str, Callable[[World], list[str]]]] = {
    "objects": ("noun", lambda w: w.object_names),
    "textures": ("adj", lambda w: w.texture_words),
    "colours": ("adj", lambda w: list(w.colours)),
    "sizes": ("adj", lambda w: list(w.sizes)),
}


def toyworld_words(parts: list[str] | None = None) -> tuple[list[str], list[str]]:
    """(words, parts of speech) of the chosen ``parts`` of the world's vocabulary, without repeats."""
    world = load_world()
    parts = list(PARTS) if parts is None else list(parts)
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise OodbenchError(f"toyworld lexicon: unknown part(s) {unknown}; choose from {', '.join(PARTS)}.")
    words: list[str] = []
    tags: list[str] = []
    for part in parts:
        pos, get = PARTS[part]
        for word in get(world):
            if word not in words:
                words.append(word)
                tags.append(pos)
    return words, tags


def toyworld_lexicon(options: dict[str, Any]) -> Lexicon:
    """Loader for ``LEXICONS``: option ``parts`` (list of part names), nothing else."""
    from oodbench.lexicon import Lexicon

    unknown = sorted(set(options) - {"parts"})
    if unknown:
        raise OodbenchError(f"toyworld lexicon: unknown option(s) {unknown}; the only option is 'parts'.")
    parts = options.get("parts")
    words, tags = toyworld_words(parts)
    world = load_world()
    source = f"toyworld vocabulary {parts or list(PARTS)} (world sha256 {world.sha256[:12]})"
    return Lexicon(words, tags, source=source)
