"""A researcher's workflow end to end on generated folders: per-image scores that reproduce the metrics,
intervals in every row, runs that keep their identity, methods' exported decisions, comparisons."""

from __future__ import annotations

import gzip
import logging
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from testkit import TINY, write_images
from typer.testing import CliRunner

from oodbench.bootstrap import bootstrap_replicates, intervals, mean_replicates
from oodbench.cli import app
from oodbench.compare import compare
from oodbench.errors import OodbenchError
from oodbench.metrics import METRIC_KEYS
from oodbench.report import render
from oodbench.results import ResultSet
from oodbench.scorefile import metrics_from_scores, read_scores, split_scores

runner = CliRunner()
WORDS = ["house", "tree", "car", "ocean", "music", "chair", "cloud", "river", "guitar", "lamp", "shiny\tadj",
         "wooden\tadj", "ancient\tadj", "tiny\tadj"]


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def run_args(bench, out, *extra):
    return ["run", "--id", f"folder:{bench['id']}", "--ood", f"folder:{bench['ood_a']},folder:{bench['ood_b']}",
            "--model", TINY, "--pretrained", "none", "--out", str(out), "--workers", "0", "--batch-size", "8",
            "--bootstrap", "50", *extra]


@pytest.fixture(scope="module")
def scored_once(tmp_path_factory):
    """MCM with default settings, NegLabel and ZOC-lite with a words file and ``--tag words``, all with
    saved scores, on conftest's generated layout (3 classes x 6 images; 8 and 5 OOD images)."""
    root = tmp_path_factory.mktemp("workflow")
    for k, (name, colour) in enumerate([("red_square", (220, 30, 30)), ("green_square", (30, 200, 40)),
                                        ("blue_square", (30, 40, 220))]):
        write_images(root / "id" / name, 6, colour, seed=k)
    write_images(root / "ood_a", 8, (240, 240, 240), seed=10)
    write_images(root / "ood_b" / "nested", 5, (0, 0, 0), seed=11)
    bench = {"id": root / "id", "ood_a": root / "ood_a", "ood_b": root / "ood_b"}
    words = root / "words.txt"
    words.write_text("\n".join(WORDS) + "\n")
    out = root / "results"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OODBENCH_CACHE", str(root / "cache"))
        res = invoke(*run_args(bench, out, "-m", "mcm", "--save-scores"))
        assert res.exit_code == 0, res.output
        res = invoke(*run_args(bench, out, "-m", "neglabel", "-m", "zoc-lite", "--words", str(words),
                               "-p", "neglabel.groups=2", "-p", "neglabel.eta=0.5", "-p", "zoc-lite.k=3",
                               "--save-scores", "--tag", "words"))
        assert res.exit_code == 0, res.output
    return {"out": out, "bench": bench, "words": words, "cache": root / "cache"}


@pytest.fixture
def scored(scored_once, tmp_path, monkeypatch):
    """A private copy of the module's results (tests change them), sharing its feature cache."""
    out = tmp_path / "results"
    shutil.copytree(scored_once["out"], out)
    monkeypatch.setenv("OODBENCH_CACHE", str(scored_once["cache"]))
    return {**scored_once, "out": out, "folder": next(out.rglob("mcm.json")).parent}


def test_saved_scores_reproduce_the_results_metrics_and_intervals(scored):
    for path in sorted(scored["folder"].glob("*.json")):
        result = ResultSet.load(path)
        frame = read_scores(path.with_name(f"{path.stem}.scores.csv.gz"))
        assert list(frame.columns) == ["dataset", "path", "label", "score"]
        # metrics recomputed from the file equal the result's, exactly (float64 written with every digit)
        recomputed = metrics_from_scores(frame, result.id_set)
        rows = {r["ood"]: r for r in result.rows}
        for ood, metrics in recomputed.items():
            for k in METRIC_KEYS:
                assert metrics[k] == rows[ood][k], (path.name, ood, k)
        # and so do the intervals, from the same seeded resamples
        s_id, oods = split_scores(frame, result.id_set)
        reps = {o: bootstrap_replicates(s_id, s, id_name=result.id_set, ood_name=o, resamples=50, seed=0)
                for o, s in oods.items()}
        accuracy = rows["average"]["ci95"].pop("id_accuracy")  # a classifier's: the ID accuracy's interval
        for o in oods:
            assert rows[o]["ci95"].pop("id_accuracy") == accuracy  # the same ID resamples for every set
            assert rows[o]["ci95"] == intervals(reps[o])
        assert rows["average"]["ci95"] == intervals(mean_replicates(list(reps.values())))
        assert accuracy[0] <= rows["average"]["id_accuracy"] <= accuracy[1]
        assert result.provenance["bootstrap"]["resamples"] == 50 and result.provenance["bootstrap"]["seed"] == 0


