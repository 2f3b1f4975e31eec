"""The protocols' suites (issue 11): bundled files, OOD groups (validation, result rows, report), and every
new suite end to end on generated layouts with the tiny random model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from protocolkit import OPENIMAGE_TEST, build_protocol_root
from testkit import TINY
from typer.testing import CliRunner

from oodbench.benchmarks import BENCHMARKS, check_datasets, load_benchmark_file, with_ood
from oodbench.cli import app
from oodbench.errors import OodbenchError
from oodbench.report import render
from oodbench.results import ResultSet, summary_rows

IMAGENET_CLASS_SUITES = ("openood-imagenet", "imagenet100", "imagenet-v2", "imagenet-a", "imagenet-r",
                         "imagenet-sketch")
OTHER_SUITES = ("imagenet10", "imagenet20", "imagenet20-mcm", "waterbirds")
MOS = ["inaturalist", "sun", "places", "textures"]

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


# ---------------------------------------------------------------------------------------------------
# Bundled suites

def test_protocol_suites_are_bundled_with_their_sources():
    import oodbench.data.datasets  # noqa: F401

    for name in IMAGENET_CLASS_SUITES + OTHER_SUITES:
        spec = BENCHMARKS.get(name)
        check_datasets(spec)
        assert spec.source and spec.description and spec.model == "ViT-B-16" and spec.lexicon == "wordnet"
        excluded = spec.lexicon_options.get("exclude")
        assert excluded == (["noun.animal", "noun.food"] if name in IMAGENET_CLASS_SUITES else None), name
    oo = BENCHMARKS.get("openood-imagenet")
    assert oo.id == "imagenet-openood" and "OpenOOD v1.5" in oo.source
    assert oo.groups == {"near": ("ssb-hard", "ninco"),
                         "far": ("inaturalist", "textures-openood", "openimage-o")}
    assert [BENCHMARKS.get(n).ood for n in ("imagenet10", "imagenet20", "imagenet20-mcm")] == [
        ("imagenet20",), ("imagenet10",), ("imagenet10-train",)]
    for name in ("imagenet100", "imagenet-v2", "imagenet-a", "imagenet-r", "imagenet-sketch"):
        assert list(BENCHMARKS.get(name).ood) == MOS and BENCHMARKS.get(name).id == name
    assert BENCHMARKS.get("waterbirds").ood == ("placesbg",)


def test_list_benchmarks_shows_sources_and_groups():
    res = runner.invoke(app, ["list", "benchmarks"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    for name in IMAGENET_CLASS_SUITES + OTHER_SUITES:
        assert f"│ {name} " in res.output
    assert ("imagenet-openood vs near: ssb-hard, ninco; far: inaturalist, textures-openood, openimage-o"
            in res.output)
    assert "OpenOOD v1.5 ImageNet-1K benchmark (Zhang et al., 2023;" in res.output
    verbose = " ".join(invoke("list", "benchmarks", "-v").output.split())
    for name in IMAGENET_CLASS_SUITES + OTHER_SUITES:
        assert f" source: {BENCHMARKS.get(name).source} " in verbose


# ---------------------------------------------------------------------------------------------------
# Groups in suite files

GROUPED = ('description = "d"\nsource = "s"\nid = "imagenet"\nood = ["sun", "places", "textures"]\n'
           '[groups]\n')


@pytest.mark.parametrize(("groups", "problem"), [
    ('near = ["sun"]\nfar = ["places"]\n', "textures in no group"),
    ('near = ["sun", "places"]\nfar = ["places", "textures"]\n', "places in more than one group"),
    ('near = ["sun", "lsun"]\nfar = ["places", "textures"]\n', "lsun not in 'ood'"),
    ('Near = ["sun", "places", "textures"]\n', "group name 'Near'"),
    ('near = []\nfar = ["sun", "places", "textures"]\n', "'groups.near' must be a non-empty list"),
])
def test_groups_must_cover_every_ood_set_once(tmp_path, groups, problem):
    path = tmp_path / "mine.toml"
    path.write_text(GROUPED + groups)
    with pytest.raises(OodbenchError, match=problem) as err:
        load_benchmark_file(path)
    assert str(path) in str(err.value)


def test_groups_follow_an_ood_override():
    oo = BENCHMARKS.get("openood-imagenet")
    assert with_ood(oo, ["ninco", "openimage-o"]).groups == {"near": ("ninco",), "far": ("openimage-o",)}
    assert with_ood(oo, ["ninco", "ssb-hard"]).groups == {"near": ("ninco", "ssb-hard")}
    assert with_ood(oo, ["ninco", "sun"]).groups == {}  # sun has no group: no group rows at all


def row(ood: str, auroc: float, fpr: float, group: str | None = None) -> dict:
    return {"ood": ood, **({"group": group} if group else {}), "auroc": auroc, "fpr95": fpr, "aupr_in": 0.5,
            "aupr_out": 0.5, "id_accuracy": 0.7, "n_id": 10, "n_ood": 4}


def test_summary_rows_average_each_group_then_all_sets():
    rows = [row("a", 0.9, 0.2, "near"), row("b", 0.7, 0.6, "near"), row("c", 0.6, 0.9, "far")]
    near, far, overall = summary_rows(rows, {"near": ("a", "b"), "far": ("c",)})
    assert near["ood"] == "average-near" and near["group"] == "near"
    assert near["auroc"] == pytest.approx(0.8) and near["fpr95"] == pytest.approx(0.4) and near["n_ood"] == 8
    assert far["ood"] == "average-far" and far["auroc"] == pytest.approx(0.6)
    # the overall average is over the three sets, not over the two group means (0.7)
    assert overall["ood"] == "average" and "group" not in overall
    assert overall["auroc"] == pytest.approx(2.2 / 3) and overall["n_ood"] == 12
    assert summary_rows(rows[:1], {}) == [{**ResultSet.average_row(rows[:1])}]


def test_report_has_a_column_per_group_average():
    rows = [row("a", 0.9, 0.2, "near"), row("b", 0.7, 0.6, "near"), row("c", 0.6, 0.9, "far")]
    rows += summary_rows(rows, {"near": ("a", "b"), "far": ("c",)})
    md = render([ResultSet("openood-imagenet", {"slug": "tiny"}, "msp", {}, rows)], "md")
    header = [c.strip() for c in md.splitlines()[2].split("|")]
    assert header[1:-1] == ["method", "a FPR95", "a AUROC", "b FPR95", "b AUROC", "c FPR95", "c AUROC",
                            "avg near FPR95", "avg near AUROC", "avg far FPR95", "avg far AUROC",
                            "avg FPR95", "avg AUROC", "ID acc"]
    cells = [c.strip() for c in md.splitlines()[4].split("|")][2:-1]
    assert cells == ["20.00", "90.00", "60.00", "70.00", "90.00", "60.00", "40.00", "80.00", "90.00", "60.00",
                     f"{1.7 / 3 * 100:.2f}", f"{2.2 / 3 * 100:.2f}", "70.00"]


# ---------------------------------------------------------------------------------------------------
# End to end on generated layouts

@pytest.fixture(scope="session")
def protocol_root(tmp_path_factory) -> Path:
    return build_protocol_root(tmp_path_factory.mktemp("protocols"))


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """One feature cache for the end-to-end runs, so that sets shared by suites are encoded once."""
    return tmp_path_factory.mktemp("protocol_cache")


def run_suite(name: str, root: Path, cache: Path, out: Path, *extra: str) -> dict:
    res = invoke("run", "--method", "msp", "--id", name, "--model", TINY, "--pretrained", "none",
                 "--data-root", str(root), "--cache-dir", str(cache), "--out", str(out), "--workers", "0",
                 "--batch-size", "256", *extra)
    assert res.exit_code == 0, res.output
    return json.loads(next(out.rglob("msp*.json")).read_text())  # msp@<hash> when --ood changed the sets


def test_openood_imagenet_end_to_end_with_groups(protocol_root, shared_cache, tmp_path):
    data = run_suite("openood-imagenet", protocol_root, shared_cache, tmp_path / "out")
    rows = data["rows"]
    assert [(r["ood"], r.get("group")) for r in rows] == [
        ("ssb-hard", "near"), ("ninco", "near"), ("inaturalist", "far"), ("textures-openood", "far"),
        ("openimage-o", "far"), ("average-near", "near"), ("average-far", "far"), ("average", None)]
    assert [r["n_ood"] for r in rows[:5]] == [4, 4, 3, 4, len(OPENIMAGE_TEST)]
    assert rows[0]["n_id"] == 20
    assert rows[5]["auroc"] == pytest.approx((rows[0]["auroc"] + rows[1]["auroc"]) / 2)
    assert rows[-1]["auroc"] == pytest.approx(sum(r["auroc"] for r in rows[:5]) / 5)
    assert data["provenance"]["benchmark"]["groups"]["near"] == ["ssb-hard", "ninco"]
    assert data["provenance"]["datasets"]["imagenet-openood"]["image_list"] == "test_imagenet.txt"
    md = invoke("report", str(tmp_path / "out")).output
    assert "avg near FPR95" in md and "avg far AUROC" in md

    only = run_suite("openood-imagenet", protocol_root, shared_cache, tmp_path / "near", "--ood",
                     "ninco,ssb-hard")
    assert [r["ood"] for r in only["rows"]] == ["ninco", "ssb-hard", "average-near", "average"]


@pytest.mark.parametrize(("suite", "n_id", "n_ood"), [
    ("imagenet10", 10, [20]), ("imagenet20", 20, [10]), ("imagenet20-mcm", 20, [20]),
    ("imagenet100", 100, [3, 3, 3, 6]), ("imagenet-a", 200, [3, 3, 3, 6]), ("imagenet-r", 200, [3, 3, 3, 6]),
    ("waterbirds", 4, [4]),
    pytest.param("imagenet-v2", 1000, [3, 3, 3, 6], marks=pytest.mark.slow),
    pytest.param("imagenet-sketch", 1000, [3, 3, 3, 6], marks=pytest.mark.slow),
])
def test_protocol_suite_end_to_end(protocol_root, shared_cache, tmp_path, suite, n_id, n_ood):
    data = run_suite(suite, protocol_root, shared_cache, tmp_path / "out")
    rows = data["rows"]
    assert [r["n_ood"] for r in rows[:-1]] == n_ood and rows[-1]["ood"] == "average"
    assert all(r["n_id"] == n_id and "group" not in r for r in rows)
    assert all(0.0 <= r["auroc"] <= 1.0 and 0.0 <= r["id_accuracy"] <= 1.0 for r in rows)
    assert data["benchmark"] == suite
    assert data["provenance"]["benchmark"]["source"] == BENCHMARKS.get(suite).source


def test_an_ood_set_with_classes_reaches_the_scorer_as_minus_one(protocol_root, shared_cache, tmp_path,
                                                                 monkeypatch):
    import oodbench.runner as runner_module

    seen = {}
    original = runner_module.score_method

    def spy(name, scorer, ctx, id_enc, ood_enc, *args, **kwargs):
        seen["id"] = set(id_enc.labels.tolist())
        seen["ood"] = [set(e.labels.tolist()) for e in ood_enc]
        return original(name, scorer, ctx, id_enc, ood_enc, *args, **kwargs)

    monkeypatch.setattr(runner_module, "score_method", spy)
    # imagenet10 (ID of its own suite, cached with its labels) is the OOD set of imagenet20
    run_suite("imagenet10", protocol_root, shared_cache, tmp_path / "a")
    run_suite("imagenet20", protocol_root, shared_cache, tmp_path / "b")
    assert seen["id"] == set(range(20)) and seen["ood"] == [{-1}]
