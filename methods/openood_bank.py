"""The OpenOOD-VLM text bank: the negative labels of AdaNeg and the corpus of TANL.

OpenOOD-VLM (``YBZh/OpenOOD-VLM`` @ 804f331, ``openood/networks/clip_for_wordnet_prepare.py`` and
``clip_fixed_ood_prompt.py``, ``get_selected_ood_text_list``) builds its own negative labels, not
NegLabel's list:

- **Candidates**: the set of adjectives and the set of nouns of the word files; exact ID class names
  removed from both; adjectives that are also nouns removed ("when a word is both a noun and an adj,
  remain the noun only"). Here the words come from the benchmark's lexicon, each part in lexicon order
  (the reference's are in Python ``set`` order, which cannot be reproduced; it only matters for ties).
- **Prompts**: ID classes and nouns ``"The nice {}."``, adjectives ``"This is a {} photo."`` (one prompt
  each, L2-normalised).
- **Mining value** of a candidate: its cosines to the C ID prompts sorted ascending, element
  ``int(C * 0.95)`` (no interpolation; for C = 1000 the 50th largest). Lower = farther from every ID class.
- **Selection**: ``num_negatives`` (10,000) split proportionally, ``adj = int(num * n_adj / (n_adj +
  n_noun))`` adjectives and the rest nouns, each part the candidates with the lowest values (ascending;
  ties keep lexicon order here, the reference's unstable ``sort`` leaves them to the device).
- **Order**: ``[selected adjectives | selected nouns | unselected adjectives | unselected nouns]``, each
  by ascending value. AdaNeg uses the selected part (its negatives, in this order, which its grouping
  relies on); TANL the whole list (its corpus).

On ImageNet the reference has 11,453 adjectives + 58,101 nouns = 69,554 candidates, hence 1,646 + 8,354
negatives. Small lexicons: ``num_negatives`` is capped at the number of candidates (all of them are then
negatives, and TANL's corpus has no unselected words); the cap is logged and recorded in the provenance.
The lexicon keeps each word once, tagged by its first word file; the reference's noun set is every line
of the noun files, so a word held by a noun file and by an adjective file that came first is a noun here
too (:attr:`oodbench.lexicon.Lexicon.noun_words`). On the ImageNet suite's lexicon (WordNet 3.0, NegLabel's
file order) that gives 11,427 adjective + 58,490 noun candidates before removing ID names, exactly the
reference's rule on the same word files, and 11,426 + 58,047 = 69,473 after (the reference's own 3.1 files:
11,453 + 58,101 = 69,554), hence 1,644 + 8,356 negatives (reference: 1,646 + 8,354). A lexicon without
``noun_words`` (a ``--words`` file) keeps its tags.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from oodbench.errors import OodbenchError
from oodbench.hashing import sha256_lines
from oodbench.methods.common import block_rows, similarities
from oodbench.params import param
from oodbench.prompts import fill_template
from oodbench.scorer import FitContext

log = logging.getLogger(__name__)

#: OpenOOD-VLM's prompts (``text_prompt = nice``, and its adjective template).
ID_TEMPLATE = "The nice {}."
NOUN_TEMPLATE = "The nice {}."
ADJ_TEMPLATE = "This is a {} photo."


# ----------------------------------------------------------------------------------------- pure rules
def bank_candidates(words: Sequence[str], pos: Sequence[str], class_names: Sequence[str],
                    noun_words: Collection[str] | None = None) -> tuple[list[str], list[str]]:
    """``(adjectives, nouns)``: unique words of each part in first-seen order, without the exact ID class
    names, and without the adjectives that are also nouns (OpenOOD-VLM's ``Deduplication`` rule).

    ``noun_words``: every word some noun file holds (:attr:`oodbench.lexicon.Lexicon.noun_words`); a word
    tagged ``adj`` (its first file was an adjective file) that is in it is a noun here, as in the reference,
    whose noun set is every line of the noun files.
    """
    ids = set(class_names)
    also_noun = set(noun_words or ())
    nouns = list(dict.fromkeys(w for w, p in zip(words, pos)
                               if (p == "noun" or w in also_noun) and w not in ids))
    noun_set = set(nouns)
    adjs = list(dict.fromkeys(w for w, p in zip(words, pos) if p == "adj" and w not in ids and w not in noun_set))
    return adjs, nouns


def bank_values(candidate_features: torch.Tensor, id_features: torch.Tensor,
                percentile: float = 0.95) -> torch.Tensor:
    """Per candidate, element ``int(C * percentile)`` of its ascending cosines to the C ID features: [N] float64.

    No interpolation (the reference indexes the sorted row). Index C (percentile 1) is clipped to C - 1,
    the largest cosine. Cosines in float64 (:func:`oodbench.methods.common.similarities`), in blocks.
    """
    c = id_features.shape[0]
    index = min(int(c * percentile), c - 1)
    from_top = c - index  # element `index` of the ascending order = the (C - index)-th largest
    out = torch.empty(candidate_features.shape[0], dtype=torch.float64)
    rows = block_rows(c)
    for start in range(0, candidate_features.shape[0], rows):
        sims = similarities(candidate_features[start:start + rows], id_features)
        out[start:start + rows] = torch.topk(sims, from_top, dim=1).values[:, -1].cpu()
    return out


def bank_split(n_adj: int, n_noun: int, num_negatives: int) -> tuple[int, int]:
    """``(adjectives, nouns)`` to select: ``int(num * n_adj / (n_adj + n_noun))`` adjectives, the rest
    nouns (the reference's rule), with ``num`` capped at ``n_adj + n_noun``."""
    total = n_adj + n_noun
    num = min(int(num_negatives), total)
    if num == total:
        return n_adj, n_noun
    adj = int(num * (n_adj / total))
    noun = min(num - adj, n_noun)
    return num - noun, noun


def bank_order(values: torch.Tensor, is_adj: Sequence[bool], num_negatives: int) -> tuple[torch.Tensor, int]:
    """The bank's order over the candidates and the number selected.

    Returns ``(order, selected)``: ``order`` [N] int64 indices into the candidates, ``[selected adj |
    selected nouns | unselected adj | unselected nouns]``, each part by ascending value (stable).
    """
    adj_mask = torch.as_tensor(list(is_adj), dtype=torch.bool)
    adjs, nouns = torch.nonzero(adj_mask).flatten(), torch.nonzero(~adj_mask).flatten()
    adjs = adjs[torch.argsort(values[adjs], stable=True)]
    nouns = nouns[torch.argsort(values[nouns], stable=True)]
    n_adj, n_noun = bank_split(len(adjs), len(nouns), num_negatives)
    order = torch.cat([adjs[:n_adj], nouns[:n_noun], adjs[n_adj:], nouns[n_noun:]])
    return order.to(torch.int64), n_adj + n_noun


# ----------------------------------------------------------------------------------------- the bank
@dataclass
class OpenOodBank:
    """A fitted bank: the ID features and every candidate in bank order, the first ``selected`` of which
    are the negatives."""

    id_features: torch.Tensor  # [C, D]
    words: list[str]  # candidates in bank order
    is_adj: list[bool]
    values: np.ndarray  # mining value of each, bank order
    features: torch.Tensor  # [N, D], bank order
    selected: int
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def negative_features(self) -> torch.Tensor:
        return self.features[:self.selected]


def build_openood_bank(ctx: FitContext, *, num_negatives: int = 10_000, percentile: float = 0.95,
                       id_template: str = ID_TEMPLATE, noun_template: str = NOUN_TEMPLATE,
                       adj_template: str = ADJ_TEMPLATE, method: str = "") -> OpenOodBank:
    """The bank from the benchmark's lexicon with the backbone's text tower (see the module docstring).

    ID prompts: ``ctx.templates`` when the benchmark or the user gives templates, else ``id_template``.
    The candidates' prompts are encoded once per backbone (the text cache); the mined order is cached
    with ``ctx.cached``.
    """
    templates = ctx.templates_or([id_template])
    id_features = ctx.backbone.class_text_features(ctx.class_names, templates)
    lexicon = ctx.load_lexicon()
    adjs, nouns = bank_candidates(lexicon.words, lexicon.pos, ctx.class_names, lexicon.noun_words)
    words = adjs + nouns
    is_adj = [True] * len(adjs) + [False] * len(nouns)
    if not words:
        raise OodbenchError(
            f"{method or 'The method'} has no candidate words: the lexicon ({lexicon.source}) holds only ID "
            "class names. Use a larger lexicon or pass --words FILE.")
    prompts = [fill_template(adj_template if a else noun_template, w) for w, a in zip(words, is_adj)]
    candidates = ctx.backbone.encode_texts(prompts, desc="encoding OpenOOD-VLM candidates")

    def mine() -> dict[str, np.ndarray]:
        values = bank_values(candidates, id_features, percentile)
        order, selected = bank_order(values, is_adj, num_negatives)
        return {"order": order.numpy(), "values": values[order].numpy(), "selected": np.array([selected])}

    key = {"backbone": ctx.backbone.identity, "class_names_sha256": sha256_lines(list(ctx.class_names)),
           "id_templates": templates, "lexicon_sha256": lexicon.sha256, "noun_template": noun_template,
           "adj_template": adj_template, "percentile": percentile, "num_negatives": num_negatives,
           **({"noun_words_sha256": sha256_lines(sorted(lexicon.noun_words))} if lexicon.noun_words else {})}
    arrays = ctx.cached("openood-bank", key, mine, meta={"lexicon": lexicon.source, "candidates": len(words)})
    order = [int(i) for i in np.asarray(arrays["order"])]
    selected = int(np.asarray(arrays["selected"])[0])
    if selected < num_negatives:
        log.info("%s: %d negatives asked for, the lexicon gives %d candidates: all are negatives", method,
                 num_negatives, len(words))
    bank_words = [words[i] for i in order]
    bank_adj = [is_adj[i] for i in order]
    n_adj = sum(bank_adj[:selected])
    facts = {
        "lexicon": lexicon.source,
        "lexicon_sha256": lexicon.sha256,
        "candidates": len(words),
        "candidate_adjectives": len(adjs),
        "candidate_nouns": len(nouns),
        "num_negatives_requested": num_negatives,
        "negatives": selected,
        "adj_negatives": n_adj,
        "noun_negatives": selected - n_adj,
        "negatives_head": bank_words[:20],
        "negatives_sha256": sha256_lines([f"{w}\t{'adj' if a else 'noun'}"
                                          for w, a in zip(bank_words[:selected], bank_adj[:selected])]),
        "id_templates": templates,
    }
    return OpenOodBank(id_features=id_features, words=bank_words, is_adj=bank_adj,
                       values=np.asarray(arrays["values"], dtype=np.float64),
                       features=candidates[torch.as_tensor(order, dtype=torch.int64)].contiguous(),
                       selected=selected, facts=facts)


@dataclass
class OpenOodBankParams:
    """The bank's parameters, shared by the methods that use it (AdaNeg, TANL): the percentile that ranks
    the candidates and the three prompt templates; :meth:`build_bank` builds it with them."""

    percentile: float = param(0.95, ge=0, le=1)
    id_template: str = param(ID_TEMPLATE, template=True)
    noun_template: str = param(NOUN_TEMPLATE, template=True)
    adj_template: str = param(ADJ_TEMPLATE, template=True)

    def build_bank(self, ctx: FitContext, num_negatives: int, method: str) -> OpenOodBank:
        return build_openood_bank(ctx, num_negatives=num_negatives, percentile=self.percentile,
                                  id_template=self.id_template, noun_template=self.noun_template,
                                  adj_template=self.adj_template, method=method)
