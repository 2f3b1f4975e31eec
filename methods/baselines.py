"""Zero-shot baselines on CLIP cosines: energy, max-logit and GEN. Higher = more ID for all three.

With ``cos_c = cos(f(x), t_c)`` over the C ID class text features (prompt "a photo of a {}", as MCM's and
EOE's baseline runs):

- ``energy``: ``S = T * logsumexp_c(cos_c / T)`` (Liu et al., Energy-based OOD detection, NeurIPS 2020,
  on CLIP cosines). Default T = 0.01: the temperature of TAG's zero-shot baselines (``XixiLiu95/TAG``,
  ``eval/eval_ood_imagenet_1k.py`` ``--temp`` 0.01) and of EOE's energy run (``Aboriginer/EOE``
  ``eval.sh``: ``--score energy --T 0.01``). MCM's code uses T = 1 (its ``--T`` is an int, default 1), where
  the score is close to log C + the mean cosine and weak; which T produced the zero-shot energy row quoted
  by MCM's and NegLabel's tables is not stated. TAG's energy omits the factor T: same ranking.
- ``maxlogit``: ``S = max_c cos_c`` (Hendrycks et al., Scaling OOD detection, ICML 2022). Temperature-free:
  TAG divides by T, MCM and EOE do not; the ranking is the same.
- ``gen``: ``S = -sum_{k <= K} p_(k)^gamma (1 - p_(k))^gamma`` over the K largest probabilities of
  ``p = softmax(cos / T)`` (Liu et al., GEN: pushing the limits of softmax-based OOD detection, CVPR
  2023). Defaults T = 0.01, gamma = 0.1, K = 100 (TAG ``utils.py`` ``calculate_score``, GEN branch, run with
  ``--temp 0.01``). Computed in log space: TAG's float32 rounds ``1 - p`` to 0 for confident images although
  ``(1 - p)^0.1`` is not small (``(1e-9)^0.1 = 0.126``), which changes 23 % of ImageNet-like scores by
  more than 1e-3; this is the exact formula.

All three are computed in float64 on the device of the inputs, in blocks of images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from oodbench.errors import OodbenchError
from oodbench.methods.common import block_rows
from oodbench.params import param
from oodbench.scorer import ClassHeadScorer, MethodInfo


def cosine_logits(image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
    """``[N, C]`` float64 cosines ``image @ text.T`` of L2-normalised features, on the images' device."""
    if (image_features.ndim != 2 or text_features.ndim != 2
            or image_features.shape[1] != text_features.shape[1]):
        raise ValueError(f"image features {tuple(image_features.shape)} and text features "
                         f"{tuple(text_features.shape)} must be 2-D with the same feature dimension")
    if text_features.shape[0] == 0:
        raise ValueError("no text features")
    text = text_features.to(image_features.device, torch.float64)
    return image_features.to(torch.float64) @ text.T


def _check_temperature(temperature: float, what: str) -> None:
    if not temperature > 0:
        raise OodbenchError(f"The {what} temperature must be positive; got {temperature}.")


def _blocked(image_features: torch.Tensor, columns: int, fn) -> torch.Tensor:  # type: ignore[no-untyped-def]
    rows = block_rows(columns)
    out = [fn(image_features[start:start + rows]) for start in range(0, image_features.shape[0], rows)]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.float64, device=image_features.device)


def energy_score(image_features: torch.Tensor, text_features: torch.Tensor,
                 temperature: float = 0.01) -> torch.Tensor:
    """Energy score ``T * logsumexp_c(cos(x, t_c) / T)``; higher = more ID.

    Args:
        image_features: [N, D] L2-normalised image features.
        text_features: [C, D] L2-normalised ID class text features.
        temperature: T > 0 (default 0.01, as TAG and EOE's energy run).

    Returns:
        [N] float64 scores, between ``max_c cos`` and ``max_c cos + T log C``.
    """
    _check_temperature(temperature, "energy")
    return _blocked(image_features, text_features.shape[0], lambda x: temperature * torch.logsumexp(
        cosine_logits(x, text_features) / temperature, dim=1))


