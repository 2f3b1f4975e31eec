"""NegLabel's candidate word files, rebuilt from a WordNet database by the rule its files imply.

NegLabel (Jiang et al., ICLR 2024; ``tmlr-group/NegLabel``) mines negatives from 27 word files in its
``txtfiles/`` folder, one per lexicographer file (``adj.all``, ``adj.pert``, ``adj.ppl`` and the 24 noun
files other than ``noun.animal`` / ``noun.food``). Those files are the output of a simple parser run over
WordNet's lexicographer *source* files (``dict/dbfiles``). Per file, for every synset line starting with
``{`` (the first head synset of each ``adj.all`` cluster starts with ``[{`` and is left out):

1. the first word as the source writes it: lemma, ``"`` after a digit that ends the word or precedes a
   letter (``b-52"``), the lex_id when not 0, the adjective marker ``(a)``/``(p)``/``(ip)``;
2. trailing ``,`` and the marker removed, lower-cased, **one** trailing digit (the lex_id) dropped (lex_ids
   10-15 leave their first digit: ``edward1``), ``_`` -> space;
3. kept when at least 2 characters long; one set per file (no removal of repeats across files).

:func:`word_files` applies this rule to the compiled database (``data.noun``, ``data.adj``), which holds
the same facts (lemma, lex_id, marker, pointers); the ``adj.all`` cluster heads are found from the
similar-to (``&``) and antonym (``!``) pointers: in each group of ``adj.all`` synsets they join, the head
synset (type ``a``) with the smallest offset. On WordNet 3.0 this reproduces 79,238 of the reference's
79,455 lines (99.73%); the rest are WordNet 3.1 edits and hand formatting of the 3.1 source files (see
the README). On WordNet 3.1 it reproduces 79,401 (99.93%).

The reference reads its files in ``os.listdir`` order and keeps a word the first time it is seen, so a word
in a noun file and an adjective file takes the part of speech of the file read first. The authors'
released negatives (8,578 nouns + 1,921 adjectives) imply :data:`REFERENCE_ORDER`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

#: The adjective syntactic markers that follow a word in ``data.adj`` and in the source files.
MARKER = re.compile(r"\((?:a|p|ip)\)$")
_DIGIT_QUOTE = re.compile(r"(\d)(?=[A-Za-z]|$)")

#: The noun files that come before the adjective files in the order behind the released negatives.
EARLY_NOUN_FILES = ("noun.Tops", "noun.cognition", "noun.event", "noun.feeling", "noun.motive",
                    "noun.phenomenon", "noun.possession", "noun.process", "noun.relation", "noun.shape",
                    "noun.time")

#: A file order consistent with NegLabel's released ``selected_neg_labels_in1k_10k.txt``: it gives 57,190
#: nouns + 12,810 adjectives on the reference files, hence floor(0.15 n) = 8,578 + 1,921 negatives, and
#: every released word's part of speech (sorted order gives 8,536 + 1,963). Orders within the noun group
#: and within the adjective group do not matter; ``adj.ppl`` adds only adjectives.
REFERENCE_ORDER: tuple[str, ...] = (
    EARLY_NOUN_FILES + ("adj.all", "adj.pert")
    + ("noun.act", "noun.animal", "noun.artifact", "noun.attribute", "noun.body", "noun.communication",
       "noun.food", "noun.group", "noun.location", "noun.object", "noun.person", "noun.plant",
       "noun.quantity", "noun.state", "noun.substance")
    + ("adj.ppl",)
)


@dataclass(frozen=True)
class Synset:
    """One line of a WordNet ``data.*`` file: what the word-file rule needs."""

    offset: int
    lexname: str
    ss_type: str  # n, a, s (satellite), ...
    words: tuple[tuple[str, int], ...]  # (word as stored, marker included; lex_id)
    pointers: tuple[tuple[str, int], ...]  # (symbol, target offset)


def read_synsets(lines: Iterable[str], lexnames: Sequence[str]) -> Iterator[Synset]:
    """Synsets of a WordNet database file (format wndb(5WN)); ``lexnames[i]`` names lex_filenum ``i``.

    License lines (starting with two spaces) are skipped.
    """
    for line in lines:
        if line.startswith("  ") or not line.strip():
            continue
        f = line.split(" ")
        n_words = int(f[3], 16)
        words = tuple((f[4 + 2 * k], int(f[5 + 2 * k], 16)) for k in range(n_words))
        i = 4 + 2 * n_words
        n_ptrs = int(f[i])
        pointers = tuple((f[i + 1 + 4 * k], int(f[i + 2 + 4 * k])) for k in range(n_ptrs))
        yield Synset(int(f[0]), lexnames[int(f[1])], f[2], words, pointers)


def source_form(word: str, lex_id: int) -> str:
    """How a lexicographer source file writes a database word: ``"`` after a digit that ends the word or
    precedes a letter, then the lex_id (when not 0), then the adjective marker."""
    marker = MARKER.search(word)
    bare = _DIGIT_QUOTE.sub(r'\1"', MARKER.sub("", word))
    return bare + (str(lex_id) if lex_id else "") + (marker.group(0) if marker else "")


def parse_head_word(token: str) -> str:
    """NegLabel's parser on a source token: strip ``,`` and the marker, lower-case, drop one trailing digit
    (the lex_id), ``_`` -> space."""
    word = MARKER.sub("", token.rstrip(",")).lower()
    if word and word[-1].isdigit():
        word = word[:-1]
    return word.replace("_", " ")


def adj_cluster_heads(adj_all: Iterable[Synset]) -> set[int]:
    """Offsets of the ``adj.all`` synsets the source files write as ``[{``: in each group of synsets joined
    by similar-to / antonym pointers, the head (type ``a``) synset with the smallest offset."""
    synsets = sorted(adj_all, key=lambda s: s.offset)
    offsets = {s.offset for s in synsets}
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    linked: set[int] = set()
    for s in synsets:
        for symbol, target in s.pointers:
            if symbol in ("&", "!") and target in offsets:
                parent[find(s.offset)] = find(target)
                linked.update((s.offset, target))
    first: dict[int, int] = {}
    for s in synsets:
        if s.ss_type == "a" and s.offset in linked:
            first.setdefault(find(s.offset), s.offset)
    return set(first.values())


def word_files(synsets: Iterable[Synset], files: Iterable[str]) -> dict[str, list[str]]:
    """NegLabel's word file for each lexicographer file in ``files``: head words by the module's rule, in
    database order, each once per file."""
    wanted = set(files)
    chosen = [s for s in synsets if s.lexname in wanted]
    skip = adj_cluster_heads(s for s in chosen if s.lexname == "adj.all")
    out: dict[str, list[str]] = {name: [] for name in wanted}
    seen: dict[str, set[str]] = {name: set() for name in wanted}
    for s in chosen:
        if s.lexname == "adj.all" and s.offset in skip:
            continue
        word = parse_head_word(source_form(*s.words[0]))
        if len(word) >= 2 and word not in seen[s.lexname]:
            seen[s.lexname].add(word)
            out[s.lexname].append(word)
    return out


def ordered(files: Iterable[str], order: Sequence[str] = REFERENCE_ORDER) -> list[str]:
    """``files`` in ``order``; files it does not name follow, sorted."""
    files = list(files)
    rank = {name: i for i, name in enumerate(order)}
    return sorted(files, key=lambda name: (rank.get(name, len(rank)), name))
