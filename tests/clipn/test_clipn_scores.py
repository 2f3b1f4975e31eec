"""CTW / ATD scores and decisions against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from oodbench.methods.clipn.scores import (
    atd_accepts,
    atd_log_odds,
    atd_score,
    ctw_accepts,
    ctw_log_odds,
    ctw_score,
    predict_classes,
)

S = 2.0
W = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
W_NO = torch.tensor([[0.6, 0.8], [0.8, 0.6]])
F = torch.tensor([[1.0, 0.0], [0.8, 0.6]])


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_scores_by_hand():
    # image 0: l = (2, 0), l_no = (1.2, 1.6); image 1: l = (1.6, 1.2), l_no = (1.92, 2.0)
    p0 = [sig(2.0), sig(-2.0)]
    pno0 = [sig(1.2 - 2.0), sig(1.6 - 0.0)]
    p1 = [sig(0.4), sig(-0.4)]
    pno1 = [sig(1.92 - 1.6), sig(2.0 - 1.2)]
    ctw = ctw_score(F, W, W_NO, S)
    atd = atd_score(F, W, W_NO, S)
    assert ctw.tolist() == pytest.approx([1 - pno0[0], 1 - pno1[0]], abs=1e-6)
    assert atd.tolist() == pytest.approx([sum(p * (1 - q) for p, q in zip(p0, pno0)),
                                          sum(p * (1 - q) for p, q in zip(p1, pno1))], abs=1e-6)
    assert ctw.dtype == torch.float64 and ctw.shape == (2,)


def test_decisions_by_hand():
    # image 0: p_no < p_yes at its top class; p_{C+1} = 0.33 < 0.61 -> ID for both rules
    # image 1: p_no(top) = sig(0.32) > 0.5 -> CTW says OOD;
    #          p_{C+1} = 0.624 > max(0.252, 0.124) -> ATD says OOD
    assert ctw_accepts(F, W, W_NO, S).tolist() == [True, False]
    assert atd_accepts(F, W, W_NO, S).tolist() == [True, False]
    assert predict_classes(F, W).tolist() == [0, 0]


def test_atd_is_one_minus_unknown_and_single_class_reduces_to_p_yes():
    gen = torch.Generator().manual_seed(1)
    f = torch.nn.functional.normalize(torch.randn(7, 5, generator=gen), dim=-1)
    w = torch.nn.functional.normalize(torch.randn(3, 5, generator=gen), dim=-1)
    w_no = torch.nn.functional.normalize(torch.randn(3, 5, generator=gen), dim=-1)
    logits, logits_no = 100 * f.double() @ w.double().T, 100 * f.double() @ w_no.double().T
    p = logits.softmax(-1)
    p_no = torch.stack([logits, logits_no], -1).softmax(-1)[..., 1]
    assert torch.allclose(atd_score(f, w, w_no), 1 - (p * p_no).sum(-1), atol=1e-12)
    assert torch.allclose(atd_score(f, w[:1], w_no[:1]), ctw_score(f, w[:1], w_no[:1]), atol=1e-6)


def test_scores_are_oriented_higher_is_more_id():
    w, w_no = torch.eye(2), torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    id_like = torch.tensor([[1.0, 0.0]])
    ood_like = torch.nn.functional.normalize(torch.tensor([[1.0, 1.0]]), dim=-1)  # as near 'no' as 'yes'
    assert ctw_score(id_like, w, w_no) > ctw_score(ood_like, w, w_no)
    assert atd_score(id_like, w, w_no) > atd_score(ood_like, w, w_no)


def test_log_odds_are_the_scores_log_odds():
    gen = torch.Generator().manual_seed(2)
    f = torch.nn.functional.normalize(torch.randn(9, 6, generator=gen), dim=-1)
    w = torch.nn.functional.normalize(torch.randn(4, 6, generator=gen), dim=-1)
    w_no = torch.nn.functional.normalize(torch.randn(4, 6, generator=gen), dim=-1)
    for score, log_odds in ((ctw_score, ctw_log_odds), (atd_score, atd_log_odds)):
        p = score(f, w, w_no, 5.0)
        torch.testing.assert_close(log_odds(f, w, w_no, 5.0), torch.log(p / (1 - p)), rtol=1e-9, atol=1e-9)


def test_log_odds_keep_confident_images_apart_where_probabilities_round_to_one():
    # Top-class "yes" logit 60 to 80 above its "no" logit at scale 100: p_yes = 1 - e^-60.. rounds to 1.0
    # in float64, so the probabilities tie; the log-odds keep the three images in order.
    w, w_no = torch.eye(3)[:2], torch.eye(3)[1:]
    f = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0, 0.2], [1.0, 0.0, 0.3], [1.0, 0.0, 0.4]]), dim=-1)
    assert torch.all(ctw_score(f, w, w_no) == 1.0)
    lo = ctw_log_odds(f, w, w_no)
    assert lo[0] > lo[1] > lo[2] > 36
    assert torch.all(atd_score(f, w, w_no) == 1.0)
    lo = atd_log_odds(f, w, w_no)
    assert torch.all(torch.isfinite(lo)) and lo[0] > lo[1] > lo[2]
