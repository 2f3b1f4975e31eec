"""`oodbench plot`: ROC curves and histograms from saved scores, named for what they show."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from oodbench.cli import app
from oodbench.errors import OodbenchError
from oodbench.plots import figure_name, plot_results
from oodbench.results import ResultSet
from oodbench.scorefile import scores_table


def run_with_scores(method: str, shift: float, tmp_path, rng) -> ResultSet:
    s_id, near, far = rng.normal(shift, 1, 60), rng.normal(0, 1, 40), rng.normal(-2, 1, 30)
    scores = pd.concat([scores_table("cifar10", [f"test/{i}" for i in range(60)], np.zeros(60), s_id),
                        scores_table("cifar100", [f"test/{i}" for i in range(40)], -np.ones(40), near),
                        scores_table("svhn", [f"test/{i}" for i in range(30)], -np.ones(30), far)])
    rows = [{"ood": o, "auroc": 0.5, "fpr95": 0.5} for o in ("cifar100", "svhn", "average")]
    r = ResultSet("cifar10", {"slug": "ViT-B-16_openai"}, method, {}, rows,
                  provenance={"benchmark": {"id": "cifar10"}}, scores=scores)
    r.save(tmp_path / "results" / "cifar10" / "ViT-B-16_openai" / f"{method}.json", scores=True)
    return ResultSet.load(r.path)


def test_roc_and_histograms_from_saved_scores(tmp_path):
    rng = np.random.default_rng(0)
    results = [run_with_scores("mcm", 1.0, tmp_path, rng), run_with_scores("neg_label", 2.0, tmp_path, rng)]
    ResultSet("cifar10", {"slug": "ViT-B-16_openai"}, "msp", {}, [{"ood": "average", "auroc": 0.5, "fpr95": 0.5}]).save(
        tmp_path / "results" / "msp.json")  # no scores: left out with a warning
    res = CliRunner().invoke(app, ["plot", str(tmp_path / "results"), "--out", str(tmp_path / "plots")])
    assert res.exit_code == 0, res.output
    written = sorted((tmp_path / "plots").glob("*.png"))
    names = [p.name for p in written]
    assert names == ["hist_cifar10_ViT-B-16-openai_mcm.png", "hist_cifar10_ViT-B-16-openai_neg-label.png",
                     "roc_cifar10_ViT-B-16-openai_cifar100.png", "roc_cifar10_ViT-B-16-openai_svhn.png"]
    for p in written:
        with Image.open(p) as im:
            assert im.format == "PNG" and im.width > 500 and im.height > 400
    index = json.loads((tmp_path / "plots" / "index.json").read_text())
    assert {e["file"] for e in index} == set(names)
    roc = next(e for e in index if e["file"].startswith("roc_") and e["subject"] == "svhn")
    assert roc["benchmark"] == "cifar10" and roc["backbone"] == "ViT-B-16_openai" and "svhn" in roc["caption"]
    # a second call with another format adds to the index
    plot_results(results[:1], tmp_path / "plots", fmt="svg")
    index = json.loads((tmp_path / "plots" / "index.json").read_text())
    assert len(index) == 4 + 3 and (tmp_path / "plots" / "roc_cifar10_ViT-B-16-openai_svhn.svg").is_file()
    svg = (tmp_path / "plots" / "roc_cifar10_ViT-B-16-openai_svhn.svg").read_text()
    assert "ROC: cifar10 (ID) vs svhn (OOD)" in svg and "AUROC" in svg


def test_nothing_to_plot_is_a_user_error(tmp_path):
    with pytest.raises(OodbenchError, match="--save-scores"):
        plot_results([ResultSet("b", {"slug": "m"}, "mcm", {}, [{"ood": "average"}])], tmp_path)
    with pytest.raises(OodbenchError, match="figure format"):
        plot_results([], tmp_path, fmt="jpg")
    assert figure_name("roc", "folder:/data/x y", "m_w", "a") == "roc_folder-data-x-y_m-w_a.png"


def test_matplotlib_is_imported_by_the_plot_command_only(tmp_path):
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom oodbench.cli import app\n"
            "r = CliRunner().invoke(app, ['report', '--help'])\nassert r.exit_code == 0\n"
            "print('matplotlib' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def stream_frame(rng) -> tuple[pd.DataFrame, dict]:
    """A test-time method's scores: the ID images are scored anew in each OOD set's stream (two repeats)."""
    parts, drawn = [], {}
    for repeat in (0, 1):
        for stream, shift in (("cifar100", 0.5), ("svhn", 3.0)):  # the far stream's ID scores sit higher
            s_id, s_ood = rng.normal(shift, 1, 60), rng.normal(0, 1, 40)
            drawn[stream, repeat] = (s_id, s_ood)
            part = pd.concat([scores_table("cifar10", [f"test/{i}" for i in range(60)], np.zeros(60), s_id),
                              scores_table(stream, [f"test/{i}" for i in range(40)], -np.ones(40), s_ood)])
            parts.append(part.assign(stream=stream, repeat=repeat))
    return pd.concat(parts, ignore_index=True), drawn


def test_a_stream_methods_sets_pair_with_their_own_streams_id_scores(tmp_path):
    # The far set's ROC and histogram took the ID scores of the near set's stream.
    from sklearn.metrics import roc_auc_score

    from oodbench.scorefile import score_pairs

    frame, drawn = stream_frame(np.random.default_rng(0))
    pairs = score_pairs(frame, "cifar10")
    for stream in ("cifar100", "svhn"):
        np.testing.assert_array_equal(pairs[stream][0], drawn[stream, 0][0])
        np.testing.assert_array_equal(pairs[stream][1], drawn[stream, 0][1])
    rows = [{"ood": o, "auroc": 0.5, "fpr95": 0.5} for o in ("cifar100", "svhn", "average")]
    r = ResultSet("cifar10", {"slug": "m"}, "adaneg", {}, rows, provenance={
        "benchmark": {"id": "cifar10"}, "stream": {"repeats": 2}}, scores=frame)
    plot_results([r], tmp_path, fmt="svg")
    s_id, s_ood = drawn["svhn", 0]
    auroc = 100 * roc_auc_score(np.r_[np.ones(60), np.zeros(40)], np.r_[s_id, s_ood])
    assert f"AUROC {auroc:.2f}" in (tmp_path / "roc_cifar10_m_svhn.svg").read_text()
    index = json.loads((tmp_path / "index.json").read_text())
    assert all("first seeded stream order" in e["caption"] for e in index)
