"""Lexicons: WordNet from the Debian files, word files, the registry, and the errors."""

from __future__ import annotations

from pathlib import Path

import pytest

import oodbench.lexicon.wordnet as lexmod
from oodbench.errors import OodbenchError, UnknownNameError
from oodbench.lexicon import LEXICONS, Lexicon, load_lexicon
from oodbench.lexicon.wordfile import read_words_file
from oodbench.lexicon.wordnet import LEXNAMES

DEBIAN_MISSING = [f for f in lexmod._REQUIRED_FILES if not (lexmod.debian_wordnet_dir() / f).is_file()]
needs_debian = pytest.mark.skipif(
    bool(DEBIAN_MISSING),
    reason=f"Debian WordNet files absent from {lexmod.debian_wordnet_dir()} (missing {DEBIAN_MISSING[:3]}); "
           "`apt-get install wordnet-base wordnet-sense-index` (make test installs them)")


@pytest.fixture(scope="module")
def wordnet_cache(tmp_path_factory):
    """One cache folder for the module, so WordNet is walked once (seconds), from the Debian files."""
    return tmp_path_factory.mktemp("lexicon-cache")


@pytest.fixture(scope="module")
def wordnet(wordnet_cache):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lexmod, "_nltk_wordnet", lambda: None)  # the Debian route even where nltk data exist
        full = load_lexicon("wordnet", {}, cache_dir=wordnet_cache)
        no_animals = load_lexicon("wordnet", {"exclude": ["noun.animal", "noun.food"]},
                                  cache_dir=wordnet_cache)
    return full, no_animals


@needs_debian
def test_wordnet_from_debian_files(wordnet, wordnet_cache):
    full, no_animals = wordnet
    assert "Debian" in full.source
    tags = dict(zip(full.words, full.pos))
    assert tags["dog"] == "noun" and tags["giraffe"] == "noun" and tags["yellow clintonia"] == "noun"
    # "red" is a noun and an adjective; the adjective files come first in sorted order
    assert tags["red"] == "adj" and tags["happy"] == "adj"
    assert len(set(full.words)) == len(full.words)
    assert all(w == w.lower() and "_" not in w for w in full.words)
    # about one word per synset (see the module docstring for the exact counts)
    assert 75_000 < len(full) < 85_000
    assert 68_000 < len(no_animals) < 73_000
    assert no_animals.count("adj") == full.count("adj")
    # the cached word lists and the assembled nltk folder with its lexnames file
    assert list((wordnet_cache / "lexicon").glob("wordnet-*.tsv"))
    lexnames = (wordnet_cache / "nltk_data" / "corpora" / "wordnet" / "lexnames").read_text().splitlines()
    assert len(lexnames) == 45 and lexnames[0] == "00\tadj.all\t3" and lexnames[44] == "44\tadj.ppl\t3"


@needs_debian
def test_excluding_noun_animal_removes_animals(wordnet):
    full, no_animals = wordnet
    kept = set(no_animals.words)
    for word in ("giraffe", "zebra", "golden retriever", "pizza"):
        assert word in full.words and word not in kept
    # "dog" stays: WordNet also has a noun.person synset headed "dog" (informal term for a man)
    assert "dog" in kept and "teapot" in kept
    assert "noun.animal" in no_animals.source


@needs_debian
def test_wordnet_is_reproducible_and_cached(wordnet, wordnet_cache, monkeypatch):
    full, _ = wordnet
    monkeypatch.setattr(lexmod, "_nltk_wordnet", lambda: None)
    monkeypatch.setattr(lexmod, "walk_wordnet", lambda root: pytest.fail("WordNet walked again"))
    again = load_lexicon("wordnet", {}, cache_dir=wordnet_cache)
    assert again.sha256 == full.sha256 and again.words == full.words
    every = load_lexicon("wordnet", {"lemmas": "all"}, cache_dir=wordnet_cache)
    assert len(every) > 1.5 * len(full) and "domestic dog" in every.words and "domestic dog" not in full.words


def test_wordnet_options_are_checked():
    with pytest.raises(OodbenchError, match="noun.animals"):
        load_lexicon("wordnet", {"exclude": ["noun.animals"]})
    with pytest.raises(OodbenchError, match="no option"):
        load_lexicon("wordnet", {"exclud": ["noun.animal"]})
    with pytest.raises(OodbenchError, match="lemmas"):
        load_lexicon("wordnet", {"lemmas": "some"})


def test_missing_wordnet_gives_a_clear_error(tmp_path, monkeypatch):
    import nltk

    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("OODBENCH_WORDNET_DIR", str(empty))
    monkeypatch.setattr(lexmod, "_nltk_wordnet", lambda: None)
    before = list(nltk.data.path)
    with pytest.raises(OodbenchError) as info:
        load_lexicon("wordnet", {}, cache_dir=tmp_path / "cache")
    msg = str(info.value)
    assert str(empty) in msg and "apt-get install wordnet-base wordnet-sense-index" in msg
    assert "python -m nltk.downloader wordnet" in msg and "--words" in msg
    assert nltk.data.path == before


