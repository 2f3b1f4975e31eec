"""MSP and MCM against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from oodbench.methods.mcm import MCM, mcm_score
from oodbench.methods.msp import MSP, msp_log_odds, msp_score

IMG = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
TXT = torch.tensor([[1.0, 0.0], [0.0, 1.0]])


def test_mcm_hand_computed():
    s = mcm_score(IMG, TXT, temperature=1.0)
    # image 0: cos = (1, 0) -> e / (e + 1); image 1: cos = (.6, .8) -> e^.8 / (e^.6 + e^.8)
    assert s[0].item() == pytest.approx(math.e / (math.e + 1))
    assert s[1].item() == pytest.approx(math.exp(0.8) / (math.exp(0.6) + math.exp(0.8)))
    assert s[2].item() == pytest.approx(s[0].item())
    # T = 0.5 doubles the logits
    assert mcm_score(IMG, TXT, temperature=0.5)[0].item() == pytest.approx(math.exp(2) / (math.exp(2) + 1))


def test_msp_hand_computed():
    s = msp_score(IMG, TXT, logit_scale=100.0)
    assert s[1].item() == pytest.approx(1 / (1 + math.exp(-20.0)))
    assert s[0].item() == pytest.approx(1 / (1 + math.exp(-100.0)))
    assert msp_score(IMG, TXT, logit_scale=1.0)[1].item() == pytest.approx(mcm_score(IMG, TXT)[1].item())


def test_scores_shape_and_range():
    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(50, 16, generator=g), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(7, 16, generator=g), dim=-1)
    for s in (mcm_score(img, txt), msp_score(img, txt)):
        assert s.shape == (50,)
        assert torch.all(s >= 1 / 7 - 1e-9) and torch.all(s <= 1)


def test_mcm_scorer_params_parse_from_strings():
    m = MCM.from_params({"temperature": "2.5"})
    assert m.temperature == 2.5
    assert m.params() == {"temperature": 2.5}


def test_msp_log_odds_are_exact_where_the_probability_rounds_to_one():
    # image 0: logits (100, 0): p = 1 / (1 + e^-100) rounds to 1.0 in float64; its log-odds are 100.
    # image 2 equals image 0 mirrored; image 1: logits (60, 80) -> log-odds 20.
    lo = msp_log_odds(IMG, TXT, logit_scale=100.0)
    # (0.6 and 0.8 are float32 inputs: 1e-7 relative off, times 100)
    assert lo.dtype == torch.float64 and lo.tolist() == pytest.approx([100.0, 20.0, 100.0], rel=1e-6)
    assert msp_score(IMG, TXT)[0].item() == 1.0
    three = torch.eye(3)
    img = torch.nn.functional.normalize(torch.tensor([[1.0, 0.5, 0.1], [1.0, 0.4, 0.1]]), dim=-1)
    p = msp_score(img, three, 3.0)
    torch.testing.assert_close(msp_log_odds(img, three, 3.0), torch.log(p / (1 - p)), rtol=1e-12, atol=1e-12)
    assert msp_log_odds(img, three[:1]).tolist() == [0.0, 0.0]  # one class: p = 1 for all, a constant
    assert MSP().output == "log-odds" and MSP.from_params({"output": "probability"}).output == "probability"
