"""MSP for CLIP: maximum softmax probability of zero-shot logits.

The classic baseline (Hendrycks & Gimpel, ICLR 2017) applied to CLIP's zero-shot classifier, as in the
CLIPN code's MSP row: ``S(x) = max_i softmax_i(s * cos(f(x), t_i))`` with CLIP's fixed scale ``s = 100``.
(The MSP rows of MCM-style tables use a CLIP fine-tuned on ImageNet instead; that is not zero-shot.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from oodbench.methods.common import max_softmax
from oodbench.params import param
from oodbench.scorer import ClassHeadScorer, MethodInfo

# The same single prompt as MCM, so that MSP vs MCM isolates the temperature (100 vs 1).
DEFAULT_TEMPLATES = ["a photo of a {}"]


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


@dataclass
class MSP(ClassHeadScorer):
    """Zero-shot MSP: ``max softmax(100 * cos)``; templates default to "a photo of a {}" (as MCM)."""

    info = MethodInfo(
        paper="Hendrycks & Gimpel, ICLR 2017 (zero-shot CLIP variant as in CLIPN, ICCV 2023)",
        summary="max_i softmax_i(100 * cos(image, class_i))",
    )
    default_templates = DEFAULT_TEMPLATES
    logit_scale: float = param(100.0, gt=0)

    def score(self, image_features: torch.Tensor) -> torch.Tensor:
        return msp_score(image_features, self.text_features, self.logit_scale)