def test_scores_table_names_every_image(scored):
    bench = scored["bench"]
    frame = read_scores(scored["folder"] / "mcm.scores.csv.gz")
    id_rows = frame[frame["dataset"] == f"folder:{bench['id']}"]
    assert len(id_rows) == 18 and set(id_rows["label"]) == {0, 1, 2}
    # paths relative to the set's root, with the class folder: label 0 is the first class folder
    assert set(id_rows.loc[id_rows["label"] == 0, "path"]) == {f"blue_square/img_{i:03d}.png" for i in range(6)}
    ood_b = frame[frame["dataset"] == f"folder:{bench['ood_b']}"]
    assert sorted(ood_b["path"]) == [f"nested/img_{i:03d}.png" for i in range(5)]
    assert (ood_b["label"] == -1).all()
    # gzip without a time stamp: identical tables give identical bytes
    raw = (scored["folder"] / "mcm.scores.csv.gz").read_bytes()
    assert gzip.decompress(raw).startswith(b"dataset,path,label,score\n") and raw[4:8] == b"\0\0\0\0"


def test_runs_keep_their_identity(scored):
    folder = scored["folder"]
    assert sorted(p.name for p in folder.glob("*.json")) == ["mcm.json", "neglabel@words.json", "zoc-lite@words.json"]
    neg = ResultSet.load(folder / "neglabel@words.json")
    assert neg.label == "neglabel@words" and neg.variant == "words"
    assert neg.settings["params"] == {"groups": 2, "eta": 0.5} and len(neg.settings["words_sha256"]) == 64
    # other parameters without a tag: a hash in the name, next to the default run, which stays as it was
    before = (folder / "mcm.json").read_bytes()
    res = invoke(*run_args(scored["bench"], scored["out"], "-m", "mcm", "-p", "mcm.temperature=2"))
    assert res.exit_code == 0, res.output
    hashed = [p for p in folder.glob("mcm@*.json")]
    assert len(hashed) == 1 and len(hashed[0].stem) == len("mcm@") + 8
    assert (folder / "mcm.json").read_bytes() == before
    assert ResultSet.load(hashed[0]).settings == {"params": {"temperature": 2.0}}
    # the default value given explicitly is the default run; another FPR convention is not
    res = invoke(*run_args(scored["bench"], scored["out"], "-m", "mcm", "-p", "mcm.temperature=1",
                           "--fpr-convention", "interpolate", "--tag", "interp"))
    assert res.exit_code == 0
    assert ResultSet.load(folder / "mcm@interp.json").settings == {"fpr_convention": "interpolate"}
    md = render([ResultSet.load(p) for p in sorted(folder.glob("mcm*.json"))], "md")
    assert md.count("| mcm ") == 1 and f"| {hashed[0].stem} " in md and "| mcm@interp " in md
    # a run without --save-scores takes the stale scores file away with it
    assert (folder / "mcm.scores.csv.gz").is_file()
    assert invoke(*run_args(scored["bench"], scored["out"], "-m", "mcm")).exit_code == 0
    assert not (folder / "mcm.scores.csv.gz").exists()
    with pytest.raises(OodbenchError, match="--save-scores"):
        ResultSet.load(folder / "mcm.json").load_scores()


def test_report_warns_when_two_files_claim_a_row(scored, tmp_path, caplog):
    copy = tmp_path / "elsewhere" / "mcm.json"
    copy.parent.mkdir()
    copy.write_text((scored["folder"] / "mcm.json").read_text())
    results = [ResultSet.load(scored["folder"] / "mcm.json"), ResultSet.load(copy)]
    with caplog.at_level(logging.WARNING, logger="oodbench.report"):
        md = render(results, "md")
    assert md.count("| mcm ") == 1
    warned = [r.getMessage() for r in caplog.records if "claim" in r.getMessage()]
    assert len(warned) == 1 and str(copy) in warned[0] and str(scored["folder"] / "mcm.json") in warned[0]


