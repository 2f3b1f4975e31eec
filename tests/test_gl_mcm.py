"""GL-MCM's score on hand-built global and patch features."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from testkit import basis
from testkit import images_with_cosines as images

from oodbench.errors import OodbenchError
from oodbench.methods.gl_mcm import GLMCM, glmcm_score, local_mcm
from oodbench.scorer import METHODS, FitContext

D = 8


def _max_softmax(values, temp=1.0):
    z = [math.exp(v / temp) for v in values]
    return max(z) / sum(z)


def test_global_and_local_by_hand():
    t = basis(3, D)
    g = images([[0.3, 0.1, 0.0]], D)
    rows = ([0.0, 0.1, 0.0], [0.0, 0.0, 0.6], [0.2, 0.2, 0.2])
    patches = torch.stack([images(list(rows), D)])  # [1, 3, D]
    best_patch = max(_max_softmax(r) for r in rows)
    assert local_mcm(patches, t, dtype=torch.float64).item() == pytest.approx(best_patch, rel=1e-12)
    # float32 (the default): cosines and softmax to ~1e-7 relative
    assert local_mcm(patches, t).item() == pytest.approx(best_patch, rel=1e-6)
    for lam in (1.0, 0.5, 0.0):
        expected = _max_softmax([0.3, 0.1, 0.0]) + lam * best_patch
        got = glmcm_score(g, patches, t, lambda_local=lam, dtype=torch.float64).item()
        assert got == pytest.approx(expected, rel=1e-12)


def test_local_softmax_is_per_patch_over_classes():
    # a softmax over all (patch, class) pairs jointly would give a different, smaller value
    t = basis(2, D)
    patches = torch.stack([images([[0.5, 0.0], [0.5, 0.0]], D)])
    per_patch = _max_softmax([0.5, 0.0])
    assert local_mcm(patches, t, dtype=torch.float64).item() == pytest.approx(per_patch, rel=1e-12)
    assert per_patch > math.exp(0.5) / (2 * math.exp(0.5) + 2)


def test_temperature_fp16_patches_and_blocks(monkeypatch):
    t = basis(2, D)
    g = images([[0.3, 0.1]], D)
    p = torch.stack([images([[0.4, 0.0]], D)])
    assert glmcm_score(g, p, t, temperature=0.1, dtype=torch.float64).item() == pytest.approx(
        _max_softmax([0.3, 0.1], 0.1) + _max_softmax([0.4, 0.0], 0.1), rel=1e-12)
    # a small temperature does not overflow: logits of 100 x cosine stay exact
    assert local_mcm(p, t, temperature=0.01).item() == pytest.approx(_max_softmax([0.4, 0.0], 0.01), rel=1e-6)
    assert local_mcm(p.half(), t).item() == pytest.approx(_max_softmax([0.4, 0.0]), abs=1e-3)
    # many images in blocks of one: the same values as one block, and as the float64 reference
    g = torch.Generator().manual_seed(0)
    many = F.normalize(torch.randn(13, 5, D, generator=g), dim=-1)
    text = F.normalize(torch.randn(4, D, generator=g), dim=-1)
    whole = local_mcm(many, text)
    from oodbench.methods import gl_mcm

    monkeypatch.setattr(gl_mcm, "LOCAL_BLOCK_ELEMENTS", 1)  # blocks of one image
    torch.testing.assert_close(local_mcm(many, text), whole, rtol=0, atol=1e-7)
    exact = torch.softmax(many.double() @ text.double().T, dim=-1).amax(dim=(1, 2))
    torch.testing.assert_close(whole, exact, rtol=1e-6, atol=0)


def test_errors():
    t, g, p = basis(2, D), images([[0.1, 0.0]], D), torch.stack([images([[0.1, 0.0]], D)])
    with pytest.raises(OodbenchError):
        glmcm_score(g, p, t, temperature=0)
    with pytest.raises(OodbenchError):
        glmcm_score(g, p, t, lambda_local=-1)
    with pytest.raises(ValueError):
        glmcm_score(torch.cat([g, g]), p, t)
    with pytest.raises(ValueError):
        local_mcm(p[0], t)


def test_scorer_declares_patch_features(tiny_backbone):
    assert METHODS.get("gl-mcm") is GLMCM and GLMCM.features == ("global", "patch")
    scorer = GLMCM(lambda_local=0.5)
    scorer.fit(FitContext(backbone=tiny_backbone, class_names=["cat", "dog"], templates=None,
                          device=torch.device("cpu"), seed=0, cache=None))
    gen = torch.Generator().manual_seed(1)
    x = F.normalize(torch.randn(3, 32, generator=gen), dim=-1)
    p = F.normalize(torch.randn(3, 4, 32, generator=gen), dim=-1).half()
    text = tiny_backbone.class_text_features(["cat", "dog"], ["a photo of a {}"])
    torch.testing.assert_close(scorer.score(x, patch_features=p), glmcm_score(x, p, text, lambda_local=0.5))
    with pytest.raises(ValueError, match="patch_features"):
        scorer.score(x)
    with pytest.raises(OodbenchError, match="lambda_local"):
        GLMCM.from_params({"lambda_local": "-0.5"})
