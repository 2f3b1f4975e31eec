"""TANL: S_aa, Otsu and the whole stream against hand values and a plain loop reference."""

from __future__ import annotations

import math

import pytest
import torch

from oodbench.methods.tanl import (
    _prefix_ends,
    activation_aware_score,
    otsu_grid,
    otsu_threshold,
    tanl_noise_images,
    tanl_stream_scores,
)


def unit(x):
    x = torch.as_tensor(x, dtype=torch.float64)
    return x / x.norm(dim=-1, keepdim=True)


# ------------------------------------------------------------------------------------------- S_aa
def test_activation_aware_score_by_hand():
    """Two ID logits, three negatives in selection order, step 1: the mean of three prefix masses."""
    id_logits = torch.tensor([[0.0, 1.0]])
    neg = torch.tensor([[2.0, 0.0, -1.0]])
    a = 1 + math.e
    expected = (a / (a + math.e ** 2) + a / (a + math.e ** 2 + 1) + a / (a + math.e ** 2 + 1 + math.e ** -1)) / 3
    got = activation_aware_score(id_logits, neg, _prefix_ends(3, 1))
    assert got.item() == pytest.approx(expected, rel=1e-12)
    # step 0: the single full softmax (NegLabel with one group)
    got0 = activation_aware_score(id_logits, neg, _prefix_ends(3, 0))
    assert got0.item() == pytest.approx(a / (a + math.e ** 2 + 1 + math.e ** -1), rel=1e-12)
    # the order of the negatives matters for step >= 1 (the first ones enter every prefix)
    rev = activation_aware_score(id_logits, neg.flip(1), _prefix_ends(3, 1))
    assert abs(rev.item() - got.item()) > 1e-2


@pytest.mark.parametrize("m,step", [(10, 1), (10, 3), (10, 10), (10, 0), (7, 2), (5, 8)])
def test_prefix_ends_follow_the_official_loop(m, step):
    """The official loop runs i = C, C+step, ... < C+M and takes columns [:i+step] (clipped to C+M)."""
    if step == 0:
        expected = [m]
    else:
        expected = [min(i + step, m) for i in range(0, m, step)]
    assert _prefix_ends(m, step).tolist() == expected


def test_activation_aware_score_matches_explicit_softmaxes():
    g = torch.Generator().manual_seed(0)
    id_logits = 5 * torch.randn(4, 6, generator=g)
    neg = 5 * torch.randn(4, 9, generator=g)
    for step in (0, 1, 2, 4):
        ends = _prefix_ends(9, step)
        explicit = torch.stack([torch.softmax(torch.cat([id_logits, neg[:, :m]], 1).double(), 1)[:, :6].sum(1)
                                for m in ends.tolist()], 1).mean(1)
        assert torch.allclose(activation_aware_score(id_logits, neg, ends), explicit, atol=1e-12)


