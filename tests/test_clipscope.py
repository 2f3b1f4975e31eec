"""CLIPScope: the running class prior by hand, a plain one-image-at-a-time loop, and the mining rule."""

from __future__ import annotations

import pytest
import torch

from oodbench.methods.clipscope import clipscope_counts, clipscope_mine_negatives, clipscope_stream_scores


def unit(x):
    x = torch.as_tensor(x, dtype=torch.float64)
    return x / x.norm(dim=-1, keepdim=True)


def test_prior_by_hand():
    """Two ID classes, one far and one near label, s = 1 for readable numbers. Stream: v0, v0, v1, v0.

    n starts at (1, 1); image t is divided by pi_t(y) = n(y) / (2 + t), then n(y) += 1."""
    t = unit([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    far = unit([[0.0, 0.0, 1.0]])
    near = unit([[0.6, 0.0, 0.8]])
    v0 = unit([0.9, 0.1, 0.3])
    v1 = unit([0.1, 0.9, 0.2])
    stream = torch.stack([v0, v0, v1, v0])
    out = clipscope_stream_scores(stream.float(), t.float(), far.float(), near.float(), logit_scale=1.0)

    def base(v):
        l_id = t @ v
        p = torch.softmax(l_id, 0)
        mass = torch.softmax(torch.cat([l_id, far @ v, near @ v]), 0)[:2].sum()
        return float(p.max() * mass)

    priors = [1 / 2, 2 / 3, 1 / 4, 3 / 5]  # class 0: n = 1, 2, (class 1: 1), 3 over 2 + t
    expected = [base(v) / pr for v, pr in zip(stream, priors)]
    assert out.scores.tolist() == pytest.approx(expected, rel=1e-6)
    assert out.predictions.tolist() == [0, 0, 1, 0]


def plain_loop(x, t, far, near, s=100.0):
    """The official per-image loop, in float64."""
    x, t = x.double(), t.double()
    labels = torch.cat([t, far.double(), near.double()])
    count = [1.0] * t.shape[0]
    out = []
    for v in x:
        sim = labels @ v
        probs = torch.softmax(s * sim[:t.shape[0]], 0)
        y = int(probs.argmax())
        mass = float(torch.softmax(s * sim, 0)[:t.shape[0]].sum())
        out.append(float(probs[y]) * mass / (count[y] / sum(count)))
        count[y] += 1
    return torch.tensor(out, dtype=torch.float64)


def test_matches_the_plain_loop():
    g = torch.Generator().manual_seed(0)
    t = unit(torch.randn(7, 16, generator=g, dtype=torch.float64)).float()
    far = unit(torch.randn(5, 16, generator=g, dtype=torch.float64)).float()
    near = unit(torch.randn(4, 16, generator=g, dtype=torch.float64)).float()
    x = unit(torch.cat([t[torch.randint(0, 3, (30,), generator=g)].double() * 2,
                        torch.randn(20, 16, generator=g, dtype=torch.float64)])
             + 0.3 * torch.randn(50, 16, generator=g, dtype=torch.float64)).float()
    out = clipscope_stream_scores(x, t, far, near)
    assert torch.allclose(out.scores, plain_loop(x, t, far, near), rtol=1e-4)  # float32 logits x 100
    exact = clipscope_stream_scores(x.double(), t.double(), far.double(), near.double(), dtype=torch.float64)
    assert torch.allclose(exact.scores, plain_loop(x, t, far, near), rtol=1e-10)
    # the prior matters: reversing the stream changes the scores, not just their order
    rev = clipscope_stream_scores(x.flip(0), t, far, near)
    assert (rev.scores.flip(0) - out.scores).abs().max() > 1e-3


def batched_loop(x, t, far, near, batch, s=100.0):
    """The counts updated after each batch of ``batch`` images (all images of a batch see the same counts)."""
    x, t = x.double(), t.double()
    labels = torch.cat([t, far.double(), near.double()])
    count = [1.0] * t.shape[0]
    out = []
    for start in range(0, len(x), batch):
        preds = []
        for v in x[start:start + batch]:
            sim = labels @ v
            probs = torch.softmax(s * sim[:t.shape[0]], 0)
            y = int(probs.argmax())
            mass = float(torch.softmax(s * sim, 0)[:t.shape[0]].sum())
            out.append(float(probs[y]) * mass / (count[y] / sum(count)))
            preds.append(y)
        for y in preds:
            count[y] += 1
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("batch", [1, 3, 8, 64])
def test_batch_size_updates_the_counts_per_batch(batch):
    g = torch.Generator().manual_seed(2)
    t = unit(torch.randn(5, 12, generator=g, dtype=torch.float64))
    far = unit(torch.randn(4, 12, generator=g, dtype=torch.float64))
    near = unit(torch.randn(3, 12, generator=g, dtype=torch.float64))
    x = unit(t[torch.randint(0, 2, (40,), generator=g)] + 0.5 * torch.randn(40, 12, generator=g,
                                                                           dtype=torch.float64))
    out = clipscope_stream_scores(x, t, far, near, batch_size=batch, dtype=torch.float64)
    assert torch.allclose(out.scores, batched_loop(x, t, far, near, batch), rtol=1e-10)


def test_counts_on_small_lexicons():
    assert clipscope_counts(12_000, 5000, 5000) == (5000, 5000)
    assert clipscope_counts(20, 5000, 5000) == (10, 10)  # every noun, in the asked ratio
    assert clipscope_counts(7, 5000, 5000) == (3, 4)
    assert clipscope_counts(9, 2, 0) == (2, 0)
    assert clipscope_counts(5, 6, 0) == (5, 0)


def test_mining_by_hand():
    """rank=2: r_i is the 2nd-largest cosine to the 3 ID labels; ascending r: far first, near last."""
    t = unit([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    cand = unit([[0.9, 0.8, 0.1],    # r = 0.8 / |.|
                 [0.1, 0.1, 0.99],   # r = 0.1 / |.|
                 [0.5, 0.5, 0.5],    # r = 0.577
                 [-1.0, 0.2, 0.1]])  # r = 0.1 / |.| (smaller norm than cand 1)
    r = [sorted((cand[i] @ t.T).tolist())[-2] for i in range(4)]
    order = sorted(range(4), key=lambda i: r[i])
    far, near = clipscope_mine_negatives(cand.float(), t.float(), rank=2, num_far=1, num_near=2)
    assert far.tolist() == order[:1] and near.tolist() == order[2:]
    assert order == [3, 1, 2, 0]
    with pytest.raises(ValueError):
        clipscope_mine_negatives(cand.float(), t.float(), rank=2, num_far=3, num_near=2)
