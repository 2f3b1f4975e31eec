"""Bootstrap intervals: the vectorised metrics equal ``ood_metrics`` on every resample, and the intervals
equal those of a slow, independent loop over the same resample indices."""

from __future__ import annotations

import numpy as np
import pytest

from oodbench import bootstrap
from oodbench.bootstrap import (
    attach_intervals,
    bootstrap_replicates,
    interval,
    paired_difference,
    resample_indices,
    weighted_metrics,
)
from oodbench.errors import OodbenchError
from oodbench.metrics import METRIC_KEYS, ood_metrics
from oodbench.results import ResultSet

# Values of both kinds are sums of at most a few thousand products of integers over the sample sizes:
# the vectorised and scikit-learn computations differ in summation order only, far below 1e-12.
TOL = 1e-12


def tied_scores(rng: np.random.Generator, n: int, shift: float, levels: int) -> np.ndarray:
    """Scores rounded to 1/levels: many ties within and across the two sets."""
    return np.round(rng.normal(shift, 1.0, n) * levels) / levels


def slow_replicates(s_id, s_ood, id_name, ood_name, resamples, seed, convention):
    """The same resamples, one ``ood_metrics`` call each (no shared code with the vectorised path)."""
    ids = list(resample_indices(len(s_id), resamples, seed, id_name))
    oods = list(resample_indices(len(s_ood), resamples, seed, ood_name))
    rows = [ood_metrics(s_id[i], s_ood[j], convention) for i, j in zip(ids, oods)]
    return {k: np.array([r[k] for r in rows]) for k in METRIC_KEYS}


@pytest.mark.parametrize("convention", ["nearest", "interpolate", "openood"])
@pytest.mark.parametrize("trial", range(8))
def test_vectorised_metrics_equal_ood_metrics_on_each_resample(convention, trial):
    rng = np.random.default_rng(trial)
    n_id, n_ood = (int(x) for x in rng.integers(1, 70, 2))
    if trial % 2:
        n_id = 20 * (1 + trial % 3)  # 0.95 of it is a whole number: exact hits of the FPR95 level
    levels = [1, 2, 5, 1000][trial % 4]  # from a handful of distinct values to nearly none tied
    s_id, s_ood = tied_scores(rng, n_id, 1.0, levels), tied_scores(rng, n_ood, 0.0, levels)
    fast = bootstrap_replicates(s_id, s_ood, id_name="id", ood_name="ood", resamples=12, seed=trial,
                                fpr_convention=convention)
    slow = slow_replicates(s_id, s_ood, "id", "ood", 12, trial, convention)
    for k in METRIC_KEYS:
        np.testing.assert_allclose(fast[k], slow[k], rtol=0, atol=TOL, err_msg=k)


def test_weighted_metrics_on_explicit_weights():
    """Weights as copies: (ID 3 x 0.9, 1 x 0.5; OOD 2 x 0.5, 1 x 0.1) equals the expanded sample."""
    values_desc = [0.9, 0.5, 0.1]
    w_id = np.array([[3, 1, 0]])
    w_ood = np.array([[0, 2, 1]])
    got = weighted_metrics(w_id, w_ood)
    want = ood_metrics([0.9] * 3 + [0.5], [0.5] * 2 + [0.1])
    assert values_desc == sorted(values_desc, reverse=True)
    for k in METRIC_KEYS:
        assert got[k][0] == pytest.approx(want[k], abs=TOL)
    # by hand: AUROC = (3 ID above both kinds + 1 ID tied with two, above one) / 12 = (9 + 1 + 1) / 12
    assert got["auroc"][0] == pytest.approx(11 / 12, abs=TOL)


def test_nearest_fpr_breaks_an_exact_tie_towards_the_looser_threshold():
    """With 50 ID images, recalls 0.94 and 0.96 are equally near 0.95 in float64; the reference's walk
    from full recall meets 0.96 first. One OOD image between the 48th and 49th ID scores tells them apart."""
    s_id = np.arange(50, 0, -1, dtype=float)  # 50, 49, ..., 1
    s_ood = np.array([2.5, 0.5])  # between the 48th (3) and 49th (2) highest ID scores; one below all
    assert abs(47 / 50 - 0.95) == abs(48 / 50 - 0.95)
    want = ood_metrics(s_id, s_ood)["fpr95"]
    assert want == 0.5  # at recall 0.96 (loosest threshold 2.5) one of two OOD images is accepted; 0.94: none
    values = np.unique(np.r_[s_id, s_ood])[::-1]
    w_id = np.isin(values, s_id).astype(int)[None, :]
    w_ood = np.isin(values, s_ood).astype(int)[None, :]
    assert weighted_metrics(w_id, w_ood)["fpr95"][0] == want