# ------------------------------------------------------------------------------------------- Otsu
def naive_otsu(values):
    crit = []
    for th in otsu_grid():
        mask = values >= th
        w1 = mask.double().mean()
        w0 = 1 - w1
        if w1 == 0 or w0 == 0:
            crit.append(math.inf)
            continue
        crit.append(float(w0 * values[~mask].double().var(unbiased=False) + w1 * values[mask].double().var(unbiased=False)))
    crit = torch.tensor(crit)
    ties = torch.nonzero(crit == crit.min()).flatten()
    return otsu_grid()[ties[len(ties) // 2]]


def test_otsu_two_clusters_takes_the_middle_of_the_tied_thresholds():
    """{0.1, 0.1, 0.9, 0.9}: every theta in (0.1, 0.9] splits perfectly (criterion 0), i.e. grid points
    0.11 ... 0.90 (80 of them); the middle one, index 40 of that list, is 0.51."""
    values = torch.tensor([0.1, 0.1, 0.9, 0.9], dtype=torch.float32)
    assert otsu_threshold(values).item() == pytest.approx(0.51, abs=1e-6)


def test_otsu_matches_the_naive_loop():
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        values = torch.cat([0.2 * torch.rand(300, generator=g), 0.6 + 0.4 * torch.rand(200, generator=g)]).float()
        assert otsu_threshold(values).item() == naive_otsu(values).item()
    constant = torch.full((10,), 0.5)
    assert otsu_threshold(constant).item() == naive_otsu(constant).item()  # all inf but one side: ties


# ----------------------------------------------------------------------------------- noise images
def test_noise_images_shape_range_and_determinism():
    a = tanl_noise_images(torch.Generator().manual_seed(0), size=16)
    b = tanl_noise_images(torch.Generator().manual_seed(0), size=16)
    assert a.shape == (15, 3, 16, 16) and torch.equal(a, b)
    assert a.min() == 0 and a.max() == 1
    assert set(a[12:].unique().tolist()) <= {0.0, 1.0}


# --------------------------------------------------------------------------------- whole stream
def reference_tanl(x, t, corpus, noise, *, batch_size, m, length, gap, alpha, step, s, seed, buffer_len=20000):
    """Loops, lists and float64; the algorithm as the docstring states it."""
    x, t, corpus, noise = x.double(), t.double(), corpus.double(), noise.double()
    c = t.shape[0]
    labels = torch.cat([t, corpus])
    gen = torch.Generator().manual_seed(seed)
    perm_pos = torch.randperm(c, generator=gen)
    perm_neg = torch.randperm(noise.shape[0], generator=gen)

    def act(v):
        return torch.softmax(s * (labels @ v), 0)[c:]

    def saa(v, order):
        ends = _prefix_ends(m, step).tolist()
        vals = []
        for e in ends:
            logits = torch.cat([s * (t @ v), s * (corpus[order[:e]] @ v)])
            vals.append(float(torch.softmax(logits, 0)[:c].sum()))
        return sum(vals) / len(vals)

    def top(d):
        return sorted(range(len(d)), key=lambda j: (-float(d[j]), j))[:m]

    q_pos = [act(t[i]) for i in perm_pos.tolist()][-length:]
    q_neg = [act(noise[i]) for i in perm_neg.tolist()][-length:]
    mean = lambda rows: torch.stack(rows).mean(0)
    sel = top(mean(q_neg) - mean(q_pos))
    buffer = [saa(v, sel) for v in t] + [saa(v, sel) for v in noise]
    out = []
    for start in range(0, x.shape[0], batch_size):
        batch = x[start:start + batch_size]
        acts = [act(v) for v in batch]
        sel = top(mean(q_neg) - mean(q_pos))
        c0 = [saa(v, sel) for v in batch]
        buffer = (buffer + c0)[-buffer_len:]
        theta = naive_otsu(torch.tensor(buffer, dtype=torch.float32)).item()
        pos = [a for a, sc in zip(acts, c0) if sc > theta + gap * (1 - theta)]
        neg = [a for a, sc in zip(acts, c0) if sc < theta - gap * theta]
        ap = alpha * mean(q_pos) + (1 - alpha) * mean(pos) if pos else mean(q_pos)
        an = alpha * mean(q_neg) + (1 - alpha) * mean(neg) if neg else mean(q_neg)
        sel = top(an - ap)
        out += [saa(v, sel) for v in batch]
        q_pos = (q_pos + pos)[-length:]
        q_neg = (q_neg + neg)[-length:]
    return torch.tensor(out, dtype=torch.float64)


def tiny_world(seed, c=5, n_corpus=40, d=8, n_img=36):
    g = torch.Generator().manual_seed(seed)
    t = unit(torch.randn(c, d, generator=g, dtype=torch.float64))
    corpus = unit(torch.randn(n_corpus, d, generator=g, dtype=torch.float64))
    noise = unit(torch.randn(4, d, generator=g, dtype=torch.float64))
    anchors = torch.cat([t[torch.randint(0, c, (n_img // 2,), generator=g)],
                         corpus[torch.randint(0, n_corpus, (n_img - n_img // 2,), generator=g)]])
    strength = 0.2 + 1.5 * torch.rand(n_img, 1, generator=g, dtype=torch.float64)
    x = unit(strength * anchors + torch.randn(n_img, d, generator=g, dtype=torch.float64) / d ** 0.5)
    return x[torch.randperm(n_img, generator=g)].float(), t.float(), corpus.float(), noise.float()


@pytest.mark.parametrize("seed,batch,official,step,m,length", [
    (0, 6, False, 1, 10, 4), (1, 5, True, 2, 7, 3), (2, 12, True, 0, 10, 50), (3, 4, False, 3, 8, 2)])
def test_matches_the_plain_reference(seed, batch, official, step, m, length):
    x, t, corpus, noise = tiny_world(seed)
    ours = tanl_stream_scores(x, t, corpus, noise, batch_size=batch, official=official, step=step,
                              num_negatives=m, queue_length=length, logit_scale=10.0, seed=seed)
    gap, alpha = (0.5, 0.0) if official else (0.2, 0.95)
    ref = reference_tanl(x, t, corpus, noise, batch_size=batch, m=m, length=length, gap=gap, alpha=alpha,
                         step=step, s=10.0, seed=seed)
    assert torch.allclose(ours.scores, ref, atol=1e-6, rtol=0)
    assert torch.equal(ours.predictions, (x @ t.T).argmax(1))


def test_stream_is_not_vacuous_and_the_start_shuffle_matters():
    """Admissions change the selection (official vs no-admission run differ), and with a queue shorter
    than the number of ID labels, the seed of the start-up shuffle changes the scores."""
    x, t, corpus, noise = tiny_world(0)
    kw = {"batch_size": 6, "num_negatives": 10, "queue_length": 3, "logit_scale": 10.0}
    frozen = tanl_stream_scores(x, t, corpus, noise, gap=1.0, **kw)  # gap 1: nothing is ever admitted
    moving = tanl_stream_scores(x, t, corpus, noise, **kw)
    other_seed = tanl_stream_scores(x, t, corpus, noise, seed=5, gap=1.0, **kw)
    assert (frozen.scores - moving.scores).abs().max() > 1e-3
    assert (frozen.scores - other_seed.scores).abs().max() > 1e-3


def test_no_admission_keeps_the_initial_selection():
    """gap = 1 admits nothing: every score is S_aa under the start-up selection, computed here directly
    (queue longer than C and the noise count, so the shuffles do not matter)."""
    x, t, corpus, noise = tiny_world(4)
    s, m = 10.0, 6
    ours = tanl_stream_scores(x, t, corpus, noise, gap=1.0, num_negatives=m, queue_length=100, logit_scale=s,
                              step=1, batch_size=7)
    labels = torch.cat([t, corpus]).double()
    a_pos = torch.softmax(s * t.double() @ labels.T, 1)[:, 5:].mean(0)
    a_neg = torch.softmax(s * noise.double() @ labels.T, 1)[:, 5:].mean(0)
    sel = torch.argsort(a_neg - a_pos, descending=True)[:m]
    expected = activation_aware_score(s * x.double() @ t.double().T, s * x.double() @ corpus.double()[sel].T,
                                      _prefix_ends(m, 1))
    assert torch.allclose(ours.scores, expected, atol=1e-6)
