"""The OpenOOD-VLM text bank (AdaNeg's negatives, TANL's corpus): candidate rule, mining value, split, order."""

from __future__ import annotations

import pytest
import torch
from testkit import basis, images_with_cosines

from oodbench.lexicon import Lexicon
from oodbench.methods.openood_bank import (
    bank_candidates,
    bank_order,
    bank_split,
    bank_values,
    build_openood_bank,
)
from oodbench.scorer import FitContext


def test_candidates_drop_id_names_and_adjectives_that_are_nouns():
    words = ["red", "cat", "dog", "red", "blue", "fast", "cat", "Dog"]
    pos = ["adj", "noun", "noun", "noun", "adj", "adj", "noun", "noun"]
    adjs, nouns = bank_candidates(words, pos, ["dog", "fast"])
    # "dog" and "fast" are exact ID names (case-sensitive: "Dog" stays); "red" is also a noun: a noun only
    assert nouns == ["cat", "red", "Dog"]
    assert adjs == ["blue"]


def test_a_word_some_noun_file_holds_is_a_noun_whatever_its_first_tag():
    # the lexicon tagged "light" adj (an adjective file came first), but a noun file holds it too: the
    # reference's noun set is every noun-file line, so it is a noun, and no longer an adjective
    words, pos = ["light", "swift", "lamp"], ["adj", "adj", "noun"]
    assert bank_candidates(words, pos, [], noun_words={"light", "lamp"}) == (["swift"], ["light", "lamp"])
    assert bank_candidates(words, pos, []) == (["light", "swift"], ["lamp"])  # without the information
    assert bank_candidates(words, pos, ["light"], noun_words={"light", "lamp"}) == (["swift"], ["lamp"])


def test_value_is_the_element_int_c_times_p_of_the_ascending_cosines():
    """C = 20: index int(20 * 0.95) = 19, the largest cosine; p = 0.5: index 10 (no interpolation)."""
    ids = basis(20, 24)
    cos = [[0.01 * (j + 1) + 0.003 * i for j in range(20)] for i in range(3)]  # ascending per row
    cands = images_with_cosines(cos, 24)
    assert torch.allclose(bank_values(cands, ids, 0.95), torch.tensor([row[19] for row in cos],
                                                                      dtype=torch.float64), atol=1e-12)
    assert torch.allclose(bank_values(cands, ids, 0.5), torch.tensor([row[10] for row in cos],
                                                                     dtype=torch.float64), atol=1e-12)
    assert torch.allclose(bank_values(cands, ids, 1.0), bank_values(cands, ids, 0.95))  # index C clipped


def test_value_matches_sorting_at_imagenet_size():
    """C = 1000: element 950 of the ascending row (the 50th largest), against a plain sort."""
    g = torch.Generator().manual_seed(0)
    ids = torch.nn.functional.normalize(torch.randn(1000, 16, generator=g, dtype=torch.float64), dim=1)
    cands = torch.nn.functional.normalize(torch.randn(30, 16, generator=g, dtype=torch.float64), dim=1)
    expected = torch.sort(cands @ ids.T, dim=1).values[:, 950]
    assert torch.equal(bank_values(cands, ids, 0.95), expected)


def test_split_is_the_reference_proportion_with_floor():
    assert bank_split(11_453, 58_101, 10_000) == (1_646, 8_354)  # the reference's ImageNet counts
    assert bank_split(18, 20, 19) == (9, 10)
    assert bank_split(18, 20, 10_000) == (18, 20)  # capped: every candidate
    assert bank_split(0, 5, 3) == (0, 3) and bank_split(5, 0, 3) == (3, 0)


def test_order_is_selected_adjectives_nouns_then_the_unselected():
    values = torch.tensor([0.5, 0.1, 0.3, 0.2, 0.9, 0.4, 0.0], dtype=torch.float64)
    is_adj = [True, True, True, False, False, False, False]
    order, selected = bank_order(values, is_adj, 4)  # int(4 * 3/7) = 1 adjective, 3 nouns
    assert selected == 4
    assert order.tolist() == [1, 6, 3, 5, 2, 0, 4]
    order, selected = bank_order(values, is_adj, 100)
    assert selected == 7 and order.tolist() == [1, 2, 0, 6, 3, 5, 4]


def test_build_from_the_lexicon(tiny_backbone):
    words = ["red square", "plant", "bicycle", "cloud", "violin", "shiny", "wooden", "cloud", "furry"]
    pos = ["noun", "noun", "noun", "noun", "noun", "adj", "adj", "adj", "adj"]
    lex = Lexicon(words, pos, source="test words")
    ctx = FitContext(backbone=tiny_backbone, class_names=["red square", "green square"], templates=None,
                     device=torch.device("cpu"), seed=0, cache=None, lexicon_loader=lambda: lex)
    bank = build_openood_bank(ctx, num_negatives=3)
    # candidates: 4 nouns (the ID name dropped) + 3 adjectives ("cloud" is a noun too): 7
    assert bank.facts["candidates"] == 7 and bank.facts["candidate_adjectives"] == 3
    assert bank.selected == 3 and bank.facts["adj_negatives"] == 1  # int(3 * 3/7) = 1, then 2 nouns
    assert bank.is_adj == [True, False, False, True, True, False, False]
    assert sorted(bank.words) == sorted(["plant", "bicycle", "cloud", "violin", "shiny", "wooden", "furry"])
    # the features are those of the prompts, in bank order
    prompts = [("This is a {} photo." if a else "The nice {}.").format(w) for w, a in zip(bank.words, bank.is_adj)]
    assert torch.allclose(bank.features, tiny_backbone.encode_texts(prompts), atol=1e-6)
    ids = tiny_backbone.class_text_features(["red square", "green square"], ["The nice {}."])
    assert torch.allclose(bank.id_features, ids, atol=1e-6)
    # values recomputed: each part ascending, the selected ones the lowest of their part
    vals = bank_values(bank.features, ids).numpy()
    assert vals == pytest.approx(bank.values, abs=1e-12)
    for part in (True, False):
        sel = [vals[i] for i in range(3) if bank.is_adj[i] == part]
        rest = [vals[i] for i in range(3, 7) if bank.is_adj[i] == part]
        assert sel == sorted(sel) and rest == sorted(rest) and max(sel) <= min(rest)
    capped = build_openood_bank(ctx, num_negatives=10_000)
    assert capped.selected == 7 and capped.facts["num_negatives_requested"] == 10_000
