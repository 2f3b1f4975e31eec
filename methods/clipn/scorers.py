"""The CLIPN scorers ``clipn-ctw`` and ``clipn-atd``: class heads from a trained "no" tower, then the
pure scores of :mod:`oodbench.methods.clipn.scores`.

``fit`` loads the checkpoint onto the run's backbone (strictly checked, see ``checkpoint.py``), builds
the "yes" and "no" class heads from the templates (``ctx.templates`` when the benchmark or user gives
them, else CLIPN's 128; the hand-crafted variant's "no" tower reads the index-aligned "no" pool) and
caches them keyed by backbone identity, checkpoint sha256, class names and templates. A second run
with the same inputs loads the heads from the cache and never reads the checkpoint.

``quote_templates`` (default true) uses the built-in templates verbatim as the reference read them:
literal single quotes around each, and a trailing comma on lines 35 and 99 (as in the runs behind the
released numbers); false strips both artefacts. Templates given through ``ctx.templates`` are used as
they are.

``output`` (default ``"log-odds"``): the scores' log-odds, strictly increasing functions of CTW's and
ATD's probabilities computed in float64 log space (same metrics as the exact probabilities, no ties from
rounding to 1.0); ``"probability"`` gives the probabilities themselves (float64).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from oodbench.errors import OodbenchError
from oodbench.hashing import sha256_file, sha256_lines
from oodbench.methods.clipn.checkpoint import checkpoint_label, load_clipn, resolve_checkpoint
from oodbench.methods.clipn.model import class_heads
from oodbench.methods.clipn.prompts import load_prompt_pairs
from oodbench.methods.clipn.scores import (
    atd_accepts,
    atd_log_odds,
    atd_score,
    ctw_accepts,
    ctw_log_odds,
    ctw_score,
    predict_classes,
)
from oodbench.params import param
from oodbench.scorer import FitContext, MethodInfo, Scorer, error_of

PAPER = "Wang et al., ICCV 2023 (CLIPN: teaching CLIP to say no)"
URL = "https://github.com/xmed-lab/CLIPN"
OUTPUTS = ("log-odds", "probability")


@dataclass
class ClipnScorer(Scorer):
    """Shared fitting of both CLIPN scorers. ``checkpoint``: a file or a bundled CLIPN name."""

    checkpoint: str | None = None
    scale: float = param(100.0, gt=0)
    quote_templates: bool = True
    output: str = "log-odds"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._heads: tuple[torch.Tensor, torch.Tensor] | None = None
        self._provenance: dict[str, Any] = {}

    def check(self) -> None:
        if self.output not in OUTPUTS:
            raise OodbenchError(f"CLIPN's output must be one of {', '.join(OUTPUTS)}; got {self.output!r}.")

    def unmet(self) -> str | None:
        return error_of(lambda: resolve_checkpoint(self.checkpoint))

    def fit(self, ctx: FitContext) -> None:
        path = resolve_checkpoint(self.checkpoint)
        sha = sha256_file(path, ctx.cache_dir)
        label = checkpoint_label(self.checkpoint, path)
        yes_t, no_t = load_prompt_pairs(verbatim=self.quote_templates)
        templates = ctx.templates_or(yes_t)
        names = list(ctx.class_names)
        key = {"backbone": ctx.backbone.identity, "checkpoint_sha256": sha,
               "classes_sha256": sha256_lines(names), "n_classes": len(names),
               "templates_sha256": sha256_lines(templates), "no_templates_sha256": sha256_lines(no_t)}

        def compute() -> dict[str, np.ndarray]:
            clipn, _ = load_clipn(path, ctx.backbone.model, ctx.backbone.identity)
            pool = no_t if clipn.variant == "handcrafted" else None
            yes, no = class_heads(ctx.backbone, clipn.no, names, templates, pool)
            return {"yes": yes.numpy(), "no": no.numpy(), "n_prompts": np.array([clipn.no.n_prompts])}

        arrays = ctx.cached("clipn-heads", key, compute,
                            meta={"checkpoint": label, "first_templates": templates[:2]})
        self._heads = (torch.from_numpy(np.array(arrays["yes"], dtype=np.float32)),
                       torch.from_numpy(np.array(arrays["no"], dtype=np.float32)))
        n_prompts = int(np.asarray(arrays["n_prompts"])[0])
        self._provenance = {"checkpoint": label, "checkpoint_sha256": sha, "n_templates": len(templates),
                            "variant": "learnable" if n_prompts else "handcrafted", "n_prompts": n_prompts}

    @classmethod
    def published_templates(cls) -> list[str]:
        """The reference's 128 template lines verbatim (its MSP row uses them too)."""
        return load_prompt_pairs(verbatim=True)[0]

    def heads(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._heads is None:
            raise RuntimeError(f"{type(self).__name__}.fit(ctx) must run before scoring")
        return self._heads

    def predict_classes(self, image_features: torch.Tensor) -> torch.Tensor:
        return predict_classes(image_features, self.heads()[0])

    def provenance(self) -> dict[str, Any]:
        return dict(self._provenance)


@dataclass
class ClipnCTW(ClipnScorer):
    """CLIPN competing-to-win: ``p_yes`` at the top class; decision: OOD when ``p_no > p_yes`` there."""

    info = MethodInfo(paper=PAPER, url=URL,
                      summary="CLIPN competing-to-win: p_yes of the top class (trained 'no' text tower)")

    def score(self, image_features: torch.Tensor) -> torch.Tensor:
        fn = ctw_log_odds if self.output == "log-odds" else ctw_score
        return fn(image_features, *self.heads(), self.scale)

    def decide(self, image_features: torch.Tensor) -> torch.Tensor:
        return ctw_accepts(image_features, *self.heads(), self.scale)


@dataclass
class ClipnATD(ClipnScorer):
    """CLIPN agreeing-to-differ: ``1 - p_{C+1}``; decision: OOD when ``p_{C+1}`` beats every ID class."""

    info = MethodInfo(paper=PAPER, url=URL,
                      summary="CLIPN agreeing-to-differ: 1 - p(unknown class) (trained 'no' text tower)")

    def score(self, image_features: torch.Tensor) -> torch.Tensor:
        fn = atd_log_odds if self.output == "log-odds" else atd_score
        return fn(image_features, *self.heads(), self.scale)

    def decide(self, image_features: torch.Tensor) -> torch.Tensor:
        return atd_accepts(image_features, *self.heads(), self.scale)
