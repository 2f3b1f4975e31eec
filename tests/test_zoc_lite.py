"""ZOC-lite: exact values on hand-built features, per-image retrieval, the ID-leak filter, the scorer."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from oodbench.errors import OodbenchError
from oodbench.lexicon import Lexicon
from oodbench.methods.zoc_lite import ZocLite, id_leak_mask, zoc_lite_score
from oodbench.scorer import METHODS, FitContext


def unit(*v: float) -> torch.Tensor:
    return F.normalize(torch.tensor(v, dtype=torch.float32), dim=0)


def test_exact_value_on_a_tiny_case():
    ids = torch.stack([unit(1, 0, 0), unit(0, 1, 0)])
    vocab = torch.stack([unit(0, 0, 1), unit(0.6, 0, 0.8), unit(0, 0.6, 0.8)])
    images = torch.stack([unit(1, 0, 0), unit(0, 0, 1)])
    # scale 10, k = 2.
    # image 1: ID cosines (1, 0); vocabulary cosines (0, 0.6, 0) -> candidates 0.6 and 0
    #   log S = log((e^10 + 1) / (e^10 + 1 + e^6 + 1)) = -0.0181937
    # image 2: ID cosines (0, 0); vocabulary cosines (1, 0.8, 0.8) -> candidates 1 and 0.8
    #   log S = log(2 / (2 + e^10 + e^8)) = -9.4338608
    got = zoc_lite_score(images, ids, vocab, k=2, scale=10.0)
    assert got.dtype == torch.float64
    assert got[0].item() == pytest.approx(-0.018193691757664682, rel=1e-5)
    assert got[1].item() == pytest.approx(-9.433860803536048, rel=1e-6)
    e = math.exp
    assert got[1].item() == pytest.approx(math.log(2 / (2 + e(10) + e(8))), rel=1e-6)


def test_each_image_gets_its_own_top_k():
    gen = torch.Generator().manual_seed(0)
    x = F.normalize(torch.randn(25, 12, generator=gen), dim=1)
    ids = F.normalize(torch.randn(4, 12, generator=gen), dim=1)
    vocab = F.normalize(torch.randn(40, 12, generator=gen), dim=1)
    got = zoc_lite_score(x, ids, vocab, k=5, scale=30.0)
    for n in range(25):  # an independent per-image computation
        cos_v = (x[n].double() @ vocab.double().T)
        cand = cos_v.sort(descending=True).values[:5]
        logits = 30.0 * torch.cat([x[n].double() @ ids.double().T, cand])
        expected = torch.logsumexp(logits[:4], 0) - torch.logsumexp(logits, 0)
        assert got[n].item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-9)
    # k larger than the vocabulary means all of it
    torch.testing.assert_close(zoc_lite_score(x, ids, vocab, k=1000), zoc_lite_score(x, ids, vocab, k=40))


def test_ood_image_matching_a_vocabulary_word_scores_lower():
    ids = torch.eye(10)[:3]
    vocab = torch.eye(10)[5:9]
    gen = torch.Generator().manual_seed(1)
    id_images = F.normalize(torch.eye(10)[:3] + 0.05 * torch.randn(3, 10, generator=gen), dim=1)
    ood_images = F.normalize(torch.eye(10)[5:8] + 0.05 * torch.randn(3, 10, generator=gen), dim=1)
    s_id, s_ood = zoc_lite_score(id_images, ids, vocab, k=2), zoc_lite_score(ood_images, ids, vocab, k=2)
    assert s_id.min() > math.log(0.5) > s_ood.max()


def test_confident_id_images_do_not_tie():
    ids = torch.eye(6)[:1]
    vocab = -torch.eye(6)[:1].repeat(3, 1)
    images = torch.zeros(3, 6)
    for row, c in enumerate((0.999, 0.998, 0.997)):
        images[row, 0], images[row, 1] = c, math.sqrt(1 - c * c)
    got = zoc_lite_score(images, ids, vocab, k=3, scale=100.0)
    assert torch.all(got < 0) and got[0] > got[1] > got[2]  # exp(got) would be 1.0 for all three


def test_leak_filter_removes_words_close_to_an_id_class():
    ids = torch.stack([unit(1, 0, 0), unit(0, 1, 0)])
    vocab = torch.stack([unit(0.95, math.sqrt(1 - 0.95 ** 2), 0),  # cosine 0.95 to ID class 0
                         unit(0, 0.85, math.sqrt(1 - 0.85 ** 2)),  # 0.85 to class 1
                         unit(0, 0, 1)])
    assert id_leak_mask(vocab, ids, 0.9).tolist() == [False, True, True]
    assert id_leak_mask(vocab, ids, 0.8).tolist() == [False, False, True]
    assert id_leak_mask(vocab, ids, 1.0).tolist() == [True, True, True]


def test_score_rejects_bad_parameters():
    x = torch.eye(3)[:1]
    with pytest.raises(OodbenchError, match="k"):
        zoc_lite_score(x, x, x, k=0)
    with pytest.raises(OodbenchError, match="empty"):
        zoc_lite_score(x, x, torch.zeros(0, 3))


# ----------------------------------------------------------------------------------------- the scorer
def test_registered_with_documented_defaults():
    assert METHODS.get("zoc-lite") is ZocLite
    assert ZocLite().params() == {"k": 10, "scale": 100.0, "template": "a photo of a {}",
                                  "max_id_cosine": 0.9, "adjectives": False}
    assert "not the paper's decoder" in ZocLite.info.paper
    with pytest.raises(OodbenchError, match="k"):
        ZocLite(k=0)


def make_ctx(backbone, words, pos):
    lex = Lexicon(list(words), list(pos), source="test words")
    return FitContext(backbone=backbone, class_names=["red square", "green square"], templates=None,
                      device=torch.device("cpu"), seed=0, cache=None, lexicon_loader=lambda: lex)


def test_fit_filters_and_scores(tiny_backbone):
    words = ["Red_Square", "plant", "bicycle", "cloud", "violin", "mountain", "shiny", "wooden"]
    pos = ["noun"] * 6 + ["adj"] * 2
    scorer = ZocLite(k=3, max_id_cosine=1.0)
    scorer.fit(make_ctx(tiny_backbone, words, pos))
    # "Red_Square" equals an ID class name; adjectives are left out by default
    assert scorer.vocabulary == ["plant", "bicycle", "cloud", "violin", "mountain"]
    prov = scorer.provenance()
    assert prov["removed_equal_to_id_names"] == 1 and prov["removed_too_close_to_id"] == 0
    images = F.normalize(torch.randn(4, 32, generator=torch.Generator().manual_seed(0)), dim=1)
    s = scorer.score(images)
    ids = tiny_backbone.class_text_features(["red square", "green square"], ["a photo of a {}"])
    vocab = tiny_backbone.encode_texts([f"a photo of a {w}" for w in scorer.vocabulary])
    torch.testing.assert_close(s, zoc_lite_score(images, ids, vocab, k=3))
    assert scorer.predict_classes(images).shape == (4,)

    # the cosine filter: with a threshold just below the closest word's cosine, that word goes
    closest = (vocab @ ids.T).amax(dim=1)
    threshold = float(closest.max()) - 1e-4
    strict = ZocLite(k=3, max_id_cosine=threshold)
    strict.fit(make_ctx(tiny_backbone, words, pos))
    gone = scorer.vocabulary[int(closest.argmax())]
    assert gone not in strict.vocabulary
    assert strict.provenance()["removed_too_close_to_id"] == 1
    assert strict.provenance()["removed_too_close_examples"] == [gone]

    with_adj = ZocLite(k=3, max_id_cosine=1.0, adjectives=True)
    with_adj.fit(make_ctx(tiny_backbone, words, pos))
    assert with_adj.vocabulary[-2:] == ["shiny", "wooden"]


def test_fit_errors_are_clear(tiny_backbone):
    with pytest.raises(OodbenchError, match="no candidate words"):
        ZocLite().fit(make_ctx(tiny_backbone, ["red square", "shiny"], ["noun", "adj"]))
    with pytest.raises(OodbenchError, match="removed every candidate"):
        ZocLite(max_id_cosine=-1.0).fit(make_ctx(tiny_backbone, ["plant", "cloud"], ["noun", "noun"]))