def test_a_scores_file_from_another_run_is_refused(scored):
    folder = scored["folder"]
    result = ResultSet.load(folder / "mcm.json")
    other = folder / "neglabel@words.scores.csv.gz"
    (folder / "mcm.scores.csv.gz").write_bytes(other.read_bytes())
    with pytest.raises(OodbenchError, match="do not belong"):
        result.load_scores()


def test_neglabel_exports_its_negatives_and_zoc_lite_its_candidates(scored):
    folder = scored["folder"]
    neg = pd.read_csv(folder / "neglabel@words.negatives.tsv", sep="\t")
    assert list(neg.columns) == ["word", "pos", "quantile", "rank", "group"]
    # groups=2 over 7 negatives: 3 in each group, the last one (the 7 mod 2 left over) dropped
    assert sorted(neg["group"].value_counts().items()) == [(-1, 1), (0, 3), (1, 3)] and neg["group"].iloc[-1] == -1
    prov = ResultSet.load(folder / "neglabel@words.json").provenance["method"]
    assert len(neg) == prov["negatives"] == 7  # floor(0.5 * 10) nouns + floor(0.5 * 4) adjectives
    assert list(neg["word"][:5]) == prov["negatives_head"][:5]
    assert list(neg["pos"]) == ["noun"] * 5 + ["adj"] * 2
    for _, part in neg.groupby("pos"):  # ranked by ascending quantile within each part of speech
        assert part["quantile"].is_monotonic_increasing and list(part["rank"]) == list(range(1, len(part) + 1))
    cand = pd.read_csv(folder / "zoc-lite@words.candidates.tsv", sep="\t")
    assert list(cand.columns) == ["dataset", "rank", "word", "images", "share"]
    sizes = {f"folder:{scored['bench'][k]}": n for k, n in (("id", 18), ("ood_a", 8), ("ood_b", 5))}
    for name, part in cand.groupby("dataset"):
        # every image retrieves k = 3 distinct words, and the 10 nouns are all listed (fewer than 100)
        assert part["images"].sum() == 3 * sizes[name]
        assert part["images"].is_monotonic_decreasing
        assert np.allclose(part["share"], part["images"] / sizes[name])


def test_negatives_export_quantiles_are_the_mining_quantiles(tiny_backbone):
    from oodbench.lexicon import Lexicon
    from oodbench.methods.neglabel import NegLabel, similarity_quantile
    from oodbench.scorer import FitContext

    words = [w.split("\t")[0] for w in WORDS]
    pos = ["adj" if "\t" in w else "noun" for w in WORDS]
    lex = Lexicon(words, pos, source="test words")
    ctx = FitContext(backbone=tiny_backbone, class_names=["red square", "green square"], templates=None,
                     device=torch.device("cpu"), seed=0, cache=None, lexicon_loader=lambda: lex)
    scorer = NegLabel(eta=0.5, groups=1)
    scorer.fit(ctx)
    table = scorer.exports({})["negatives"]
    prompts = [("This is a {} photo" if p == "adj" else "the nice {}").format(w)
               for w, p in zip(table["word"], table["pos"])]
    feats = tiny_backbone.encode_texts(prompts)
    id_feats = tiny_backbone.class_text_features(ctx.class_names, ["the nice {}"])
    np.testing.assert_allclose(table["quantile"], similarity_quantile(feats, id_feats, 0.95).numpy(), atol=1e-6)


def test_retrieval_counts_equal_a_brute_force_count():
    from oodbench.methods.zoc_lite import retrieval_counts

    g = torch.Generator().manual_seed(0)
    images = torch.nn.functional.normalize(torch.randn(9, 16, generator=g), dim=1)
    vocab = torch.nn.functional.normalize(torch.randn(12, 16, generator=g), dim=1)
    want = np.zeros(12, dtype=np.int64)
    for row in (images @ vocab.T).numpy():
        want[np.argsort(-row)[:4]] += 1
    assert retrieval_counts(images, vocab, 4).tolist() == want.tolist()


