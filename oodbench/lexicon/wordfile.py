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


def read_word_folder(folder: Path, order: tuple[str, ...] | None = None) -> Lexicon:
    """NegLabel's own corpus folder (its ``txtfiles/``): ``noun.*.txt`` and ``adj.*.txt`` files, one word per
    line, read as the reference reads them.

    Files are visited in ``order`` (default: :data:`~oodbench.lexicon.neglabel_files.REFERENCE_ORDER`,
    the order behind the released negatives; files it does not name follow, sorted); each line is
    stripped and kept the first time it is seen, tagged by its file's prefix (``noun`` or ``adj``); files
    with any other prefix are skipped, as the reference skips them. Exact by construction.
    """
    from oodbench.lexicon.neglabel_files import REFERENCE_ORDER, ordered

    folder = Path(folder).expanduser()
    files = {p.name[: -len(".txt")]: p for p in folder.glob("*.txt")
             if p.is_file() and p.name.split(".")[0] in ("noun", "adj")} if folder.is_dir() else {}
    if not files:
        raise OodbenchError(
            f"{folder} holds no NegLabel word files (noun.*.txt, adj.*.txt). Point neglabel.corpus at the "
            "reference's txtfiles/ folder (github.com/tmlr-group/NegLabel, txtfiles/).")
    words: list[str] = []
    tags: list[str] = []
    seen: set[str] = set()
    digest = hashlib.sha256()
    for name in ordered(files, order or REFERENCE_ORDER):
        data = files[name].read_bytes()
        digest.update(name.encode() + b"\0" + data)
        tag = "noun" if name.startswith("noun.") else "adj"
        for line in data.decode("utf-8").splitlines():
            word = line.strip()
            if word and word not in seen:
                seen.add(word)
                words.append(word)
                tags.append(tag)
    return Lexicon(words, tags, source=f"NegLabel word files in {folder.name}/ ({len(files)} files, sha256 "
                                       f"{digest.hexdigest()[:12]}), reference file order")


def read_negative_prompts(path: Path) -> tuple[list[str], list[bool]]:
    """NegLabel's released negatives (``selected_neg_labels_in1k_10k.txt``): finished prompt lines, used
    verbatim in file order (``the nice <noun>`` lines, then ``This is a <adjective> photo`` lines, each block
    from the most to the least negative). Returns the lines and, for reporting only, whether each is an
    adjective prompt (every line from the first one starting ``This is a``). Blank lines are skipped."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise OodbenchError(
            f"The negatives file {path} does not exist. Give neglabel.negatives the authors' released "
            "list (selected_neg_labels/selected_neg_labels_in1k_10k.txt in github.com/tmlr-group/NegLabel) "
            "or a file of finished prompts, one per line.")
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as exc:
        raise OodbenchError(f"The negatives file {path} is not UTF-8 text ({exc.reason}).") from None
    if not lines:
        raise OodbenchError(f"The negatives file {path} holds no prompts (one finished prompt per line).")
    first_adj = next((i for i, line in enumerate(lines) if line.startswith("This is a")), len(lines))
    return lines, [i >= first_adj for i in range(len(lines))]
