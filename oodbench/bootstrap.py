"""Bootstrap confidence intervals for the OOD metrics, vectorised over resamples.

Scheme (stated once): the ID images and each OOD set's images are resampled **independently**, with
replacement, at their own sizes; replicate ``b`` of a metric is the metric of (ID resample ``b``, OOD
resample ``b``), and the interval is the percentile interval (``numpy.quantile``, linear) of the
replicates at ``(1 - level) / 2`` and ``(1 + level) / 2``.

Every set's resample indices come from its own generator, seeded by ``(seed, set name)``
(:func:`resample_indices`), drawn one resample at a time. Hence:

- within a run, every OOD set sees the same ID resamples, so an average row's replicate ``b`` is the
  mean over its OOD sets of their replicates ``b`` (a joint bootstrap of the average);
- two methods scored on the same images see the same resamples, so their difference per replicate is a
  *paired* bootstrap of the difference (:func:`paired_difference`).

A resample with replacement is a vector of integer weights (how often each image was drawn), so every
metric is computed from per-resample weighted counts over the distinct score values, sorted once:
AUROC by the rank formula, FPR95 by the same rules as :mod:`oodbench.metrics` for each convention,
AUPR-In / AUPR-Out as scikit-learn's average precision. The results equal ``ood_metrics`` on the
resampled scores up to float rounding (``tests/test_bootstrap.py`` checks it); 1,000 resamples of
50,000 ID + 10,000 OOD distinct scores take about 5 s (all four metrics, any FPR95 convention), about
50 times one ``ood_metrics`` call (``benchmarks/perf/bench_bootstrap.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from oodbench.errors import OodbenchError
from oodbench.metrics import METRIC_KEYS, ood_metrics

DEFAULT_RESAMPLES = 1000
LEVEL = 0.95
TPR = 0.95
#: Resamples processed together: bounds the working memory to a few (chunk x distinct scores) arrays.
CHUNK_CELLS = 500_000


def stream_seed(seed: int, name: str) -> np.random.SeedSequence:
    """The seed sequence of one set's resamples: ``(seed, first 8 bytes of sha256(name))``."""
    digest = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "little")
    return np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, digest])


def resample_indices(n: int, resamples: int, seed: int, name: str) -> Iterator[np.ndarray]:
    """The ``resamples`` index vectors (each ``[n]``, drawn with replacement) of set ``name``, in order.

    One generator per (seed, name), one draw of ``n`` integers per resample: the same indices whatever
    the caller's chunking, in any run, for any method scored on that set.
    """
    rng = np.random.default_rng(stream_seed(seed, name))
    for _ in range(resamples):
        yield rng.integers(0, n, size=n)


def _weights(inverse: np.ndarray, draws: list[np.ndarray], levels: int) -> np.ndarray:
    """[b, levels] how many times each distinct score value was drawn, per resample."""
    out = np.empty((len(draws), levels), dtype=np.int64)
    for row, idx in enumerate(draws):
        out[row] = np.bincount(inverse[idx], minlength=levels)
    return out


# ------------------------------------------------------------------- metrics of weighted counts
# Columns are the distinct score values from the highest down (the ROC walk); w_id, w_ood: [b, U] how
# often each value was drawn among ID / OOD; tps, fps: their running sums (ID / OOD accepted at each
# threshold); n_id, n_ood: the sample sizes.
def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b, dtype=np.float64)


def _recall_count(n_id: int) -> int:
    """The least ID count m with ``m / n_id >= TPR`` in float64, as the metrics compute recall."""
    m = int(np.ceil(TPR * n_id))
    while m > 0 and (m - 1) / n_id >= TPR:
        m -= 1
    while m / n_id < TPR:
        m += 1
    return m


