"""ZOC-lite: ZOC's scoring rule with retrieved, not generated, candidate labels.

**This is not ZOC.** ZOC (Esmaeilpour et al., AAAI 2022) trains a text decoder on COCO captions to
*generate* candidate "unseen" label words from each image's CLIP embedding, then scores the image by the
softmax mass on those candidates over [seen labels + candidates]. ZOC-lite keeps that scoring rule but
replaces the trained decoder with retrieval: each image's candidates are the k lexicon nouns whose
text embeddings are most similar to the image. Nothing is trained, so its numbers are not ZOC's.

Candidates that could be ID labels in disguise are removed from the vocabulary once, at fit time:
words equal to an ID class name (ZOC's own filter) and words whose text embedding has cosine above
``max_id_cosine`` with some ID class embedding (synonyms, plurals, near-hyponyms; ZOC has no such
filter, and without one an ID image retrieves its own class under another name).

Defaults: k = 10 candidates per image (ZOC's decoder emits up to ~315 raw word pieces, most of them
junk; the research notes suggest 10-50 for retrieval); logit scale 100 (ZOC: 100 x cosine); prompt
``"a photo of a {}"`` for ID names and candidates alike, MCM's prompt, so that ZOC-lite and MCM share the
same ID text features (ZOC's own prompt, ``"This is a photo of a {}"``, is one parameter away);
``max_id_cosine = 0.9``, see :class:`ZocLite`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from oodbench.errors import OodbenchError
from oodbench.methods.common import block_rows
from oodbench.params import param
from oodbench.prompts import fill_template, normalise_name
from oodbench.scorer import FitContext, MethodInfo, Scorer

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------- pure math
def id_leak_mask(vocab_text_features: torch.Tensor, id_text_features: torch.Tensor,
                 max_id_cosine: float = 0.9) -> torch.Tensor:
    """[V] bool, True = keep: the words whose cosine to every ID class embedding is <= ``max_id_cosine``.

    Args:
        vocab_text_features: [V, D] L2-normalised vocabulary text features.
        id_text_features: [K, D] L2-normalised ID class text features.
        max_id_cosine: a word is dropped when ``max_k cos(w, e_k) > max_id_cosine``; 1.0 keeps all.
    """
    ids = id_text_features.to(vocab_text_features.device, torch.float32)
    rows = block_rows(ids.shape[0])
    keep = [((vocab_text_features[s:s + rows].to(torch.float32) @ ids.T).amax(dim=1) <= max_id_cosine).cpu()
            for s in range(0, vocab_text_features.shape[0], rows)]
    return torch.cat(keep) if keep else torch.zeros(0, dtype=torch.bool)


def zoc_lite_score(image_features: torch.Tensor, id_text_features: torch.Tensor,
                   vocab_text_features: torch.Tensor, k: int = 10, scale: float = 100.0) -> torch.Tensor:
    """Log of the ID softmax mass over [ID labels + the image's k retrieved candidate labels].

    ``C(x)`` = the k vocabulary words with the largest ``cos(x, w)``; with logits ``z = scale * cos``,
    ``log S(x) = LSE_{i in ID} z_i - LSE_{j in ID + C(x)} z_j = log sigmoid(LSE_ID z - LSE_C(x) z)``.
    ZOC (Esmaeilpour et al., AAAI 2022) reports the candidates' mass ``1 - S(x)`` as its OOD score; this
    is the same ranking with the project's orientation, higher = more ID. Computed in float64 log
    space: ``log S`` stays distinct for confident ID images whose S rounds to 1.0, and for OOD images
    whose S underflows. Batched over images (blocks of rows), top-k with ``torch.topk``.

    Args:
        image_features: [N, D] L2-normalised image features.
        id_text_features: [K, D] L2-normalised ID label text features.
        vocab_text_features: [V, D] L2-normalised candidate vocabulary text features (already filtered).
        k: candidates per image (default 10); more than V means all V.
        scale: logit scale (ZOC: 100, i.e. temperature 0.01).

    Returns:
        [N] float64 log ID mass, <= 0.
    """
    if k < 1:
        raise OodbenchError(f"ZOC-lite's k (candidates per image) must be at least 1; got {k}.")
    if scale <= 0:
        raise OodbenchError(f"ZOC-lite's scale must be positive; got {scale}.")
    if vocab_text_features.shape[0] == 0:
        raise OodbenchError("ZOC-lite has an empty candidate vocabulary; use a larger lexicon.")
    device = image_features.device
    ids = id_text_features.to(device, torch.float32)
    vocab = vocab_text_features.to(device, torch.float32)
    k = min(k, vocab.shape[0])
    rows = block_rows(vocab.shape[0])
    out = []
    for start in range(0, image_features.shape[0], rows):
        x = image_features[start:start + rows].to(torch.float32)
        lse_id = torch.logsumexp(scale * (x @ ids.T).double(), dim=1)
        top = torch.topk(x @ vocab.T, k, dim=1, largest=True, sorted=False).values
        lse_cand = torch.logsumexp(scale * top.double(), dim=1)
        out.append(F.logsigmoid(lse_id - lse_cand).cpu())
    return torch.cat(out) if out else torch.empty(0, dtype=torch.float64)


# ----------------------------------------------------------------------------------------- plumbing
@dataclass
class ZocLite(Scorer):
    """ZOC's score with retrieved candidates (see the module docstring); not ZOC itself.

    ``max_id_cosine = 0.9``: text embeddings of prompts built from one template share a large common
    component, so even unrelated words have high cosines to each other, and a low threshold would strip
    much of the vocabulary near a 1000-class ID set; 0.9 is meant to catch only near-duplicates of a
    class name (synonyms, plurals, spelling variants). It is a judgement, not measured or tuned (no
    pretrained CLIP weights were at hand offline): the provenance records how many words it removed and
    the first of them, a warning is logged when it removes more than it keeps, and 1.0 turns it off.
    """

    info = MethodInfo(
        paper="Esmaeilpour et al., Zero-Shot Out-of-Distribution Detection Based on the Pre-trained Model "
              "CLIP, AAAI 2022 (retrieval variant, not the paper's decoder)",
        summary="log ID share of softmax(100 cos) over [ID labels + the image's top-k lexicon nouns]",
        url="https://github.com/sesmae/ZOC",
    )
    k: int = param(10, ge=1)
    scale: float = param(100.0, gt=0)
    template: str = param("a photo of a {}", template=True)
    max_id_cosine: float = param(0.9, ge=-1, le=1)
    adjectives: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self._fitted: dict[str, Any] = {}

    def fit(self, ctx: FitContext) -> None:
        templates = ctx.templates_or([self.template])
        id_features = ctx.backbone.class_text_features(ctx.class_names, templates)
        lexicon = ctx.load_lexicon()
        id_names = {normalise_name(n) for n in ctx.class_names}
        allowed = {"noun", "adj"} if self.adjectives else {"noun"}
        of_pos = [w for w, p in zip(lexicon.words, lexicon.pos) if p in allowed]
        words = [w for w in of_pos if normalise_name(w) not in id_names]
        if not words:
            raise OodbenchError(
                f"ZOC-lite has no candidate words: the lexicon ({lexicon.source}) holds no "
                f"{' or '.join(sorted(allowed))}s other than ID class names. Use a larger lexicon, pass "
                "--words FILE, or set --param zoc-lite.adjectives=true.")
        vocab = ctx.backbone.encode_texts([fill_template(self.template, w) for w in words],
                                          desc="encoding ZOC-lite vocabulary")
        keep = id_leak_mask(vocab, id_features, self.max_id_cosine)
        removed = [w for w, kept in zip(words, keep.tolist()) if not kept]
        words = [w for w, kept in zip(words, keep.tolist()) if kept]
        if not words:
            raise OodbenchError(
                f"ZOC-lite's filter removed every candidate word: all have cosine above max_id_cosine="
                f"{self.max_id_cosine} to some ID class. Raise it (--param zoc-lite.max_id_cosine=0.95).")
        if len(removed) > len(words):
            log.warning("ZOC-lite: max_id_cosine=%s removed %d of %d candidate words; consider raising it",
                        self.max_id_cosine, len(removed), len(removed) + len(words))
        self.id_features = id_features
        self.vocab_features = vocab[keep].contiguous()
        self.vocabulary = words
        self._fitted = {
            "vocabulary": len(words),
            "vocabulary_head": words[:20],
            "removed_equal_to_id_names": len(of_pos) - len(words) - len(removed),
            "removed_too_close_to_id": len(removed),
            "removed_too_close_examples": removed[:20],
            "lexicon": lexicon.source,
            "lexicon_words": len(lexicon),
            "lexicon_sha256": lexicon.sha256,
            "id_templates": templates,
        }
        log.info("ZOC-lite: %d candidate words (%d too close to an ID class removed)", len(words),
                 len(removed))

    def _features(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The fitted text features on ``device`` (``.to`` is free when they are there already)."""
        if not hasattr(self, "vocab_features"):
            raise RuntimeError("ZocLite.score called before fit")
        return self.id_features.to(device), self.vocab_features.to(device)

    def score(self, image_features: torch.Tensor) -> torch.Tensor:
        ids, vocab = self._features(image_features.device)
        return zoc_lite_score(image_features, ids, vocab, self.k, self.scale)

    def predict_classes(self, image_features: torch.Tensor) -> torch.Tensor:
        ids, _ = self._features(image_features.device)
        return (image_features.to(torch.float32) @ ids.T).argmax(dim=-1)

    def provenance(self) -> dict[str, Any]:
        return dict(self._fitted)
