"""CSP: the pool (superclass draws as the reference makes them), unnormalised ensembles, the selection with
its max-cosine filter, the fit on a tiny model, and the score wired to NegLabel's grouped score."""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F
from testkit import basis, image_with_cosines
from testkit import images_with_cosines as images

from oodbench.errors import OodbenchError
from oodbench.features import FeatureStore
from oodbench.lexicon import Lexicon
from oodbench.methods import csp
from oodbench.methods.neglabel import neglabel_log_odds
from oodbench.scorer import METHODS, FitContext

D = 16


# ------------------------------------------------------------------------------------------- pool
def test_pool_phrases_match_the_reference_strings():
    # The first five adjectives of the reference's adj.all.txt, seed 0: the official code produced exactly
    # these phrases (the research comparison checked all 56,620 strings of its pool).
    adjs = ["unheard", "lively", "ascribable", "a-ok", "unsuspected"]
    templates = csp.prompt_data()["superclass_templates"]
    pool = csp.build_csp_pool([(a, "adj") for a in adjs], templates, seed=0)
    assert pool.phrases == ["unheard creature", "lively area", "ascribable vista", "a-ok area",
                            "unsuspected environment"]


def test_pool_draws_one_choice_per_adjective_nouns_draw_nothing():
    templates = csp.prompt_data()["superclass_templates"]
    adjs = [f"adj{i}" for i in range(30)]
    mixed = []
    for i, a in enumerate(adjs):
        mixed.append((a, "adj"))
        mixed.extend((f"noun{i}_{j}", "noun") for j in range(i % 3))
    rng = random.Random(7)
    expected = [rng.choice(templates).format(a) for a in adjs]
    pool = csp.build_csp_pool(mixed, templates, seed=7)
    assert pool.phrases == expected
    assert pool.adjectives == adjs and len(pool.nouns) == sum(i % 3 for i in range(30))
    assert pool.labels == pool.nouns + pool.phrases and len(pool) == len(pool.labels)
    assert csp.build_csp_pool(mixed, templates, seed=8).phrases != expected
    with pytest.raises(OodbenchError):
        csp.build_csp_pool(mixed, [], seed=0)


def test_reference_data_file():
    data = csp.prompt_data()
    assert len(data["noun_templates"]) == 8 and len(data["phrase_templates"]) == 4
    assert len(data["superclass_templates"]) == 14 and "3a7bdab" in data["source"]
    assert csp.CSP().exclude == ["noun.person", "noun.quantity", "noun.group", "adj.pert"]


# -------------------------------------------------------------------------------------- selection
def test_selection_value_is_linear_quantile_and_max_cosine_filter():
    ids = basis(5, D)
    cos = [0.1, 0.5, -0.2, 0.3, 0.0]  # sorted: -0.2, 0, 0.1, 0.3, 0.5 ; h = 0.95 * 4 = 3.8
    a = image_with_cosines(cos, D)
    b = image_with_cosines([0.96, 0.0, 0.0, 0.0, 0.0], D)   # max cosine > 0.95: q = 1
    c = image_with_cosines([0.95, 0.0, 0.0, 0.0, 0.0], D)   # exactly 0.95: not filtered
    q = csp.csp_selection_values(torch.stack([a, b, c]), ids)
    assert q[0].item() == pytest.approx(0.3 + 0.8 * (0.5 - 0.3), abs=1e-12)
    assert q[1].item() == 1.0
    assert q[2].item() == pytest.approx(0.0 + 0.8 * 0.95, abs=1e-12)
    q_off = csp.csp_selection_values(torch.stack([a, b, c]), ids, max_cosine=None)
    assert q_off[1].item() == pytest.approx(0.8 * 0.96, abs=1e-12)
    q32 = csp.csp_selection_values(torch.stack([a, b, c]), ids, dtype=torch.float32)
    assert q32.dtype == torch.float32 and q32.tolist() == pytest.approx(q.tolist(), abs=1e-6)