def _fpr_nearest(tps: np.ndarray, fps: np.ndarray, n_id: int, n_ood: int) -> np.ndarray:
    """``fpr_at_tpr_nearest`` per row.

    The walk from full recall towards stricter thresholds meets recall values in decreasing order, so
    the nearest to 0.95 is either the least recall >= 0.95 or the greatest below it; among thresholds
    with that recall the walk meets the loosest (largest column) first, which wins ties. Values absent
    from a resample repeat the point of the next stricter threshold and change nothing.
    """
    rows = np.arange(len(tps))
    m = _recall_count(n_id)
    k = np.count_nonzero(tps < m, axis=1)  # first column with recall >= 0.95
    v = tps[rows, k]
    full = np.count_nonzero(tps < n_id, axis=1)  # first column with full recall: where the walk starts
    hi = np.where(v == n_id, full, np.count_nonzero(tps <= v[:, None], axis=1) - 1)
    lo = np.maximum(k - 1, 0)
    gap_hi = np.abs(v / n_id - TPR)
    gap_lo = np.where(k > 0, np.abs(tps[rows, lo] / n_id - TPR), np.inf)
    best = np.where(gap_hi <= gap_lo, hi, lo)
    return fps[rows, best] / n_ood


def _fpr_interpolate(tps: np.ndarray, fps: np.ndarray, n_id: int, n_ood: int) -> np.ndarray:
    """``fpr_at_tpr_interpolated`` per row: ``np.interp(0.95, tpr, fpr)`` on the ROC curve (with its
    (0, 0) point in front). Where points sit at TPR = 0.95 exactly, the largest FPR among them (the
    last column with that TPR); else linear between the last point below 0.95 and the first above.

    The ROC curve of :mod:`oodbench.metrics` drops collinear points (scikit-learn's default); dropping
    them changes no interpolated value and keeps the ends of a vertical run, so all columns are used.
    """
    rows = np.arange(len(tps))
    m = _recall_count(n_id)
    k = np.count_nonzero(tps < m, axis=1)  # first column with TPR >= 0.95
    last = np.count_nonzero(tps <= m, axis=1) - 1  # last column with tps == m, when some column has it
    prev = np.maximum(k - 1, 0)
    t1, f1 = tps[rows, k] / n_id, fps[rows, k] / n_ood
    first = k == 0  # the segment starts at the curve's (0, 0)
    t0 = np.where(first, 0.0, tps[rows, prev] / n_id)
    f0 = np.where(first, 0.0, fps[rows, prev] / n_ood)
    with np.errstate(divide="ignore", invalid="ignore"):
        inter = f0 + (f1 - f0) * (TPR - t0) / (t1 - t0)
    return np.where(t1 == TPR, fps[rows, last] / n_ood, inter)


#: How far (in distinct scores) :func:`_fpr_openood` looks past the first point reaching the recall for
#: the first point scikit-learn keeps, before it falls back to all columns.
OPENOOD_WINDOW = 64


def _fpr_openood(w_id: np.ndarray, w_ood: np.ndarray, tps: np.ndarray, fps: np.ndarray, n_id: int,
                 n_ood: int) -> np.ndarray:
    """OpenOOD v1.5's rule per row: OOD positive, ``roc_curve(is_ood, -score)`` with scikit-learn's
    default ``drop_intermediate``, the first kept point with OOD recall >= 0.95; value = ID flagged / n_id.

    The walk goes from the lowest score up (from the last column to the first). scikit-learn keeps the
    walk's first and last points and drops a point whose step (the ID and OOD weight at its value)
    equals the next point's, so the answer is the first kept point at or after the first point that
    reaches the recall. At column u the walk has flagged the ID images at or below it, n_id - tps[u - 1].
    The kept point is looked for among the next :data:`OPENOOD_WINDOW` columns; rows whose run of equal
    steps is longer (only heavy ties make such runs) are solved over all columns.
    """
    rows = np.arange(len(tps))
    # the walk reaches the recall at the first column (from the end) whose OOD at or below, n_ood - fps[u - 1],
    # is >= m: the number of columns with fps <= n_ood - m
    start = np.count_nonzero(fps <= n_ood - _recall_count(n_ood), axis=1)
    span = np.arange(OPENOOD_WINDOW + 1)
    cols = start[:, None] - span[None, :]  # start, then the walk's next columns
    inside = cols >= 0
    safe = np.maximum(cols, 0)
    wi, wo = np.take_along_axis(w_id, safe, 1) * inside, np.take_along_axis(w_ood, safe, 1) * inside
    present = (wi + wo) > 0
    # the walk's next present point after each position: the smallest later position that is present
    later = np.where(present, span[None, :], OPENOOD_WINDOW + 1)
    nxt = np.minimum.accumulate(later[:, ::-1], axis=1)[:, ::-1]
    nxt = np.concatenate([nxt[:, 1:], np.full((len(tps), 1), OPENOOD_WINDOW + 1)], axis=1)
    beyond = nxt > OPENOOD_WINDOW  # no next present point in the window
    reached_first_column = ~inside[:, -1] | (cols[:, -1] == 0)
    pick = np.minimum(nxt, OPENOOD_WINDOW)
    same_step = (wi == np.take_along_axis(wi, pick, 1)) & (wo == np.take_along_axis(wo, pick, 1)) & ~beyond
    # (the walk's first point, always kept, is never dropped here anyway: if it reaches 95% of the OOD
    # images, the next point cannot hold as many)
    kept = present & ~same_step
    # a position without a next present point in the window is the walk's last point only if the window
    # reached the first column; otherwise it is undecided
    undecided = present & beyond & ~reached_first_column[:, None]
    found = kept.any(axis=1)
    pos = np.argmax(kept, axis=1)
    first_undecided = np.where(undecided.any(axis=1), np.argmax(undecided, axis=1), OPENOOD_WINDOW + 1)
    solved = found & (pos < first_undecided)
    v = start - pos
    out = (n_id - np.where(v > 0, tps[rows, np.maximum(v - 1, 0)], 0)) / n_id
    if not solved.all():
        todo = ~solved
        out[todo] = _fpr_openood_full(w_id[todo], w_ood[todo], tps[todo], fps[todo], n_id, n_ood)
    return out


