"""CSP: the conjugated semantic pool (Chen, Gao, Xu, NeurIPS 2024). NegLabel over a larger negative pool.

Besides the lexicon's nouns, every adjective ``a`` becomes a phrase ``"{a} {w}"`` with one superclass word
``w`` (environment, space, object, scene, ... creature) drawn at random; these phrases are the conjugated
semantic pool. Negatives are mined from nouns and phrases as in NegLabel (plus a max-cosine filter) and
scored with NegLabel's grouped score. Higher = more ID.

Reference: ``MengyuanChen21/NeurIPS2024-CSP`` @ 3a7bdab (templates, superclass words and excluded word
files in ``csp_prompts.json`` with their lines):

- **Pool** (``multi_modal.py`` L72-141): the noun and adjective word files without ``noun.person``,
  ``noun.quantity``, ``noun.group``, ``adj.pert`` (and, as NegLabel, without ``noun.animal``/``noun.food``
  on ImageNet: the suite's exclusions), each word kept where first seen. Here the words come from the
  benchmark's lexicon with those four files excluded as well (``exclude``); the WordNet lexicon reads
  its files in sorted order (adjective files first), the reference in ``os.listdir`` order, on which the
  noun/phrase split and the superclass draws depend. Candidates equal to an ID class name are **kept**:
  the max-cosine filter below drops them, as in the reference (removing them first would change
  ``floor(0.15 n)``).
- **Superclass draws**: ``random.Random(seed).choice(superclass_templates)`` once per adjective, in lexicon
  order (the reference: ``random.seed(0)``, then ``random.choice`` per kept adjective).
- **Ensembles**: each noun with the 8 noun templates, each phrase with the 4 phrase templates, the ID
  classes with the 8 noun templates; an ensemble is the mean of the **unnormalised** text embeddings,
  then L2-normalised (``multi_modal.py`` L58-70, L137-141), unlike CLIP's usual rule.
- **Selection** (L160-186): ``q_i`` = the 0.95 quantile (``torch.quantile``, linear interpolation) of
  candidate i's cosines to the ID ensembles, set to 1 when its largest cosine exceeds 0.95 (a filter
  NegLabel lacks); nouns and phrases are ranked apart by ascending q and the first ``floor(0.15 n)`` of
  each kept, in the order [nouns, phrases].
- **Score** (``mmcls/models/ood/clip_ood.py`` L25-49; config t = 1, ngroup = 100): NegLabel's
  ``S = mean_g sum_c e^{l_c} / (sum_c e^{l_c} + sum_{j in G_g} e^{l_j})`` with ``l = cos / 0.01``, after
  dropping the last ``M mod 100`` negatives and permuting the rest with a seeded ``randperm``. This is
  :func:`oodbench.methods.neglabel.neglabel_log_odds` (reported as log-odds by default, as NegLabel).
  The reference draws the permutation on CUDA; here it comes from a CPU generator (same on every device).

Checked against the official code (``CLIPScalableClassifier.__init__`` and ``ScalableClassifier.grouping``
run on stub text features): every pool string identical (372,480 noun prompts, 40,240 phrase prompts),
the same selected set, and the score within 6.2e-7 with the same permutation.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from oodbench.errors import OodbenchError
from oodbench.hashing import sha256_lines
from oodbench.methods.common import block_rows
from oodbench.methods.neglabel import OUTPUTS, GroupedNegativesScoring
from oodbench.params import param
from oodbench.prompts import check_template
from oodbench.scorer import FitContext, MethodInfo, Scorer

log = logging.getLogger(__name__)

#: Candidates per similarity block in the reference (its ``emb_batchsize``); used for float32 selection.
REFERENCE_BLOCK_ROWS = 1000
PRECISIONS = {"float64": torch.float64, "float32": torch.float32}


@cache
def prompt_data() -> dict[str, Any]:
    """The reference's templates, superclass words and excluded word files (``csp_prompts.json``)."""
    text = resources.files("oodbench.methods").joinpath("csp_prompts.json").read_text(encoding="utf-8")
    return json.loads(text)


