"""Is B better than A? The paired bootstrap of the difference of two runs, per OOD set.

Both runs' per-image scores (``--save-scores``, or kept in memory by :func:`oodbench.evaluate`) are
aligned image by image (same data set, same ``path``), every metric is recomputed from them under one
FPR convention, and each replicate of the difference ``B - A`` uses the **same** resample of the
images for both runs (:mod:`oodbench.bootstrap`'s streams are seeded by set name), so what the two
runs share (hard images, easy images) cancels out. A test-time method is measured as its result rows
are: per OOD set on that set's own streams, the mean over its seeded stream orders (each replicate too).
An interval that excludes 0 says the difference is larger than the resampling noise of these test sets;
one that straddles 0 says it is not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from oodbench.bootstrap import LEVEL, bootstrap_replicates, interval, mean_replicates
from oodbench.errors import OodbenchError
from oodbench.metrics import METRIC_KEYS, ood_metrics
from oodbench.results import AVERAGE, ResultSet
from oodbench.scorefile import set_runs

COLUMNS = ("ood", "metric", "a", "b", "difference", "ci95_low", "ci95_high", "excludes_zero")


def _in_order(rows: pd.DataFrame, paths: np.ndarray, dataset: str, label: str, other: str) -> np.ndarray:
    """``rows``' scores in the image order ``paths`` (the first run's)."""
    if len(rows) == len(paths) and (rows["path"].to_numpy() == paths).all():
        return rows["score"].to_numpy(np.float64)
    index = pd.Index(rows["path"])
    order = index.get_indexer(paths) if index.is_unique and len(index) == len(paths) else np.array([-1])
    if (order < 0).any():
        raise OodbenchError(f"{other} and {label} were scored on different images of {dataset!r}; a paired "
                            "comparison needs the same images (run both on the same data).")
    return rows["score"].to_numpy(np.float64)[order]


def compare(a: ResultSet, b: ResultSet, *, resamples: int = 1000, seed: int = 0, level: float = LEVEL,
            fpr_convention: str | None = None) -> pd.DataFrame:
    """Per OOD set (then group averages and the average) and metric: A, B, ``B - A`` and its interval.

    Returns a tidy DataFrame with columns ``ood``, ``metric``, ``a``, ``b``, ``difference`` (B - A,
    fractions), ``ci95_low``, ``ci95_high`` (percentile interval of the paired bootstrap at
    ``level``) and ``excludes_zero``. Metrics are recomputed from the per-image scores under
    ``fpr_convention`` (default: A's); average rows are unweighted means over OOD sets, their
    replicates likewise. For FPR95 lower is better, so a gain shows as a negative difference.
    """
    if a.id_set != b.id_set:
        raise OodbenchError(f"{a.label} and {b.label} have different ID sets ({a.id_set} vs {b.id_set}); "
                            "compare runs of the same benchmark.")
    convention = fpr_convention or a.provenance.get("fpr_convention", "nearest")
    id_set = a.id_set or ""
    runs_a, runs_b = set_runs(a.load_scores(), a.id_set), set_runs(b.load_scores(), b.id_set)
    runs = {name: (runs_a[name], runs_b[name]) for name in (r["ood"] for r in a.rows)
            if name in runs_a and name in runs_b}
    shared = list(runs)
    if not shared:
        raise OodbenchError(f"{a.label} and {b.label} share no OOD set to compare.")
    point: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
    reps: dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = {}
    for name in shared:
        # every run of both methods in the image order of A's first, so that the bootstrap (seeded by set
        # name) draws the same images for all of them: the difference is paired, a stream method's
        # replicates are the means over its stream orders, as its result rows are
        id_paths, ood_paths = (rows["path"].to_numpy() for rows in runs[name][0][0])
        common = {"id_name": id_set, "ood_name": name, "resamples": resamples, "seed": seed,
                  "fpr_convention": convention}
        sides = []
        for side, (method, other) in zip(runs[name], ((a.label, b.label), (b.label, a.label))):
            pairs = [(_in_order(i, id_paths, id_set, method, other),
                      _in_order(o, ood_paths, name, method, other)) for i, o in side]
            metrics = [ood_metrics(i, o, convention) for i, o in pairs]
            sides.append(({k: float(np.mean([m[k] for m in metrics])) for k in METRIC_KEYS},
                          mean_replicates([bootstrap_replicates(i, o, **common) for i, o in pairs])))
        point[name] = (sides[0][0], sides[1][0])
        reps[name] = (sides[0][1], sides[1][1])
    groups: dict[str, list[str]] = {}
    for row in a.rows:
        if row["ood"] in reps and row.get("group"):
            groups.setdefault(f"{AVERAGE}-{row['group']}", []).append(row["ood"])
    summaries = {**groups, AVERAGE: shared} if len(shared) > 1 else {}
    for name, members in summaries.items():
        point[name] = tuple(  # type: ignore[assignment]
            {k: float(np.mean([point[m][side][k] for m in members])) for k in METRIC_KEYS} for side in (0, 1))
        reps[name] = tuple(mean_replicates([reps[m][side] for m in members]) for side in (0, 1))  # type: ignore[assignment]
    out = []
    for name in [*shared, *summaries]:
        (pa, pb), (ra, rb) = point[name], reps[name]
        for metric in METRIC_KEYS:
            low, high = interval(rb[metric] - ra[metric], level)
            out.append({"ood": name, "metric": metric, "a": pa[metric], "b": pb[metric],
                        "difference": pb[metric] - pa[metric], "ci95_low": low, "ci95_high": high,
                        "excludes_zero": bool(low > 0 or high < 0)})
    frame = pd.DataFrame(out, columns=list(COLUMNS))
    frame.attrs.update({"a": a.label, "b": b.label, "fpr_convention": convention, "resamples": resamples,
                        "seed": seed, "level": level})
    return frame
