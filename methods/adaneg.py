"""AdaNeg: adaptive negative proxies from a memory of test images (Zhang & Zhang, NeurIPS 2024).

A test-time method (:class:`oodbench.scorer.StreamScorer`): it sees the ID and one OOD set mixed in one
stream, in batches, and keeps a memory of the images it has seen. Higher = more ID.

With ``l = s v.[t_1..t_C ; n_1..n_M]`` (s = 100; C ID labels, M negative labels) and NegLabel's grouped
score ``G(l) = 1/n_g sum_g sum_c e^{l_c} / (sum_c e^{l_c} + sum_{j in g} e^{l_j})`` (5 groups), per batch:
the vanilla score ``S_nl = G(s v.t)``; confident images enter the memory row of their top ID label
(``S_nl > 0.75``) or of their top negative label (``S_nl < 0.25``), a full row replacing its
highest-entropy image; each label's proxy is ``p_k = norm(t_k + sum of its cached images)``
(task-adaptive; sample-adaptive: weights ``exp(-beta (1 - v.m))``); the score is
``S = G(s v.p) + lambda S_nl``. The memory is written before the batch is scored. Details:
:func:`adaneg_stream_scores`.

Paper: "AdaNeg: Adaptive Negative Proxy Guided OOD Detection with Vision-Language Models", arXiv
2410.20149. Official code: ``YBZh/OpenOOD-VLM`` @ 804f331, postprocessor ``ttapromptnoadagap``
(``TTAPromptPostprocessor_noadagap`` in ``openood/postprocessors/ttaprompt_postprocessor.py``), run by
``scripts/ood/adaneg/imagenet.sh``: memory length 10, gamma 0.5, gap 0.5, lambda 0.1, beta 5.5, 5 groups,
random permutation, task-adaptive proxies (its headline run), batch 256, the OpenOOD-VLM bank of 10,000
negatives (:mod:`oodbench.methods.openood_bank`). These are the defaults here. Its published FPR95 is
OOD-positive (OpenOOD's rule: ``--fpr-convention openood``).

Where the official code departs from the method as described, the default is the method and the official
behaviour is a parameter (``official=true`` sets the first two):

- ``image_slots``: the official write pointer starts at 1 and a row is full at ``memory_length``, so only
  9 of its 10 image slots are used (default: all 10; official: ``memory_length - 1``).
- ``integer_beta``: the official code uses ``int(beta)``, 5 for 5.5 (sample-adaptive proxies only).
- ``fp16_entropy`` (not implied by ``official``): the official runs are fp16, where ``1e-8`` rounds to 0
  and underflowing probabilities give ``0 * log 0 = NaN`` entropies that never compare lower, so full rows
  freeze with their first images. True emulates that; on float32 inputs the official code has finite
  entropies.
- The official code reseeds the global RNG (``torch.manual_seed(0)``) every batch for the group
  permutation; here the same permutation comes from a private generator (``permutation_seed``).
- Not emulated: fp16 logits, softmaxes and scores of the official fp16 runs (ties near 1).
- Unverified against the paper's text (not readable here), kept as the code does them: lambda on
  ``S_nl``, memory written before scoring, the prediction mix.

Checked against the official postprocessor run on the same float32 features (ImageNet-sized synthetic
worlds: C = 1000, M = 10,000, D = 512, batches 64 and 256, hundreds of labels with full rows; task- and
sample-adaptive): scores within 1.4e-6 to 3.3e-6 with ``official=true`` (our float64 run is within 1e-6 of
theirs: the rest is their float32 noise), no differing ID prediction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from oodbench.errors import OodbenchError
from oodbench.methods.common import check_batch_size, check_features, group_indices, grouped_id_mass
from oodbench.methods.openood_bank import OpenOodBankParams
from oodbench.params import param
from oodbench.scorer import FitContext, MethodInfo, StreamScorer, StreamScores

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------- pure math
ENTROPY_EPS = 1e-8  # the official entropy's guard inside the log, -sum p log(p + eps)


def adaneg_stream_scores(image_features: torch.Tensor, id_text_features: torch.Tensor,
                         negative_text_features: torch.Tensor, *, batch_size: int = 256,
                         official: bool = False, memory_length: int = 10, threshold: float = 0.5,
                         gap: float = 0.5, lam: float = 0.1, beta: float = 5.5, groups: int = 5,
                         permute: bool = True, permutation_seed: int = 0, sample_adaptive: bool = False,
                         logit_scale: float = 100.0, image_slots: int | None = None,
                         integer_beta: bool | None = None, fp16_entropy: bool = False,
                         dtype: torch.dtype = torch.float32) -> StreamScores:
    """AdaNeg scores of a stream of images, in stream order (higher = more ID).

    State: a memory with one row per label k (C ID labels, then M negative labels); row k holds the text
    feature t_k and up to ``image_slots`` cached image features, each with an entropy. It starts empty
    (text only) at every call: call once per ID+OOD stream.

    Per batch of ``batch_size`` images (the memory is written *before* the batch is scored):

    1. Vanilla score ``S_nl(v) = G(s v.t)`` with NegLabel's grouped mass
       ``G(l) = 1/n_g sum_g sum_c e^{l_c} / (sum_c e^{l_c} + sum_{j in g} e^{l_j})`` over ``groups`` groups
       of negatives (seeded CPU permutation, :func:`group_indices`), s = ``logit_scale``.
    2. Memory write. An image with ``S_nl > threshold + gap (1 - threshold)`` (0.75) goes to its top ID
       label ``argmax_c v.t_c`` with entropy ``H = -sum_c p_c log(p_c + 1e-8)`` of ``softmax(s v.t_ID)``;
       one with ``S_nl < threshold - gap threshold`` (0.25) goes to its top negative label with the entropy
       over the M negatives. Per label, in stream order: a free slot takes it; a full row replaces its
       highest-entropy image when H is lower than some stored entropy (ties: the last slot), else skips.
    3. Proxies. Task-adaptive (default): ``p_k = norm(t_k + sum of cached images)``. Sample-adaptive
       (``sample_adaptive=True``): ``p_k(v) = norm(sum_j w_kj m_kj)``, ``w_kj = exp(-beta (1 - v.m_kj))``
       over the text and the cached images m_kj.
    4. ``S_ada = G(s v.p)`` with the same groups; score ``S = S_ada + lam S_nl``.
    5. ID prediction: ``argmax_{c<=C} [softmax(s v.t)_c + lam softmax(s v.p)_c]`` (softmaxes over all C+M).

    Defaults are those of ``scripts/ood/adaneg/imagenet.sh`` (L = 10, gamma 0.5, gap 0.5, lambda 0.1,
    beta 5.5, 5 groups, random permutation, batch 256; 10,000 negatives and 100 x cosine logits), with the
    paper's reading of them. Where the official code departs, ``official=True`` (or the parameter named)
    gives the official behaviour:

    - ``image_slots`` (default ``memory_length``; official ``memory_length - 1``): the official write
      pointer starts at 1 and counts the row as full at ``memory_length``, so only 9 of its 10 image
      slots are ever used (the last one stays zero, which changes nothing else).
    - ``integer_beta`` (default False; official True): the official code uses ``int(beta)``, 5 for 5.5.
      Only matters with ``sample_adaptive``.
    - ``fp16_entropy`` (default False, *not* implied by ``official``): the official runs are fp16, where
      ``1e-8`` rounds to 0 and every probability that underflows gives ``0 * log 0 = NaN``; a NaN entropy
      never compares lower, so in practice full rows are frozen with their first images. True emulates
      that (softmax rounded to fp16, NaN when any probability is 0, entropy rounded to fp16; NaN counts as
      the largest entropy when choosing the slot to replace). On float32 inputs the official code has
      finite entropies, so leave it False to match it there.

    The official code's per-batch ``torch.manual_seed(0); torch.randperm`` is reproduced with a private
    generator (``permutation_seed``); the global RNG is not touched.

    Args:
        image_features: [N, D] L2-normalised image features in stream order.
        id_text_features: [C, D] L2-normalised ID label features.
        negative_text_features: [M, D] L2-normalised negative label features (OpenOOD-VLM: 10,000).
        dtype: dtype of the similarity matmuls and the memory (float32 as the official code on float32
            inputs); score reductions run in float64.

    Returns:
        :class:`StreamScores`: float64 scores [N] and int64 ID predictions [N].
    """
    check_batch_size(batch_size)
    check_features("id_text_features", id_text_features)
    dim = id_text_features.shape[1]
    check_features("image_features", image_features, dim)
    check_features("negative_text_features", negative_text_features, dim)
    if image_slots is None:
        image_slots = memory_length - 1 if official else memory_length
    if integer_beta is None:
        integer_beta = official
    if image_slots < 0:
        raise ValueError(f"image_slots must be >= 0; got {image_slots}")
    beta = float(int(beta)) if integer_beta else float(beta)

    device = image_features.device
    text = torch.cat([id_text_features, negative_text_features]).to(device, dtype)
    n_id, n_labels = id_text_features.shape[0], text.shape[0]
    group_idx = group_indices(n_labels - n_id, groups, permute=permute, seed=permutation_seed).to(device)
    memory = _Memory(text, image_slots)
    id_threshold = threshold + gap * (1 - threshold)
    ood_threshold = threshold - gap * threshold

    scores, preds = [], []
    for start in range(0, image_features.shape[0], batch_size):
        v = image_features[start:start + batch_size].to(device, dtype)
        logits = (logit_scale * v) @ text.T  # [B, C+M], the official's (s v) @ t order
        s_nl = grouped_id_mass(logits[:, :n_id], logits[:, n_id:], group_idx)

        to_id = torch.nonzero(s_nl > id_threshold).flatten()
        to_neg = torch.nonzero(s_nl < ood_threshold).flatten()
        id_labels = logits[to_id, :n_id].argmax(dim=1)
        neg_labels = n_id + logits[to_neg, n_id:].argmax(dim=1)
        entropy = torch.cat([_entropy(logits[to_id, :n_id], fp16_entropy),
                             _entropy(logits[to_neg, n_id:], fp16_entropy)])
        # ID and negative labels are disjoint, so one pass in batch order per label is the official order
        order = torch.argsort(torch.cat([to_id, to_neg]), stable=True)
        memory.insert(torch.cat([id_labels, neg_labels])[order],
                      v[torch.cat([to_id, to_neg])[order]], entropy[order])

        if sample_adaptive:
            ada = memory.sample_adaptive_logits(v, logit_scale, beta)
        else:
            ada = (logit_scale * v) @ memory.proxies.T
        s_ada = grouped_id_mass(ada[:, :n_id], ada[:, n_id:], group_idx)
        scores.append(s_ada + lam * s_nl)
        mix = torch.softmax(logits, dim=1)[:, :n_id] + lam * torch.softmax(ada, dim=1)[:, :n_id]
        preds.append(mix.argmax(dim=1))
    if not scores:
        return StreamScores(torch.empty(0, dtype=torch.float64), torch.empty(0, dtype=torch.int64))
    return StreamScores(torch.cat(scores), torch.cat(preds))


def _entropy(logits: torch.Tensor, fp16: bool) -> torch.Tensor:
    """``-sum p log(p + 1e-8)`` of ``softmax(logits)`` per row, in the logits' dtype (or fp16 emulation)."""
    p = torch.softmax(logits, dim=1)
    if not fp16:
        return -(p * torch.log(p + ENTROPY_EPS)).sum(dim=1)
    p = p.half().float()  # fp16 probabilities; 1e-8 rounds to 0 in fp16, so p == 0 gives 0 * -inf = NaN
    return (-(p * torch.log(p)).sum(dim=1)).half().to(logits.dtype)


