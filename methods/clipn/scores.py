"""CLIPN's OOD scores and threshold-free decisions (Wang et al., ICCV 2023; ``src/zero_shot_infer.py``).

Inputs: ``f`` [N, D] L2-normalised image features, ``w`` [C, D] "yes" class heads and ``w_no`` [C, D]
"no" class heads (see :func:`oodbench.methods.clipn.model.class_heads`), scale ``s`` (fixed at 100 by the
reference at inference, i.e. temperature 0.01). With ``l_ij = s<f_i, w_j>`` and ``l_no_ij = s<f_i, w_no_j>``:

- class probabilities ``p_ij = softmax_j(l_i)``;
- per-class "no" probabilities ``p_no_ij = exp(l_no_ij) / (exp(l_ij) + exp(l_no_ij))``, the 2-way
  softmax of the paper's Eq. 4, and ``p_yes_ij = 1 - p_no_ij = sigmoid(d_ij)`` with ``d_ij = l_ij - l_no_ij``.

Everything is computed in float64 and in log space (``log p = log_softmax(l)``, ``log p_yes = logsigmoid(d)``):
with s = 100 the probabilities round to 1.0 for confident images even in float64, the reference's float32
more so, and such ties make FPR95 depend on the last bits of the features (the toyworld ATD FPR95 moved
by 0.3 points between two CPUs). The ``*_log_odds`` scores are strictly increasing functions of the
paper's scores (same AUROC / FPR95 / AUPR as those computed exactly) that never saturate; the scorers
report them by default. Orientation of every score here: **higher = more in-distribution**.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from oodbench.methods.common import block_rows, similarities


def clipn_logits(
    image_features: torch.Tensor,
    yes_text_features: torch.Tensor,
    no_text_features: torch.Tensor,
    scale: float = 100.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log p, d)``, both float64 [N, C]: ``log p_ij = log_softmax_j(l_ij)`` and ``d_ij = l_ij - l_no_ij``,
    the log-odds of ``p_yes_ij``."""
    logits = scale * similarities(image_features, yes_text_features)
    logits_no = scale * similarities(image_features, no_text_features)
    return logits.log_softmax(dim=-1), logits - logits_no


def _by_blocks(fn, image_features: torch.Tensor, yes: torch.Tensor, no: torch.Tensor,  # type: ignore[no-untyped-def]
               scale: float) -> torch.Tensor:
    """``fn(log p, d)`` over blocks of images (bounded memory), concatenated."""
    out = [fn(*clipn_logits(x, yes, no, scale)) for x in image_features.split(block_rows(yes.shape[0]))]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.float64)


