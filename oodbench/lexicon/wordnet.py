"""The ``wordnet`` lexicon: WordNet 3.0 nouns and adjectives as candidate words.

The head word (first lemma) of every WordNet 3.0 noun and adjective synset, satellites included,
read through nltk's WordNet corpus reader, lower-cased, with underscores turned into spaces; option
``lemmas="all"`` takes every lemma name instead. The 29 noun and adjective lexicographer files
(``adj.all``, ``adj.pert``, ``adj.ppl``, ``noun.Tops``, ``noun.act``, ... ``noun.time``) are visited in
sorted order (so the three adjective files come first), the synsets of one file in data-file order;
a word is kept the first time it is seen, so a word that is both an adjective and a noun (``red``) is
counted once, with the part of speech of the first file that holds it. NegLabel's reference code
keeps the same first-seen rule but walks its files in ``os.listdir`` order, which depends on the file
system; sorted order makes the list reproducible. Option ``exclude``: lexicographer files to leave
out, e.g. ``["noun.animal", "noun.food"]``, the reference's filter for ImageNet-1K, whose classes are
mostly animals and foods.

Why head words: the reference ships its corpus as word files, one per lexicographer file, and their
sizes match one word per synset: 65,988 noun lines in its 24 noun files against 65,941 head words in
the same files here (summed file by file, before repeats across files are removed), and 7,631
``noun.plant`` words against 7,630. Counts with WordNet 3.0 (Debian's ``wordnet-base``):

========================================  =======  =======  ==========
lexicon options                            words    nouns    adjectives
========================================  =======  =======  ==========
head words, all 29 files                   79,403   65,397   14,006
head words, without noun.animal/food       70,794   56,788   14,006
all lemmas, all 29 files                  136,139  114,660   21,479
all lemmas, without noun.animal/food      120,269   98,790   21,479
========================================  =======  =======  ==========

The reference's own files (probably WordNet 3.1, read in sorted order) give 70,000 = 56,909 nouns +
13,091 adjectives.

Where WordNet comes from, in order: nltk's own ``wordnet`` data when installed
(``nltk.data.find("corpora/wordnet")``); else the Debian packages ``wordnet-base`` and
``wordnet-sense-index`` (directory ``/usr/share/wordnet``, or ``$OODBENCH_WORDNET_DIR``), copied into an
nltk-readable folder ``<cache>/nltk_data/corpora/wordnet`` together with the ``lexnames`` file that
Debian leaves out (written from :data:`LEXNAMES`); else an :class:`OodbenchError` that says how to get
either. Walking WordNet takes seconds, so the per-file word lists are cached as a text file under
``<cache>/lexicon/``, keyed by the source; ``exclude`` is applied to the cached lists in memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from oodbench.errors import OodbenchError
from oodbench.files import atomic_write_text
from oodbench.lexicon.core import Lexicon, lexicon_cache_dir
from oodbench.registry import Registry

log = logging.getLogger(__name__)

WORDNET_DIR_ENV = "OODBENCH_WORDNET_DIR"
DEBIAN_WORDNET_DIR = Path("/usr/share/wordnet")
_CACHE_FORMAT = 2

#: WordNet 3.0's 45 lexicographer files: (number, name, syntactic category 1 noun, 2 verb, 3 adj, 4 adv),
#: as listed in the WordNet documentation (lexnames(5WN)).
LEXNAMES: tuple[tuple[int, str, int], ...] = (
    (0, "adj.all", 3), (1, "adj.pert", 3), (2, "adv.all", 4), (3, "noun.Tops", 1),
    (4, "noun.act", 1), (5, "noun.animal", 1), (6, "noun.artifact", 1), (7, "noun.attribute", 1),
    (8, "noun.body", 1), (9, "noun.cognition", 1), (10, "noun.communication", 1), (11, "noun.event", 1),
    (12, "noun.feeling", 1), (13, "noun.food", 1), (14, "noun.group", 1), (15, "noun.location", 1),
    (16, "noun.motive", 1), (17, "noun.object", 1), (18, "noun.person", 1), (19, "noun.phenomenon", 1),
    (20, "noun.plant", 1), (21, "noun.possession", 1), (22, "noun.process", 1), (23, "noun.quantity", 1),
    (24, "noun.relation", 1), (25, "noun.shape", 1), (26, "noun.state", 1), (27, "noun.substance", 1),
    (28, "noun.time", 1), (29, "verb.body", 2), (30, "verb.change", 2), (31, "verb.cognition", 2),
    (32, "verb.communication", 2), (33, "verb.competition", 2), (34, "verb.consumption", 2),
    (35, "verb.contact", 2), (36, "verb.creation", 2), (37, "verb.emotion", 2), (38, "verb.motion", 2),
    (39, "verb.perception", 2), (40, "verb.possession", 2), (41, "verb.social", 2), (42, "verb.stative", 2),
    (43, "verb.weather", 2), (44, "adj.ppl", 3),
)

#: The noun and adjective lexicographer files, in the order the ``wordnet`` lexicon visits them.
WORD_FILES: tuple[str, ...] = tuple(sorted(n for _, n, cat in LEXNAMES if cat in (1, 3)))

# Files of the WordNet database that nltk's reader opens when it starts (the rest it opens lazily).
_REQUIRED_FILES = ("data.noun", "data.adj", "data.verb", "data.adv", "index.noun", "index.adj",
                   "index.verb", "index.adv", "noun.exc", "adj.exc", "verb.exc", "adv.exc")
_OPTIONAL_FILES = ("index.sense", "cntlist.rev")


WordLists = dict[str, list[tuple[str, bool]]]
"""Per lexicographer file: (word, is the head word of its synset), in WordNet order, each pair once."""


def register(registry: Registry[Any]) -> None:
    """Register ``wordnet`` (the source of :data:`oodbench.lexicon.LEXICONS`)."""
    registry.register("wordnet", load_wordnet)


def load_wordnet(options: dict[str, Any]) -> Lexicon:
    """The ``wordnet`` lexicon (see the module docstring).

    Options: ``exclude``, lexicographer file names to leave out (default none); ``lemmas``, ``"first"``
    (default: each synset's first lemma, its head word, as the reference's word files hold) or
    ``"all"`` (every lemma name of every synset, about 1.7 times as many words).
    """
    options = dict(options)
    exclude = options.pop("exclude", None) or []
    lemmas = str(options.pop("lemmas", "first")).lower()
    if options:
        raise OodbenchError(
            f"The wordnet lexicon has no option(s) {', '.join(sorted(options))}. Its options are "
            "'exclude', a list of lexicographer file names such as ['noun.animal', 'noun.food'], and "
            "'lemmas', 'first' (each synset's head word, the default) or 'all'.")
    if lemmas not in ("first", "all"):
        raise OodbenchError(
            f"The wordnet lexicon's option lemmas={lemmas!r} is not one of 'first' (each synset's head "
            "word, the default) or 'all' (every lemma name).")
    if isinstance(exclude, str):
        exclude = [e.strip() for e in exclude.split(",") if e.strip()]
    unknown = sorted(set(exclude) - set(WORD_FILES))
    if unknown:
        raise OodbenchError(
            f"The wordnet lexicon's 'exclude' names {', '.join(map(repr, unknown))}, which are not noun "
            f"or adjective lexicographer files. Known files: {', '.join(WORD_FILES)}.")
    per_file, source = _wordnet_word_lists(lexicon_cache_dir())
    words, tags = build_word_list(per_file, exclude, head_only=lemmas == "first")
    log.info("wordnet lexicon: %d words (%d nouns, %d adjectives; %s lemmas)%s", len(words),
             tags.count("noun"), tags.count("adj"), lemmas,
             f", excluding {', '.join(sorted(exclude))}" if exclude else "")
    details = f"{lemmas} lemmas" + (f", excluding {', '.join(sorted(exclude))}" if exclude else "")
    return Lexicon(words, tags, source=f"{source}; {details}")


def build_word_list(per_file: Mapping[str, list[tuple[str, bool]]], exclude: Iterable[str] = (),
                    head_only: bool = True) -> tuple[list[str], list[str]]:
    """Words and tags from per-file word lists: files in sorted order, each word kept where first seen.

    ``head_only`` keeps only each synset's first lemma (the reference's rule); else every lemma.
    """
    words: list[str] = []
    tags: list[str] = []
    seen: set[str] = set()
    skip = set(exclude)
    for lexname in sorted(per_file):
        if lexname in skip:
            continue
        tag = "noun" if lexname.startswith("noun.") else "adj"
        for word, head in per_file[lexname]:
            if (head or not head_only) and word not in seen:
                seen.add(word)
                words.append(word)
                tags.append(tag)
    return words, tags


def _wordnet_word_lists(cache_dir: Path) -> tuple[WordLists, str]:
    """Per-file word lists and a description of the source, from the cache or by walking WordNet."""
    root, kind, stamp = find_wordnet(cache_dir)
    key = hashlib.sha256(json.dumps({"format": _CACHE_FORMAT, "kind": kind, "root": str(root),
                                     "stamp": stamp}, sort_keys=True).encode()).hexdigest()[:16]
    cache_file = cache_dir / "lexicon" / f"wordnet-{key}.tsv"
    source = f"WordNet 3.0 nouns and adjectives from {kind}"
    if cache_file.is_file():
        try:
            return _read_word_lists(cache_file), source
        except (OSError, ValueError) as exc:
            log.warning("lexicon cache %s is unreadable (%s); walking WordNet again", cache_file, exc)
    t0 = time.perf_counter()
    per_file = walk_wordnet(root)
    log.info("walked WordNet (%s) in %.1f s", kind, time.perf_counter() - t0)
    try:
        _write_word_lists(cache_file, per_file)
    except OSError as exc:
        log.warning("could not cache the WordNet word lists in %s (%s)", cache_file, exc)
    return per_file, source


def walk_wordnet(root: Any) -> WordLists:
    """Per-file word lists of the noun and adjective files, read with nltk's WordNet reader.

    ``root`` is a WordNet dict folder that nltk can read: an nltk path pointer, or a folder made by
    :func:`assemble_nltk_folder`.
    """
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    per_file: WordLists = {name: [] for name in WORD_FILES}
    seen: dict[str, set[tuple[str, bool]]] = {name: set() for name in WORD_FILES}
    with _nltk_may_read(root), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available": English is enough
        reader = WordNetCorpusReader(str(root) if isinstance(root, Path) else root, None)
        for pos in ("n", "a"):  # "a" yields the satellites ("s") too
            for synset in reader.all_synsets(pos):
                lexname = synset.lexname()
                if lexname not in per_file:
                    continue
                for i, lemma in enumerate(synset.lemma_names()):
                    item = (lemma.replace("_", " ").lower(), i == 0)
                    if item not in seen[lexname]:
                        seen[lexname].add(item)
                        per_file[lexname].append(item)
    return per_file


@contextlib.contextmanager
def _nltk_may_read(root: Any) -> Iterator[None]:
    """Let nltk read ``root`` (a folder ``.../nltk_data/corpora/wordnet``) for the duration.

    nltk 3.9+ reads only below the folders of ``nltk.data.path``; the entry is removed afterwards.
    """
    if not isinstance(root, Path):
        yield
        return
    import nltk

    data_root = str(root.parent.parent)
    added = data_root not in [str(p) for p in nltk.data.path]
    if added:
        nltk.data.path.append(data_root)
    try:
        yield
    finally:
        if added and data_root in nltk.data.path:
            nltk.data.path.remove(data_root)


def _write_word_lists(path: Path, per_file: WordLists) -> None:
    lines = [f"# oodbench wordnet word lists, format {_CACHE_FORMAT}: "
             "lexicographer file <TAB> 1 if the synset's head word else 0 <TAB> word\n"]
    for lexname in sorted(per_file):
        lines += [f"{lexname}\t{int(head)}\t{word}\n" for word, head in per_file[lexname]]
    atomic_write_text(path, "".join(lines))


def _read_word_lists(path: Path) -> WordLists:
    per_file: WordLists = {name: [] for name in WORD_FILES}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            lexname, head, word = line.rstrip("\n").split("\t")
            per_file[lexname].append((word, head == "1"))
    if not any(per_file.values()):
        raise ValueError("no words")
    return per_file


# ----------------------------------------------------------------------------------------- sources
def _nltk_wordnet() -> Any | None:
    """nltk's own ``corpora/wordnet`` (a path pointer), or None when it is not installed."""
    try:
        import nltk

        return nltk.data.find("corpora/wordnet")
    except LookupError:
        return None


