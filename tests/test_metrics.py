"""Metrics against hand-computed values and independent brute-force computations (ties included)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oodbench.errors import OodbenchError
from oodbench.metrics import (
    decision_rates,
    fpr_at_ood_recall,
    fpr_at_tpr_interpolated,
    id_accuracy,
    ood_metrics,
)


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
    # ID 0..19 (20 samples), OOD at 0.5 and 30. TPR is 0.95 (19/20) from threshold 1 (FPR 0.5) down to
    # threshold 0.5 (FPR 1.0): CLIPN's interp1d returns the largest FPR of that run.
    s_id = np.arange(0, 20, dtype=float)
    s_ood = np.array([0.5, 30.0])
    assert ood_metrics(s_id, s_ood, fpr_convention="interpolate")["fpr95"] == pytest.approx(1.0)
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
    for conv in ("nearest", "interpolate", "openood"):
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
        ood_metrics([0.1], [0.2], fpr_convention="ood-positive")


def test_accuracy_and_decisions():
    assert id_accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == 0.75
    with pytest.raises(OodbenchError):
        id_accuracy([0, 1], [0])
    r = decision_rates(np.array([True, True, False, True]), np.array([False, True]))
    assert r == {"id_acceptance": 0.75, "ood_rejection": 0.5}


# ------------------------------------------------------------------------------------------------------
# The three FPR95 conventions against independent implementations of the reference rules.

def roc_points(pos, neg):
    """All ROC points (FPR, TPR) of 'positive if score >= t' over the distinct thresholds, loosest last,
    starting at (0, 0), counted directly."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    ts = np.unique(np.concatenate([pos, neg]))[::-1]
    fpr = [0.0] + [np.sum(neg >= t) / neg.size for t in ts]
    tpr = [0.0] + [np.sum(pos >= t) / pos.size for t in ts]
    return np.array(fpr), np.array(tpr)


def indep_interpolate(s_id, s_ood, level=0.95):
    """CLIPN's rule from its definition: linear interpolation at TPR = level; on a run of points at
    exactly that TPR, the largest FPR of the run."""
    fpr, tpr = roc_points(s_id, s_ood)
    exact = tpr == level
    if exact.any():
        return float(fpr[exact].max())
    j = np.flatnonzero(tpr < level)[-1]  # the curve is monotone: j + 1 is the first point above
    return float(fpr[j] + (fpr[j + 1] - fpr[j]) * (level - tpr[j]) / (tpr[j + 1] - tpr[j]))


def indep_openood(s_id, s_ood, level=0.95):
    """OpenOOD v1.5's rule from its definition: OOD positive on -score; ROC points at distinct thresholds
    minus those scikit-learn's default drops (a point whose two neighbours make equal FPR and TPR steps);
    the FPR at the first remaining point with TPR >= level."""
    fpr, tpr = roc_points(-np.asarray(s_ood, float), -np.asarray(s_id, float))
    fps, tps = fpr[1:] * len(s_id), tpr[1:] * len(s_ood)  # counts, without the (0, 0) origin
    if fps.size > 2:
        keep = np.r_[True, (np.diff(fps, 2) != 0) | (np.diff(tps, 2) != 0), True]
        fpr, tpr = np.r_[0.0, fpr[1:][keep]], np.r_[0.0, tpr[1:][keep]]
    return float(fpr[np.flatnonzero(tpr >= level)[0]])


def kth_ood_openood(s_id, s_ood, level=0.95):
    """The same quantity without any point dropping: threshold at the k-th largest OOD value of -score
    (k the least count reaching the level), FPR = share of ID with -score at or above it."""
    n = len(s_ood)
    k = next(k for k in range(1, n + 1) if k / n >= level)
    t = np.sort(-np.asarray(s_ood, float))[::-1][k - 1]
    return float(np.mean(-np.asarray(s_id, float) >= t))


def random_cases(seed, n):
    """Small integer scores (heavy ties), continuous ones, and N_ID multiples of 20 (TPR hits 0.95)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        kind = i % 3
        n_id = 20 * int(rng.integers(1, 8)) if kind == 2 else int(rng.integers(1, 60))
        n_ood = int(rng.integers(1, 60))
        if kind == 1:
            yield rng.normal(1, 1, n_id), rng.normal(0, 1, n_ood)
        else:
            hi = int(rng.integers(2, 12))
            yield rng.integers(0, hi, n_id).astype(float), rng.integers(0, hi, n_ood).astype(float)


def test_interpolate_equals_clipn_rule_and_its_scipy_call():
    from scipy.interpolate import interp1d
    from sklearn.metrics import roc_curve

    for s_id, s_ood in random_cases(1, 300):
        labels = np.r_[np.ones(len(s_id)), np.zeros(len(s_ood))]
        ours = fpr_at_tpr_interpolated(labels, np.r_[s_id, s_ood])
        assert ours == pytest.approx(indep_interpolate(s_id, s_ood), abs=1e-12)
        # the reference's own call (CLIPN cal_auc_fpr): bit-identical
        fpr, tpr, _ = roc_curve(labels, np.r_[s_id, s_ood], pos_label=1)
        assert ours == float(interp1d(tpr, fpr)(0.95))


def test_interpolate_takes_largest_fpr_where_tpr_is_exactly_095():
    # 20 ID scores 20..1; three OOD between the 19th and 20th ID score: TPR = 0.95 from FPR 0 to 0.75.
    s_id = np.arange(20.0, 0.0, -1.0)
    s_ood = np.array([1.5, 1.4, 1.3, 0.5])
    assert ood_metrics(s_id, s_ood, "interpolate")["fpr95"] == 0.75
    assert ood_metrics(s_id, s_ood, "nearest")["fpr95"] == 0.75
    assert ood_metrics(s_id, s_ood, "openood")["fpr95"] == 0.05  # OOD positive: one ID above 0.5


def test_openood_equals_its_rule_on_random_cases_with_ties():
    differs_from_kth = 0
    for s_id, s_ood in random_cases(2, 300):
        ours = fpr_at_ood_recall(np.r_[np.ones(len(s_id), int), np.zeros(len(s_ood), int)], np.r_[s_id, s_ood])
        assert ours == indep_openood(s_id, s_ood)
        differs_from_kth += ours != kth_ood_openood(s_id, s_ood)
    assert differs_from_kth < 10  # only where dropped points matter (ties)
    rng = np.random.default_rng(3)
    for _ in range(30):  # no ties: no point dropping can change the value
        s_id, s_ood = rng.normal(0, 1, int(rng.integers(5, 300))), rng.normal(-1, 1, int(rng.integers(5, 300)))
        assert ood_metrics(s_id, s_ood, "openood")["fpr95"] == kth_ood_openood(s_id, s_ood)


def test_openood_tie_quirk_of_roc_point_dropping():
    # 20 OOD each tied with one ID, plus 80 clearly-ID images: equal collinear steps around 95% OOD recall.
    # The k-th-largest definition gives 19/100; OpenOOD's code (default drop_intermediate) gives 20/100.
    s_ood = np.arange(20.0)
    s_id = np.r_[np.arange(20.0), 100.0 + np.arange(80.0)]
    assert kth_ood_openood(s_id, s_ood) == 0.19
    assert ood_metrics(s_id, s_ood, "openood")["fpr95"] == 0.20
