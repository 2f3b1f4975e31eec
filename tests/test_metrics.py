"""Metrics against hand-computed values and independent brute-force computations (ties included)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oodbench.errors import OodbenchError
from oodbench.metrics import decision_rates, id_accuracy, ood_metrics


def brute_auroc(s_id, s_ood):
    """P(score_id > score_ood) + 0.5 P(equal), over all pairs."""
    d = np.asarray(s_id, float)[:, None] - np.asarray(s_ood, float)[None, :]
    return float(np.mean((d > 0) + 0.5 * (d == 0)))


def brute_fpr_nearest(s_id, s_ood, level=0.95):
    """Thresholds from the loosest with full ID recall upwards; first whose recall is nearest ``level``."""
    s_id, s_ood = np.asarray(s_id, float), np.asarray(s_ood, float)
    thresholds = np.unique(np.concatenate([s_id, s_ood]))  # ascending
    thresholds = thresholds[thresholds >= s_id.min()]  # accept-if-score>=t; t <= min(id) has full recall
    thresholds = thresholds[np.argmax(thresholds >= s_id.min()):]
    best, best_gap = None, np.inf
    for t in thresholds:
        tpr = np.mean(s_id >= t)
        gap = abs(tpr - level)
        if gap < best_gap:
            best, best_gap = np.mean(s_ood >= t), gap
    return float(best)


def brute_average_precision(pos, neg):
    """Sum over positives (highest score first) of precision at each distinct threshold * recall step."""
    scores = np.concatenate([pos, neg])
    labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    ap, prev_recall = 0.0, 0.0
    for t in np.unique(scores)[::-1]:
        accepted = scores >= t
        tp = labels[accepted].sum()
        recall = tp / len(pos)
        ap += (recall - prev_recall) * tp / accepted.sum()
        prev_recall = recall
    return ap


def test_hand_computed_example():
    s_id = [0.9, 0.8, 0.7, 0.6]
    s_ood = [0.75, 0.5, 0.4]
    m = ood_metrics(s_id, s_ood)
    assert m["auroc"] == pytest.approx(10 / 12)
    # ID recall 0.75 (t=0.7) or 1.0 (t=0.6): 1.0 is nearer 0.95 -> both 0.6 and 0.75 OOD... only 0.75 >= 0.6
    assert m["fpr95"] == pytest.approx(1 / 3)
    # AUPR-In: thresholds 0.9 (P=1,R=.25) .8 (1,.5) .75 (2/3,.5) .7 (3/4,.75) .6 (4/5, 1)
    assert m["aupr_in"] == pytest.approx(0.25 * 1 + 0.25 * 1 + 0.25 * 0.75 + 0.25 * 0.8)
    # AUPR-Out on -scores: OOD 0.4 (P=1,R=1/3), 0.5 (1, 2/3), then ID 0.6, 0.7, OOD 0.75 at rank 5 -> P=3/5
    assert m["aupr_out"] == pytest.approx((1 / 3) * 1 + (1 / 3) * 1 + (1 / 3) * 0.6)


def test_perfect_and_inverted_separation():
    m = ood_metrics([2.0, 3.0], [0.0, 1.0])
    assert (m["auroc"], m["fpr95"], m["aupr_in"], m["aupr_out"]) == (1.0, 0.0, 1.0, 1.0)
    m = ood_metrics([0.0, 1.0], [2.0, 3.0])
    assert m["auroc"] == 0.0 and m["fpr95"] == 1.0


def test_all_tied_scores():
    m = ood_metrics([0.5] * 10, [0.5] * 7)
    assert m["auroc"] == 0.5
    assert m["fpr95"] == 1.0
    assert m["aupr_in"] == pytest.approx(10 / 17)


def test_nearest_can_land_below_95_percent():
    # 10 ID scores: recall steps of 0.1; 0.9 and 1.0 are equally near... 1.0 is reached first and wins.
    s_id = np.arange(10, 20, dtype=float)
    s_ood = np.array([10.5, 0.0, 0.0, 0.0])
    assert ood_metrics(s_id, s_ood)["fpr95"] == pytest.approx(0.25)  # t=10: recall 1.0, 1 OOD above
    # 20 ID scores: recall 0.95 at thresholds 1 and 0.5 alike; the reference rule takes the loosest of
    # equal-recall thresholds, so the OOD score 0.5 between the 19th and 20th ID score counts.
    s_id = np.arange(0, 20, dtype=float)
    s_ood = np.array([0.5, 30.0])
    assert ood_metrics(s_id, s_ood)["fpr95"] == pytest.approx(1.0)
    assert ood_metrics(s_id, np.array([0.5, 30.0, -1.0]))["fpr95"] == pytest.approx(2 / 3)


def test_interpolate_convention_hand_example():
    # ID 0..19 (20 samples), OOD at 0.5 and 30. TPR reaches 0.95 at threshold 1 (19/20) with FPR 0.5.
    s_id = np.arange(0, 20, dtype=float)
    s_ood = np.array([0.5, 30.0])
    assert ood_metrics(s_id, s_ood, fpr_convention="interpolate")["fpr95"] == pytest.approx(0.5)
    # 10 ID: TPR 0.9 at FPR 0 (t=11), TPR 1.0 at FPR 0.5 (t=10 after the OOD at 10.5) -> 0.95 -> 0.25...
    s_id = np.arange(10, 20, dtype=float)
    s_ood = np.array([10.5, 0.0])
    # ROC points: (0,.9) then OOD 10.5 -> (.5,.9) then ID 10 -> (.5, 1.0): TPR 0.95 is on the vertical segment
    assert ood_metrics(s_id, s_ood, fpr_convention="interpolate")["fpr95"] == pytest.approx(0.5)
    s_ood = np.array([9.5, 0.0])  # ROC: (0,.9) -> (0,1.0): vertical at FPR 0
    assert ood_metrics(s_id, s_ood, fpr_convention="interpolate")["fpr95"] == pytest.approx(0.0)


def test_interpolate_linear_between_points():
    # ID: 4 samples; TPR 0.75 at FPR 0 then the next ID after 2 OOD: (2/4, 0.75) -> (2/4, 1.0)... make a slope:
    # sklearn's ROC joins the point (fpr=0, tpr=.75) and (fpr=1/2, tpr=1) when the last ID ties with an OOD.
    s_id = np.array([4.0, 3.0, 2.0, 1.0])
    s_ood = np.array([1.0, 0.0])
    # threshold 1: TPR 1, FPR .5 jointly -> interpolate: 0.75 + (1-.75) * x/.5 = .95 -> x = 0.4
    assert ood_metrics(s_id, s_ood, fpr_convention="interpolate")["fpr95"] == pytest.approx(0.4)
    assert ood_metrics(s_id, s_ood, fpr_convention="nearest")["fpr95"] == pytest.approx(0.5)


score_lists = st.lists(st.integers(min_value=0, max_value=6).map(float), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(s_id=score_lists, s_ood=score_lists)
def test_against_brute_force_with_ties(s_id, s_ood):
    m = ood_metrics(s_id, s_ood)
    assert m["auroc"] == pytest.approx(brute_auroc(s_id, s_ood))
    assert m["fpr95"] == pytest.approx(brute_fpr_nearest(s_id, s_ood))
    assert m["aupr_in"] == pytest.approx(brute_average_precision(np.array(s_id), np.array(s_ood)))
    assert m["aupr_out"] == pytest.approx(brute_average_precision(-np.array(s_ood), -np.array(s_id)))


@settings(max_examples=60, deadline=None)
@given(s_id=score_lists, s_ood=score_lists)
def test_invariances(s_id, s_ood):
    m = ood_metrics(s_id, s_ood)
    # A strictly increasing transform changes nothing.
    m2 = ood_metrics(np.exp(np.array(s_id)) * 3 + 1, np.exp(np.array(s_ood)) * 3 + 1)
    assert m == pytest.approx(m2)
    # Swapping roles and negating scores swaps AUPR-In and AUPR-Out, keeps AUROC.
    m3 = ood_metrics(-np.array(s_ood), -np.array(s_id))
    assert m3["auroc"] == pytest.approx(m["auroc"])
    assert m3["aupr_in"] == pytest.approx(m["aupr_out"])
    for key in ("auroc", "fpr95", "aupr_in", "aupr_out"):
        assert 0.0 <= m[key] <= 1.0
    for conv in ("nearest", "interpolate"):
        assert 0.0 <= ood_metrics(s_id, s_ood, fpr_convention=conv)["fpr95"] <= 1.0


def test_conventions_agree_on_large_continuous_samples():
    rng = np.random.default_rng(0)
    s_id, s_ood = rng.normal(1.0, 1.0, 20000), rng.normal(0.0, 1.0, 20000)
    a = ood_metrics(s_id, s_ood)["fpr95"]
    b = ood_metrics(s_id, s_ood, fpr_convention="interpolate")["fpr95"]
    assert abs(a - b) < 1e-3
    # Gaussian shift 1: FPR at TPR .95 is P(N(0,1) > 1 - 1.645) = 0.740
    assert a == pytest.approx(0.740, abs=0.01)


def test_bad_inputs():
    with pytest.raises(OodbenchError, match="NaN"):
        ood_metrics([0.1, float("nan")], [0.2])
    with pytest.raises(OodbenchError, match="No OOD"):
        ood_metrics([0.1], [])
    with pytest.raises(OodbenchError, match="convention"):
        ood_metrics([0.1], [0.2], fpr_convention="openood")


def test_accuracy_and_decisions():
    assert id_accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == 0.75
    with pytest.raises(OodbenchError):
        id_accuracy([0, 1], [0])
    r = decision_rates(np.array([True, True, False, True]), np.array([False, True]))
    assert r == {"id_acceptance": 0.75, "ood_rejection": 0.5}
