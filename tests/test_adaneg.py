"""AdaNeg: hand-computed cases and a plain per-image reference loop (independent of the vectorised code)."""

from __future__ import annotations

import math

import pytest
import torch

from oodbench.methods.adaneg import _entropy, adaneg_stream_scores
from oodbench.methods.common import group_indices, grouped_id_mass


def unit(x):
    x = torch.as_tensor(x, dtype=torch.float64)
    return x / x.norm(dim=-1, keepdim=True)


# ------------------------------------------------------------------------------------------ helpers
def test_group_indices_is_the_seeded_global_randperm_without_touching_the_global_rng():
    state = torch.get_rng_state()
    groups = group_indices(10, 3, seed=0)  # 10 mod 3 = 1 dropped
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(0)
    expected = torch.randperm(9).view(3, 3)
    torch.set_rng_state(state)
    assert torch.equal(groups, expected)
    assert torch.equal(group_indices(10, 3, permute=False), torch.arange(9).view(3, 3))


def test_grouped_id_mass_by_hand():
    id_logits = torch.tensor([[1.0, 2.0]])
    neg_logits = torch.tensor([[0.0, 3.0, -1.0, 0.5]])
    groups = torch.tensor([[0, 1], [2, 3]])
    ide = math.e ** 1 + math.e ** 2
    g1 = ide / (ide + 1 + math.e ** 3)
    g2 = ide / (ide + math.e ** -1 + math.e ** 0.5)
    expected = (g1 + g2) / 2
    assert grouped_id_mass(id_logits.double(), neg_logits.double(), groups).item() == pytest.approx(expected, rel=1e-12)
    # float32 logits: exponentials and sums in float32, so ~1e-7 relative
    assert grouped_id_mass(id_logits, neg_logits, groups).item() == pytest.approx(expected, rel=1e-6)


def test_entropy_and_its_fp16_emulation():
    logits = torch.tensor([[0.0, -1.0, -2.0], [0.0, -30.0, -30.0]])
    p = torch.softmax(logits.double(), 1)
    h = -(p * torch.log(p + 1e-8)).sum(1)
    assert torch.allclose(_entropy(logits, fp16=False).double(), h, atol=1e-6)
    h16 = _entropy(logits, fp16=True)
    assert h16[0].item() == pytest.approx(h[0].item(), abs=2e-3)  # fp16 rounding
    assert math.isnan(h16[1].item())  # e^-30 underflows to 0 in fp16: 0 * log 0 = NaN


# ------------------------------------------------------------------------------- hand-built streams
def test_memory_is_written_before_scoring_and_the_proxy_is_the_normalised_sum():
    """One ID label, one negative, one image: the image enters its own proxy before it is scored."""
    t = unit([[1.0, 0.0, 0.0]])
    n = unit([[0.0, 1.0, 0.0]])
    v = unit([[0.8, 0.0, 0.6]])
    s = 5.0
    out = adaneg_stream_scores(v.float(), t.float(), n.float(), groups=1, logit_scale=s, lam=0.1)
    # vanilla: e^{s 0.8} / (e^{s 0.8} + e^0)
    s_nl = 1 / (1 + math.exp(-s * 0.8))
    assert s_nl > 0.75  # admitted to label 0 (the only ID label)
    p0 = unit(t[0] + v[0])  # proxy of the ID label; the negative's proxy stays n
    l_id = s * float(v[0] @ p0)
    s_ada = 1 / (1 + math.exp(-l_id))  # v . n = 0
    assert out.scores.item() == pytest.approx(s_ada + 0.1 * s_nl, rel=1e-6)
    assert out.predictions.tolist() == [0]


def test_unconfident_image_is_not_cached():
    t = unit([[1.0, 0.0, 0.0]])
    n = unit([[0.0, 1.0, 0.0]])
    v = unit([[0.3, 0.3, 0.9]])  # equal logits: S_nl = 0.5, between 0.25 and 0.75
    out = adaneg_stream_scores(v.float(), t.float(), n.float(), groups=1, logit_scale=5.0, lam=0.1)
    assert out.scores.item() == pytest.approx(0.5 + 0.1 * 0.5, rel=1e-6)


