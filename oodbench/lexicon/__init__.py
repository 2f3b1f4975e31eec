"""Candidate-word lexicons: the words NegLabel mines its negative labels from and ZOC-lite retrieves from.

A :class:`Lexicon` is a list of words, each tagged ``"noun"`` or ``"adj"``. Lexicons are named in
:data:`LEXICONS` (``wordnet``, :mod:`oodbench.lexicon.wordnet`; plug-ins such as toyworld add theirs) and
loaded with :func:`load_lexicon`; a user's ``--words FILE`` (:mod:`oodbench.lexicon.wordfile`) replaces the
benchmark's lexicon.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from oodbench.errors import OodbenchError
from oodbench.lexicon.core import LEXICONS, POS_VALUES, Lexicon, _cache_dir_scope, lexicon_cache_dir

log = logging.getLogger(__name__)

__all__ = ["LEXICONS", "POS_VALUES", "Lexicon", "lexicon_cache_dir", "load_lexicon"]


def load_lexicon(name: str | None, options: Mapping[str, Any] | None = None, words_file: Path | None = None,
                 cache_dir: Path | None = None) -> Lexicon:
    """The lexicon ``name`` built with ``options``, or the words of ``words_file``, which wins when given.

    ``cache_dir`` is where loaders may cache (default: ``$OODBENCH_CACHE`` or ``~/.cache/oodbench``).
    """
    if words_file is not None:
        if options:
            log.info("--words %s replaces lexicon %r; its options %s do not apply", words_file, name,
                     dict(options))
        from oodbench.lexicon.wordfile import read_words_file

        return read_words_file(Path(words_file))
    if name is None:
        raise OodbenchError(
            "No lexicon was named and no word file was given, so there are no candidate words. Pass "
            f"--words FILE (one word per line) or use a benchmark that names a lexicon "
            f"(known lexicons: {', '.join(LEXICONS.names()) or '(none)'}).")
    loader = LEXICONS.get(name)
    with _cache_dir_scope(cache_dir):
        return loader(dict(options or {}))