# ----------------------------------------------------------------------------------------- the pool
@dataclass(frozen=True)
class CspPool:
    """The candidate labels: nouns, and one superclass phrase per adjective (in lexicon order)."""

    nouns: list[str]
    adjectives: list[str]
    phrases: list[str]

    def __len__(self) -> int:
        return len(self.nouns) + len(self.phrases)

    @property
    def labels(self) -> list[str]:
        """Nouns then phrases: the order of the candidate features."""
        return self.nouns + self.phrases


def build_csp_pool(words: Iterable[tuple[str, str]], superclass_templates: Sequence[str],
                   seed: int = 0) -> CspPool:
    """The conjugated semantic pool of ``(word, pos)`` pairs in lexicon order (already without repeats).

    Each adjective gets ``random.Random(seed).choice(superclass_templates)`` filled with it: one draw per
    adjective, in order; nouns draw nothing. This is what ``random.seed(seed)`` followed by
    ``random.choice`` per adjective gives in the reference. ``pos`` is ``"noun"`` or ``"adj"``.
    """
    templates = list(superclass_templates)
    if not templates:
        raise OodbenchError("CSP needs at least one superclass template (e.g. '{} object').")
    rng = random.Random(seed)
    nouns: list[str] = []
    adjectives: list[str] = []
    phrases: list[str] = []
    for word, pos in words:
        if pos == "noun":
            nouns.append(word)
        elif pos == "adj":
            adjectives.append(word)
            phrases.append(rng.choice(templates).format(word))
        else:
            raise ValueError(f"part of speech must be 'noun' or 'adj'; got {pos!r} for {word!r}")
    return CspPool(nouns, adjectives, phrases)


