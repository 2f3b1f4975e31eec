"""Word files: ``--words FILE``, one candidate word per line, optionally tagged ``noun`` or ``adj``."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from oodbench.errors import OodbenchError
from oodbench.lexicon.core import Lexicon

log = logging.getLogger(__name__)

_POS_ALIASES = {"noun": "noun", "n": "noun", "adj": "adj", "a": "adj", "adjective": "adj"}


def read_words_file(path: Path) -> Lexicon:
    """A lexicon from a text file: one word per line, optionally a tab or comma and ``noun``/``adj``.

    The tag defaults to ``noun``; blank lines and lines starting with ``#`` are skipped; a word listed
    twice is kept once (first occurrence). Words are taken as written (only surrounding spaces go).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise OodbenchError(
            f"The word file {path} does not exist or is not a file. Give --words a text file with one "
            "candidate word per line, optionally followed by a tab or comma and 'noun' or 'adj'.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise OodbenchError(
            f"The word file {path} is not UTF-8 text ({exc.reason} at byte {exc.start}). Save it as "
            "UTF-8 text, one word per line.") from None
    words: list[str] = []
    tags: list[str] = []
    seen: set[str] = set()
    duplicates = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in (line.split("\t") if "\t" in line else line.split(","))]
        if len(fields) > 2 or not fields[0]:
            raise OodbenchError(
                f"Line {number} of the word file {path} is {raw!r}: expected a word, optionally followed "
                "by one tab or comma and 'noun' or 'adj'. Fix or remove the line.")
        tag = _POS_ALIASES.get(fields[1].lower()) if len(fields) == 2 else "noun"
        if tag is None:
            raise OodbenchError(
                f"Line {number} of the word file {path} tags {fields[0]!r} as {fields[1]!r}; the second "
                "column must be 'noun' or 'adj' (or be left out, meaning noun).")
        if fields[0] in seen:
            duplicates += 1
            continue
        seen.add(fields[0])
        words.append(fields[0])
        tags.append(tag)
    if not words:
        raise OodbenchError(
            f"The word file {path} holds no words (only blank lines or # comments). Put one candidate "
            "word per line.")
    if duplicates:
        log.info("word file %s: %d repeated word(s) kept once", path, duplicates)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return Lexicon(words, tags, source=f"file {path.name} (sha256 {digest})")
