"""The test-time methods as scorers: registry defaults, what ``fit`` builds, and ``score_stream`` = the pure
function on the fitted text side (the math itself is tested in test_adaneg/tanl/clipscope/oodd.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from oodbench.errors import OodbenchError
from oodbench.lexicon import Lexicon
from oodbench.methods.adaneg import AdaNeg, adaneg_stream_scores
from oodbench.methods.clipscope import CLIPScope, clipscope_mine_negatives, clipscope_stream_scores
from oodbench.methods.mcm import mcm_score
from oodbench.methods.neglabel import neglabel_score
from oodbench.methods.oodd import OODD, oodd_stream_scores
from oodbench.methods.tanl import TANL, tanl_noise_images, tanl_stream_scores
from oodbench.scorer import METHODS, FitContext, StreamScorer

CLASSES = ["red square", "green square", "Blue_Square"]
WORDS = ["red square", "plant", "bicycle", "cloud", "violin", "mountain", "teapot", "bridge", "ladder",
         "candle", "anchor", "comet", "shiny", "wooden", "furry", "striped", "golden", "tiny"]
POS = ["noun"] * 12 + ["adj"] * 6


def make_ctx(backbone, method_params=None, seed=0):
    lex = Lexicon(list(WORDS), list(POS), source="test words")
    return FitContext(backbone=backbone, class_names=CLASSES, templates=None, device=torch.device("cpu"),
                      seed=seed, cache=None, lexicon_loader=lambda: lex, method_params=method_params or {})


def stream(n=40, dim=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, dim, generator=g), dim=1)


def test_registered_as_stream_methods_with_the_official_settings():
    for name, cls in (("adaneg", AdaNeg), ("tanl", TANL), ("clipscope", CLIPScope), ("oodd", OODD)):
        assert METHODS.get(name) is cls and cls.stream and issubclass(cls, StreamScorer)
    a = AdaNeg().params()
    assert {k: a[k] for k in ("batch_size", "num_negatives", "memory_length", "threshold", "gap", "lam",
                              "beta", "groups", "logit_scale", "official", "fp16_entropy")} == {
        "batch_size": 256, "num_negatives": 10_000, "memory_length": 10, "threshold": 0.5, "gap": 0.5,
        "lam": 0.1, "beta": 5.5, "groups": 5, "logit_scale": 100.0, "official": False, "fp16_entropy": False}
    assert (a["id_template"], a["noun_template"], a["adj_template"]) == ("The nice {}.", "The nice {}.",
                                                                         "This is a {} photo.")
    t = TANL().params()
    assert {k: t[k] for k in ("batch_size", "num_negatives", "queue_length", "gap", "alpha", "step",
                              "score_buffer_length", "bank_negatives")} == {
        "batch_size": 256, "num_negatives": 1000, "queue_length": 300, "gap": None, "alpha": None, "step": 1,
        "score_buffer_length": 20_000, "bank_negatives": 10_000}
    c = CLIPScope().params()
    assert (c["batch_size"], c["rank"], c["num_far"], c["num_near"]) == (1, 50, 5000, 5000)
    assert (c["far_template"], c["near_template"], c["mining_template"]) == ("a photo of a {}", "a photo of {}",
                                                                             "the {}")
    o = OODD().params()
    assert o == {"batch_size": 64, "base": "neglabel", "queue_size": 2048, "k": 5, "official": False}
    with pytest.raises(OodbenchError, match="base"):
        OODD.from_params({"base": "msp"})
    with pytest.raises(OodbenchError, match="queue_size"):
        OODD(k=10, queue_size=5)


def test_adaneg_fit_and_stream(tiny_backbone):
    scorer = AdaNeg(num_negatives=8, groups=2, batch_size=7)
    scorer.fit(make_ctx(tiny_backbone))
    prov = scorer.provenance()
    # 11 nouns (the ID name dropped) + 6 adjectives; 8 negatives: int(8 * 6/17) = 2 adjectives + 6 nouns
    assert prov["candidates"] == 17 and prov["negatives"] == 8 and prov["adj_negatives"] == 2
    assert scorer.negative_features.shape == (8, 32)
    x = stream()
    out = scorer.score_stream(x, seed=123)
    ref = adaneg_stream_scores(x, scorer.id_features, scorer.negative_features, batch_size=7, groups=2)
    assert torch.equal(out.scores, ref.scores) and torch.equal(out.predictions, ref.predictions)
    assert torch.equal(scorer.score_stream(x, seed=5).scores, out.scores)  # AdaNeg draws nothing per stream
    table = scorer.exports({})["negatives"]
    assert list(table["pos"]) == ["adj"] * 2 + ["noun"] * 6 and list(table["rank"])[:3] == [1, 2, 1]
    with pytest.raises(OodbenchError, match="groups"):
        AdaNeg(num_negatives=3, groups=5).fit(make_ctx(tiny_backbone))


def test_tanl_fit_encodes_raw_noise_images_and_caps_m(tiny_backbone):
    scorer = TANL(num_negatives=1000, bank_negatives=8, batch_size=9, queue_length=2)
    scorer.fit(make_ctx(tiny_backbone, seed=3))
    assert scorer.negatives_used == 17 == scorer.corpus_features.shape[0]  # capped at the corpus
    # the 15 noise images at the tower's input size, seeded by the run's seed, without mean/std normalisation
    images = tanl_noise_images(torch.Generator().manual_seed(3), tiny_backbone.image_size)
    assert images.shape == (15, 3, 32, 32)
    raw = F.normalize(tiny_backbone.model.encode_image(images), dim=1)
    assert torch.allclose(scorer.noise_features, raw, atol=1e-6)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073])[:, None, None]
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711])[:, None, None]
    normalised = F.normalize(tiny_backbone.model.encode_image((images - mean) / std), dim=1)
    assert (scorer.noise_features - normalised).abs().max() > 1e-3
    x = stream()
    out = scorer.score_stream(x, seed=11)
    ref = tanl_stream_scores(x, scorer.id_features, scorer.corpus_features, scorer.noise_features, batch_size=9,
                             num_negatives=17, queue_length=2, seed=11)
    assert torch.equal(out.scores, ref.scores) and torch.equal(out.predictions, ref.predictions)
    # the stream's seed shuffles the start-up queues (3 ID texts, queue of 2: which two are kept)
    assert not torch.equal(scorer.score_stream(x, seed=12).scores, out.scores)


def test_clipscope_fit_mines_nouns_and_caps_on_small_lexicons(tiny_backbone):
    scorer = CLIPScope(batch_size=4)
    scorer.fit(make_ctx(tiny_backbone))
    prov = scorer.provenance()
    # 11 nouns without the ID name; 5,000 + 5,000 capped to 5 + 6; rank 50 capped at the 3 ID classes
    assert prov["candidate_nouns"] == 11 and (prov["far"], prov["near"]) == (5, 6) and prov["rank_used"] == 3
    nouns = [w for w, p in zip(WORDS, POS) if p == "noun" and w != "red square"]
    assert sorted(scorer.far_words + scorer.near_words) == sorted(nouns)
    ids = tiny_backbone.class_text_features(CLASSES, ["a photo of a {}"])
    cands = tiny_backbone.encode_texts([f"the {w}" for w in nouns])
    far, near = clipscope_mine_negatives(cands, ids, rank=3, num_far=5, num_near=6)
    assert scorer.far_words == [nouns[i] for i in far] and scorer.near_words == [nouns[i] for i in near]
    assert torch.allclose(scorer.near_features, tiny_backbone.encode_texts([f"a photo of {w}" for w in
                                                                            scorer.near_words]), atol=1e-6)
    x = stream()
    out = scorer.score_stream(x, seed=0)
    ref = clipscope_stream_scores(x, ids, scorer.far_features, scorer.near_features, batch_size=4)
    assert torch.equal(out.scores, ref.scores)
    kept = CLIPScope(remove_id_names=False)
    kept.fit(make_ctx(tiny_backbone))
    assert "red square" in kept.far_words + kept.near_words


def test_oodd_uses_the_benchmarks_base_method_with_its_mass(tiny_backbone):
    ctx = make_ctx(tiny_backbone, method_params={"neglabel": {"eta": 0.5, "groups": 2, "remove_id_names": True}})
    scorer = OODD(batch_size=8, queue_size=10, k=3)
    scorer.fit(ctx)
    base = scorer.base_scorer
    assert base.params()["output"] == "mass" and base.params()["groups"] == 2 and base.params()["eta"] == 0.5
    assert scorer.provenance()["base_params"]["groups"] == 2
    x = stream()
    b = neglabel_score(x, base.id_features, base.neg_features, 0.01, 2, 0)
    out = scorer.score_stream(x, seed=0)
    assert torch.equal(out.scores, oodd_stream_scores(x, b, batch_size=8, queue_size=10, k=3).scores)
    assert torch.equal(out.predictions, base.predict_classes(x))
    mcm = OODD(base="mcm", batch_size=8, queue_size=10, k=3)
    mcm.fit(ctx)
    ids = tiny_backbone.class_text_features(CLASSES, ["a photo of a {}"])
    expected = oodd_stream_scores(x, mcm_score(x, ids, 1.0), batch_size=8, queue_size=10, k=3).scores
    assert torch.allclose(mcm.score_stream(x, seed=0).scores, expected, atol=1e-12)


def test_backbone_encodes_raw_image_tensors(tiny_backbone):
    images = torch.rand(5, 3, *tiny_backbone.image_size, generator=torch.Generator().manual_seed(0))
    feats = tiny_backbone.encode_image_tensors(images, batch_size=2)
    assert feats.dtype == torch.float32 and feats.shape == (5, 32)
    assert torch.allclose(feats, F.normalize(tiny_backbone.model.encode_image(images), dim=1), atol=1e-6)