def test_select_keeps_floor_eta_of_each_part_by_ascending_value():
    ids = basis(2, D)
    # 7 nouns and 4 phrases with distinct 0.95-quantiles (of 2 cosines: c_lo + 0.95 (c_hi - c_lo))
    levels = [0.5, 0.1, 0.3, 0.05, 0.4, 0.2, 0.45, 0.25, 0.15, 0.35, 0.02]
    cand = images([[v, v] for v in levels], D)
    is_phrase = torch.tensor([False] * 7 + [True] * 4)
    idx = csp.select_csp_negatives(cand, ids, is_phrase, eta=0.3)  # floor(2.1) = 2 nouns, floor(1.2) = 1
    assert idx.tolist() == [3, 1, 10]
    with pytest.raises(OodbenchError):
        csp.select_csp_negatives(cand, ids, is_phrase, eta=0.0)


# ------------------------------------------------------------------------------------------ score
def _mass(id_cos, neg_cos, temp):
    a = sum(math.exp(c / temp) for c in id_cos)
    return a / (a + sum(math.exp(c / temp) for c in neg_cos))


def test_score_is_neglabels_grouped_mass_with_the_dropped_tail():
    temp, seed = 0.1, 3
    cos = [0.3, 0.1, 0.2, 0.0, 0.25, -0.1, 0.8]    # 2 ID labels, 5 negatives; the 5th (0.8) is dropped
    x = images([cos], D)
    scorer = csp.CSP(groups=2, temperature=temp, seed=seed, output="mass")
    scorer.id_features, scorer.neg_features = basis(2, D), basis(7, D)[2:]
    perm = torch.randperm(4, generator=torch.Generator().manual_seed(seed)).tolist()
    neg = [cos[2:6][i] for i in perm]
    expected = 0.5 * (_mass(cos[:2], neg[:2], temp) + _mass(cos[:2], neg[2:], temp))
    # cosines are float32 (error <= 6e-8), so logits cos / 0.1 carry <= 6e-7 and S about as much
    assert scorer.score(x).item() == pytest.approx(expected, rel=1e-6)
    scorer.output = "log-odds"
    assert scorer.score(x).item() == pytest.approx(math.log(expected / (1 - expected)), abs=2e-6)
    direct = neglabel_log_odds(x, basis(2, D), basis(7, D)[2:], temp, 2, seed)
    torch.testing.assert_close(scorer.score(x), direct)


def test_parameters_are_checked():
    for bad in ({"eta": "0"}, {"groups": "0"}, {"temperature": "0"}, {"output": "probability"},
                {"selection_precision": "float16"}):
        with pytest.raises(OodbenchError):
            csp.CSP.from_params(bad)
    assert csp.CSP.from_params({"max_cosine": "none"}).max_cosine is None
    assert METHODS.get("csp") is csp.CSP


# -------------------------------------------------------------------------------------------- fit
NOUNS = ["red square", "green square", "plant", "bicycle", "cloud", "violin", "mountain", "teapot", "bridge",
         "ladder", "candle", "anchor", "comet", "helmet", "kettle", "lantern", "compass", "rocket", "whistle",
         "harbor"]
ADJS = ["shiny", "wooden", "furry", "striped", "golden", "tiny", "ancient", "wet"]
CLASSES = ["red square", "green square", "Blue_Square"]


def make_ctx(backbone, store=None, calls=None):
    lex = Lexicon(NOUNS + ADJS, ["noun"] * len(NOUNS) + ["adj"] * len(ADJS), source="test words")

    def loader(exclude=None):
        if calls is not None:
            calls.append(exclude)
        return lex

    return FitContext(backbone=backbone, class_names=CLASSES, templates=None, device=torch.device("cpu"),
                      seed=0, cache=store, lexicon_loader=loader)


def _raw_ensemble(backbone, labels, templates):
    prompts = [t.format(w) for w in labels for t in templates]
    raw = backbone.encode_texts(prompts, use_cache=False, normalize=False)
    return F.normalize(raw.view(len(labels), len(templates), -1).mean(dim=1), dim=-1)


