"""OODD: self-match and dictionary rules by hand, a plain list-based loop, and the heap tie rule."""

from __future__ import annotations

from queue import PriorityQueue

import pytest
import torch

from oodbench.methods.oodd import oodd_stream_scores


def unit(x):
    x = torch.as_tensor(x, dtype=torch.float32)
    return x / x.norm(dim=-1, keepdim=True)


def test_k1_with_a_large_dictionary_is_base_minus_one():
    """Every image is in the dictionary when it is scored and matches itself (cos 1) first."""
    g = torch.Generator().manual_seed(0)
    x = unit(torch.randn(20, 6, generator=g))
    b = torch.rand(20, generator=g, dtype=torch.float64)
    out = oodd_stream_scores(x, b, k=1, batch_size=4, queue_size=100)
    assert torch.allclose(out.scores, b - 1, atol=1e-6)
    assert out.predictions is None


def test_dictionary_keeps_the_lowest_base_scores_by_hand():
    """queue 2, k 2, batch 1. Stream (feature, b): e1 0.1, e2 0.9, e3 0.5, e1' 0.3 (e1' = e1 + e2 mix).

    t0: D={e1}: needs k=2 entries -> first batch must hold k images, so use batch 2 for the first two."""
    e1, e2, e3 = torch.eye(3)
    mix = unit(e1 + e2)
    x = torch.stack([e1, e2, e3, mix])
    b = torch.tensor([0.1, 0.9, 0.5, 0.3], dtype=torch.float64)
    out = oodd_stream_scores(x, b, k=2, batch_size=2, queue_size=2)
    # batch 1 (e1, e2): D = {e1, e2}; 2nd-largest cos: e1 -> cos(e1, e2) = 0; e2 -> 0
    # batch 2 (e3, mix): D after pushes = 2 lowest of {e1 .1, e2 .9, e3 .5, mix .3} = {e1, mix}
    #   e3: cos to e1 = 0, to mix = 0 -> 0; mix: cos to mix = 1, to e1 = 0.7071 -> 0.7071
    expected = [0.1 - 0.0, 0.9 - 0.0, 0.5 - 0.0, 0.3 - 2 ** -0.5]
    assert out.scores.tolist() == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError):
        oodd_stream_scores(x, b, k=2, batch_size=1)


class _Item:
    def __init__(self, score, idx):
        self.score, self.idx = score, idx

    def __lt__(self, other):
        return self.score > other.score


def plain_loop(x, b, batch, size, k):
    """queue.PriorityQueue as in the official code, list of features, explicit sort for the k-th."""
    q = PriorityQueue()
    out = []
    for start in range(0, len(x), batch):
        for i in range(start, min(start + batch, len(x))):
            q.put(_Item(float(b[i]), i))
            if q.qsize() > size:
                q.get()
        members = [item.idx for item in q.queue]
        for i in range(start, min(start + batch, len(x))):
            sims = sorted((float(x[i].double() @ x[j].double()) for j in members), reverse=True)
            out.append(float(b[i]) - sims[k - 1])
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("ties", [False, True])
def test_matches_the_priority_queue_loop(ties):
    g = torch.Generator().manual_seed(1)
    x = unit(torch.randn(300, 8, generator=g))
    b = torch.rand(300, generator=g, dtype=torch.float64)
    if ties:
        b = torch.where(b > 0.6, torch.ones_like(b), b)  # like NegLabel scores rounding to 1.0
    ref = plain_loop(x, b, batch=16, size=40, k=3)
    official = oodd_stream_scores(x, b, batch_size=16, queue_size=40, k=3, official=True)
    assert torch.allclose(official.scores, ref, atol=1e-6)
    stable = oodd_stream_scores(x, b, batch_size=16, queue_size=40, k=3)
    if ties:
        assert (stable.scores - ref).abs().max() > 1e-3  # tie order matters, and only official=True follows the heap
    else:
        assert torch.allclose(stable.scores, ref, atol=1e-6)