def debian_wordnet_dir() -> Path:
    env = os.environ.get(WORDNET_DIR_ENV)
    return Path(env).expanduser() if env else DEBIAN_WORDNET_DIR


def find_wordnet(cache_dir: Path) -> tuple[Any, str, list[Any]]:
    """(root for nltk's reader, source kind, a stamp of the data files) for the first WordNet found."""
    pointer = _nltk_wordnet()
    if pointer is not None:
        stamp = [pointer.join(f).file_size() for f in ("data.noun", "data.adj")]
        return pointer, f"nltk's wordnet data ({getattr(pointer, 'path', pointer)})", stamp
    debian = debian_wordnet_dir()
    missing = [f for f in _REQUIRED_FILES if not (debian / f).is_file()]
    if not missing:
        root = assemble_nltk_folder(debian, cache_dir / "nltk_data" / "corpora" / "wordnet")
        stamp = [[(debian / f).stat().st_size, (debian / f).stat().st_mtime_ns]
                 for f in ("data.noun", "data.adj")]
        return root, f"Debian's wordnet-base ({debian})", stamp
    raise OodbenchError(
        "WordNet was not found, and the 'wordnet' lexicon needs it. Looked for nltk's wordnet data "
        f"(nltk.data.find('corpora/wordnet'), nltk's search path) and for the Debian WordNet files in "
        f"{debian} (missing: {', '.join(missing)}; set ${WORDNET_DIR_ENV} to use another folder). Install "
        "either: `apt-get install wordnet-base wordnet-sense-index`, or `python -m nltk.downloader "
        "wordnet`. Or pass your own word list with --words FILE.")