def _fpr_openood_full(w_id: np.ndarray, w_ood: np.ndarray, tps: np.ndarray, fps: np.ndarray, n_id: int,
                      n_ood: int) -> np.ndarray:
    """:func:`_fpr_openood` over all columns (for rows with long runs of equal steps)."""
    rows, cols = np.arange(len(tps)), np.arange(tps.shape[1])
    start = np.count_nonzero(fps <= n_ood - _recall_count(n_ood), axis=1)
    present = (w_id + w_ood) > 0
    upto = np.maximum.accumulate(np.where(present, cols[None, :], -1), axis=1)  # last present column <= u
    after = np.concatenate([np.full((len(tps), 1), -1), upto[:, :-1]], axis=1)  # the walk's next present point
    nxt = np.maximum(after, 0)
    same_step = (w_id == np.take_along_axis(w_id, nxt, 1)) & (w_ood == np.take_along_axis(w_ood, nxt, 1))
    kept = present & ((after < 0) | ~same_step)  # (the walk's first point: see _fpr_openood)
    v = np.maximum.accumulate(np.where(kept, cols[None, :], -1), axis=1)[rows, start]  # first kept from start on
    above = np.where(v > 0, tps[rows, np.maximum(v - 1, 0)], 0)  # ID strictly above column v
    return (n_id - above) / n_id


#: Vectorised FPR95 per convention of :mod:`oodbench.metrics`, from (tps, fps, n_id, n_ood); those in
#: ``WEIGHT_RULES`` also take the weights. A convention missing here is computed resample by resample
#: with ``ood_metrics`` (correct, only slower).
VECTOR_FPR: dict[str, Callable[..., np.ndarray]] = {
    "nearest": _fpr_nearest,
    "interpolate": _fpr_interpolate,
    "openood": _fpr_openood,
}
WEIGHT_RULES = frozenset({"openood"})