# ---------------------------------------------------------------------------------------- selection
def csp_selection_values(candidate_features: torch.Tensor, id_features: torch.Tensor,
                         percentile: float = 0.95, max_cosine: float | None = 0.95,
                         dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Per candidate, ``q_i = Q_p(cos(v_i, e_c))`` over the ID classes, or 1.0 if ``max_c cos > max_cosine``.

    ``Q_p`` is ``torch.quantile`` (linear interpolation between order statistics). A low q means far from
    every ID class. ``max_cosine=None`` turns the filter off (NegLabel's rule).

    Precision: ``dtype=torch.float64`` (default) is reproducible across devices up to float64 rounding.
    ``torch.float32`` computes as the reference does (blocks of 1,000 candidates, float32 cosines and
    quantiles): on the same device and inputs it gives the reference's values bit for bit. Neighbouring q
    values are often closer than float32's error (about 2e-7), so the two precisions order a few percent
    of the selected negatives differently (the selected set was the same in the comparison).

    Args:
        candidate_features: [M, D] L2-normalised candidate ensembles.
        id_features: [C, D] L2-normalised ID class ensembles.

    Returns:
        [M] values (``dtype``) on the CPU.
    """
    if not 0.0 <= percentile <= 1.0:
        raise OodbenchError(f"CSP's percentile must lie in [0, 1]; got {percentile}.")
    _check_dims(candidate_features, id_features)
    ids = id_features.to(candidate_features.device, dtype)
    rows = block_rows(ids.shape[0]) if dtype == torch.float64 else REFERENCE_BLOCK_ROWS
    out = []
    for start in range(0, candidate_features.shape[0], rows):
        sims = candidate_features[start:start + rows].to(dtype) @ ids.T
        q = torch.quantile(sims, percentile, dim=1)
        if max_cosine is not None:
            q = torch.where(sims.max(dim=1).values > max_cosine, torch.ones_like(q), q)
        out.append(q.cpu())
    return torch.cat(out) if out else torch.empty(0, dtype=dtype)


def select_csp_negatives(candidate_features: torch.Tensor, id_features: torch.Tensor, is_phrase: torch.Tensor,
                         percentile: float = 0.95, eta: float = 0.15, max_cosine: float | None = 0.95,
                         dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Indices of the mined negatives: the selected nouns by ascending q, then the selected phrases.

    Each part (nouns, adjective phrases) keeps the ``floor(eta * its size)`` candidates with the lowest
    :func:`csp_selection_values` (stable: ties by index). Reference: percentile 0.95, eta 0.15,
    max_cosine 0.95.

    Args:
        candidate_features: [M, D] L2-normalised candidate ensembles.
        id_features: [C, D] L2-normalised ID class ensembles.
        is_phrase: [M] bool, True for adjective phrases.
        dtype: precision of the quantiles (see :func:`csp_selection_values`).

    Returns:
        [n] int64 indices into the candidates.
    """
    is_phrase = torch.as_tensor(is_phrase, dtype=torch.bool).cpu()
    if is_phrase.shape != (candidate_features.shape[0],):
        raise ValueError(f"is_phrase has shape {tuple(is_phrase.shape)}, "
                         f"expected ({candidate_features.shape[0]},)")
    q = csp_selection_values(candidate_features, id_features, percentile, max_cosine, dtype)
    return lowest_per_part(q, is_phrase, eta)


def lowest_per_part(values: torch.Tensor, is_phrase: torch.Tensor, eta: float = 0.15) -> torch.Tensor:
    """Indices of the ``floor(eta n)`` lowest ``values`` among the nouns, then among the phrases (stable)."""
    if not 0.0 < eta <= 1.0:
        raise OodbenchError(f"CSP's eta (the fraction of candidates kept) must lie in (0, 1]; got {eta}.")
    is_phrase = torch.as_tensor(is_phrase, dtype=torch.bool).cpu()
    parts = []
    for members in (torch.nonzero(~is_phrase).flatten(), torch.nonzero(is_phrase).flatten()):
        keep = math.floor(eta * len(members) + 1e-9)  # floor(eta n); the epsilon keeps 0.29 * 100 at 29
        parts.append(members[torch.argsort(values[members], stable=True)[:keep]])
    return torch.cat(parts).to(torch.int64)


def _check_dims(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features {tuple(a.shape)} and {tuple(b.shape)} must be 2-D with the same "
                         "dimension")
    if b.shape[0] == 0:
        raise ValueError("no features to compare with")


# ----------------------------------------------------------------------------------------- plumbing
@dataclass
class CSP(GroupedNegativesScoring, Scorer):
    """CSP with the reference defaults (see the module docstring).

    ``exclude``: word files left out of the lexicon on top of the suite's (for a lexicon with an
    ``exclude`` option, such as ``wordnet``; set it to an empty list for others). ``max_cosine``: the
    selection filter (``none`` turns it off). ``selection_precision``: ``float32`` reproduces the
    reference's quantiles bit for bit on the same device, ``float64`` (default) is device-independent.
    ``output``: ``log-odds`` (default) or ``mass``, as NegLabel.
    """

    info = MethodInfo(
        paper="Chen, Gao, Xu, Conjugated Semantic Pool Improves OOD Detection with Pre-trained "
              "Vision-Language Models, NeurIPS 2024",
        summary="NegLabel's grouped ID mass over negatives mined from nouns + '{adjective} {superclass}' "
                "phrases (unnormalised prompt ensembles, max-cosine filter)",
        url="https://github.com/MengyuanChen21/NeurIPS2024-CSP",
    )
    percentile: float = param(0.95, ge=0, le=1)
    eta: float = param(0.15, gt=0, le=1)
    max_cosine: float | None = param(0.95, ge=-1, le=1)
    groups: int = param(100, ge=1)
    temperature: float = param(0.01, gt=0)
    seed: int = param(0)
    noun_templates: list[str] = field(default_factory=lambda: list(prompt_data()["noun_templates"]))
    phrase_templates: list[str] = field(default_factory=lambda: list(prompt_data()["phrase_templates"]))
    superclass_templates: list[str] = field(
        default_factory=lambda: list(prompt_data()["superclass_templates"]))
    exclude: list[str] = field(default_factory=lambda: list(prompt_data()["excluded_word_files"]))
    selection_precision: Literal["float64", "float32"] = "float64"
    output: str = "log-odds"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._fitted: dict[str, Any] = {}

    def check(self) -> None:
        if self.output not in OUTPUTS:
            raise OodbenchError(f"CSP's output must be one of {', '.join(OUTPUTS)}; got {self.output!r}.")
        for name in ("noun_templates", "phrase_templates", "superclass_templates"):
            templates = getattr(self, name)
            if not templates:
                raise OodbenchError(f"CSP's {name} must hold at least one template.")
            for template in templates:
                check_template(template, f"parameter csp.{name}")

    def fit(self, ctx: FitContext) -> None:
        id_templates = ctx.templates_or(self.noun_templates)
        backbone = ctx.backbone
        id_features = backbone.class_text_features(ctx.class_names, id_templates, normalize_prompts=False)
        lexicon = ctx.load_lexicon(exclude=self.exclude)
        pool = build_csp_pool(zip(lexicon.words, lexicon.pos), self.superclass_templates, self.seed)
        if not pool.nouns and not pool.phrases:
            raise OodbenchError(f"CSP has no candidate words: the lexicon ({lexicon.source}) is empty.")

        def encode() -> dict[str, np.ndarray]:
            parts = [backbone.class_text_features(labels, templates, desc=f"encoding CSP {what}",
                                                  normalize_prompts=False, use_cache=False)
                     for what, labels, templates in (("nouns", pool.nouns, self.noun_templates),
                                                     ("phrases", pool.phrases, self.phrase_templates))
                     if labels]
            return {"features": torch.cat(parts).numpy()}

        key = {
            "backbone": backbone.identity,
            "labels_sha256": sha256_lines(pool.labels),
            "n_nouns": len(pool.nouns),
            "noun_templates": self.noun_templates,
            "phrase_templates": self.phrase_templates,
        }
        cached = ctx.cached("csp-candidates", key, encode, meta={"lexicon": lexicon.source,
                                                                 "candidates": len(pool)})
        candidates = torch.from_numpy(np.array(cached["features"], dtype=np.float32))
        is_phrase = torch.arange(len(pool)) >= len(pool.nouns)
        q_dtype = PRECISIONS[self.selection_precision]
        q = csp_selection_values(candidates, id_features, self.percentile, self.max_cosine, q_dtype)
        idx = lowest_per_part(q, is_phrase, self.eta)
        if len(idx) < self.groups:
            raise OodbenchError(
                f"CSP mined {len(idx)} negative labels from {len(pool)} candidates but groups={self.groups}; "
                "every group needs at least one. Lower groups (-p csp.groups=N), raise eta or use a larger "
                "lexicon.")
        labels = pool.labels
        negatives = [labels[i] for i in idx.tolist()]
        n_phrases = int(is_phrase[idx].sum())
        filtered = int((q == 1.0).sum()) if self.max_cosine is not None else 0
        self.id_features = id_features
        self.neg_features = candidates[idx].contiguous()
        self.negative_labels = negatives
        self._negative_is_phrase = is_phrase[idx].tolist()
        self._negative_values = q[idx].tolist()
        self._fitted = {
            "negatives": len(negatives),
            "noun_negatives": len(negatives) - n_phrases,
            "phrase_negatives": n_phrases,
            "negatives_head": negatives[:20],
            "negatives_sha256": sha256_lines(negatives),
            "negatives_dropped_for_grouping": len(negatives) % self.groups,
            "candidates": len(pool),
            "noun_candidates": len(pool.nouns),
            "phrase_candidates": len(pool.phrases),
            "candidates_over_max_cosine": filtered,
            "lexicon": lexicon.source,
            "lexicon_sha256": lexicon.sha256,
            "id_templates": id_templates,
        }
        log.info("CSP: %d negative labels (%d nouns, %d phrases) from %d candidates; first: %s",
                 len(negatives), len(negatives) - n_phrases, n_phrases, len(pool), ", ".join(negatives[:5]))

    def provenance(self) -> dict[str, Any]:
        return dict(self._fitted)

    def exports(self, image_features: Mapping[str, torch.Tensor]) -> dict[str, pd.DataFrame]:
        """``negatives``: every mined negative label in mining order (nouns, then phrases, each by ascending
        selection value): ``label`` (a noun, or an "adjective superclass" phrase), ``part`` (``noun`` /
        ``phrase``), ``value`` (the percentile-quantile of its cosines to the ID classes, 1.0 for a candidate
        the max-cosine filter removed; lower = farther from every ID class), ``rank`` within its part and
        ``group``, the group it is scored in (-1: dropped)."""
        if not hasattr(self, "negative_labels"):
            raise RuntimeError("CSP.exports called before fit")
        table = pd.DataFrame({"label": self.negative_labels,
                              "part": ["phrase" if p else "noun" for p in self._negative_is_phrase],
                              "value": self._negative_values})
        table["rank"] = table.groupby("part", sort=False).cumcount() + 1
        table["group"] = self.negative_groups(len(table))
        return {"negatives": table}
