"""NegLabel: negative-label guided OOD detection (Jiang et al., ICLR 2024).

NegMining picks, from a large lexicon (WordNet nouns and adjectives), the M words whose text embeddings
are farthest from every ID class; the score is the share of a softmax over [ID labels + negative
labels] that falls on the ID labels, averaged over random groups of the negatives. Higher = more ID.

Defaults follow the reference code (``tmlr-group/NegLabel``, ``custom_config/clip.py``): percentile
0.95, eta 0.15 of nouns and of adjectives, 100 groups, temperature 0.01 (100 x cosine), prompts
``"the nice {}"`` for ID classes and noun candidates and ``"This is a {} photo"`` for adjective
candidates. The candidates come from the benchmark's lexicon (the ImageNet suite's is NegLabel's own
word files rebuilt from WordNet, in the reference's file order: :mod:`oodbench.lexicon.neglabel_files`),
from ``--words FILE``, or from the reference's ``txtfiles/`` folder (``corpus=DIR``); ``negatives=FILE``
uses the authors' released negatives (finished prompts, verbatim, in file order) instead of mining. As in
the published runs, candidates equal to an ID class name are kept (the reference removes them only when
``pos_topk`` is set); ``remove_id_names=true`` removes them (case-insensitive, underscores as spaces, any
part of speech; the reference's ``pos_topk`` rule is exact, case-sensitive and nouns only).
Differences from the reference, on purpose:

- the group permutation comes from a CPU generator, so it is the same on every device (the reference
  draws it on CUDA, so seed 0 gives a different permutation there);
- ``groups=1`` is the plain formula, not the reference's ``ngroup == 1`` path (a sum of raw ID logits);
- scores and cosines are float64 (the reference: fp16 weights, fp16 normalisation on the GPU);
- the scorer reports ``output="log-odds"`` by default, log(S / (1 - S)), a strictly increasing function
  of the score S with the same metrics, which, unlike S, does not round to 1.0 for confident ID images.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from oodbench.errors import OodbenchError
from oodbench.hashing import sha256_file, sha256_lines
from oodbench.methods.common import block_rows, group_indices, grouped_log_odds, similarities
from oodbench.params import param
from oodbench.prompts import fill_template, normalise_name
from oodbench.scorer import FitContext, MethodInfo, Scorer

log = logging.getLogger(__name__)

OUTPUTS = ("log-odds", "mass")


# ----------------------------------------------------------------------------------------- pure math
def similarity_quantile(candidate_features: torch.Tensor, id_features: torch.Tensor,
                        percentile: float = 0.95) -> torch.Tensor:
    """Per candidate, the ``percentile`` quantile of its cosines to the K ID class embeddings.

    ``q_i = Q_p({cos(v_i, e_k)}_{k=1..K})`` with linear interpolation between order statistics (the
    definition of ``torch.quantile``'s default): with ``h = p (K - 1)``, ``q = s_[h] + (h - [h]) (s_[h]+1 -
    s_[h])`` over the ascending cosines ``s``. Computed in blocks of candidates with ``torch.topk``
    (only the two order statistics needed), so any number of candidates fits in memory. Cosines in
    float64, so that the ranking of candidates does not depend on the block shape or the CPU's kernels.

    Args:
        candidate_features: [M, D] L2-normalised candidate-label text features.
        id_features: [K, D] L2-normalised ID class text features.
        percentile: p in [0, 1]; NegLabel's reference uses 0.95.

    Returns:
        [M] float64 quantiles; a low value means the candidate is far from every ID class.
    """
    if not 0.0 <= percentile <= 1.0:
        raise OodbenchError(f"NegLabel's percentile must lie in [0, 1]; got {percentile}.")
    _check_dims(candidate_features, id_features, "candidate", "ID")
    m, k = candidate_features.shape[0], id_features.shape[0]
    pos = percentile * (k - 1)
    lo = min(int(math.floor(pos)), k - 1)
    hi = min(lo + 1, k - 1)
    frac = pos - lo
    out = torch.empty(m, dtype=torch.float64)
    rows = block_rows(k)
    from_top = lo >= k // 2  # fetch the fewer order statistics: from the top or from the bottom
    for start in range(0, m, rows):
        sims = similarities(candidate_features[start:start + rows], id_features)
        if from_top:  # descending values; s_[j] sits at position k - 1 - j
            top = torch.topk(sims, k - lo, dim=1, largest=True, sorted=True).values
            v_lo, v_hi = top[:, k - 1 - lo], top[:, k - 1 - hi]
        else:
            bottom = torch.topk(sims, hi + 1, dim=1, largest=False, sorted=True).values
            v_lo, v_hi = bottom[:, lo], bottom[:, hi]
        out[start:start + rows] = (v_lo + frac * (v_hi - v_lo)).cpu()
    return out


def mine_negatives(candidate_features: torch.Tensor, id_features: torch.Tensor,
                   is_adjective: torch.Tensor | None = None, percentile: float = 0.95, eta: float = 0.15,
                   num_negatives: int | None = None) -> torch.Tensor:
    """NegMining: indices of the candidates farthest from the ID classes, nouns and adjectives apart.

    Each candidate gets ``q_i``, the ``percentile`` quantile (linear interpolation) of its cosines to the
    ID class embeddings (:func:`similarity_quantile`); the paper's "eta-percentile distance" with
    distance = -cosine is the same ranking. Nouns and adjectives are ranked separately by ascending
    ``q`` (least ID-like first; ties by index) and each part keeps ``floor(eta * its size)``; with
    ``num_negatives`` given, that many are kept in total instead, split between nouns and adjectives
    in proportion to their sizes (nearest integer).

    About M: the paper says M = 10,000 negatives for ImageNet-1K; the reference code's rule, eta = 0.15
    of each part of its 70,000-word corpus, actually keeps 10,499 (0.15 x 70,000 - 1, from the two
    floors). Here the default is the code's rule; pass ``num_negatives=10000`` for the paper's number.

    Args:
        candidate_features: [M, D] L2-normalised candidate text features.
        id_features: [K, D] L2-normalised ID class text features.
        is_adjective: [M] bool, True for adjectives; ``None`` = all nouns.
        percentile: quantile level p (reference: 0.95).
        eta: fraction of each part to keep (reference: 0.15).
        num_negatives: total to keep instead of the eta rule (``None`` = eta rule).

    Returns:
        [n] int64 indices into the candidates: the selected nouns by ascending q, then the selected
        adjectives by ascending q (the reference's order, which grouping relies on).
    """
    m = candidate_features.shape[0]
    if is_adjective is None:
        is_adjective = torch.zeros(m, dtype=torch.bool)
    is_adjective = torch.as_tensor(is_adjective, dtype=torch.bool).cpu()
    if is_adjective.shape != (m,):
        raise ValueError(f"is_adjective has shape {tuple(is_adjective.shape)}, expected ({m},)")
    if not 0.0 < eta <= 1.0:
        raise OodbenchError(f"NegLabel's eta (the fraction of candidates kept) must lie in (0, 1]; "
                            f"got {eta}.")
    q = similarity_quantile(candidate_features, id_features, percentile)
    nouns = torch.nonzero(~is_adjective).flatten()
    adjs = torch.nonzero(is_adjective).flatten()
    n_noun, n_adj = _split_counts(len(nouns), len(adjs), eta, num_negatives)
    parts = []
    for members, keep in ((nouns, n_noun), (adjs, n_adj)):
        order = torch.argsort(q[members], stable=True)
        parts.append(members[order[:keep]])
    return torch.cat(parts).to(torch.int64)


def _split_counts(n_noun: int, n_adj: int, eta: float, num_negatives: int | None) -> tuple[int, int]:
    if num_negatives is None:
        # floor(eta * n); the tiny epsilon keeps e.g. 0.29 * 100 = 28.999999999999996 at 29
        return (int(math.floor(eta * n_noun + 1e-9)), int(math.floor(eta * n_adj + 1e-9)))
    total = n_noun + n_adj
    if not 0 < num_negatives <= total:
        raise OodbenchError(
            f"NegLabel's num_negatives={num_negatives} must be between 1 and the number of candidate "
            f"words ({total}). Lower it, or leave it unset to keep eta of the candidates.")
    keep_noun = (2 * num_negatives * n_noun + total) // (2 * total)  # round half up
    keep_noun = min(max(keep_noun, num_negatives - n_adj), n_noun)
    return keep_noun, num_negatives - keep_noun


def neglabel_log_masses(image_features: torch.Tensor, id_text_features: torch.Tensor,
                        neg_text_features: torch.Tensor, temperature: float = 0.01, groups: int = 1,
                        seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log S, log(1 - S))`` of the NegLabel score S, both float64 [N], without rounding S to 0 or 1.

    See :func:`neglabel_score` for S. Per group g the log-odds ``l_g = LSE_i(cos(x, e_i) / tau) -
    LSE_{j in G_g}(cos(x, n_j) / tau)`` give ``log S_g = log sigmoid(l_g)`` and ``log(1 - S_g) = log
    sigmoid(-l_g)``; averages over groups are taken with logsumexp, so both ends stay exact. The cosines
    are float64 products too, so the result does not depend on how images are blocked (up to 1e-16).
    """
    if temperature <= 0:
        raise OodbenchError(f"NegLabel's temperature must be positive; got {temperature}.")
    if groups < 1:
        raise OodbenchError(f"NegLabel's groups must be at least 1; got {groups}.")
    _check_dims(image_features, id_text_features, "image", "ID")
    _check_dims(image_features, neg_text_features, "image", "negative")
    m = neg_text_features.shape[0]
    if m < groups:
        raise OodbenchError(
            f"NegLabel has {m} negative label(s) but groups={groups}; every group needs at least one. "
            "Lower groups (--param neglabel.groups=N) or use a larger lexicon.")
    device = image_features.device
    # drop the last M mod groups negatives (the least negative adjectives), permute the rest (one group:
    # no permutation, the sum does not depend on the order), arranged group after group
    order = group_indices(m, groups, permute=groups > 1, seed=seed)
    negs = neg_text_features[order.reshape(-1).to(neg_text_features.device)]
    ids = id_text_features.to(device, torch.float64)
    negs = negs.to(device, torch.float64)
    size = negs.shape[0] // groups
    log_g = math.log(groups)
    rows = block_rows(negs.shape[0])
    log_s, log_o = [], []
    for start in range(0, image_features.shape[0], rows):
        x = image_features[start:start + rows]
        neg_logits = similarities(x, negs) / temperature
        l = grouped_log_odds(similarities(x, ids) / temperature, neg_logits.view(x.shape[0], groups, size))
        log_s.append((torch.logsumexp(F.logsigmoid(l), dim=1) - log_g).cpu())
        log_o.append((torch.logsumexp(F.logsigmoid(-l), dim=1) - log_g).cpu())
    if not log_s:
        empty = torch.empty(0, dtype=torch.float64)
        return empty, empty.clone()
    return torch.cat(log_s), torch.cat(log_o)


def neglabel_score(image_features: torch.Tensor, id_text_features: torch.Tensor,
                   neg_text_features: torch.Tensor, temperature: float = 0.01, groups: int = 1,
                   seed: int = 0) -> torch.Tensor:
    """NegLabel's score: the softmax mass on the ID labels over [ID labels + negative labels].

    ``S(x) = sum_i exp(cos(x, e_i) / tau) / (sum_i exp(cos(x, e_i) / tau) + sum_j exp(cos(x, n_j) / tau))``
    with e_i the K ID label embeddings, n_j the negative label embeddings and tau the temperature
    (reference: 0.01, i.e. 100 x cosine). Higher = more ID; S lies in (0, 1). The ID list is used as
    given (a class listed twice counts twice, as in the reference).

    Grouping (reference: 100 groups): the last ``M mod groups`` negatives are dropped, the rest are
    permuted with ``torch.randperm`` from a CPU generator seeded with ``seed`` (so the result does not
    depend on the device), cut into ``groups`` contiguous groups, S is computed per group (ID labels +
    that group's negatives) and averaged. ``groups=1`` is the plain formula over all negatives; the
    reference's own ``ngroup == 1`` path instead sums raw ID logits, a bug not reproduced here.

    Computed in float64 log space (:func:`neglabel_log_masses`), batched over images. For ranking use
    :func:`neglabel_log_odds`: S itself rounds to exactly 1.0 once the negative mass falls below 1e-16.

    Args:
        image_features: [N, D] L2-normalised image features.
        id_text_features: [K, D] L2-normalised ID label text features.
        neg_text_features: [M, D] L2-normalised negative label text features, in mining order.
        temperature: tau > 0.
        groups: number of groups G, 1 <= G <= M.
        seed: seed of the group permutation.

    Returns:
        [N] float64 scores S in [0, 1].
    """
    log_s, _ = neglabel_log_masses(image_features, id_text_features, neg_text_features, temperature,
                                   groups, seed)
    return log_s.exp()


def neglabel_log_odds(image_features: torch.Tensor, id_text_features: torch.Tensor,
                      neg_text_features: torch.Tensor, temperature: float = 0.01, groups: int = 1,
                      seed: int = 0) -> torch.Tensor:
    """``log(S / (1 - S))`` of :func:`neglabel_score`'s S: same order, same metrics, no saturation.

    Strictly increasing in S, so AUROC, FPR95 and AUPR are those of S; unlike S it separates images
    whose S would round to 1.0 (or 0.0). Float64 [N], higher = more ID.
    """
    log_s, log_o = neglabel_log_masses(image_features, id_text_features, neg_text_features, temperature,
                                       groups, seed)
    return log_s - log_o


def _check_dims(a: torch.Tensor, b: torch.Tensor, what_a: str, what_b: str) -> None:
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"{what_a} features {tuple(a.shape)} and {what_b} features {tuple(b.shape)} must be "
                         "2-D with the same feature dimension")
    if b.shape[0] == 0:
        raise ValueError(f"no {what_b} features")