def assemble_nltk_folder(debian: Path, target: Path) -> Path:
    """Make ``target`` an nltk-readable WordNet folder: copies of ``debian``'s files plus ``lexnames``.

    Copies (about 36 MB), not links: nltk 3.9+ refuses to read a symbolic link that leaves its data
    folders or a file with more than one hard link. A copy is refreshed when its size or modification
    time differs from the original's.
    """
    import shutil

    target.mkdir(parents=True, exist_ok=True)
    for name in _REQUIRED_FILES + _OPTIONAL_FILES:
        src = debian / name
        dst = target / name
        if not src.is_file():
            continue
        st = src.stat()
        if dst.is_file() and not dst.is_symlink():
            dt = dst.stat()
            if dt.st_size == st.st_size and dt.st_mtime_ns == st.st_mtime_ns and dt.st_nlink == 1:
                continue
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=target)
        os.close(fd)
        try:
            shutil.copy2(src, tmp)
            os.replace(tmp, dst)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    lexnames = "".join(f"{num:02d}\t{name}\t{cat}\n" for num, name, cat in LEXNAMES)
    dst = target / "lexnames"
    if not dst.is_file() or dst.read_text() != lexnames:
        tmp = target / f".lexnames.{os.getpid()}"
        tmp.write_text(lexnames)
        os.replace(tmp, dst)
    return target