def test_a_run_on_fewer_ood_sets_than_its_suite_is_another_run(scored, tmp_path):
    # `--ood SET` on a suite wrote the suite's own result file: the full run was silently overwritten
    # by a run on one of its sets.
    bench = scored["bench"]
    suite = tmp_path / "mine.toml"
    suite.write_text(f'description = "d"\nsource = "s"\nid = "folder:{bench["id"]}"\n'
                     f'ood = ["folder:{bench["ood_a"]}", "folder:{bench["ood_b"]}"]\n')
    out = tmp_path / "out"
    common = ["run", "-m", "mcm", "--id", str(suite), "--model", TINY, "--pretrained", "none", "--out", str(out),
              "--workers", "0", "--bootstrap", "0"]
    assert invoke(*common).exit_code == 0
    folder = next(out.rglob("mcm.json")).parent
    full = (folder / "mcm.json").read_bytes()
    assert invoke(*common, "--ood", f"folder:{bench['ood_b']}").exit_code == 0
    assert (folder / "mcm.json").read_bytes() == full
    (subset,) = folder.glob("mcm@*.json")
    part = ResultSet.load(subset)
    assert part.settings == {"ood": [f"folder:{bench['ood_b']}"]}
    assert [r["ood"] for r in part.rows] == [f"folder:{bench['ood_b']}", "average"]
    # the suite's own sets in another order are the suite's run
    assert invoke(*common, "--ood", f"folder:{bench['ood_b']},folder:{bench['ood_a']}").exit_code == 0
    assert sorted(p.name for p in folder.glob("mcm*.json")) == sorted(["mcm.json", subset.name])
    # the report shows the set the subset run left out as "–", not "nan"
    md = render([ResultSet.load(p) for p in sorted(folder.glob("mcm*.json"))], "md")
    assert "nan" not in md and "–" in md


def test_compare_is_paired_and_reported(scored):
    folder = scored["folder"]
    a, b = ResultSet.load(folder / "mcm.json"), ResultSet.load(folder / "neglabel@words.json")
    frame = compare(a, b, resamples=40, seed=1)
    s_a, o_a = split_scores(a.load_scores(), a.id_set)
    s_b, o_b = split_scores(b.load_scores(), b.id_set)
    for ood in o_a:
        ra = bootstrap_replicates(s_a, o_a[ood], id_name=a.id_set, ood_name=ood, resamples=40, seed=1)
        rb = bootstrap_replicates(s_b, o_b[ood], id_name=a.id_set, ood_name=ood, resamples=40, seed=1)
        row = frame[(frame["ood"] == ood) & (frame["metric"] == "auroc")].iloc[0]
        assert [row["ci95_low"], row["ci95_high"]] == pytest.approx(
            list(np.percentile(rb["auroc"] - ra["auroc"], [2.5, 97.5])), abs=1e-12)
        assert row["difference"] == pytest.approx(row["b"] - row["a"])
    assert list(frame["ood"].unique())[-1] == "average"
    same = compare(a, a, resamples=20)
    assert (same["difference"] == 0).all() and (same["ci95_low"] == 0).all() and not same["excludes_zero"].any()

    res = invoke("report", str(scored["out"]), "--compare", "mcm", "neglabel@words", "--resamples", "40")
    assert res.exit_code == 0, res.output
    assert "neglabel@words vs mcm" in res.output and "95% CI" in res.output and "avg" in res.output
    res = invoke("report", str(scored["out"]), "--compare", str(folder / "mcm.json"), "zoc-lite@words",
                 "--format", "csv", "--resamples", "20")
    assert res.exit_code == 0 and res.output.startswith("benchmark,backbone,a,b,ood,metric")
    res = runner.invoke(app, ["report", str(scored["out"]), "--compare", "mcm", "nothing"])
    assert res.exit_code == 2 and "neither a result file" in res.output