def maxlogit_score(image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
    """Max-logit score ``max_c cos(x, t_c)``; higher = more ID.

    Args:
        image_features: [N, D] L2-normalised image features.
        text_features: [C, D] L2-normalised ID class text features.

    Returns:
        [N] float64 scores in [-1, 1].
    """
    return _blocked(image_features, text_features.shape[0],
                    lambda x: cosine_logits(x, text_features).max(dim=1).values)


def gen_score(image_features: torch.Tensor, text_features: torch.Tensor, temperature: float = 0.01,
              gamma: float = 0.1, top_k: int = 100) -> torch.Tensor:
    """GEN score ``-sum_{k <= K} p_(k)^gamma (1 - p_(k))^gamma`` over the K largest of ``softmax(cos / T)``.

    ``p_(1) >= p_(2) >= ...`` are the sorted class probabilities; with fewer than K classes all are used.
    Computed in log space (``p^g = exp(g log p)``, ``1 - p = -expm1(log p)``), so probabilities that round
    to 1 or 0 in float32 still count. Higher = more ID; the maximum, 0, is reached by a one-hot p.

    Args:
        image_features: [N, D] L2-normalised image features.
        text_features: [C, D] L2-normalised ID class text features.
        temperature: T > 0 (default 0.01, TAG's).
        gamma: exponent in (0, 1) (default 0.1, TAG's and GEN's).
        top_k: K >= 1 (default 100, TAG's ``top_M``).

    Returns:
        [N] float64 scores in [-K * 2^(-2 gamma), 0].
    """
    _check_temperature(temperature, "GEN")
    if not 0 < gamma < 1:
        raise OodbenchError(f"GEN's gamma must lie in (0, 1); got {gamma}.")
    if top_k < 1:
        raise OodbenchError(f"GEN's top_k must be at least 1; got {top_k}.")
    k = min(top_k, text_features.shape[0])

    def block(x: torch.Tensor) -> torch.Tensor:
        log_p = torch.log_softmax(cosine_logits(x, text_features) / temperature, dim=1).topk(k, dim=1).values
        log_q = torch.log(-torch.expm1(log_p))  # log(1 - p); -inf where p == 1 exactly
        return -torch.exp(gamma * (log_p + log_q)).sum(dim=1)

    return _blocked(image_features, text_features.shape[0], block)


# ----------------------------------------------------------------------------------------- plumbing
@dataclass
class Energy(ClassHeadScorer):
    """Zero-shot energy ``T logsumexp(cos / T)``, T = 0.01, prompt "a photo of a {}"."""

    info = MethodInfo(
        paper="Liu et al., Energy-based Out-of-distribution Detection, NeurIPS 2020 (zero-shot CLIP as in "
              "TAG and EOE's baselines)",
        summary="T * logsumexp_c(cos(image, class_c) / T), T = 0.01",
        url="https://github.com/XixiLiu95/TAG",
    )
    temperature: float = param(0.01, gt=0)

    def score(self, image_features: torch.Tensor) -> torch.Tensor:
        return energy_score(image_features, self.text_features, self.temperature)


@dataclass
class MaxLogit(ClassHeadScorer):
    """Zero-shot max-logit ``max_c cos``, prompt "a photo of a {}"."""

    info = MethodInfo(
        paper="Hendrycks et al., Scaling Out-of-Distribution Detection for Real-World Settings, ICML 2022 "
              "(zero-shot CLIP as in MCM's and EOE's baselines)",
        summary="max_c cos(image, class_c)",
        url="https://github.com/XixiLiu95/TAG",
    )

    def score(self, image_features: torch.Tensor) -> torch.Tensor:
        return maxlogit_score(image_features, self.text_features)


@dataclass
class Gen(ClassHeadScorer):
    """Zero-shot GEN over the top-100 of softmax(cos / 0.01), gamma = 0.1, prompt "a photo of a {}"."""

    info = MethodInfo(
        paper="Liu et al., GEN: Pushing the Limits of Softmax-Based Out-of-Distribution Detection, CVPR 2023 "
              "(zero-shot CLIP as in TAG)",
        summary="-sum_{k<=100} p_(k)^0.1 (1 - p_(k))^0.1, p = softmax(cos / 0.01)",
        url="https://github.com/XixiLiu95/TAG",
    )
    temperature: float = param(0.01, gt=0)
    gamma: float = param(0.1, gt=0, lt=1)
    top_k: int = param(100, ge=1)

    def score(self, image_features: torch.Tensor) -> torch.Tensor:
        return gen_score(image_features, self.text_features, self.temperature, self.gamma, self.top_k)
