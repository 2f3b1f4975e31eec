"""ITBO and TSO against hand-computed values (N = 1, N = 2) and a naive per-pair implementation."""

from __future__ import annotations

import math

import pytest
import torch

from oodbench.methods.clipn.losses import clipn_loss, gather_keep_own_grad, itbo_loss, tso_loss


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_itbo_tso_n2_by_hand():
    f = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    g = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    g_no = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    # s = 1: yes-minus-no margins are +1 on the diagonal, -1 off it; off-diagonal targets "no": +1 too
    loss_yes, loss_no = itbo_loss(f, g, g_no, scale=1.0)
    assert loss_yes.item() == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)
    assert loss_no.item() == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)
    assert tso_loss(g, g_no).item() == pytest.approx(2 - math.sqrt(2 + 1e-4), abs=1e-6)
    total = clipn_loss(f, g, g_no, scale=1.0, gather=False)
    assert total.total.item() == pytest.approx(0.5 * (2 * math.log(1 + math.exp(-1)) + 2 - math.sqrt(2.0001)),
                                               abs=1e-6)


def test_itbo_n1_has_no_off_diagonal_term():
    f = torch.tensor([[1.0, 0.0]])
    g = torch.tensor([[0.6, 0.8]], requires_grad=True)
    g_no = torch.tensor([[0.8, 0.6]], requires_grad=True)
    loss_yes, loss_no = itbo_loss(f, g, g_no, scale=10.0)
    assert loss_yes.item() == pytest.approx(math.log(1 + math.exp(2.0)), abs=1e-5)  # margin 10 * (0.6 - 0.8)
    assert loss_no.item() == 0.0
    assert tso_loss(g, g_no).item() == pytest.approx(2 - math.sqrt(2 - 2 * 0.96 + 1e-4), abs=1e-6)
    total = clipn_loss(f, g, g_no, scale=10.0, gather=False).total
    total.backward()  # the empty off-diagonal term stays in the graph
    assert torch.isfinite(g_no.grad).all() and g_no.grad.abs().sum() > 0


def test_itbo_matches_naive_two_way_softmax():
    gen = torch.Generator().manual_seed(0)
    f, g, g_no = (torch.nn.functional.normalize(torch.randn(5, 8, generator=gen), dim=-1) for _ in range(3))
    s = 20.0
    yes_terms, no_terms = [], []
    for i in range(5):
        for j in range(5):
            pair = torch.stack([s * f[i] @ g[j], s * f[i] @ g_no[j]]).softmax(dim=0)
            (yes_terms if i == j else no_terms).append(-(pair[0] if i == j else pair[1]).log())
    loss_yes, loss_no = itbo_loss(f, g, g_no, scale=s)
    assert loss_yes.item() == pytest.approx(torch.stack(yes_terms).mean().item(), rel=1e-5)
    assert loss_no.item() == pytest.approx(torch.stack(no_terms).sum().item() / 20, rel=1e-5)


def test_tso_extremes_and_large_scale_is_finite():
    g = torch.nn.functional.normalize(torch.randn(4, 6), dim=-1)
    assert tso_loss(g, g).item() == pytest.approx(2 - math.sqrt(1e-4), abs=1e-5)  # float32 cosine
    assert tso_loss(g, -g).item() == pytest.approx(2 - math.sqrt(4 + 1e-4), abs=1e-5)
    loss_yes, loss_no = itbo_loss(g, g, -g, scale=1e4)  # would overflow a naive exp
    assert torch.isfinite(loss_yes) and torch.isfinite(loss_no)


def test_gather_is_identity_in_one_process():
    x = torch.randn(3, 4, requires_grad=True)
    assert gather_keep_own_grad(x) is x


def test_itbo_rejects_unpaired_batches():
    with pytest.raises(ValueError):
        itbo_loss(torch.zeros(2, 3), torch.zeros(3, 3), torch.zeros(2, 3))


def test_clipn_loss_renormalises_low_precision_features():
    g = torch.nn.functional.normalize(torch.randn(4, 6), dim=-1) * 1.004  # a bf16 "unit" vector's norm
    assert torch.isnan(tso_loss(g, g)).item()  # the raw formula takes a negative square root
    loss = clipn_loss(g, g, g.clone(), scale=100.0, gather=False)
    assert loss.tso.item() == pytest.approx(2 - math.sqrt(1e-4), abs=1e-4)
