"""CLIPN's OOD scores and threshold-free decisions (Wang et al., ICCV 2023; ``src/zero_shot_infer.py``).

Inputs: ``f`` [N, D] L2-normalised image features, ``w`` [C, D] "yes" class heads and ``w_no`` [C, D]
"no" class heads (see :func:`oodbench.methods.clipn.model.class_heads`), scale ``s`` (fixed at 100 by the
reference at inference, i.e. temperature 0.01). With ``l_ij = s<f_i, w_j>`` and ``l_no_ij = s<f_i, w_no_j>``:

- class probabilities ``p_ij = softmax_j(l_i)``;
- per-class "no" probabilities ``p_no_ij = exp(l_no_ij) / (exp(l_ij) + exp(l_no_ij))``, the 2-way
  softmax of the paper's Eq. 4, and ``p_yes_ij = 1 - p_no_ij``.

Orientation of every score here: **higher = more in-distribution**.
"""

from __future__ import annotations

import torch


def clipn_probabilities(
    image_features: torch.Tensor,
    yes_text_features: torch.Tensor,
    no_text_features: torch.Tensor,
    scale: float = 100.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(p, p_no)``, both [N, C]: ``p = softmax_j(s<f, w_j>)``, ``p_no = sigmoid(s<f, w_no_j> - s<f, w_j>)``.

    Image features are L2-normalised [N, D]; heads [C, D]; everything is computed in float32.
    """
    f = image_features.float()
    logits = scale * f @ yes_text_features.float().to(f.device).T
    logits_no = scale * f @ no_text_features.float().to(f.device).T
    return logits.softmax(dim=-1), torch.sigmoid(logits_no - logits)


def ctw_score(
    image_features: torch.Tensor,
    yes_text_features: torch.Tensor,
    no_text_features: torch.Tensor,
    scale: float = 100.0,
) -> torch.Tensor:
    """Competing-to-win: ``S_CTW = p_yes_{i, j*} = 1 - p_no_{i, j*}`` with ``j* = argmax_j p_ij``.

    CLIPN, ICCV 2023 (CTW); default ``s = 100``. Higher = more ID. [N] float32.
    """
    p, p_no = clipn_probabilities(image_features, yes_text_features, no_text_features, scale)
    top = p.argmax(dim=-1, keepdim=True)
    return 1.0 - p_no.gather(1, top).squeeze(1)


def atd_score(
    image_features: torch.Tensor,
    yes_text_features: torch.Tensor,
    no_text_features: torch.Tensor,
    scale: float = 100.0,
) -> torch.Tensor:
    """Agreeing-to-differ: ``S_ATD = sum_j p_ij (1 - p_no_ij) = 1 - p_{C+1}``.

    The task is re-read as C + 1 classes: ID class ``j`` gets ``p_ij (1 - p_no_ij)`` and the unknown class
    ``p_{C+1} = sum_j p_ij p_no_ij``. CLIPN, ICCV 2023 (ATD); default ``s = 100``. Higher = more ID
    (CoVer, NeurIPS 2024, reports the complement ``p_{C+1}``). With one class it equals ``p_yes``. [N].
    """
    p, p_no = clipn_probabilities(image_features, yes_text_features, no_text_features, scale)
    return (p * (1.0 - p_no)).sum(dim=-1)


def ctw_accepts(
    image_features: torch.Tensor,
    yes_text_features: torch.Tensor,
    no_text_features: torch.Tensor,
    scale: float = 100.0,
) -> torch.Tensor:
    """CTW's threshold-free rule, [N] bool, True = ID: OOD exactly when ``p_no > p_yes`` at ``j*``.

    Equivalently ``<f, w_no_j*> > <f, w_j*>``; a tie is accepted as ID.
    """
    p, p_no = clipn_probabilities(image_features, yes_text_features, no_text_features, scale)
    top = p.argmax(dim=-1, keepdim=True)
    p_no_top = p_no.gather(1, top).squeeze(1)
    return ~(p_no_top > 1.0 - p_no_top)


def atd_accepts(
    image_features: torch.Tensor,
    yes_text_features: torch.Tensor,
    no_text_features: torch.Tensor,
    scale: float = 100.0,
) -> torch.Tensor:
    """ATD's threshold-free rule, [N] bool, True = ID: OOD when ``p_{C+1} > max_j p_ij (1 - p_no_ij)``.

    A tie is accepted as ID.
    """
    p, p_no = clipn_probabilities(image_features, yes_text_features, no_text_features, scale)
    unknown = (p * p_no).sum(dim=-1)
    best_id = (p * (1.0 - p_no)).max(dim=-1).values
    return ~(unknown > best_id)


def predict_classes(image_features: torch.Tensor, yes_text_features: torch.Tensor) -> torch.Tensor:
    """[N] ID class predictions: ``argmax_j <f, w_j>`` (the "yes" logits; the scale does not matter)."""
    f = image_features.float()
    return (f @ yes_text_features.float().to(f.device).T).argmax(dim=-1)
