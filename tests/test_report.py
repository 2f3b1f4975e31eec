"""Leaderboards: values carried from result files, and published reference numbers beside them."""

from __future__ import annotations

from pathlib import Path

import pytest

from oodbench.errors import OodbenchError
from oodbench.report import reference_table, render
from oodbench.results import ResultSet

REFERENCE = Path(__file__).parents[1] / "results" / "reference" / "imagenet_vit-b-16.csv"


def fake_result(method: str, auroc: float, fpr: float) -> ResultSet:
    rows = [{"ood": o, "auroc": auroc, "fpr95": fpr, "aupr_in": 0.5, "aupr_out": 0.5, "id_accuracy": 0.66,
             "n_id": 10, "n_ood": 10} for o in ("inaturalist", "sun", "places", "textures")]
    rows.append(ResultSet.average_row(rows))
    return ResultSet("imagenet", {"slug": "ViT-B-16_openai"}, method, {}, rows)


def test_reference_numbers_sit_beside_runs():
    md = render([fake_result("mcm", 0.9, 0.4)], "md", references=[REFERENCE])
    lines = [ln for ln in md.splitlines() if ln.startswith("| ")]
    published = [ln for ln in lines if ln.startswith("| mcm (published)")][0]  # not gl-mcm
    assert "42.74" in published and "90.77" in published  # MCM's published average FPR95 / AUROC
    ours = [ln for ln in lines if ln.startswith("| mcm ")][0]
    assert "40.00" in ours and "90.00" in ours and "66.00" in ours
    # CLIPN's published rows use LAION weights: another backbone, so another table
    assert md.count("### imagenet") == 2 and "ViT-B-16_laion2b_s34b_b88k" in md


def test_reference_only_and_bad_files(tmp_path):
    csv = render([], "csv", references=[REFERENCE])
    assert "neglabel (published)" in csv and "25.40" in csv
    bad = tmp_path / "bad.csv"
    bad.write_text("method,fpr95\nmcm,1\n")
    with pytest.raises(OodbenchError, match="lacks column"):
        reference_table(bad)
    with pytest.raises(OodbenchError, match="No result files"):
        render([], "md")
