"""NegLabel's candidate pool: the word-file rule, WordNet versions, its own corpus folder, `oodbench words`."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import oodbench.lexicon.wordnet as lexmod
from oodbench.benchmarks import resolve_benchmark
from oodbench.cli import app
from oodbench.errors import OodbenchError
from oodbench.lexicon import load_lexicon
from oodbench.lexicon.neglabel_files import (
    REFERENCE_ORDER,
    adj_cluster_heads,
    parse_head_word,
    read_synsets,
    source_form,
    word_files,
)
from oodbench.lexicon.wordfile import read_word_folder

NAMES = [name for _, name, _ in sorted(lexmod.LEXNAMES)]
needs_debian = pytest.mark.skipif(
    not all((lexmod.debian_wordnet_dir() / f"data.{p}").is_file() for p in ("noun", "adj")),
    reason="Debian WordNet 3.0 files absent (`apt-get install wordnet-base`; make test installs them)")


@pytest.mark.parametrize("word, lex_id, token, parsed", [
    ("dog", 0, "dog", "dog"),
    ("Edward", 10, "Edward10", "edward1"),  # lex_ids 10-15 leave their first digit
    ("pound", 3, "pound3", "pound"),
    ("B-52", 0, 'B-52"', 'b-52"'),  # a digit that ends the word is protected by a quote
    ("Y2K_compliant", 0, 'Y2"K_compliant', 'y2"k compliant'),
    ("1530s", 0, '1530"s', '1530"s'),
    ("galore(ip)", 0, "galore(ip)", "galore"),
    ("long(a)", 1, "long1(a)", "long"),
    ("physical_entity", 0, "physical_entity", "physical entity"),
])
def test_source_form_and_parser(word, lex_id, token, parsed):
    assert source_form(word, lex_id) == token
    assert parse_head_word(token) == parsed
    assert parse_head_word(token + ",") == parsed  # the source's trailing comma goes too


def synset_line(offset: int, lexfile: int, ss_type: str, words: list[tuple[str, int]],
                pointers: list[tuple[str, int, str]] = ()) -> str:
    ws = " ".join(f"{w} {lid:x}" for w, lid in words)
    ps = " ".join(f"{sym} {tgt:08d} {pos} 0000" for sym, tgt, pos in pointers)
    return (f"{offset:08d} {lexfile:02d} {ss_type} {len(words):02x} {ws} {len(pointers):03d}"
            + (f" {ps}" if ps else "") + " | a gloss\n")


def test_word_files_rule_on_a_hand_built_database():
    lines = [
        "  1 license text\n",
        # adj.all: heads 10 and 20 are antonyms, 30 is a satellite of 10: one cluster, its first head is 10
        synset_line(10, 0, "a", [("able", 0)], [("!", 20, "a"), ("&", 30, "s")]),
        synset_line(20, 0, "a", [("unable", 0)], [("!", 10, "a")]),
        synset_line(30, 0, "s", [("capable", 0)], [("&", 10, "a")]),
        synset_line(40, 0, "a", [("transgender", 0)]),  # a head without pointers is kept
        synset_line(50, 1, "a", [("solar", 0)]),  # adj.pert
        synset_line(60, 9, "n", [("idea", 0), ("thought", 1)]),  # noun.cognition: first word only
        synset_line(70, 9, "n", [("a", 0)]),  # single letters are dropped
        synset_line(80, 9, "n", [("idea", 2)]),  # the same word twice in one file: once
        synset_line(90, 18, "n", [("Edward", 11)]),
        synset_line(95, 18, "n", [("idea", 0)]),  # ... but again in another file
    ]
    synsets = list(read_synsets(lines, NAMES))
    assert [s.offset for s in synsets] == [10, 20, 30, 40, 50, 60, 70, 80, 90, 95]
    assert adj_cluster_heads(s for s in synsets if s.lexname == "adj.all") == {10}
    files = word_files(synsets, ["adj.all", "adj.pert", "noun.cognition", "noun.person"])
    assert files == {"adj.all": ["unable", "capable", "transgender"], "adj.pert": ["solar"],
                     "noun.cognition": ["idea"], "noun.person": ["edward1", "idea"]}


def test_reference_order_puts_adjectives_after_eleven_noun_files():
    assert len(REFERENCE_ORDER) == 29 and len(set(REFERENCE_ORDER)) == 29
    assert REFERENCE_ORDER.index("adj.all") == 11 and REFERENCE_ORDER[-1] == "adj.ppl"
    assert set(REFERENCE_ORDER) == set(lexmod.WORD_FILES)


@pytest.fixture(scope="module")
def imagenet_pool():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lexmod, "_nltk_wordnet", lambda: None)  # Debian's files even where nltk data exist
        bench = resolve_benchmark("imagenet")
        return load_lexicon(bench.lexicon, bench.lexicon_options)


@needs_debian
def test_imagenet_pool_is_neglabels_rule_on_wordnet_30(imagenet_pool):
    lex = imagenet_pool
    # 69,917 = 57,134 nouns + 12,783 adjectives (the reference's files: 70,000 = 57,190 + 12,810; the
    # differences are WordNet 3.0 vs 3.1 and the 3.1 source files' formatting, see the README)
    assert (len(lex), lex.count("noun"), lex.count("adj")) == (69_917, 57_134, 12_783)
    assert lex.words[:3] == ["entity", "physical entity", "abstraction"]  # noun.Tops first
    tags = dict(zip(lex.words, lex.pos))
    assert tags["whole"] == "noun" and tags["red"] == "adj"  # noun.Tops precedes adj.all, noun.attribute not
    for artefact in ("edward1", "pound1", 'b-52"', 'm3"', '1530"s'):
        assert artefact in tags
    assert "giraffe" not in tags and all(len(w) >= 2 for w in lex.words)
    assert "Debian" in lex.source and "/" not in lex.source.split(";")[0]  # no local path


@needs_debian
def test_version_is_checked_against_the_database_header(tmp_path, monkeypatch):
    fake = tmp_path / "wn31"
    fake.mkdir()
    header = "  14 WordNet 3.1 Copyright 2011 by Princeton University.  All rights reserved.  \n"
    (fake / "data.adj").write_text(header + synset_line(10, 0, "a", [("able", 0)]))
    (fake / "data.noun").write_text(header + synset_line(60, 9, "n", [("idea", 0)]))
    monkeypatch.setattr(lexmod, "_nltk_wordnet", lambda: None)
    monkeypatch.setattr(lexmod, "_nltk_data", lambda name: None)
    monkeypatch.setenv("OODBENCH_WORDNET_DIR", str(fake))
    with pytest.raises(OodbenchError, match="version 3.1, not 3.0"):
        load_lexicon("wordnet", {"style": "neglabel"})
    monkeypatch.setenv("OODBENCH_WORDNET31_DIR", str(fake))
    lex = load_lexicon("wordnet", {"style": "neglabel", "version": "3.1"})
    assert lex.words == ["idea", "able"] and "WordNet 3.1" in lex.source
    monkeypatch.delenv("OODBENCH_WORDNET31_DIR")
    with pytest.raises(OodbenchError, match="nltk.downloader wordnet31"):
        load_lexicon("wordnet", {"style": "neglabel", "version": "3.1"})
    with pytest.raises(OodbenchError, match="style 'neglabel'"):
        load_lexicon("wordnet", {"version": "3.1"})
    with pytest.raises(OodbenchError, match="order"):
        load_lexicon("wordnet", {"style": "neglabel", "order": "listdir"})


def write_corpus(folder: Path) -> Path:
    folder.mkdir()
    (folder / "adj.all.txt").write_text("red\nwooden\n")
    (folder / "noun.Tops.txt").write_text("entity\nred\n")
    (folder / "noun.attribute.txt").write_text("red\nsize\n")
    (folder / "verb.body.txt").write_text("run\n")  # not noun/adj: skipped, as the reference does
    return folder


def test_neglabel_corpus_folder_is_read_in_reference_order(tmp_path):
    lex = read_word_folder(write_corpus(tmp_path / "txtfiles"))
    # noun.Tops, then adj.all, then noun.attribute: "red" is first seen as a noun
    assert lex.words == ["entity", "red", "wooden", "size"]
    assert lex.pos == ["noun", "noun", "adj", "noun"]
    assert lex.source.startswith("NegLabel word files in txtfiles/ (3 files")
    with pytest.raises(OodbenchError, match="txtfiles"):
        read_word_folder(tmp_path)


def test_neglabel_reads_its_corpus_parameter(tmp_path, tiny_backbone):
    import torch

    from oodbench.methods.neglabel import NegLabel
    from oodbench.scorer import FitContext

    ctx = FitContext(backbone=tiny_backbone, class_names=["size", "cat"], templates=None,
                     device=torch.device("cpu"), seed=0, cache=None)  # no lexicon: the corpus is used
    scorer = NegLabel.from_params({"corpus": str(write_corpus(tmp_path / "txtfiles")), "eta": "1",
                                   "groups": "1"})
    scorer.fit(ctx)
    prov = scorer.provenance()
    assert prov["candidates"] == 4 and prov["candidates_equal_to_id_names"] == 1
    assert sorted(scorer.negative_words) == ["entity", "red", "size", "wooden"]


def test_words_command_prints_the_suite_pool(tmp_path):
    suite = tmp_path / "tiny-pool.toml"
    suite.write_text('description = "d"\nsource = "s"\nid = "toyworld-mini"\nood = ["toyworld-mini-far"]\n'
                     'lexicon = "toyworld"\n')
    res = CliRunner().invoke(app, ["words", str(suite), "--pos"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    rows = [line.split("\t") for line in res.stdout.splitlines() if "\t" in line]
    assert len(rows) > 30 and {p for _, p in rows} == {"noun", "adj"}
    plain = CliRunner().invoke(app, ["words", str(suite)], catch_exceptions=False)
    assert [w for w, _ in rows] == [line for line in plain.stdout.splitlines() if line and " words (" not in line]
    suite.write_text('description = "d"\nsource = "s"\nid = "toyworld-mini"\nood = ["toyworld-mini-far"]\n')
    assert CliRunner().invoke(app, ["words", str(suite)]).exit_code == 2  # no lexicon: a user error


def test_imagenet_suite_is_the_mcm_neglabel_protocol():
    bench = resolve_benchmark("imagenet")
    assert (bench.model, bench.pretrained, bench.interpolation) == ("ViT-B-16", "openai", "bilinear")
    assert bench.lexicon_options["style"] == "neglabel"
    assert bench.lexicon_options["exclude"] == ["noun.animal", "noun.food"]
