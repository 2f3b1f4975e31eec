"""MSP and MCM against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from oodbench.methods.mcm import MCM, mcm_score
from oodbench.methods.msp import msp_score

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