def test_fit_on_a_tiny_model(tiny_backbone, tmp_path):
    store = FeatureStore(tmp_path / "store")
    calls: list = []
    scorer = csp.CSP(eta=0.5, groups=2)
    scorer.fit(make_ctx(tiny_backbone, store, calls))
    assert calls == [["noun.person", "noun.quantity", "noun.group", "adj.pert"]]
    data = csp.prompt_data()
    nouns_t, phrase_t = data["noun_templates"], data["phrase_templates"]
    pool = csp.build_csp_pool([(w, "noun") for w in NOUNS] + [(a, "adj") for a in ADJS],
                              data["superclass_templates"], seed=0)
    # ensembles of unnormalised embeddings, ID classes with the noun templates
    ids = _raw_ensemble(tiny_backbone, CLASSES, nouns_t)
    torch.testing.assert_close(scorer.id_features, ids, atol=1e-6, rtol=0)
    normalised_first = tiny_backbone.class_text_features(CLASSES, nouns_t)
    assert (normalised_first - ids).abs().max() > 1e-3  # the other rule gives other features
    cands = torch.cat([_raw_ensemble(tiny_backbone, pool.nouns, nouns_t),
                       _raw_ensemble(tiny_backbone, pool.phrases, phrase_t)])
    idx = csp.select_csp_negatives(cands, ids, torch.arange(len(pool)) >= len(NOUNS), eta=0.5)
    assert scorer.negative_labels == [pool.labels[i] for i in idx.tolist()]
    torch.testing.assert_close(scorer.neg_features, cands[idx], atol=1e-6, rtol=0)
    prov = scorer.provenance()
    # ID names stay candidates (20 nouns); identical prompts give cosine 1 > 0.95, so they are never picked
    assert prov["noun_candidates"] == 20 and prov["phrase_candidates"] == 8
    assert prov["noun_negatives"] == 10 and prov["phrase_negatives"] == 4  # floor(0.5 * 20), floor(0.5 * 8)
    assert prov["candidates_over_max_cosine"] >= 2
    assert not {"red square", "green square"} & set(scorer.negative_labels)
    assert set(scorer.negative_labels[10:]) <= set(pool.phrases)
    x = F.normalize(torch.randn(5, 32, generator=torch.Generator().manual_seed(0)), dim=1)
    torch.testing.assert_close(scorer.score(x), neglabel_log_odds(x, ids, cands[idx], 0.01, 2, 0),
                               atol=1e-6, rtol=0)
    assert scorer.predict_classes(x).shape == (5,)
    # the export lists every negative in mining order with the value that ranked it
    table = scorer.exports({})["negatives"]
    assert table["label"].tolist() == scorer.negative_labels
    assert table["part"].tolist() == ["noun"] * 10 + ["phrase"] * 4
    assert table["rank"].tolist() == list(range(1, 11)) + list(range(1, 5))
    values = csp.csp_selection_values(cands, ids, 0.95, 0.95, torch.float64)[idx]
    assert table["value"].tolist() == pytest.approx(values.tolist(), abs=1e-6)
    assert table["value"][:10].is_monotonic_increasing and table["value"][10:].is_monotonic_increasing
    # `group`: the group each negative is scored in; the grouped score rebuilt from it is the scorer's
    assert sorted(table["group"].value_counts().tolist()) == [7, 7]  # 14 negatives, 2 groups, none dropped
    x64, e_id = x.double(), (100 * x.double() @ ids.double().T).exp().sum(1)
    negs = cands[idx].double()
    in_group = [torch.from_numpy((table["group"] == g).to_numpy().copy()) for g in (0, 1)]
    masses = [e_id / (e_id + (100 * x64 @ negs[m].T).exp().sum(1)) for m in in_group]
    mass = torch.stack(masses).mean(0)
    torch.testing.assert_close(scorer.score(x), (mass / (1 - mass)).log(), atol=1e-6, rtol=0)
    # a second fit reads the candidate ensembles from the cache
    hits = store.hits
    again = csp.CSP(eta=0.5, groups=2)
    again.fit(make_ctx(tiny_backbone, store))
    assert store.hits > hits and again.negative_labels == scorer.negative_labels
    assert [e.kind for e in store.entries("csp-candidates")] == ["csp-candidates"]


def test_fit_errors(tiny_backbone):
    with pytest.raises(OodbenchError, match="groups"):
        csp.CSP(eta=0.1, groups=100).fit(make_ctx(tiny_backbone))
    ctx = make_ctx(tiny_backbone)
    ctx.lexicon_loader = None
    with pytest.raises(OodbenchError, match="lexicon"):
        csp.CSP().fit(ctx)