def test_compare_pairs_a_stream_methods_own_streams():
    # A test-time method's table holds its ID images once per OOD set's stream and repeat: compare called
    # AdaNeg vs MCM "scored on different images", and two stream methods' AUROC came from all streams and
    # repeats pooled (0.924 for AdaNeg's near set on toyworld, whose row says 0.918).
    from oodbench.metrics import ood_metrics
    from oodbench.scorefile import scores_table

    rng = np.random.default_rng(3)
    n_id, n_ood = 50, 30
    ids, oods = [f"i/{k}" for k in range(n_id)], [f"o/{k}" for k in range(n_ood)]
    static_id, static_ood = rng.normal(1, 1, n_id), {}
    static = pd.concat([scores_table("id", ids, np.zeros(n_id), static_id),
                        *(scores_table(o, oods, -np.ones(n_ood), static_ood.setdefault(o, rng.normal(0, 1, n_ood)))
                          for o in ("near", "far"))])
    drawn, parts = {}, []
    for repeat in (0, 1, 2):
        for o, shift in (("near", 0.6), ("far", 2.5)):  # each stream's ID scores differ
            drawn[o, repeat] = rng.normal(shift, 1, n_id), rng.normal(0, 1, n_ood)
            part = pd.concat([scores_table("id", ids, np.zeros(n_id), drawn[o, repeat][0]),
                              scores_table(o, oods, -np.ones(n_ood), drawn[o, repeat][1])])
            parts.append(part.sample(frac=1, random_state=repeat).assign(stream=o, repeat=repeat))  # any row order
    rows = [{"ood": o} for o in ("near", "far", "average")]
    a = ResultSet("b", {"slug": "m"}, "mcm", {}, rows, provenance={"benchmark": {"id": "id"}}, scores=static)
    b = ResultSet("b", {"slug": "m"}, "adaneg", {}, rows, provenance={"benchmark": {"id": "id"}},
                  scores=pd.concat(parts, ignore_index=True))
    frame = compare(a, b, resamples=30, seed=2)
    for o in ("near", "far"):
        want_b = np.mean([ood_metrics(*drawn[o, r])["auroc"] for r in range(3)])
        row = frame[(frame["ood"] == o) & (frame["metric"] == "auroc")].iloc[0]
        assert row["b"] == pytest.approx(want_b, abs=1e-12)
        assert row["a"] == pytest.approx(ood_metrics(static_id, static_ood[o])["auroc"], abs=1e-12)
        common = {"id_name": "id", "ood_name": o, "resamples": 30, "seed": 2}
        rb = mean_replicates([bootstrap_replicates(*drawn[o, r], **common) for r in range(3)])
        ra = bootstrap_replicates(static_id, static_ood[o], **common)
        assert [row["ci95_low"], row["ci95_high"]] == pytest.approx(
            list(np.percentile(rb["auroc"] - ra["auroc"], [2.5, 97.5])), abs=1e-12)
    same = compare(b, b, resamples=20)
    assert (same["difference"] == 0).all() and (same["ci95_high"] == 0).all()


def test_report_ci_shows_the_intervals(scored):
    res = invoke("report", str(scored["folder"] / "mcm.json"), "--ci")
    assert res.exit_code == 0
    row = ResultSet.load(scored["folder"] / "mcm.json").rows[-1]
    low, high = row["ci95"]["auroc"]
    assert f"{row['auroc'] * 100:.2f} [{low * 100:.2f}, {high * 100:.2f}]" in res.output


def test_bad_tag_and_bootstrap_are_user_errors(folder_benchmark, tmp_path):
    res = runner.invoke(app, run_args(folder_benchmark, tmp_path, "-m", "mcm", "--tag", "a/b"))
    assert res.exit_code == 2 and "--tag" in res.output
    assert not list(tmp_path.rglob("*.json"))


def test_group_average_rows_carry_intervals_of_their_sets(scored, tmp_path):
    bench = scored["bench"]
    suite = tmp_path / "grouped.toml"
    suite.write_text(f'description = "grouped"\nsource = "test"\nid = "folder:{bench["id"]}"\n'
                     f'ood = ["folder:{bench["ood_a"]}", "folder:{bench["ood_b"]}"]\n'
                     f'[groups]\nnear = ["folder:{bench["ood_a"]}"]\nfar = ["folder:{bench["ood_b"]}"]\n')
    res = invoke("run", "-m", "mcm", "--id", str(suite), "--model", TINY, "--pretrained", "none", "--workers", "0",
                 "--out", str(tmp_path / "g"), "--bootstrap", "30", "--save-scores")
    assert res.exit_code == 0, res.output
    result = ResultSet.load(next((tmp_path / "g").rglob("mcm.json")))
    rows = {r["ood"]: r for r in result.rows}
    assert list(rows)[2:] == ["average-near", "average-far", "average"]
    s_id, oods = split_scores(result.load_scores(), result.id_set)
    reps = {o: bootstrap_replicates(s_id, s, id_name=result.id_set, ood_name=o, resamples=30) for o, s in oods.items()}
    accuracy = rows["average"]["ci95"].pop("id_accuracy")
    assert rows["average-near"]["ci95"].pop("id_accuracy") == accuracy
    assert rows["average-near"]["ci95"] == intervals(reps[f"folder:{bench['ood_a']}"])
    assert rows["average"]["ci95"] == intervals(mean_replicates(list(reps.values())))