def weighted_metrics(w_id: np.ndarray, w_ood: np.ndarray, fpr_convention: str = "nearest",
                     id_columns: np.ndarray | None = None,
                     ood_columns: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """AUROC, FPR95, AUPR-In, AUPR-Out of each row of integer weights over distinct scores, highest first.

    Row ``b`` describes a sample holding ``w_id[b, u]`` ID and ``w_ood[b, u]`` OOD copies of the u-th
    largest distinct score; the values are those of :func:`oodbench.metrics.ood_metrics` on that
    sample (same conventions: higher = more ID, ID positive), up to float rounding. With ``tps`` and
    ``fps`` the running sums of ``w_id`` and ``w_ood`` (ID / OOD accepted at each threshold):

    - AUROC = sum_u w_ood[u] (tps[u] - w_id[u] / 2) / (n_id n_ood): ID above each OOD image, ties half;
    - AUPR-In = sum_u (w_id[u] / n_id) tps[u] / (tps[u] + fps[u]) (average precision, ID positive);
    - AUPR-Out = sum_u (w_ood[u] / n_ood) P_out[u], the precision of OOD-positive thresholds walked
      from the lowest value up: OOD at or below u over all images at or below u;
    - FPR95 by :data:`VECTOR_FPR` for the convention (``nearest``, ``interpolate``, ``openood``).

    ``id_columns`` / ``ood_columns`` (optional) list the columns that can hold ID / OOD weight; the sums
    run over those only.
    """
    w_id = np.asarray(w_id)
    w_ood = np.asarray(w_ood)
    # Gathering columns costs a pass of its own: only worth it when it leaves out most of them.
    everything = slice(None)
    if id_columns is None or 2 * len(id_columns) > w_id.shape[1]:
        id_columns = everything  # type: ignore[assignment]
    if ood_columns is None or 2 * len(ood_columns) > w_id.shape[1]:
        ood_columns = everything  # type: ignore[assignment]
    n_id, n_ood = int(w_id[0].sum()), int(w_ood[0].sum())
    # Integer running sums: exact, and (unlike float ones) fast along rows.
    tps, fps = np.cumsum(w_id, axis=1), np.cumsum(w_ood, axis=1)
    # at the OOD columns: ID above, ID tied, OOD at or below, everything at or below
    wo, tp_o, wi_o, fp_o = w_ood[:, ood_columns], tps[:, ood_columns], w_id[:, ood_columns], fps[:, ood_columns]
    auroc = (_rowdot(wo, tp_o) - 0.5 * _rowdot(wo, wi_o)) / (n_id * n_ood)
    ood_below = n_ood - fp_o + wo
    all_below = (n_id + n_ood) - (tp_o + fp_o) + (wi_o + wo)
    np.maximum(all_below, 1, out=all_below)  # wo > 0 implies all_below >= 1
    aupr_out = _rowdot(wo, ood_below / all_below) / n_ood
    tp_i = tps[:, id_columns]
    seen = tp_i + fps[:, id_columns]
    np.maximum(seen, 1, out=seen)  # w_id > 0 implies tps >= 1
    aupr_in = _rowdot(w_id[:, id_columns], tp_i / seen) / n_id
    if fpr_convention in WEIGHT_RULES:
        fpr = _fpr_openood(w_id, w_ood, tps, fps, n_id, n_ood)
    else:
        fpr = VECTOR_FPR[fpr_convention](tps, fps, n_id, n_ood)
    return {"auroc": auroc, "fpr95": fpr,
            "aupr_in": aupr_in, "aupr_out": aupr_out}


def bootstrap_replicates(id_scores: Sequence[float] | np.ndarray, ood_scores: Sequence[float] | np.ndarray, *,
                         id_name: str, ood_name: str, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                         fpr_convention: str = "nearest") -> dict[str, np.ndarray]:
    """``{metric: [resamples]}``: each metric on every bootstrap resample of (ID, OOD) scores.

    The ID scores are resampled with the stream of ``id_name``, the OOD scores with that of
    ``ood_name`` (:func:`resample_indices`), so the same names and seed give the same resamples.
    """
    s_id = np.asarray(id_scores, dtype=np.float64).reshape(-1)
    s_ood = np.asarray(ood_scores, dtype=np.float64).reshape(-1)
    ood_metrics(s_id[:1], s_ood[:1], fpr_convention)  # validates convention and scores (cheaply)
    if not (np.all(np.isfinite(s_id)) and np.all(np.isfinite(s_ood))):
        ood_metrics(s_id, s_ood, fpr_convention)  # raises the usual message
    if resamples < 1:
        raise OodbenchError(f"The bootstrap needs at least one resample; got {resamples}.")
    values, inverse = np.unique(np.concatenate([s_id, s_ood]), return_inverse=True)
    inverse = values.size - 1 - inverse  # column 0 = the highest score
    inv_id, inv_ood = inverse[: s_id.size], inverse[s_id.size:]
    levels = values.size
    id_cols, ood_cols = np.unique(inv_id), np.unique(inv_ood)
    chunk = max(1, CHUNK_CELLS // max(levels, 1))
    vector = fpr_convention in VECTOR_FPR
    out: dict[str, list[np.ndarray]] = {k: [] for k in METRIC_KEYS}
    ids = resample_indices(s_id.size, resamples, seed, id_name)
    oods = resample_indices(s_ood.size, resamples, seed, ood_name)
    done = 0
    while done < resamples:
        b = min(chunk, resamples - done)
        draws_id = [next(ids) for _ in range(b)]
        draws_ood = [next(oods) for _ in range(b)]
        if vector:
            part = weighted_metrics(_weights(inv_id, draws_id, levels), _weights(inv_ood, draws_ood, levels),
                                    fpr_convention, id_cols, ood_cols)
        else:
            rows = [ood_metrics(s_id[i], s_ood[j], fpr_convention) for i, j in zip(draws_id, draws_ood)]
            part = {k: np.array([r[k] for r in rows]) for k in METRIC_KEYS}
        for k in METRIC_KEYS:
            out[k].append(part[k])
        done += b
    return {k: np.concatenate(v) for k, v in out.items()}


def accuracy_replicates(correct: Sequence[bool] | np.ndarray, *, id_name: str,
                        resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> np.ndarray:
    """ID accuracy on every bootstrap resample of the ID images: ``[resamples]``.

    ``correct`` says, per ID image, whether the method's predicted class is its label. The resamples are
    those of ``id_name`` (:func:`resample_indices`), the ones :func:`bootstrap_replicates` draws for the
    ID side, so the accuracy's replicates belong to the same resamples as the other metrics'.
    """
    right = np.asarray(correct, dtype=np.float64).reshape(-1)
    if resamples < 1:
        raise OodbenchError(f"The bootstrap needs at least one resample; got {resamples}.")
    return np.array([right[idx].mean() for idx in resample_indices(right.size, resamples, seed, id_name)])


def interval(replicates: np.ndarray, level: float = LEVEL) -> list[float]:
    """The percentile interval ``[low, high]`` of bootstrap replicates."""
    lo, hi = np.quantile(np.asarray(replicates, dtype=np.float64), [(1 - level) / 2, (1 + level) / 2])
    return [float(lo), float(hi)]


def intervals(replicates: Mapping[str, np.ndarray], level: float = LEVEL) -> dict[str, list[float]]:
    """``{metric: [low, high]}`` of :func:`bootstrap_replicates`' output."""
    return {k: interval(v, level) for k, v in replicates.items()}


def attach_intervals(rows: list[dict[str, Any]], replicates: Mapping[str, Mapping[str, np.ndarray]],
                     level: float = LEVEL) -> None:
    """Add ``ci95`` to every result row: per OOD set from its replicates, averages from their mean.

    ``replicates`` maps each OOD set's name to its :func:`bootstrap_replicates`. An ``average`` row's
    replicate b is the unweighted mean of every set's replicate b (as the row itself is the mean of
    the sets' metrics); an ``average-<group>`` row's, of the sets whose rows carry ``group``.
    """
    groups: dict[str, list[str]] = {}
    for row in rows:
        if row["ood"] in replicates and row.get("group"):
            groups.setdefault(str(row["group"]), []).append(row["ood"])
    for row in rows:
        name = row["ood"]
        if name in replicates:
            members = [name]
        elif name == "average":
            members = list(replicates)
        elif name.startswith("average-") and name[len("average-"):] in groups:
            members = groups[name[len("average-"):]]
        else:
            continue
        row["ci95"] = intervals(mean_replicates([replicates[m] for m in members]), level)


def mean_replicates(parts: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Replicate-wise unweighted mean over sets (the bootstrap of an average row)."""
    return {k: np.mean([p[k] for p in parts], axis=0) for k in parts[0]}


def paired_difference(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray],
                      level: float = LEVEL) -> dict[str, list[float]]:
    """``{metric: [low, high]}`` of ``b - a`` replicate by replicate (both from the same resamples)."""
    return {k: interval(np.asarray(b[k]) - np.asarray(a[k]), level) for k in a if k in b}