# ----------------------------------------------------------------------------------------- plumbing
class GroupedNegativesScoring:
    """The scoring NegLabel and CSP share, once they have fitted ``id_features`` and ``neg_features``:
    :func:`neglabel_log_odds` (``output="log-odds"``) or :func:`neglabel_score` (``"mass"``) with the
    method's ``temperature``, ``groups`` and ``seed``, and the zero-shot argmax over the ID labels (in
    float64, so predictions do not depend on the CPU's float32 kernels)."""

    id_features: torch.Tensor
    neg_features: torch.Tensor
    output: str
    temperature: float
    groups: int
    seed: int

    def _features(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The fitted text features on ``device`` (``.to`` is free when they are there already)."""
        if not hasattr(self, "neg_features"):
            raise RuntimeError(f"{type(self).__name__}.score called before fit")
        return self.id_features.to(device), self.neg_features.to(device)

    def score(self, image_features: torch.Tensor) -> torch.Tensor:
        ids, negs = self._features(image_features.device)
        fn = neglabel_log_odds if self.output == "log-odds" else neglabel_score
        return fn(image_features, ids, negs, self.temperature, self.groups, self.seed)

    def predict_classes(self, image_features: torch.Tensor) -> torch.Tensor:
        ids, _ = self._features(image_features.device)
        return similarities(image_features, ids).argmax(dim=-1)

    def negative_groups(self, count: int) -> np.ndarray:
        """The group (0-based) each of ``count`` negatives, in mining order, is scored in; -1 for the last
        ``count mod groups``, which the grouping drops."""
        group = np.full(count, -1, dtype=np.int64)
        for g, members in enumerate(group_indices(count, self.groups, permute=self.groups > 1, seed=self.seed)):
            group[members.numpy()] = g
        return group


@dataclass
class NegLabel(GroupedNegativesScoring, Scorer):
    """NegLabel with the reference defaults (see the module docstring)."""

    info = MethodInfo(
        paper="Jiang et al., Negative Label Guided OOD Detection with Pretrained Vision-Language Models, "
              "ICLR 2024",
        summary="ID share of softmax(cos / 0.01) over [ID labels + mined negative labels], "
                "mean over 100 groups",
        url="https://github.com/tmlr-group/NegLabel",
    )
    percentile: float = param(0.95, ge=0, le=1)
    eta: float = param(0.15, gt=0, le=1)
    num_negatives: int | None = param(None, ge=1)
    groups: int = param(100, ge=1)
    temperature: float = param(0.01, gt=0)
    seed: int = param(0)
    noun_template: str = param("the nice {}", template=True)
    adj_template: str = param("This is a {} photo", template=True)
    output: str = "log-odds"
    remove_id_names: bool = False
    corpus: Path | None = None
    negatives: Path | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self._fitted: dict[str, Any] = {}

    def check(self) -> None:
        if self.output not in OUTPUTS:
            raise OodbenchError(f"NegLabel's output must be one of {', '.join(OUTPUTS)}; "
                                f"got {self.output!r}.")

    def fit(self, ctx: FitContext) -> None:
        templates = ctx.templates_or([self.noun_template])
        id_features = ctx.backbone.class_text_features(ctx.class_names, templates)
        if self.negatives is not None:
            facts = self._released_negatives(ctx)
        else:
            facts = self._mine(ctx, templates, id_features)
        if len(self.negative_words) < self.groups:
            raise OodbenchError(
                f"NegLabel has {len(self.negative_words)} negative labels but groups={self.groups}; every "
                "group needs at least one. Lower groups (--param neglabel.groups=N), raise eta or use a "
                "larger lexicon.")
        self.id_features = id_features
        # the quantile of each negative's cosines to the ID classes: what ranked it when mined (recomputed
        # for the negatives only: cheap); for a negatives file, what it would have been ranked by
        self.negative_quantiles = similarity_quantile(self.neg_features, id_features, self.percentile).numpy()
        n_adj = sum(self._negative_is_adj)
        n = len(self.negative_words)
        self._fitted = {
            "negatives": n,
            "noun_negatives": n - n_adj,
            "adj_negatives": n_adj,
            "negatives_head": self.negative_words[:20],
            "negatives_sha256": sha256_lines([f"{w}\t{'adj' if a else 'noun'}"
                                              for w, a in zip(self.negative_words, self._negative_is_adj)]),
            "negatives_dropped_for_grouping": n % self.groups,
            **facts,
            "id_templates": templates,
        }
        log.info("NegLabel: %d negative labels (%d nouns, %d adjectives); first: %s", n, n - n_adj, n_adj,
                 ", ".join(self.negative_words[:5]))

    def _released_negatives(self, ctx: FitContext) -> dict[str, Any]:
        """``negatives=FILE``: the file's prompts, verbatim and in order, as the negative labels."""
        from oodbench.lexicon.wordfile import read_negative_prompts

        prompts, is_adj = read_negative_prompts(self.negatives)
        self.neg_features = ctx.backbone.encode_texts(prompts, desc="encoding NegLabel negatives").contiguous()
        self.negative_words, self._negative_is_adj = prompts, is_adj
        return {"negatives_file": Path(self.negatives).name,
                "negatives_file_sha256": sha256_file(Path(self.negatives).expanduser(), ctx.cache_dir)}

    def _mine(self, ctx: FitContext, templates: list[str], id_features: torch.Tensor) -> dict[str, Any]:
        """NegMining over the lexicon (or ``corpus``): the negative labels and facts for the provenance."""
        if self.corpus is not None:
            from oodbench.lexicon.wordfile import read_word_folder

            lexicon = read_word_folder(self.corpus)
        else:
            lexicon = ctx.load_lexicon()
        id_names = {normalise_name(n) for n in ctx.class_names}
        equal = [normalise_name(w) in id_names for w in lexicon.words]
        keep = [i for i, e in enumerate(equal) if not (e and self.remove_id_names)]
        words = [lexicon.words[i] for i in keep]
        is_adj = [lexicon.pos[i] == "adj" for i in keep]
        if not words:
            raise OodbenchError(
                f"NegLabel has no candidate words: the lexicon ({lexicon.source}) holds only ID class "
                "names. Use a larger lexicon or pass --words FILE.")
        prompts = [fill_template(self.adj_template if a else self.noun_template, w) for w, a in zip(words, is_adj)]

        memo: dict[str, torch.Tensor] = {}

        def candidates() -> torch.Tensor:
            if "all" not in memo:
                memo["all"] = ctx.backbone.encode_texts(prompts, desc="encoding NegLabel candidates")
            return memo["all"]

        def mine() -> dict[str, np.ndarray]:
            idx = mine_negatives(candidates(), id_features, torch.tensor(is_adj), self.percentile,
                                 self.eta, self.num_negatives)
            return {"indices": idx.numpy()}

        key = {
            "backbone": ctx.backbone.identity,
            "class_names_sha256": sha256_lines(list(ctx.class_names)),
            "id_templates": templates,
            "lexicon_sha256": lexicon.sha256,
            "remove_id_names": self.remove_id_names,
            "noun_template": self.noun_template,
            "adj_template": self.adj_template,
            "percentile": self.percentile,
            "eta": self.eta,
            "num_negatives": self.num_negatives,
        }
        arrays = ctx.cached("neglabel-mined", key, mine,
                            meta={"lexicon": lexicon.source, "candidates": len(words)})
        idx = torch.from_numpy(np.array(arrays["indices"], dtype=np.int64))
        if len(idx) == 0:
            raise OodbenchError(
                f"NegLabel mined no negative labels from {len(words)} candidate words (eta={self.eta}). "
                "Raise eta, set num_negatives, or use a larger lexicon.")
        if "all" in memo or ctx.backbone.store is not None:  # all features at hand, or cached on disk
            neg_features = candidates()[idx]
        else:
            neg_features = ctx.backbone.encode_texts([prompts[i] for i in idx.tolist()],
                                                     desc="encoding NegLabel negatives")
        self.neg_features = neg_features.contiguous()
        self.negative_words = [words[i] for i in idx.tolist()]
        self._negative_is_adj = [is_adj[i] for i in idx.tolist()]
        return {
            "candidates": len(words),
            "candidates_equal_to_id_names": sum(equal),
            "id_names_removed": self.remove_id_names,
            "lexicon": lexicon.source,
            "lexicon_words": len(lexicon),
            "lexicon_sha256": lexicon.sha256,
        }

    def provenance(self) -> dict[str, Any]:
        return dict(self._fitted)

    def exports(self, image_features: Mapping[str, torch.Tensor]) -> dict[str, pd.DataFrame]:
        """``negatives``: every negative label in mining order (nouns, then adjectives, each by ascending
        quantile; a ``negatives`` file's own order): ``word`` (a file's prompt), ``pos``, ``quantile``
        (the percentile-quantile of its cosines to the ID classes, which ranked it; lower = farther from
        every ID class), ``rank`` within its part of speech (1 = first) and ``group``, the group it is scored
        in (-1: dropped, one of the last ``M mod groups``)."""
        if not hasattr(self, "negative_words"):
            raise RuntimeError("NegLabel.exports called before fit")
        table = pd.DataFrame({"word": self.negative_words,
                              "pos": ["adj" if a else "noun" for a in self._negative_is_adj],
                              "quantile": self.negative_quantiles})
        table["rank"] = table.groupby("pos", sort=False).cumcount() + 1
        table["group"] = self.negative_groups(len(table))
        return {"negatives": table}