def _probe_score(memory_images, probe, t, n, s):
    """S_ada + 0.1 S_nl of ``probe`` with the ID proxy norm(t + sum memory_images), negative proxy n."""
    p = unit(t[0] + sum(memory_images))
    l_id = s * float(probe @ t[0])
    l_neg = s * float(probe @ n[0])
    s_nl = 1 / (1 + math.exp(l_neg - l_id))
    s_ada = 1 / (1 + math.exp(l_neg - s * float(probe @ p)))
    return s_ada + 0.1 * s_nl


@pytest.mark.parametrize("official", [False, True])
def test_capacity_and_lowest_entropy_replacement(official):
    """memory_length=2: the paper keeps 2 images per label, the official code 1 (its off-by-one).

    Two ID labels so that the entropy is informative; a, b, c all go to label 0 with entropies
    H(a) > H(b) > H(c) (a is the least confident). Stream a, b, c, probe with batch size 1.
    """
    t = unit([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    n = unit([[0.0, 0.0, 1.0, 0.0]])
    a = unit([0.80, 0.30, 0.0, 0.52])
    b = unit([0.85, 0.20, 0.0, 0.49])
    c = unit([0.90, 0.05, 0.0, 0.43])
    probe = unit([0.3, 0.0, 0.35, 0.88])
    s = 10.0
    stream = torch.stack([a, b, c, probe])
    out = adaneg_stream_scores(stream.float(), t.float(), n.float(), groups=1, logit_scale=s, batch_size=1,
                               memory_length=2, official=official)
    ent = [float(_entropy((s * x[None] @ t.T), fp16=False)) for x in (a, b, c)]
    assert ent[0] > ent[1] > ent[2]
    # each of a, b, c is admitted (check), the probe's own admission is checked below
    s_nl = [1 / (1 + math.exp(s * float(x @ n[0]) - float(torch.logsumexp(s * (t @ x), 0)))) for x in (a, b, c)]
    assert min(s_nl) > 0.75
    if official:  # one slot: a, then b replaces a (lower entropy), then c replaces b
        memory = [c]
    else:  # two slots: a, b; then c replaces a (the highest entropy)
        memory = [b, c]
    # probe: S_nl low enough not to be admitted to label 0 (and not below 0.25)
    l = s * (t @ probe)
    s_nl_probe = 1 / (1 + math.exp(s * float(probe @ n[0]) - float(torch.logsumexp(l, 0))))
    assert 0.25 < s_nl_probe < 0.75
    expected_logits_id = [s * float(probe @ unit(t[0] + sum(memory))), s * float(probe @ t[1])]
    lse_id = float(torch.logsumexp(torch.tensor(expected_logits_id), 0))
    s_ada = 1 / (1 + math.exp(s * float(probe @ n[0]) - lse_id))
    assert out.scores[3].item() == pytest.approx(s_ada + 0.1 * s_nl_probe, rel=1e-5)


def test_nan_entropies_freeze_a_full_row():
    """fp16_entropy=True: the first image's entropy is NaN (a probability underflows in fp16), so the
    second, more confident image (finite, lower entropy) never replaces it; in float32 it does."""
    t = unit([[1.0, 0, 0, 0, 0], [0, 1.0, 0, 0, 0], [0, 0, 1.0, 0, 0]])
    n = unit([[0, 0, 0, 1.0, 0]])
    first = unit([0.60, 0.59, -0.30, -0.30, 0.45])
    second = unit([0.50, 0.426, 0.35, -0.50, 0.55])
    probe = unit([1.0, 0.0, 0.0, 1.0, 1.13])  # S_nl = 0.5; S_ada ~0.5 with first cached, ~0.02 with second
    s = 100.0
    h32 = [float(_entropy((s * x[None] @ t.T).float(), fp16=False)) for x in (first, second)]
    h16 = [float(_entropy((s * x[None] @ t.T).float(), fp16=True)) for x in (first, second)]
    assert math.isnan(h16[0]) and not math.isnan(h16[1]) and h32[1] < h32[0]
    stream = torch.stack([first, second, probe]).float()
    kw = {"groups": 1, "logit_scale": s, "batch_size": 1, "memory_length": 1, "official": False}
    frozen = adaneg_stream_scores(stream, t.float(), n.float(), fp16_entropy=True, **kw).scores[2]
    replaced = adaneg_stream_scores(stream, t.float(), n.float(), fp16_entropy=False, **kw).scores[2]
    keep_first = adaneg_stream_scores(stream[[0, 2]], t.float(), n.float(), **kw).scores[1]
    keep_second = adaneg_stream_scores(stream[[1, 2]], t.float(), n.float(), **kw).scores[1]
    assert frozen.item() == pytest.approx(keep_first.item(), rel=1e-9)
    assert replaced.item() == pytest.approx(keep_second.item(), rel=1e-9)
    assert abs(keep_first.item() - keep_second.item()) > 1e-4


def test_sample_adaptive_proxy_by_hand():
    t = unit([[1.0, 0.0, 0.0]])
    n = unit([[0.0, 1.0, 0.0]])
    v = unit([[0.8, 0.0, 0.6]])
    s, beta = 5.0, 2.0
    out = adaneg_stream_scores(v.float(), t.float(), n.float(), groups=1, logit_scale=s, beta=beta,
                               sample_adaptive=True)
    w_t = math.exp(-beta * (1 - float(v[0] @ t[0])))
    w_v = math.exp(-beta * 0.0)  # the image itself is in the memory: cos 1
    p0 = unit(w_t * t[0] + w_v * v[0])
    s_nl = 1 / (1 + math.exp(-s * 0.8))
    s_ada = 1 / (1 + math.exp(-s * float(v[0] @ p0)))
    assert out.scores.item() == pytest.approx(s_ada + 0.1 * s_nl, rel=1e-6)
    # beta is truncated to an integer only with official=True (5.5 -> 5)
    a = adaneg_stream_scores(v.float(), t.float(), n.float(), groups=1, logit_scale=s, beta=5.5, sample_adaptive=True, official=True)
    b = adaneg_stream_scores(v.float(), t.float(), n.float(), groups=1, logit_scale=s, beta=5.0, sample_adaptive=True, image_slots=10)
    assert a.scores.item() == pytest.approx(b.scores.item(), rel=1e-9)


# ---------------------------------------------------------------------- plain per-image reference
def reference_adaneg(x, t, n, *, batch_size, slots, gamma=0.5, gap=0.5, lam=0.1, beta=5.0, groups=5,
                     s=100.0, sample_adaptive=False):
    """Lists and loops, float64: the algorithm as written in the docstring, one image at a time."""
    x, t, n = x.double(), t.double(), n.double()
    labels = torch.cat([t, n])
    c = t.shape[0]
    g = group_indices(n.shape[0], groups, seed=0)
    memory = [[] for _ in range(labels.shape[0])]  # lists of [feature, entropy], slot order

    def mass(l):
        return grouped_id_mass(l[None, :c], l[None, c:], g).item()

    out, preds = [], []
    for start in range(0, x.shape[0], batch_size):
        batch = x[start:start + batch_size]
        vanilla = [mass(s * (labels @ v)) for v in batch]
        writes = []
        for i, v in enumerate(batch):
            l = s * (labels @ v)
            if vanilla[i] > gamma + gap * (1 - gamma):
                p = torch.softmax(l[:c], 0)
                writes.append((int(l[:c].argmax()), v, float(-(p * torch.log(p + 1e-8)).sum())))
        for i, v in enumerate(batch):
            l = s * (labels @ v)
            if vanilla[i] < gamma - gap * gamma:
                p = torch.softmax(l[c:], 0)
                writes.append((c + int(l[c:].argmax()), v, float(-(p * torch.log(p + 1e-8)).sum())))
        for k, v, h in writes:
            row = memory[k]
            if len(row) < slots:
                row.append([v, h])
            elif any(h < e for _, e in row):
                worst = max(range(len(row)), key=lambda j: (row[j][1], j))  # last of the largest
                row[worst] = [v, h]
        for i, v in enumerate(batch):
            ada = []
            for k in range(labels.shape[0]):
                feats = [labels[k]] + [f for f, _ in memory[k]]
                if sample_adaptive:
                    p = sum(math.exp(-beta * (1 - float(v @ f))) * f for f in feats)
                else:
                    p = sum(feats)
                ada.append(s * float(v @ (p / p.norm())))
            ada = torch.tensor(ada, dtype=torch.float64)
            out.append(mass(ada) + lam * vanilla[i])
            mix = torch.softmax(s * (labels @ v), 0) + lam * torch.softmax(ada, 0)
            preds.append(int(mix[:c].argmax()))
    return torch.tensor(out, dtype=torch.float64), torch.tensor(preds)


def small_world(seed, c=6, m=11, d=8, n_img=40, classes=3):
    g = torch.Generator().manual_seed(seed)
    t = unit(torch.randn(c, d, generator=g, dtype=torch.float64))
    n = unit(torch.randn(m, d, generator=g, dtype=torch.float64))
    anchors = torch.cat([t[torch.randint(0, classes, (n_img // 2,), generator=g)],
                         n[torch.randint(0, m, (n_img - n_img // 2,), generator=g)]])
    strength = 0.3 + 2.0 * torch.rand(n_img, 1, generator=g, dtype=torch.float64)
    x = unit(strength * anchors + torch.randn(n_img, d, generator=g, dtype=torch.float64) / d ** 0.5)
    return x[torch.randperm(n_img, generator=g)].float(), t.float(), n.float()


@pytest.mark.parametrize("seed,batch,official,sample_adaptive,memory_length",
                         [(0, 4, True, False, 3), (1, 7, False, False, 2), (2, 5, True, True, 3),
                          (3, 1, False, True, 2), (4, 40, True, False, 10)])
def test_matches_the_plain_reference(seed, batch, official, sample_adaptive, memory_length):
    x, t, n = small_world(seed)
    ours = adaneg_stream_scores(x, t, n, batch_size=batch, official=official, memory_length=memory_length,
                                sample_adaptive=sample_adaptive, groups=5, logit_scale=10.0, beta=5.5)
    slots = memory_length - 1 if official else memory_length
    beta = 5.0 if official else 5.5
    ref_s, ref_p = reference_adaneg(x, t, n, batch_size=batch, slots=slots, s=10.0, beta=beta,
                                    sample_adaptive=sample_adaptive)
    assert torch.allclose(ours.scores, ref_s, atol=2e-6, rtol=0)  # float32 matmuls vs float64 loops
    assert torch.equal(ours.predictions, ref_p)


def test_the_stream_actually_exercises_admission_and_replacement():
    """Guards the reference test above against a vacuous world: memory writes and replacements occur."""
    x, t, n = small_world(0)
    full = adaneg_stream_scores(x, t, n, batch_size=4, official=True, memory_length=3, logit_scale=10.0)
    none = adaneg_stream_scores(x, t, n, batch_size=4, official=True, memory_length=1, logit_scale=10.0)
    one = adaneg_stream_scores(x, t, n, batch_size=4, official=True, memory_length=2, logit_scale=10.0)
    assert (full.scores - none.scores).abs().max() > 1e-3
    assert (full.scores - one.scores).abs().max() > 1e-4


def test_rejects_bad_shapes():
    with pytest.raises(ValueError):
        adaneg_stream_scores(torch.zeros(3, 4), torch.zeros(2, 5), torch.zeros(5, 5))
    with pytest.raises(ValueError):
        adaneg_stream_scores(torch.zeros(3, 4), torch.zeros(2, 4), torch.zeros(5, 4), batch_size=0)
