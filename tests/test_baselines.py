"""Zero-shot energy, max-logit and GEN against hand-computed values on hand-built features."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from testkit import basis
from testkit import images_with_cosines as images

from oodbench.errors import OodbenchError
from oodbench.methods.baselines import Energy, Gen, MaxLogit, energy_score, gen_score, maxlogit_score
from oodbench.scorer import METHODS

D = 8


def test_energy_is_t_times_logsumexp_over_classes():
    x = images([[0.3, 0.1, -0.2]], D)
    t = basis(3, D)
    for temp in (1.0, 0.5, 0.01):
        expected = temp * math.log(sum(math.exp(c / temp) for c in (0.3, 0.1, -0.2)))
        assert energy_score(x, t, temp).item() == pytest.approx(expected, rel=1e-12)
    # T = 0.01 is close to the max cosine, not to 100 x it (the factor T is there)
    assert energy_score(x, t, 0.01).item() == pytest.approx(0.3, abs=1e-3)


def test_energy_default_temperature_is_001():
    x, t = images([[0.3, 0.29]], D), basis(2, D)
    assert energy_score(x, t).item() == pytest.approx(0.01 * math.log(math.exp(30) + math.exp(29)), rel=1e-12)
    assert Energy().temperature == 0.01


def test_maxlogit_is_the_largest_cosine():
    x = images([[0.3, 0.5, -0.2], [-0.1, -0.4, -0.05]], D)
    assert maxlogit_score(x, basis(3, D)).tolist() == pytest.approx([0.5, -0.05], abs=1e-15)


def _cosines_for(probs: list[float], temp: float) -> list[float]:
    """Cosines whose softmax at temp is probs (shifted so that they stay in [-1, 1])."""
    logs = [temp * math.log(p) for p in probs]
    shift = -max(logs) + 0.2
    return [v + shift for v in logs]


def _gen_term(p: float, gamma: float = 0.1) -> float:
    return p ** gamma * (1 - p) ** gamma


def test_gen_sums_the_top_k_sorted_probabilities():
    temp, gamma = 0.05, 0.1
    probs = [0.2, 0.5, 0.3]  # unsorted on purpose
    x, t = images([_cosines_for(probs, temp)], D), basis(3, D)
    assert gen_score(x, t, temp, gamma, top_k=2).item() == pytest.approx(-(_gen_term(0.5) + _gen_term(0.3)),
                                                                          rel=1e-9)
    assert gen_score(x, t, temp, gamma, top_k=1).item() == pytest.approx(-_gen_term(0.5), rel=1e-9)
    # K larger than C: all classes
    all_classes = -sum(map(_gen_term, probs))
    assert gen_score(x, t, temp, gamma, top_k=100).item() == pytest.approx(all_classes, rel=1e-9)
    # gamma matters: 0.3 instead of 0.1
    assert gen_score(x, t, temp, 0.3, top_k=1).item() == pytest.approx(-_gen_term(0.5, 0.3), rel=1e-9)


def test_gen_keeps_probabilities_float32_rounds_to_one():
    # p = (1 - 1e-9, 1e-9): (1 - p1)^0.1 = 1e-9^0.1 = 0.126 counts; a float32 softmax would round p1 to 1
    temp = 0.01
    gap = temp * math.log((1 - 1e-9) / 1e-9)
    x, t = images([[0.3, 0.3 - gap]], D), basis(2, D)
    expected = -2 * (1e-9 * (1 - 1e-9)) ** 0.1
    assert gen_score(x, t, temp).item() == pytest.approx(expected, rel=1e-6)


def test_gen_orders_confident_above_uncertain():
    x = images([[0.35, 0.0, 0.0], [0.1, 0.1, 0.1]], D)
    s = gen_score(x, basis(3, D))
    assert s[0] > s[1]
    assert s[1].item() == pytest.approx(-3 * ((1 / 3) * (2 / 3)) ** 0.1, rel=1e-9)


@pytest.mark.parametrize("call", [
    lambda x, t: energy_score(x, t, 0.0),
    lambda x, t: gen_score(x, t, temperature=-1),
    lambda x, t: gen_score(x, t, gamma=1.5),
    lambda x, t: gen_score(x, t, top_k=0),
])
def test_bad_parameters_are_user_errors(call):
    with pytest.raises(OodbenchError):
        call(images([[0.1]], D), basis(1, D))


def test_shapes_dtype_and_blocks(monkeypatch):
    g = torch.Generator().manual_seed(0)
    x = F.normalize(torch.randn(50, D, generator=g), dim=-1)
    t = F.normalize(torch.randn(3, D, generator=g), dim=-1)
    whole = [energy_score(x, t), maxlogit_score(x, t), gen_score(x, t)]
    for s in whole:
        assert s.shape == (50,) and s.dtype == torch.float64
    assert gen_score(x[:0], t).shape == (0,)
    from oodbench.methods import baselines

    monkeypatch.setattr(baselines, "block_rows", lambda columns: 7)  # many blocks: the same scores
    for a, b in zip(whole, [energy_score(x, t), maxlogit_score(x, t), gen_score(x, t)]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_registered_scorers_use_the_class_head(tiny_backbone):
    from oodbench.scorer import FitContext

    assert (METHODS.get("energy"), METHODS.get("maxlogit"), METHODS.get("gen")) == (Energy, MaxLogit, Gen)
    ctx = FitContext(backbone=tiny_backbone, class_names=["cat", "dog", "bird"], templates=None,
                     device=torch.device("cpu"), seed=0, cache=None)
    x = F.normalize(torch.randn(4, 32, generator=torch.Generator().manual_seed(1)), dim=-1)
    text = tiny_backbone.class_text_features(["cat", "dog", "bird"], ["a photo of a {}"])
    for scorer, fn in ((Energy(temperature=0.5), lambda: energy_score(x, text, 0.5)),
                       (MaxLogit(), lambda: maxlogit_score(x, text)),
                       (Gen(top_k=2), lambda: gen_score(x, text, 0.01, 0.1, 2))):
        scorer.fit(ctx)
        torch.testing.assert_close(scorer.score(x), fn())
        assert scorer.predict_classes(x).tolist() == (x @ text.T).argmax(1).tolist()
    with pytest.raises(OodbenchError, match="gamma"):
        Gen.from_params({"gamma": "1"})