class _Memory:
    """Per-label memory: slot 0 the text feature, slots 1..I cached images with their entropies."""

    def __init__(self, text: torch.Tensor, image_slots: int):
        n, dim = text.shape
        self.slots = image_slots
        self.features = torch.zeros(n, 1 + image_slots, dim, dtype=text.dtype, device=text.device)
        self.features[:, 0] = text
        self.entropy = torch.zeros(n, 1 + image_slots, dtype=text.dtype, device=text.device)
        self.count = torch.zeros(n, dtype=torch.int64, device=text.device)
        self.proxies = _normalize(text)
        self.gram = None  # [labels, 1+I, 1+I] Gram matrices of the slots, built on first sample-adaptive use

    def insert(self, labels: torch.Tensor, feats: torch.Tensor, entropy: torch.Tensor) -> None:
        """Sequential per label, parallel across labels: step r handles each label's r-th candidate."""
        if labels.numel() == 0:
            return
        order = torch.argsort(labels, stable=True)
        sorted_labels = labels[order]
        first = torch.ones_like(sorted_labels, dtype=torch.bool)
        first[1:] = sorted_labels[1:] != sorted_labels[:-1]
        starts = torch.cummax(torch.where(first, torch.arange(len(labels), device=labels.device), 0), 0)[0]
        rank = torch.empty_like(labels)
        rank[order] = torch.arange(len(labels), device=labels.device) - starts
        for r in range(int(rank.max()) + 1):
            pick = torch.nonzero(rank == r).flatten()
            k, f, h = labels[pick], feats[pick], entropy[pick]
            filled = self.count[k]
            free = filled < self.slots
            if free.any():
                kf, slot = k[free], 1 + filled[free]
                self.features[kf, slot] = f[free]
                self.entropy[kf, slot] = h[free]
                self.count[kf] += 1
            full = ~free
            if full.any() and self.slots > 0:
                kk, hh, ff = k[full], h[full], f[full]
                stored = self.entropy[kk, 1:]
                replace = (hh[:, None] < stored).any(dim=1)  # False for a NaN H and vs NaN entries
                key = torch.where(torch.isnan(stored), torch.inf, stored)
                last_max = self.slots - 1 - torch.argmax(key.flip(1), dim=1)  # NaN counts as largest
                kk, slot = kk[replace], 1 + last_max[replace]
                self.features[kk, slot] = ff[replace]
                self.entropy[kk, slot] = hh[replace]
        touched = torch.unique(labels)
        self.proxies[touched] = _normalize(self.features[touched].sum(dim=1))
        if self.gram is not None:
            self._update_gram(touched)

    def _update_gram(self, rows: torch.Tensor) -> None:
        m = self.features[rows]
        self.gram[rows] = m @ m.transpose(1, 2)

    def sample_adaptive_logits(self, v: torch.Tensor, scale: float, beta: float,
                               block: int = 2048) -> torch.Tensor:
        """``s v.p_k(v)`` with ``p_k(v) = norm(sum_j w_kj m_kj)``, [B, labels].

        ``v.norm(sum_j w_j m_j) = sum_j w_j (v.m_j) / sqrt(w^T Gram_k w)``, so no [B, labels, D] tensor is
        built, and only filled slots are multiplied with v (slots fill 1, 2, ... and are replaced in
        place, so a label's images sit in slots 1..count). An empty slot is a zero vector: it adds nothing
        to the sum. Labels with no image keep ``p_k = norm(t_k)``, the task-adaptive proxy.
        """
        if self.gram is None:
            self.gram = torch.zeros(*self.entropy.shape, self.slots + 1, dtype=self.features.dtype,
                                    device=self.features.device)
            self._update_gram(torch.arange(len(self.count), device=self.count.device))
        out = (scale * v) @ self.proxies.T
        active = torch.nonzero(self.count > 0).flatten()
        for part in active.split(block):
            counts = self.count[part]
            owner = torch.repeat_interleave(torch.arange(len(part), device=part.device), counts)
            first = torch.cumsum(counts, 0) - counts
            slot = 1 + torch.arange(len(owner), device=part.device) - first[owner]
            sim_text = v @ self.features[part, 0].T  # [B, A]
            sim_image = v @ self.features[part[owner], slot].T  # [B, F], filled slots only
            w_text = torch.exp(-beta * (1 - sim_text))
            w_image = torch.exp(-beta * (1 - sim_image))
            num = (w_text * sim_text).index_add_(1, owner, w_image * sim_image)
            w = torch.zeros(v.shape[0], len(part), self.slots + 1, dtype=v.dtype, device=v.device)
            w[:, :, 0] = w_text
            w[:, owner, slot] = w_image  # empty slots keep w = 0 (their vector and Gram rows are 0 anyway)
            quad = torch.einsum("bas,ast,bat->ba", w, self.gram[part], w)
            out[:, part] = scale * num / torch.sqrt(quad)
        return out


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


