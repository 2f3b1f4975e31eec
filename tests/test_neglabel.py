"""NegLabel: the score on hand-built geometries, grouping, NegMining, and the fitted scorer."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from oodbench.errors import OodbenchError
from oodbench.features import FeatureStore
from oodbench.lexicon import Lexicon
from oodbench.methods.neglabel import (
    NegLabel,
    mine_negatives,
    neglabel_log_odds,
    neglabel_score,
    similarity_quantile,
)
from oodbench.scorer import METHODS, FitContext


def unit(*v: float) -> torch.Tensor:
    return F.normalize(torch.tensor(v, dtype=torch.float32), dim=0)


def naive_score(x, ids, negs, tau, groups=1, seed=0):
    """Independent float64 implementation: explicit groups, plain softmax sums."""
    x, ids, negs = x.double(), ids.double(), negs.double()
    if groups > 1:
        kept = negs.shape[0] - negs.shape[0] % groups
        perm = torch.randperm(kept, generator=torch.Generator().manual_seed(seed))
        negs = negs[:kept][perm]
    size = negs.shape[0] // groups
    id_mass = torch.exp(x @ ids.T / tau).sum(dim=1)
    per_group = []
    for g in range(groups):
        neg_mass = torch.exp(x @ negs[g * size:(g + 1) * size].T / tau).sum(dim=1)
        per_group.append(id_mass / (id_mass + neg_mass))
    return torch.stack(per_group, dim=1).mean(dim=1)


# ----------------------------------------------------------------------------------------- the score
def test_exact_value_two_images_two_ids_three_negatives():
    ids = torch.stack([unit(1, 0, 0), unit(0, 1, 0)])
    negs = torch.stack([unit(0, 0, 1), unit(0.6, 0, 0.8), unit(0, 0.6, 0.8)])
    images = torch.stack([unit(1, 0, 0), unit(0, 0, 1)])
    # temperature 0.1: logits are 10 x cosine.
    # image 1: ID cosines (1, 0), negative cosines (0, 0.6, 0)
    #   S = (e^10 + 1) / (e^10 + 1 + 1 + e^6 + 1) = 22027.466 / 22432.895 = 0.98192704...
    # image 2: ID cosines (0, 0), negative cosines (1, 0.8, 0.8)
    #   S = 2 / (2 + e^10 + 2 e^8) = 2 / 27990.38 = 7.1453e-05
    s = neglabel_score(images, ids, negs, temperature=0.1)
    assert s.dtype == torch.float64
    assert s[0].item() == pytest.approx(0.9819270405833317, rel=1e-6)
    assert s[1].item() == pytest.approx(7.145311616374214e-05, rel=1e-6)
    e = math.exp
    assert s[0].item() == pytest.approx((e(10) + 1) / (e(10) + 3 + e(6)), rel=1e-6)
    # log-odds is log(S / (1 - S))
    lo = neglabel_log_odds(images, ids, negs, temperature=0.1)
    assert lo[0].item() == pytest.approx(math.log(0.9819270405833317 / (1 - 0.9819270405833317)), rel=1e-5)


def test_groups_one_is_the_plain_formula():
    gen = torch.Generator().manual_seed(1)
    x = F.normalize(torch.randn(20, 16, generator=gen), dim=1)
    ids = F.normalize(torch.randn(5, 16, generator=gen), dim=1)
    negs = F.normalize(torch.randn(13, 16, generator=gen), dim=1)
    got = neglabel_score(x, ids, negs, temperature=0.05, groups=1)
    torch.testing.assert_close(got, naive_score(x, ids, negs, 0.05), rtol=1e-5, atol=1e-9)
    # no negative is dropped or reordered with one group: the order of the negatives does not matter
    shuffled = negs[torch.randperm(13, generator=gen)]
    torch.testing.assert_close(neglabel_score(x, ids, shuffled, 0.05, groups=1), got, rtol=1e-6, atol=1e-12)


def test_grouping_matches_an_explicit_computation():
    gen = torch.Generator().manual_seed(2)
    x = F.normalize(torch.randn(30, 8, generator=gen), dim=1)
    ids = F.normalize(torch.randn(4, 8, generator=gen), dim=1)
    negs = F.normalize(torch.randn(23, 8, generator=gen), dim=1)  # 23 mod 5 = 3 dropped
    got = neglabel_score(x, ids, negs, temperature=0.02, groups=5, seed=7)
    torch.testing.assert_close(got, naive_score(x, ids, negs, 0.02, groups=5, seed=7), rtol=1e-5, atol=1e-9)
    # the dropped negatives are the last ones: changing them changes nothing
    changed = negs.clone()
    changed[-3:] = F.normalize(torch.randn(3, 8, generator=gen), dim=1)
    torch.testing.assert_close(neglabel_score(x, ids, changed, 0.02, groups=5, seed=7), got)


def test_grouping_is_deterministic_per_seed_and_differs_across_seeds():
    gen = torch.Generator().manual_seed(3)
    x = F.normalize(torch.randn(40, 8, generator=gen), dim=1)
    ids = F.normalize(torch.randn(3, 8, generator=gen), dim=1)
    negs = F.normalize(torch.randn(60, 8, generator=gen), dim=1)
    a = neglabel_score(x, ids, negs, 0.05, groups=6, seed=0)
    b = neglabel_score(x, ids, negs, 0.05, groups=6, seed=0)
    c = neglabel_score(x, ids, negs, 0.05, groups=6, seed=1)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_ood_images_aligned_with_a_planted_negative_score_lower():
    gen = torch.Generator().manual_seed(4)
    ids = torch.eye(16)[:4]
    negs = torch.cat([torch.eye(16)[8:12], F.normalize(torch.randn(20, 16, generator=gen), dim=1)])
    noise = 0.1 * torch.randn(10, 16, generator=gen)
    id_images = F.normalize(ids.repeat(3, 1)[:10] + noise, dim=1)
    ood_images = F.normalize(torch.eye(16)[8:12].repeat(3, 1)[:10] + noise, dim=1)
    for groups in (1, 4):
        s_id = neglabel_score(id_images, ids, negs, 0.01, groups=groups)
        s_ood = neglabel_score(ood_images, ids, negs, 0.01, groups=groups)
        assert s_id.min() > 0.5 > s_ood.max()


def test_confident_id_images_do_not_saturate_into_ties():
    ids = torch.eye(8)[:2]
    negs = -torch.eye(8)[:1].repeat(10, 1)  # every negative is opposite to ID class 0
    # cosines to class 0 of 0.999, 0.998, 0.997: with tau = 0.01 the negative mass is ~e^-197 of the ID mass
    images = torch.zeros(3, 8)
    for row, c in enumerate((0.999, 0.998, 0.997)):
        images[row, 0], images[row, 2] = c, math.sqrt(1 - c * c)
    mass = neglabel_score(images, ids, negs, 0.01, groups=2)
    assert torch.all(mass == 1.0)  # S itself rounds to 1.0 in float64 ...
    lo = neglabel_log_odds(images, ids, negs, 0.01, groups=2)
    assert torch.all(torch.isfinite(lo))
    assert lo[0] > lo[1] > lo[2]  # ... its log-odds keep them apart, in the right order
    assert lo[0] - lo[1] == pytest.approx(0.2, rel=1e-3)  # 2 x 0.001 / 0.01


def test_score_is_batched_and_independent_of_block_size(monkeypatch):
    import oodbench.methods.common as mod

    gen = torch.Generator().manual_seed(5)
    x = F.normalize(torch.randn(50, 8, generator=gen), dim=1)
    ids = F.normalize(torch.randn(3, 8, generator=gen), dim=1)
    negs = F.normalize(torch.randn(12, 8, generator=gen), dim=1)
    whole = neglabel_log_odds(x, ids, negs, 0.05, groups=3)
    monkeypatch.setattr(mod, "BLOCK_ELEMENTS", 12 * 7)  # 7 images per block
    # Cosines are float64 products: another block shape may change the BLAS summation order, which moves
    # a result by ~1e-16 relative (float32 products moved it by ~1e-6 on some CPUs).
    torch.testing.assert_close(neglabel_log_odds(x, ids, negs, 0.05, groups=3), whole, rtol=1e-13, atol=1e-13)


def test_score_rejects_bad_parameters():
    x, ids, negs = torch.eye(4)[:2], torch.eye(4)[:2], torch.eye(4)[2:]
    with pytest.raises(OodbenchError, match="groups"):
        neglabel_score(x, ids, negs, groups=3)
    with pytest.raises(OodbenchError, match="temperature"):
        neglabel_score(x, ids, negs, temperature=0)


# ----------------------------------------------------------------------------------------- mining
@pytest.mark.parametrize("percentile", [0.0, 0.05, 0.5, 0.95, 0.999, 1.0])
@pytest.mark.parametrize("k", [1, 2, 7, 40])
def test_quantile_matches_torch_quantile(percentile, k):
    gen = torch.Generator().manual_seed(k)
    cands = F.normalize(torch.randn(300, 12, generator=gen), dim=1)
    ids = F.normalize(torch.randn(k, 12, generator=gen), dim=1)
    expected = torch.quantile((cands @ ids.T).double(), percentile, dim=1, interpolation="linear")
    torch.testing.assert_close(similarity_quantile(cands, ids, percentile), expected, atol=1e-6, rtol=0)


def planted(a: float, d: int = 16) -> torch.Tensor:
    """A unit vector whose cosine to each of the ID classes e_0..e_3 is exactly a / 2."""
    v = torch.zeros(d)
    v[:4] = a / 2
    v[-1] = math.sqrt(1 - a * a)
    return v


def test_mining_picks_the_planted_far_words_nouns_and_adjectives_apart():
    d = 16
    ids = torch.eye(d)[:4]
    gen = torch.Generator().manual_seed(6)

    def near() -> torch.Tensor:  # high cosine (>= ~0.3) to some ID class
        v = torch.cat([torch.rand(4, generator=gen) + 0.5, 0.1 * torch.rand(d - 4, generator=gen)])
        return F.normalize(v, dim=0)

    items = [("far noun -0.45", planted(-0.9), False), ("far noun -0.30", planted(-0.6), False),
             ("far noun -0.15", planted(-0.3), False),
             # nouns whose q (0.05, 0.06) is lower than the far adjectives' (0.10, 0.15): a joint ranking
             # of nouns and adjectives would take one of them instead of an adjective
             ("mid noun 0.05", planted(0.1), False), ("mid noun 0.06", planted(0.12), False),
             ("far adj 0.10", planted(0.2), True), ("far adj 0.15", planted(0.3), True)]
    items += [(f"near noun {i}", near(), False) for i in range(8)]
    items += [(f"near adj {i}", near(), True) for i in range(6)]
    order = torch.randperm(len(items), generator=gen).tolist()
    items = [items[i] for i in order]
    cands = torch.stack([v for _, v, _ in items])
    is_adj = torch.tensor([a for _, _, a in items])
    where = {name: i for i, (name, _, _) in enumerate(items)}
    assert (~is_adj).sum() == 13 and is_adj.sum() == 8
    # eta = 0.25: floor(0.25 * 13) = 3 nouns, floor(0.25 * 8) = 2 adjectives; nouns first, each by ascending q
    got = mine_negatives(cands, ids, is_adj, percentile=0.95, eta=0.25)
    assert [items[i][0] for i in got] == ["far noun -0.45", "far noun -0.30", "far noun -0.15",
                                          "far adj 0.10", "far adj 0.15"]
    assert got.tolist() == [where["far noun -0.45"], where["far noun -0.30"], where["far noun -0.15"],
                            where["far adj 0.10"], where["far adj 0.15"]]
    # num_negatives overrides eta, split in proportion: 4 x 13/21 = 2.48 -> 2 nouns + 2 adjectives
    got = mine_negatives(cands, ids, is_adj, num_negatives=4)
    assert [items[i][0] for i in got] == ["far noun -0.45", "far noun -0.30", "far adj 0.10", "far adj 0.15"]


def test_mining_counts_follow_floor_eta_per_part():
    gen = torch.Generator().manual_seed(7)
    cands = F.normalize(torch.randn(170, 8, generator=gen), dim=1)
    ids = F.normalize(torch.randn(5, 8, generator=gen), dim=1)
    is_adj = torch.arange(170) >= 137  # 137 nouns, 33 adjectives
    got = mine_negatives(cands, ids, is_adj, eta=0.15)
    assert len(got) == math.floor(0.15 * 137) + math.floor(0.15 * 33) == 20 + 4
    assert (~is_adj[got[:20]]).all() and is_adj[got[20:]].all()
    assert len(set(got.tolist())) == len(got)
    # without tags every candidate is a noun
    assert len(mine_negatives(cands, ids, None, eta=0.15)) == math.floor(0.15 * 170)
    # num_negatives: 10 split 137:33 -> 8 nouns + 2 adjectives
    got = mine_negatives(cands, ids, is_adj, num_negatives=10)
    assert (~is_adj[got]).sum() == 8 and is_adj[got].sum() == 2
    with pytest.raises(OodbenchError, match="num_negatives"):
        mine_negatives(cands, ids, is_adj, num_negatives=171)
    with pytest.raises(OodbenchError, match="eta"):
        mine_negatives(cands, ids, is_adj, eta=0)


# ----------------------------------------------------------------------------------------- the scorer
WORDS = ["red square", "green square", "plant", "bicycle", "cloud", "violin", "mountain", "teapot",
         "bridge", "ladder", "candle", "anchor", "comet", "helmet", "kettle", "lantern", "compass", "rocket",
         "whistle", "harbor", "shiny", "wooden", "furry", "striped", "golden", "tiny", "ancient", "wet"]
POS = ["noun"] * 20 + ["adj"] * 8


def make_ctx(backbone, store=None, words=WORDS, pos=POS, templates=None):
    lex = Lexicon(list(words), list(pos), source="test words")
    return FitContext(backbone=backbone, class_names=["red square", "green square", "Blue_Square"],
                      templates=templates, device=torch.device("cpu"), seed=0, cache=store,
                      lexicon_loader=lambda: lex)


def test_registered_with_reference_defaults():
    cls = METHODS.get("neglabel")
    assert cls is NegLabel
    p = NegLabel().params()
    assert p == {"percentile": 0.95, "eta": 0.15, "num_negatives": None, "groups": 100, "temperature": 0.01,
                 "seed": 0, "noun_template": "the nice {}", "adj_template": "This is a {} photo",
                 "output": "log-odds", "remove_id_names": False, "corpus": None, "negatives": None}
    with pytest.raises(OodbenchError, match="output"):
        NegLabel.from_params({"output": "probability"})
    assert NegLabel.from_params({"num_negatives": "none", "groups": "4"}).groups == 4


def test_fit_score_and_provenance(tiny_backbone, tmp_path):
    store = FeatureStore(tmp_path / "store")
    tiny_backbone.store = store
    try:
        scorer = NegLabel(eta=0.5, groups=3, remove_id_names=True)
        scorer.fit(make_ctx(tiny_backbone, store))
        prov = scorer.provenance()
        # "red square" and "green square" equal ID class names: removed on request
        assert prov["candidates"] == len(WORDS) - 2 and prov["candidates_equal_to_id_names"] == 2
        assert prov["noun_negatives"] == 9 and prov["adj_negatives"] == 4  # floor(0.5 * 18), floor(0.5 * 8)
        assert prov["negatives"] == 13 and prov["negatives_dropped_for_grouping"] == 1
        assert prov["negatives_head"] == scorer.negative_words[:20]
        assert not {"red square", "green square"} & set(scorer.negative_words)
        assert set(scorer.negative_words[9:]) <= set(WORDS[20:])
        # the mined negatives equal a direct mining on the same features
        ctx = make_ctx(tiny_backbone, store)
        prompts = [f"the nice {w}" for w in WORDS[2:20]] + [f"This is a {w} photo" for w in WORDS[20:]]
        feats = tiny_backbone.encode_texts(prompts)
        id_feats = tiny_backbone.class_text_features(ctx.class_names, ["the nice {}"])
        idx = mine_negatives(feats, id_feats, torch.tensor([False] * 18 + [True] * 8), eta=0.5)
        assert scorer.negative_words == [(WORDS[2:])[i] for i in idx.tolist()]

        images = F.normalize(torch.randn(6, 32, generator=torch.Generator().manual_seed(0)), dim=1)
        s = scorer.score(images)
        assert s.shape == (6,) and s.dtype == torch.float64
        torch.testing.assert_close(s, neglabel_log_odds(images, id_feats, feats[idx], 0.01, 3, 0))
        assert scorer.predict_classes(images).shape == (6,)

        # a second fit reads the mined list from the cache
        hits = store.hits
        again = NegLabel(eta=0.5, groups=3, remove_id_names=True)
        again.fit(make_ctx(tiny_backbone, store))
        assert store.hits > hits
        assert again.negative_words == scorer.negative_words
        assert [e.kind for e in store.entries("neglabel-mined")] == ["neglabel-mined"]
        torch.testing.assert_close(again.score(images), s)
        # output="mass" gives S itself
        mass = NegLabel(eta=0.5, groups=3, output="mass", remove_id_names=True)
        mass.fit(make_ctx(tiny_backbone, store))
        torch.testing.assert_close(torch.sigmoid(s), mass.score(images), rtol=1e-9, atol=1e-12)
    finally:
        tiny_backbone.store = None


def test_id_names_stay_candidates_by_default(tiny_backbone):
    # As in the published runs (the reference removes ID names only when pos_topk is set).
    scorer = NegLabel(eta=0.5, groups=1)
    scorer.fit(make_ctx(tiny_backbone))
    prov = scorer.provenance()
    assert prov["candidates"] == len(WORDS) and prov["candidates_equal_to_id_names"] == 2
    assert prov["id_names_removed"] is False and prov["noun_negatives"] == 10  # floor(0.5 * 20)


def test_released_negatives_are_used_verbatim_in_file_order(tiny_backbone, tmp_path):
    lines = ["the nice kalinin", "the nice m3\"", "the nice teapot", "This is a [thermal photo",
             "This is a wooden photo"]
    path = tmp_path / "selected_neg_labels_in1k_10k.txt"
    path.write_text("\n".join(lines) + "\n")
    scorer = NegLabel(negatives=path, groups=2)
    scorer.fit(make_ctx(tiny_backbone, words=["unused"], pos=["noun"]))
    assert scorer.negative_words == lines
    prov = scorer.provenance()
    assert (prov["noun_negatives"], prov["adj_negatives"], prov["negatives_dropped_for_grouping"]) == (3, 2, 1)
    assert prov["negatives_file"] == path.name and "lexicon" not in prov
    torch.testing.assert_close(scorer.neg_features, tiny_backbone.encode_texts(lines, use_cache=False))
    with pytest.raises(OodbenchError, match="does not exist"):
        NegLabel(negatives=tmp_path / "nope.txt").fit(make_ctx(tiny_backbone))


def test_fit_without_cache_and_with_template_override(tiny_backbone):
    scorer = NegLabel(eta=0.5, groups=1)
    scorer.fit(make_ctx(tiny_backbone, templates=["a photo of a {}.", "a {}."]))
    assert scorer.provenance()["id_templates"] == ["a photo of a {}.", "a {}."]
    assert scorer.score(torch.eye(32)[:2]).shape == (2,)


def test_fit_errors_are_clear(tiny_backbone):
    with pytest.raises(OodbenchError, match="groups"):
        NegLabel(eta=0.5, groups=100).fit(make_ctx(tiny_backbone))
    with pytest.raises(OodbenchError, match="no candidate words"):
        NegLabel(remove_id_names=True).fit(make_ctx(tiny_backbone, words=["red square"], pos=["noun"]))
    ctx = make_ctx(tiny_backbone)
    ctx.lexicon_loader = None
    with pytest.raises(OodbenchError, match="--words"):
        NegLabel().fit(ctx)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU to compare devices")
def test_same_scores_on_cpu_and_gpu():
    gen = torch.Generator().manual_seed(8)
    x = F.normalize(torch.randn(64, 32, generator=gen), dim=1)
    ids = F.normalize(torch.randn(10, 32, generator=gen), dim=1)
    negs = F.normalize(torch.randn(205, 32, generator=gen), dim=1)
    cpu = neglabel_score(x, ids, negs, 0.01, groups=10, seed=0)
    gpu = neglabel_score(x.cuda(), ids.cuda(), negs.cuda(), 0.01, groups=10, seed=0)
    torch.testing.assert_close(gpu, cpu, rtol=1e-5, atol=1e-9)
