"""OOD metrics, exactly as the CLIP zero-shot OOD literature computes them.

Conventions (stated once): scores are oriented **higher = more in-distribution**, and **ID is the
positive class** (except inside the ``openood`` FPR95 rule, see below). All values are fractions in
[0, 1] (tables print percentages).

- ``auroc``: area under the ROC curve (``sklearn.metrics.roc_auc_score``; ties count one half).
- ``aupr_in``: average precision with ID positive (``average_precision_score``, a step-wise sum).
- ``aupr_out``: average precision with OOD positive, on the negated scores.
- ``fpr95``: a false-positive rate at 95% recall. Three conventions are in use, each defined here as
  the reference code computes it:

  ``nearest`` (default). ID positive. Walk the ROC points at the distinct score thresholds from the
  first point with full ID recall towards stricter thresholds and take the first whose ID recall is
  closest to 0.95 (no interpolation; the chosen recall can be slightly below 0.95); the value is the
  fraction of OOD accepted there. This is the Outlier-Exposure helper ``fpr_and_fdr_at_recall`` that
  MOS, **MCM** (``utils/detection_util.py``), **NegLabel** (``mmcls/utils/ood_evaluate.py``), **CSP**
  (a NegLabel fork), **EOE** and **GL-MCM** call as ``get_measures(-in_score, -out_score)``.

  ``interpolate``. ID positive. **CLIPN**'s ``cal_auc_fpr`` (``src/zero_shot_infer.py``):
  ``interp1d(tpr, fpr)(0.95)`` on ``roc_curve(is_id, score)`` with scikit-learn's defaults. For float64
  input scipy's linear ``interp1d`` is ``np.interp``, so that is what we call: linear interpolation
  between the ROC points around TPR 0.95, and where TPR equals 0.95 exactly on a run of points (always the
  case with 50,000 ID images) the **largest** FPR of that run. Bit-identical to the reference on 5,330
  random cases, ties included.

  ``openood``. **OOD positive**: OpenOOD v1.5's ``openood/evaluators/metrics.py`` (also OpenOOD-VLM),
  whose numbers **AdaNeg** (NeurIPS'24) and **TANL** publish: ``roc_curve(is_ood, -score)`` with
  scikit-learn's defaults, then the FPR at the first ROC point with TPR >= 0.95, i.e. the fraction of ID
  samples flagged as OOD when at least 95% of OOD samples are caught. Not the same quantity as the two
  above. A quirk kept on purpose: ``roc_curve``'s default ``drop_intermediate`` removes points inside
  collinear runs of equal steps, so with ties the first point at TPR >= 0.95 may be gone and the next
  kept point (larger FPR) is used; the tie example in ``tests/test_metrics.py`` gives 0.20 where the
  k-th-largest-OOD-score definition gives 0.19.

  **CLIPScope** (Fu et al.) uses a fourth rule, not offered: ID positive, the first ROC point with
  TPR strictly above 0.95 (``np.argmax(tpr > 0.95)``), on a random subsample of 10,000 images per set
  scored in an unseeded random order with an online class prior, so its numbers cannot be recomputed
  from per-image scores alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from oodbench.errors import OodbenchError

FPR_CONVENTIONS = ("nearest", "interpolate", "openood")
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
    """FPR at the distinct-threshold ROC point whose TPR is closest to ``tpr`` (MOS / MCM / NegLabel).

    ``labels`` are 1 for ID, 0 for OOD; ``scores`` higher = more ID.
    """
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
    """FPR interpolated on the ROC curve at TPR = ``tpr``, as CLIPN's ``cal_auc_fpr`` (ID positive).

    ``np.interp`` on scikit-learn's default ROC curve; on a run of points with TPR == ``tpr`` exactly it
    returns the largest FPR of the run (what ``scipy.interpolate.interp1d`` returns there).
    """
    from sklearn.metrics import roc_curve  # imported here: `oodbench report` needs no sklearn

    fpr_curve, tpr_curve, _ = roc_curve(labels, scores)
    return float(np.interp(tpr, tpr_curve, fpr_curve))


def fpr_at_ood_recall(labels: np.ndarray, scores: np.ndarray, tpr: float = 0.95) -> float:
    """OpenOOD v1.5's FPR@95: OOD positive, fraction of ID flagged at the first ROC point with OOD recall
    >= ``tpr`` (scikit-learn's default ROC curve on the negated scores; ``labels`` 1 = ID as elsewhere)."""
    from sklearn.metrics import roc_curve

    fpr_curve, tpr_curve, _ = roc_curve(1 - labels, -scores)
    return float(fpr_curve[np.argmax(tpr_curve >= tpr)])


_FPR = {"nearest": fpr_at_tpr_nearest, "interpolate": fpr_at_tpr_interpolated, "openood": fpr_at_ood_recall}


def ood_metrics(id_scores: Sequence[float] | np.ndarray, ood_scores: Sequence[float] | np.ndarray,
                fpr_convention: str = "nearest") -> dict[str, float]:
    """AUROC, FPR95, AUPR-In and AUPR-Out of ID vs OOD scores (higher = more ID; ID positive).

    ``fpr_convention`` is one of :data:`FPR_CONVENTIONS` (module docstring: which paper uses which).
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