# ----------------------------------------------------------------------------------------- plumbing
@dataclass
class AdaNeg(StreamScorer, OpenOodBankParams):
    """AdaNeg with ``scripts/ood/adaneg/imagenet.sh``'s settings (see the module docstring)."""

    info = MethodInfo(
        paper="Zhang & Zhang, AdaNeg: Adaptive Negative Proxy Guided OOD Detection with Vision-Language "
              "Models, NeurIPS 2024",
        summary="test-time: NegLabel's grouped score over proxies built from a memory of confident test "
                "images, + 0.1 x the plain grouped score",
        url="https://github.com/YBZh/OpenOOD-VLM",
    )
    batch_size: int = param(256, ge=1)
    official: bool = False
    num_negatives: int = param(10_000, ge=1)
    memory_length: int = param(10, ge=1)
    threshold: float = param(0.5, ge=0, le=1)
    gap: float = param(0.5, ge=0, le=1)
    lam: float = param(0.1, ge=0)
    beta: float = param(5.5, ge=0)
    groups: int = param(5, ge=1)
    permute: bool = True
    permutation_seed: int = param(0)
    sample_adaptive: bool = False
    logit_scale: float = param(100.0, gt=0)
    image_slots: int | None = param(None, ge=0)
    integer_beta: bool | None = None
    fp16_entropy: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self._fitted: dict[str, Any] = {}

    def fit(self, ctx: FitContext) -> None:
        bank = self.build_bank(ctx, self.num_negatives, "AdaNeg")
        if bank.selected < self.groups:
            raise OodbenchError(
                f"AdaNeg has {bank.selected} negative labels but groups={self.groups}; every group needs at "
                "least one. Lower groups (-p adaneg.groups=N) or use a larger lexicon.")
        self.bank = bank
        self.id_features = bank.id_features
        self.negative_features = bank.negative_features.contiguous()
        self._fitted = {**bank.facts, "negatives_dropped_for_grouping": bank.selected % self.groups}
        log.info("AdaNeg: %d negative labels (%d adjectives, %d nouns)", bank.selected,
                 bank.facts["adj_negatives"], bank.facts["noun_negatives"])

    def score_stream(self, image_features: torch.Tensor, *, seed: int) -> StreamScores:
        """One stream; AdaNeg draws nothing at random (its group permutation is ``permutation_seed``'s)."""
        if not hasattr(self, "negative_features"):
            raise RuntimeError("AdaNeg.score_stream called before fit")
        return adaneg_stream_scores(
            image_features, self.id_features, self.negative_features, batch_size=self.batch_size,
            official=self.official, memory_length=self.memory_length, threshold=self.threshold, gap=self.gap,
            lam=self.lam, beta=self.beta, groups=self.groups, permute=self.permute,
            permutation_seed=self.permutation_seed, sample_adaptive=self.sample_adaptive,
            logit_scale=self.logit_scale, image_slots=self.image_slots, integer_beta=self.integer_beta,
            fp16_entropy=self.fp16_entropy)

    def provenance(self) -> dict[str, Any]:
        return dict(self._fitted)

    def exports(self, image_features: Mapping[str, torch.Tensor]) -> dict[str, pd.DataFrame]:
        """``negatives``: the negative labels in bank order (``word``, ``pos``, ``value``: the mining value,
        element int(0.95 C) of its ascending cosines to the ID prompts; ``rank`` within its part)."""
        if not hasattr(self, "bank"):
            raise RuntimeError("AdaNeg.exports called before fit")
        n = self.bank.selected
        table = pd.DataFrame({"word": self.bank.words[:n],
                              "pos": ["adj" if a else "noun" for a in self.bank.is_adj[:n]],
                              "value": self.bank.values[:n]})
        table["rank"] = table.groupby("pos", sort=False).cumcount() + 1
        return {"negatives": table}
