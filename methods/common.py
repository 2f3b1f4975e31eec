"""Math that several methods share: float64 similarities, the max softmax of class logits (and its
log-odds), and block sizes for big products.

Scores are computed in float64 and, where a probability can round to 1.0, in log space: a saturated
score turns confident images into ties, and which images tie then depends on the last bits of the
features, i.e. on the CPU's kernels (one FPR95 moved by 0.3 points between two machines that way).
"""

from __future__ import annotations

import torch

#: Elements of one similarity block (rows x columns) held at a time; bounds the memory of big runs.
BLOCK_ELEMENTS = 1 << 24


def block_rows(columns: int) -> int:
    """How many rows of a ``[rows, columns]`` block fit in :data:`BLOCK_ELEMENTS` (at least one)."""
    return max(1, BLOCK_ELEMENTS // max(int(columns), 1))


def similarities(image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
    """``[N, D] x [C, D] -> [N, C]`` inner products in float64, on the images' device.

    Float64 products make a score independent of how images are blocked (float32 kernels sum in an
    order that depends on the block's shape) up to 1e-16 relative.
    """
    x = image_features.to(torch.float64)
    return x @ text_features.to(x.device, torch.float64).T


def max_softmax(image_features: torch.Tensor, text_features: torch.Tensor, temperature: float) -> torch.Tensor:
    """``max_i softmax_i(cos(x, t_i) / temperature)`` per image, in float64 ([N, D] x [C, D] -> [N]).

    Rounds to 1.0 once the other classes' share falls below 1e-16 (a logit gap above ~37); rank with
    :func:`max_softmax_log_odds` when that can happen (scale 100).
    """
    out = [torch.softmax(similarities(x, text_features) / temperature, dim=-1).amax(dim=-1)
           for x in image_features.split(block_rows(text_features.shape[0]))]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.float64)


def max_softmax_log_odds(image_features: torch.Tensor, text_features: torch.Tensor,
                         temperature: float) -> torch.Tensor:
    """``log(p / (1 - p))`` of :func:`max_softmax`'s ``p``: ``z_top - LSE_{i != top} z_i`` with
    ``z = cos / temperature``. Strictly increasing in ``p`` (same metrics) and never saturates.

    With a single class ``p`` is 1 for every image; the log-odds are then reported as 0 (a constant).
    """
    out = []
    for x in image_features.split(block_rows(text_features.shape[0])):
        z = similarities(x, text_features) / temperature
        top = z.argmax(dim=-1, keepdim=True)
        rest = z.scatter(1, top, float("-inf")).logsumexp(dim=-1)
        out.append(torch.where(torch.isinf(rest), torch.zeros_like(rest), z.gather(1, top).squeeze(1) - rest))
    return torch.cat(out) if out else torch.empty(0, dtype=torch.float64)
