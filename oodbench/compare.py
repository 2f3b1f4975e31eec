"""Is B better than A? The paired bootstrap of the difference of two runs, per OOD set.

Both runs' per-image scores (``--save-scores``, or kept in memory by :func:`oodbench.evaluate`) are
aligned image by image (same data set, same ``path``), every metric is recomputed from them under one
FPR convention, and each replicate of the difference ``B - A`` uses the **same** resample of the
images for both runs (:mod:`oodbench.bootstrap`'s streams are seeded by set name), so what the two
runs share (hard images, easy images) cancels out. An interval that excludes 0 says the difference is
larger than the resampling noise of these test sets; one that straddles 0 says it is not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from oodbench.bootstrap import LEVEL, bootstrap_replicates, interval, mean_replicates
from oodbench.errors import OodbenchError
from oodbench.metrics import METRIC_KEYS, ood_metrics
from oodbench.results import AVERAGE, ResultSet

COLUMNS = ("ood", "metric", "a", "b", "difference", "ci95_low", "ci95_high", "excludes_zero")


def _aligned(a: pd.DataFrame, b: pd.DataFrame, dataset: str, label_a: str, label_b: str) -> tuple[np.ndarray, np.ndarray]:
    """The two runs' scores of ``dataset`` in the same image order (A's)."""
    sa = a[a["dataset"] == dataset]
    sb = b[b["dataset"] == dataset]
    if len(sa) == len(sb) and (sa["path"].to_numpy() == sb["path"].to_numpy()).all():
        return sa["score"].to_numpy(np.float64), sb["score"].to_numpy(np.float64)
    merged = sa[["path", "score"]].merge(sb[["path", "score"]], on="path", how="outer", suffixes=("_a", "_b"),
                                         indicator=True)
    if (merged["_merge"] != "both").any() or merged["path"].duplicated().any():
        raise OodbenchError(f"{label_a} and {label_b} were scored on different images of {dataset!r}; a paired "
                            "comparison needs the same images (run both on the same data).")
    order = pd.Index(merged["path"]).get_indexer(sa["path"])
    return merged["score_a"].to_numpy(np.float64)[order], merged["score_b"].to_numpy(np.float64)[order]


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
    scores_a, scores_b = a.load_scores(), b.load_scores()
    id_set = a.id_set or ""
    oods = [r["ood"] for r in a.rows if r["ood"] in set(scores_a["dataset"]) and r["ood"] != id_set]
    shared = [o for o in oods if o in set(scores_b["dataset"])]
    if not shared:
        raise OodbenchError(f"{a.label} and {b.label} share no OOD set to compare.")
    id_a, id_b = _aligned(scores_a, scores_b, id_set, a.label, b.label)
    point: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
    reps: dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = {}
    for name in shared:
        ood_a, ood_b = _aligned(scores_a, scores_b, name, a.label, b.label)
        point[name] = (ood_metrics(id_a, ood_a, convention), ood_metrics(id_b, ood_b, convention))
        common = {"id_name": id_set, "ood_name": name, "resamples": resamples, "seed": seed,
                  "fpr_convention": convention}
        reps[name] = (bootstrap_replicates(id_a, ood_a, **common), bootstrap_replicates(id_b, ood_b, **common))
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
