"""The Python API: ``oodbench.evaluate`` and ``oodbench.load_results``, and an import that stays light."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest
from testkit import TINY

import oodbench
from oodbench.errors import OodbenchError
from oodbench.metrics import METRIC_KEYS
from oodbench.scorefile import metrics_from_scores


def test_import_oodbench_and_its_api_names_load_no_torch(tmp_path):
    code = ("import sys, oodbench\n"
            "assert callable(oodbench.evaluate) and callable(oodbench.load_results) and oodbench.Evaluation\n"
            "assert oodbench.ood_metrics([1.0], [0.0])['auroc'] == 1.0\n"
            "print(sorted(m for m in ('torch', 'open_clip', 'matplotlib', 'oodbench.runner') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OODBENCH_NO_PROGRESS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    with pytest.raises(AttributeError):
        oodbench.no_such_thing  # noqa: B018


def test_evaluate_returns_metrics_scores_and_comparisons(folder_benchmark, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ev = oodbench.evaluate(["msp", "mcm"], f"folder:{folder_benchmark['id']}",
                           ood=[f"folder:{folder_benchmark['ood_a']}", f"folder:{folder_benchmark['ood_b']}"],
                           model=TINY, pretrained="none", params={"mcm": {"temperature": 2}}, workers=0,
                           bootstrap=30)
    assert not (tmp_path / "results").exists()  # no out: nothing written
    frame = ev.to_frame()
    assert list(frame.columns[:4]) == ["benchmark", "backbone", "method", "ood"]
    assert {"auroc", "fpr95", "aupr_in", "aupr_out", "id_accuracy", "auroc_ci95_low", "fpr95_ci95_high"} <= set(
        frame.columns)
    assert len(frame) == 2 * 3 and set(frame["method"]) == {"msp", f"mcm@{ev.result('mcm').variant}"}
    assert (frame["auroc_ci95_low"] <= frame["auroc_ci95_high"]).all()
    scores = ev.scores
    assert list(scores.columns) == ["benchmark", "backbone", "method", "dataset", "path", "label", "score"]
    assert len(scores) == 2 * (18 + 8 + 5)
    for r in ev.results:  # the per-image table reproduces every row
        mine = scores[scores["method"] == r.label]
        again = metrics_from_scores(mine, r.id_set)
        for row in r.rows[:-1]:
            assert {k: again[row["ood"]][k] for k in METRIC_KEYS} == {k: row[k] for k in METRIC_KEYS}
    diff = ev.compare("msp", "mcm", resamples=20)
    assert set(diff["metric"]) == set(METRIC_KEYS) and list(diff["ood"])[-1] == "average"
    assert ev.exports == {"msp": {}, ev.result("mcm").label: {}}
    with pytest.raises(OodbenchError, match="No result"):
        ev.result("neglabel")


def test_load_results_gives_the_same_frame(folder_benchmark, tmp_path):
    out = tmp_path / "out"
    ev = oodbench.evaluate("mcm", f"folder:{folder_benchmark['id']}", ood=[f"folder:{folder_benchmark['ood_a']}"],
                           model=TINY, pretrained="none", workers=0, bootstrap=10, out=out, save_scores=True)
    loaded = oodbench.load_results(out)
    pd.testing.assert_frame_equal(loaded, ev.to_frame())
    assert oodbench.load_results(str(out)).shape == loaded.shape  # a string path, a folder
    with pytest.raises(OodbenchError, match="No such result"):
        oodbench.load_results(tmp_path / "missing")


def test_bad_arguments_are_user_errors(folder_benchmark):
    with pytest.raises(OodbenchError, match="--ood"):
        oodbench.evaluate("mcm", f"folder:{folder_benchmark['id']}")
    with pytest.raises(OodbenchError, match="Unknown FPR95"):
        oodbench.evaluate("mcm", "toyworld", fpr_convention="closest")
    with pytest.raises(OodbenchError, match="--tag"):
        oodbench.evaluate("mcm", "toyworld", tag="../x")
