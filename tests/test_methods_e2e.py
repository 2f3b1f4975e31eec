"""`oodbench run --method neglabel --method zoc-lite` end to end on generated folders."""

from __future__ import annotations

import json

import pytest
from testkit import TINY
from typer.testing import CliRunner

from oodbench.cli import app

runner = CliRunner()
WORDS = ["house", "tree", "car", "ocean", "music", "chair", "cloud", "river", "guitar", "lamp",
         "mountain", "bread", "window", "garden", "engine", "paper", "stone", "bridge", "candle", "forest"]


def run_args(bench, tmp_path, *extra):
    return ["run", "-m", "neglabel", "-m", "zoc-lite", "--id", f"folder:{bench['id']}",
            "--ood", f"folder:{bench['ood_a']}", "--model", TINY, "--pretrained", "none", "--workers", "0",
            "--out", str(tmp_path / "out"), *extra]


def test_neglabel_and_zoc_lite_with_a_word_file(folder_benchmark, tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("# candidate words\n" + "\n".join(WORDS[:15]) + "\n" + "\n".join(
        f"{w}\tadj" for w in ["shiny", "wooden", "ancient", "tiny", "purple"]) + "\nred square\n")
    res = runner.invoke(app, run_args(folder_benchmark, tmp_path, "--words", str(words),
                                      "-p", "neglabel.groups=2", "-p", "neglabel.eta=0.4", "-p", "zoc-lite.k=3"),
                        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    # parameters and a words file differ from the defaults: the files carry a hash of them in their names
    neg = json.loads(next((tmp_path / "out").rglob("neglabel@*.json")).read_text())
    assert neg["settings"]["params"] == {"groups": 2, "eta": 0.4} and "words_sha256" in neg["settings"]
    prov = neg["provenance"]["method"]
    # floor(0.4 * 15) nouns + floor(0.4 * 5) adjectives; 'red square' equals an ID class and is dropped
    assert (prov["noun_negatives"], prov["adj_negatives"]) == (6, 2)
    assert prov["candidates_equal_to_id_names"] == 1
    assert set(prov["negatives_head"]) <= set(WORDS) | {"shiny", "wooden", "ancient", "tiny", "purple"}
    assert neg["params"]["groups"] == 2 and neg["params"]["eta"] == 0.4
    zoc = json.loads(next((tmp_path / "out").rglob("zoc-lite@*.json")).read_text())
    assert zoc["params"]["k"] == 3
    for data in (neg, zoc):
        assert 0.0 <= data["rows"][0]["auroc"] <= 1.0 and data["rows"][0]["id_accuracy"] is not None


def test_custom_benchmark_without_words_needs_a_lexicon_source(folder_benchmark, tmp_path, monkeypatch):
    monkeypatch.setenv("OODBENCH_WORDNET_DIR", str(tmp_path / "no-wordnet"))
    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "no-nltk-data")])
    res = runner.invoke(app, run_args(folder_benchmark, tmp_path))
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert "wordnet-base" in text and "--words" in text


@pytest.mark.slow
def test_neglabel_mines_from_wordnet(folder_benchmark, tmp_path):
    """The real WordNet lexicon (Debian files or nltk data): ~70k prompts through the tiny text tower."""
    from oodbench.errors import OodbenchError
    from oodbench.lexicon import load_lexicon

    try:
        lex = load_lexicon("wordnet", {}, cache_dir=tmp_path / "cache")
    except OodbenchError as exc:  # pragma: no cover - the test command installs WordNet
        pytest.skip(f"no WordNet here: {exc}")
    res = runner.invoke(app, run_args(folder_benchmark, tmp_path, "-m", "mcm"), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    neg = json.loads(next((tmp_path / "out").rglob("neglabel.json")).read_text())
    prov = neg["provenance"]["method"]
    assert prov["lexicon_words"] == len(lex) > 70_000
    assert prov["negatives"] == prov["noun_negatives"] + prov["adj_negatives"] > 10_000
    assert prov["negatives_dropped_for_grouping"] == prov["negatives"] % 100