def test_lexnames_table_is_wordnet_30():
    assert [n for n, _, _ in LEXNAMES] == list(range(45))
    cats = {name: cat for _, name, cat in LEXNAMES}
    assert cats["adj.all"] == 3 and cats["noun.Tops"] == 1
    assert cats["verb.weather"] == 2 and cats["adv.all"] == 4
    # 26 noun files + 3 adjective files, sorted: the adjective files first, "noun.Tops" before "noun.act"
    assert len(lexmod.WORD_FILES) == 29
    assert lexmod.WORD_FILES[:5] == ("adj.all", "adj.pert", "adj.ppl", "noun.Tops", "noun.act")


# ----------------------------------------------------------------------------------------- word files
def write(tmp_path: Path, text: str, name: str = "words.txt") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_words_file_parsing(tmp_path):
    path = write(tmp_path, "# my words\n\nteapot\nshiny\tadj\nwooden, adjective\n  comet , noun \n"
                           "lantern\tn\nteapot\nRed Planet\n")
    lex = read_words_file(path)
    assert lex.words == ["teapot", "shiny", "wooden", "comet", "lantern", "Red Planet"]
    assert lex.pos == ["noun", "adj", "adj", "noun", "noun", "noun"]
    assert lex.source.startswith("file words.txt (sha256 ") and str(path.parent) not in lex.source  # no local path


@pytest.mark.parametrize("text, match", [
    ("teapot\nshiny\tadverb\n", "Line 2"),
    ("a,b,c\n", "Line 1"),
    ("teapot\n, adj\n", "Line 2"),
    ("# nothing\n\n", "no words"),
])
def test_bad_words_files(tmp_path, text, match):
    with pytest.raises(OodbenchError, match=match):
        read_words_file(write(tmp_path, text))


def test_words_file_missing_or_not_text(tmp_path):
    with pytest.raises(OodbenchError, match="does not exist"):
        read_words_file(tmp_path / "nope.txt")
    bad = tmp_path / "binary.txt"
    bad.write_bytes(b"\xff\xfe\x00teapot")
    with pytest.raises(OodbenchError, match="UTF-8"):
        read_words_file(bad)


def test_words_file_wins_over_the_named_lexicon(tmp_path):
    path = write(tmp_path, "teapot\nshiny,adj\n")
    lex = load_lexicon("wordnet", {"exclude": ["noun.animal"]}, words_file=path)
    assert lex.words == ["teapot", "shiny"]


def test_registry_and_names(monkeypatch):
    assert "wordnet" in LEXICONS
    with pytest.raises(UnknownNameError, match="wordnet"):
        load_lexicon("wordnett", {})
    with pytest.raises(OodbenchError, match="--words"):
        load_lexicon(None, {})
    seen = {}
    monkeypatch.setitem(LEXICONS._items, "test-lexicon-options",  # registered for this test only
                        lambda options: seen.update(options) or Lexicon(["x"], ["noun"], "t"))
    assert load_lexicon("test-lexicon-options", {"a": 1}).words == ["x"] and seen == {"a": 1}


def test_lexicon_checks_and_hash():
    a = Lexicon(["teapot", "shiny"], ["noun", "adj"], source="one")
    b = Lexicon(["teapot", "shiny"], ["noun", "adj"], source="another")
    c = Lexicon(["teapot", "shiny"], ["noun", "noun"], source="one")
    assert a.sha256 == b.sha256 != c.sha256
    assert a.of_pos("adj") == ["shiny"] and a.count("noun") == 1 and len(a) == 2
    with pytest.raises(ValueError):
        Lexicon(["a"], [], source="x")
    with pytest.raises(ValueError):
        Lexicon(["a"], ["verb"], source="x")


@needs_debian
def test_noun_words_covers_nouns_tagged_adj_by_file_order(tmp_path, monkeypatch):
    """The neglabel style keeps a word once with its first file's tag; `noun_words` still says which words
    some noun file holds (OpenOOD-VLM's bank counts them as nouns)."""
    monkeypatch.setattr(lexmod, "_nltk_wordnet", lambda: None)
    lex = load_lexicon("wordnet", {"style": "neglabel", "exclude": ["noun.animal", "noun.food"]},
                       cache_dir=tmp_path)
    nouns = {w for w, p in zip(lex.words, lex.pos) if p == "noun"}
    tagged_adj = {w for w, p in zip(lex.words, lex.pos) if p == "adj"}
    assert nouns <= lex.noun_words
    assert len(lex.noun_words - nouns) == len(lex.noun_words & tagged_adj) == 58_490 - 57_134