def clipn_probabilities(
    image_features: torch.Tensor,
    yes_text_features: torch.Tensor,
    no_text_features: torch.Tensor,
    scale: float = 100.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(p, p_no)``, both float64 [N, C]: ``p = softmax_j(s<f, w_j>)``, ``p_no = sigmoid(s<f, w_no_j> - s<f, w_j>)``."""
    log_p, d = clipn_logits(image_features, yes_text_features, no_text_features, scale)
    return log_p.exp(), torch.sigmoid(-d)


def _ctw_log_odds(log_p: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    return d.gather(1, log_p.argmax(dim=-1, keepdim=True)).squeeze(1)


def _atd_log_masses(log_p: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log S_ATD, log p_{C+1})``: ``LSE_j(log p_j + logsigmoid(+-d_j))``."""
    return (log_p + F.logsigmoid(d)).logsumexp(dim=-1), (log_p + F.logsigmoid(-d)).logsumexp(dim=-1)


def ctw_score(
    image_features: torch.Tensor,
    yes_text_features: torch.Tensor,
    no_text_features: torch.Tensor,
    scale: float = 100.0,
) -> torch.Tensor:
    """Competing-to-win: ``S_CTW = p_yes_{i, j*} = 1 - p_no_{i, j*}`` with ``j* = argmax_j p_ij``.

    CLIPN, ICCV 2023 (CTW); default ``s = 100``. Higher = more ID. [N] float64 (rounds to 1.0 for
    confident images: rank with :func:`ctw_log_odds`).
    """
    return torch.sigmoid(ctw_log_odds(image_features, yes_text_features, no_text_features, scale))


def ctw_log_odds(
    image_features: torch.Tensor,
    yes_text_features: torch.Tensor,
    no_text_features: torch.Tensor,
    scale: float = 100.0,
) -> torch.Tensor:
    """``log(S_CTW / (1 - S_CTW)) = l_{i, j*} - l_no_{i, j*}``: CTW's order, exact, float64 [N]."""
    return _by_blocks(_ctw_log_odds, image_features, yes_text_features, no_text_features, scale)


def atd_score(
    image_features: torch.Tensor,
    yes_text_features: torch.Tensor,
    no_text_features: torch.Tensor,
    scale: float = 100.0,
) -> torch.Tensor:
    """Agreeing-to-differ: ``S_ATD = sum_j p_ij (1 - p_no_ij) = 1 - p_{C+1}``.

    The task is re-read as C + 1 classes: ID class ``j`` gets ``p_ij (1 - p_no_ij)`` and the unknown class
    ``p_{C+1} = sum_j p_ij p_no_ij``. CLIPN, ICCV 2023 (ATD); default ``s = 100``. Higher = more ID
    (CoVer, NeurIPS 2024, reports the complement ``p_{C+1}``). With one class it equals ``p_yes``. [N]
    float64 (rounds to 1.0 for confident images: rank with :func:`atd_log_odds`).
    """
    return _by_blocks(lambda lp, d: _atd_log_masses(lp, d)[0].exp(), image_features, yes_text_features,
                      no_text_features, scale)


def atd_log_odds(
    image_features: torch.Tensor,
    yes_text_features: torch.Tensor,
    no_text_features: torch.Tensor,
    scale: float = 100.0,
) -> torch.Tensor:
    """``log(S_ATD / p_{C+1})``, both masses as log-sum-exps in float64: ATD's order, exact, [N]."""

    def log_odds(log_p: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        known, unknown = _atd_log_masses(log_p, d)
        return known - unknown

    return _by_blocks(log_odds, image_features, yes_text_features, no_text_features, scale)


def ctw_accepts(
    image_features: torch.Tensor,
    yes_text_features: torch.Tensor,
    no_text_features: torch.Tensor,
    scale: float = 100.0,
) -> torch.Tensor:
    """CTW's threshold-free rule, [N] bool, True = ID: OOD exactly when ``p_no > p_yes`` at ``j*``.

    Equivalently ``<f, w_no_j*> > <f, w_j*>``; a tie is accepted as ID.
    """
    return ctw_log_odds(image_features, yes_text_features, no_text_features, scale) >= 0


def atd_accepts(
    image_features: torch.Tensor,
    yes_text_features: torch.Tensor,
    no_text_features: torch.Tensor,
    scale: float = 100.0,
) -> torch.Tensor:
    """ATD's threshold-free rule, [N] bool, True = ID: OOD when ``p_{C+1} > max_j p_ij (1 - p_no_ij)``.

    A tie is accepted as ID. Compared in log space (float64).
    """

    def accepts(log_p: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        unknown = (log_p + F.logsigmoid(-d)).logsumexp(dim=-1)
        best_id = (log_p + F.logsigmoid(d)).amax(dim=-1)
        return ~(unknown > best_id)

    return _by_blocks(accepts, image_features, yes_text_features, no_text_features, scale).bool()


def predict_classes(image_features: torch.Tensor, yes_text_features: torch.Tensor) -> torch.Tensor:
    """[N] ID class predictions: ``argmax_j <f, w_j>`` (the "yes" logits, float64; the scale does not matter)."""
    return similarities(image_features, yes_text_features).argmax(dim=-1)
