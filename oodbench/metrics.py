"""OOD metrics, exactly as the CLIP zero-shot OOD literature defines them.

Conventions (stated once): scores are oriented **higher = more in-distribution**, and **ID is the
positive class**. All values are fractions in [0, 1] (tables print percentages).

- ``auroc``: area under the ROC curve (``sklearn.metrics.roc_auc_score``; ties count one half).
- ``aupr_in``: average precision with ID positive (``average_precision_score``, a step-wise sum).
- ``aupr_out``: average precision with OOD positive, on the negated scores.
- ``fpr95``: the fraction of OOD samples accepted as ID when 95% of ID samples are accepted.
  Two conventions exist (see research/zoc_datasets_metrics.md, B5):

  ``nearest`` (default; MOS, MCM, NegLabel; the Outlier-Exposure helper): walk the ROC points at the
  distinct score thresholds, from the first point with full ID recall towards stricter thresholds,
  and take the first point whose ID recall is closest to 0.95 (no interpolation; the chosen recall can
  be slightly below 0.95). Among points with equal recall this is the one with the most false positives.

  ``interpolate`` (CLIPN's ``cal_auc_fpr``): the FPR linearly interpolated on the ROC curve at
  TPR = 0.95 exactly. Where the curve is vertical at TPR = 0.95 the smallest FPR reaching it is used.

OpenOOD's post-2023 "FPR@95" (OOD as positive) is a different quantity and is not offered.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from oodbench.errors import OodbenchError

FPR_CONVENTIONS = ("nearest", "interpolate")
METRIC_KEYS = ("auroc", "fpr95", "aupr_in", "aupr_out")


def _as_scores(x: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise OodbenchError(f"No {what} scores: metrics need at least one ID and one OOD sample.")
    if not np.all(np.isfinite(arr)):
        raise OodbenchError(f"{what} scores contain NaN or infinite values; the method produced "
                            "invalid scores.")
    return arr


def fpr_at_tpr_nearest(labels: np.ndarray, scores: np.ndarray, tpr: float = 0.95) -> float:
    """FPR at the distinct-threshold ROC point whose TPR is closest to ``tpr`` (MOS / MCM / NegLabel)."""
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # index of each distinct threshold
    tps = np.cumsum(y)[last_of_run]
    fps = (last_of_run + 1) - tps
    recall = tps / tps[-1]
    full = int(np.searchsorted(tps, tps[-1]))  # first threshold with full recall
    recall_path = recall[full::-1]  # from full recall towards stricter thresholds
    fps_path = fps[full::-1]
    best = int(np.argmin(np.abs(recall_path - tpr)))
    return float(fps_path[best] / np.sum(labels == 0))


def fpr_at_tpr_interpolated(labels: np.ndarray, scores: np.ndarray, tpr: float = 0.95) -> float:
    """FPR linearly interpolated on the ROC curve at TPR = ``tpr`` (CLIPN)."""
    from sklearn.metrics import roc_curve  # imported here: `oodbench report` needs no sklearn

    fpr_curve, tpr_curve, _ = roc_curve(labels, scores, drop_intermediate=False)
    k = int(np.searchsorted(tpr_curve, tpr, side="left"))  # first point with TPR >= tpr
    if tpr_curve[k] == tpr or k == 0:
        return float(fpr_curve[k])
    t0, t1 = tpr_curve[k - 1], tpr_curve[k]
    f0, f1 = fpr_curve[k - 1], fpr_curve[k]
    return float(f0 + (f1 - f0) * (tpr - t0) / (t1 - t0))


_FPR = {"nearest": fpr_at_tpr_nearest, "interpolate": fpr_at_tpr_interpolated}


def ood_metrics(id_scores: Sequence[float] | np.ndarray, ood_scores: Sequence[float] | np.ndarray,
                fpr_convention: str = "nearest") -> dict[str, float]:
    """AUROC, FPR@95%TPR, AUPR-In and AUPR-Out of ID vs OOD scores (higher = more ID; ID positive).

    Returns ``{"auroc", "fpr95", "aupr_in", "aupr_out"}`` as fractions.
    """
    if fpr_convention not in _FPR:
        raise OodbenchError(f"Unknown FPR95 convention {fpr_convention!r}; choose one of "
                            f"{', '.join(FPR_CONVENTIONS)}.")
    from sklearn.metrics import average_precision_score, roc_auc_score

    s_id = _as_scores(id_scores, "ID")
    s_ood = _as_scores(ood_scores, "OOD")
    scores = np.concatenate([s_id, s_ood])
    labels = np.concatenate([np.ones(s_id.size, dtype=np.int64), np.zeros(s_ood.size, dtype=np.int64)])
    return {
        "auroc": float(roc_auc_score(labels, scores)),
        "fpr95": _FPR[fpr_convention](labels, scores),
        "aupr_in": float(average_precision_score(labels, scores)),
        "aupr_out": float(average_precision_score(1 - labels, -scores)),
    }


def id_accuracy(predictions: Sequence[int] | np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """Top-1 accuracy of ID class predictions."""
    p = np.asarray(predictions).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    if p.shape != y.shape or p.size == 0:
        raise OodbenchError(f"ID accuracy needs one prediction per labelled image (got {p.size} "
                            f"predictions for {y.size} labels).")
    return float(np.mean(p == y))


def decision_rates(id_accepted: np.ndarray, ood_accepted: np.ndarray) -> dict[str, float]:
    """Threshold-free decisions (e.g. CLIPN's CTW/ATD): share of ID accepted and of OOD rejected."""
    return {
        "id_acceptance": float(np.mean(np.asarray(id_accepted, dtype=bool))),
        "ood_rejection": float(1.0 - np.mean(np.asarray(ood_accepted, dtype=bool))),
    }
