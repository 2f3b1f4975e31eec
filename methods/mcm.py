"""MCM: Maximum Concept Matching (Ming et al., NeurIPS 2022).

``S(x) = max_i softmax_i(cos(f(x), t_i) / T)`` on raw cosines (no x100), with T = 1 and the single
prompt "a photo of a {}" as in the reference code (``deeplearning-wisc/MCM``, ``--T`` defaults to 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from oodbench.methods.common import max_softmax
from oodbench.params import param
from oodbench.scorer import ClassHeadScorer, MethodInfo


def mcm_score(image_features: torch.Tensor, text_features: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Max softmax of ``cosine / temperature`` over the ID classes.

    Args:
        image_features: [N, D] L2-normalised image features.
        text_features: [C, D] L2-normalised class text features (one per ID class).
        temperature: T; the paper's default is 1 on raw cosines.

    Returns:
        [N] scores in (1/C, 1], higher = more ID.
    """
    return max_softmax(image_features, text_features, temperature)


@dataclass
class MCM(ClassHeadScorer):
    """MCM with the paper's defaults: T = 1, prompt "a photo of a {}"."""

    info = MethodInfo(
        paper="Ming et al., Delving into OOD Detection with Vision-Language Representations, NeurIPS 2022",
        summary="max_i softmax_i(cos(image, class_i) / T), T = 1",
        url="https://github.com/deeplearning-wisc/MCM",
    )
    temperature: float = param(1.0, gt=0)

    def score(self, image_features: torch.Tensor) -> torch.Tensor:
        return mcm_score(image_features, self.text_features, self.temperature)
