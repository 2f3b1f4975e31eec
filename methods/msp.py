"""MSP for CLIP: maximum softmax probability of zero-shot logits.

The classic baseline (Hendrycks & Gimpel, ICLR 2017) applied to CLIP's zero-shot classifier, as in the
CLIPN code's MSP row: ``S(x) = max_i softmax_i(s * cos(f(x), t_i))`` with CLIP's fixed scale ``s = 100``.
(The MSP rows of MCM-style tables use a CLIP fine-tuned on ImageNet instead; that is not zero-shot.)

At scale 100 the top probability of a confident image rounds to 1.0 even in float64 (a logit gap above
~37), which ties such images; the scorer therefore reports its log-odds ``log(p / (1 - p))`` by default
(``output="log-odds"``): strictly increasing in ``p``, hence the same AUROC / FPR95 / AUPR as ``p`` computed
exactly, without the ties. ``output="probability"`` gives ``p``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from oodbench.errors import OodbenchError
from oodbench.methods.common import max_softmax, max_softmax_log_odds
from oodbench.params import param
from oodbench.scorer import ClassHeadScorer, MethodInfo

OUTPUTS = ("log-odds", "probability")

def msp_score(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: float = 100.0) -> torch.Tensor:
    """Max softmax of ``logit_scale * cosine`` over the ID classes.

    Args:
        image_features: [N, D] L2-normalised image features.
        text_features: [C, D] L2-normalised class text features.
        logit_scale: CLIP's fixed logit scale (100, i.e. temperature 0.01).

    Returns:
        [N] scores in (1/C, 1], higher = more ID.
    """
    return max_softmax(image_features, text_features, temperature=1.0 / logit_scale)


def msp_log_odds(image_features: torch.Tensor, text_features: torch.Tensor,
                 logit_scale: float = 100.0) -> torch.Tensor:
    """``log(p / (1 - p))`` of :func:`msp_score`'s ``p``, float64 [N]: same order, no saturation."""
    return max_softmax_log_odds(image_features, text_features, temperature=1.0 / logit_scale)


@dataclass
class MSP(ClassHeadScorer):
    """Zero-shot MSP: ``max softmax(100 * cos)``; templates default to "a photo of a {}", MCM's single prompt,
    so that MSP vs MCM isolates the temperature (100 vs 1)."""

    info = MethodInfo(
        paper="Hendrycks & Gimpel, ICLR 2017 (zero-shot CLIP variant as in CLIPN, ICCV 2023)",
        summary="max_i softmax_i(100 * cos(image, class_i))",
    )
    logit_scale: float = param(100.0, gt=0)
    output: str = "log-odds"

    def check(self) -> None:
        if self.output not in OUTPUTS:
            raise OodbenchError(f"MSP's output must be one of {', '.join(OUTPUTS)}; got {self.output!r}.")

    def score(self, image_features: torch.Tensor) -> torch.Tensor:
        fn = msp_log_odds if self.output == "log-odds" else msp_score
        return fn(image_features, self.text_features, self.logit_scale)