def openood_fpr(s_id: np.ndarray, s_ood: np.ndarray) -> float:
    """OpenOOD v1.5's FPR@95 as its evaluator computes it: OOD positive on the negated scores, scikit-learn's
    default ROC curve, the FPR at the first point with TPR >= 0.95."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(np.r_[np.zeros(len(s_id)), np.ones(len(s_ood))], -np.r_[s_id, s_ood])
    return float(fpr[np.argmax(tpr >= 0.95)])


@pytest.mark.parametrize("window", [64, 2, 0])  # the default; short windows make rows fall back to all columns
@pytest.mark.parametrize("trial", range(6))
def test_openood_rule_on_weights_equals_openoods_computation(trial, window, monkeypatch):
    """Ties and equal steps (which scikit-learn's drop_intermediate removes) included."""
    monkeypatch.setattr(bootstrap, "OPENOOD_WINDOW", window)
    rng = np.random.default_rng(100 + trial)
    for _ in range(10):
        n_id, n_ood = (int(x) for x in rng.integers(2, 60, 2))
        levels = [1, 2, 4][trial % 3]
        s_id, s_ood = tied_scores(rng, n_id, 0.5, levels), tied_scores(rng, n_ood, 0.0, levels)
        values = np.unique(np.r_[s_id, s_ood])[::-1]
        w_id = (s_id[None, :] == values[:, None]).sum(1)[None, :]
        w_ood = (s_ood[None, :] == values[:, None]).sum(1)[None, :]
        assert ood_metrics(s_id, s_ood, "openood")["fpr95"] == pytest.approx(openood_fpr(s_id, s_ood), abs=TOL)
        assert weighted_metrics(w_id, w_ood, "openood")["fpr95"][0] == pytest.approx(openood_fpr(s_id, s_ood),
                                                                                      abs=TOL)


@pytest.mark.parametrize("window", [64, 3])
def test_openood_rule_skips_points_scikit_learn_drops(window, monkeypatch):
    """Every value holds one ID and one OOD image: equal steps, so scikit-learn keeps only the ends of the
    curve and the first kept point at 95% OOD recall is the last one (FPR 1.0, not 0.95)."""
    monkeypatch.setattr(bootstrap, "OPENOOD_WINDOW", window)
    s = np.arange(20, dtype=float)
    assert openood_fpr(s, s) == 1.0
    w = np.ones((1, 20), dtype=int)
    assert weighted_metrics(w, w, "openood")["fpr95"][0] == 1.0
    # one step differs (two ID images at the 19th value from the bottom): that point is kept
    s_id = np.r_[s, 18.0]
    w_id = w.copy()
    w_id[0, 1] = 2
    assert weighted_metrics(w_id, w, "openood")["fpr95"][0] == pytest.approx(openood_fpr(s_id, s), abs=TOL)
    assert openood_fpr(s_id, s) < 1.0
    # 200 tied pairs: the run from the point reaching the recall to the curve's end is longer than a short
    # window, so those rows are solved over all columns
    s = np.arange(200, dtype=float)
    w = np.ones((1, 200), dtype=int)
    assert openood_fpr(s, s) == 1.0 and weighted_metrics(w, w, "openood")["fpr95"][0] == 1.0


def test_interpolated_fpr_where_the_curve_meets_095_exactly():
    """20 ID images: recall 19/20 = 0.95 exactly, followed by a vertical run of OOD images at that recall;
    CLIPN's interp1d (and so ``interpolate``) takes the run's largest FPR: 4 of 5."""
    s_id = np.arange(20, 0, -1, dtype=float)  # 20, ..., 1
    s_ood = np.array([1.7, 1.5, 1.3, 0.5, 25.0])  # three between the 19th (2) and 20th (1) ID scores
    values = np.unique(np.r_[s_id, s_ood])[::-1]
    w_id = np.isin(values, s_id).astype(int)[None, :]
    w_ood = np.isin(values, s_ood).astype(int)[None, :]
    want = ood_metrics(s_id, s_ood, "interpolate")["fpr95"]
    assert want == pytest.approx(0.8)
    assert weighted_metrics(w_id, w_ood, "interpolate")["fpr95"][0] == pytest.approx(want, abs=TOL)


def test_interval_equals_a_slow_loop_and_is_seeded():
    rng = np.random.default_rng(5)
    s_id, s_ood = tied_scores(rng, 300, 0.8, 20), tied_scores(rng, 120, 0.0, 20)
    fast = bootstrap_replicates(s_id, s_ood, id_name="cifar10", ood_name="svhn", resamples=60, seed=3)
    slow = slow_replicates(s_id, s_ood, "cifar10", "svhn", 60, 3, "nearest")
    for k in METRIC_KEYS:
        low, high = interval(fast[k])
        assert low == pytest.approx(np.percentile(slow[k], 2.5), abs=TOL)
        assert high == pytest.approx(np.percentile(slow[k], 97.5), abs=TOL)
    again = bootstrap_replicates(s_id, s_ood, id_name="cifar10", ood_name="svhn", resamples=60, seed=3)
    other = bootstrap_replicates(s_id, s_ood, id_name="cifar10", ood_name="svhn", resamples=60, seed=4)
    assert np.array_equal(fast["auroc"], again["auroc"]) and not np.array_equal(fast["auroc"], other["auroc"])


def test_accuracy_replicates_follow_the_documented_resamples():
    # The ID accuracy's interval: the accuracy of the same ID resamples the other metrics use. The
    # resamples are rebuilt here from the module's stated scheme: a generator per (seed, set name), seeded
    # by (seed, first 8 bytes of sha256(name), little-endian), one draw of n integers per resample.
    import hashlib

    from oodbench.bootstrap import accuracy_replicates

    rng = np.random.default_rng(2)
    correct = rng.random(400) < 0.8
    reps = accuracy_replicates(correct, id_name="imagenet", resamples=200, seed=7)
    digest = int.from_bytes(hashlib.sha256(b"imagenet").digest()[:8], "little")
    draws = np.random.default_rng(np.random.SeedSequence([7, digest]))
    want = [correct[draws.integers(0, 400, size=400)].mean() for _ in range(200)]
    np.testing.assert_array_equal(reps, want)
    # centred on the accuracy, as wide as the binomial's normal approximation says (to sampling noise)
    acc = correct.mean()
    low, high = interval(reps)
    half = 1.96 * np.sqrt(acc * (1 - acc) / 400)
    assert low < acc < high and (high - low) == pytest.approx(2 * half, rel=0.25)
    assert (accuracy_replicates(np.ones(5, bool), id_name="x", resamples=3) == 1).all()
    with pytest.raises(OodbenchError):
        accuracy_replicates(correct, id_name="x", resamples=0)


def test_chunking_changes_nothing(monkeypatch):
    rng = np.random.default_rng(1)
    s_id, s_ood = rng.normal(1, 1, 200), rng.normal(0, 1, 90)
    whole = bootstrap_replicates(s_id, s_ood, id_name="a", ood_name="b", resamples=25)
    monkeypatch.setattr(bootstrap, "CHUNK_CELLS", 1)  # one resample per chunk
    pieces = bootstrap_replicates(s_id, s_ood, id_name="a", ood_name="b", resamples=25)
    for k in METRIC_KEYS:  # same resamples; only einsum's summation blocks may differ
        np.testing.assert_allclose(whole[k], pieces[k], rtol=0, atol=TOL)


def test_a_convention_without_a_vectorised_rule_falls_back_to_the_loop(monkeypatch):
    rng = np.random.default_rng(2)
    s_id, s_ood = tied_scores(rng, 40, 0.5, 4), tied_scores(rng, 30, 0.0, 4)
    fast = bootstrap_replicates(s_id, s_ood, id_name="a", ood_name="b", resamples=10, fpr_convention="interpolate")
    monkeypatch.setattr(bootstrap, "VECTOR_FPR", {"nearest": bootstrap.VECTOR_FPR["nearest"]})
    loop = bootstrap_replicates(s_id, s_ood, id_name="a", ood_name="b", resamples=10, fpr_convention="interpolate")
    for k in METRIC_KEYS:
        np.testing.assert_allclose(fast[k], loop[k], rtol=0, atol=TOL)


def test_average_rows_use_the_same_id_resamples_for_every_set():
    """An average row's interval: per resample, the mean over sets, each set scored against the *same*
    ID resample (computed here by an explicit loop), then the percentiles."""
    rng = np.random.default_rng(7)
    s_id = rng.normal(1, 1, 80)
    sets = {"near-a": rng.normal(0.6, 1, 50), "near-b": rng.normal(0.5, 1, 40), "far": rng.normal(-1, 1, 60)}
    rows = [{"ood": n, **ood_metrics(s_id, s), "group": "far" if n == "far" else "near"} for n, s in sets.items()]
    rows += [{"ood": "average-near", "group": "near"}, {"ood": "average-far", "group": "far"}, {"ood": "average"}]
    reps = {n: bootstrap_replicates(s_id, s, id_name="ID", ood_name=n, resamples=40, seed=0) for n, s in sets.items()}
    attach_intervals(rows, reps)

    ids = list(resample_indices(len(s_id), 40, 0, "ID"))
    per_set = {n: [ood_metrics(s_id[ids[b]], s[j], "nearest")
                   for b, j in enumerate(resample_indices(len(s), 40, 0, n))] for n, s in sets.items()}
    expected = {"average": list(sets), "average-near": ["near-a", "near-b"], "average-far": ["far"],
                "near-a": ["near-a"]}
    by_name = {r["ood"]: r for r in rows}
    for name, members in expected.items():
        for k in METRIC_KEYS:
            means = [np.mean([per_set[m][b][k] for m in members]) for b in range(40)]
            assert by_name[name]["ci95"][k] == pytest.approx(
                [np.percentile(means, 2.5), np.percentile(means, 97.5)], abs=TOL), (name, k)


def test_paired_difference_of_a_run_with_itself_is_exactly_zero_and_pairing_narrows_it():
    rng = np.random.default_rng(11)
    s_id, s_ood = rng.normal(1, 1, 400), rng.normal(0, 1, 400)
    a = bootstrap_replicates(s_id, s_ood, id_name="i", ood_name="o", resamples=200)
    assert paired_difference(a, a)["auroc"] == [0.0, 0.0]
    # B = A plus a little per-image noise: paired intervals are far narrower than the two runs' own
    b = bootstrap_replicates(s_id + rng.normal(0, 0.05, 400), s_ood + rng.normal(0, 0.05, 400),
                             id_name="i", ood_name="o", resamples=200)
    diff = paired_difference(a, b)["auroc"]
    own = interval(a["auroc"])
    assert diff[1] - diff[0] < 0.25 * (own[1] - own[0])


def test_bad_input():
    with pytest.raises(OodbenchError, match="at least one resample"):
        bootstrap_replicates([1.0], [0.0], id_name="a", ood_name="b", resamples=0)
    with pytest.raises(OodbenchError, match="NaN"):
        bootstrap_replicates([1.0, np.nan], [0.0], id_name="a", ood_name="b", resamples=5)
    with pytest.raises(OodbenchError, match="convention"):
        bootstrap_replicates([1.0], [0.0], id_name="a", ood_name="b", fpr_convention="closest")


def test_result_frame_flattens_intervals():
    rows = [{"ood": "x", "auroc": 0.9, "fpr95": 0.2, "aupr_in": 0.8, "aupr_out": 0.7, "n_id": 3, "n_ood": 4,
             "ci95": {"auroc": [0.85, 0.95], "fpr95": [0.1, 0.3]}}]
    frame = ResultSet("b", {"slug": "m"}, "mcm", {}, rows).frame()
    assert frame.loc[0, "auroc_ci95_low"] == 0.85 and frame.loc[0, "fpr95_ci95_high"] == 0.3
    assert "ci95" not in frame.columns
