"""Math that several methods share: the max softmax of class logits, and block sizes for big products."""

from __future__ import annotations

import torch

#: Elements of one similarity block (rows x columns) held at a time; bounds the memory of big runs.
BLOCK_ELEMENTS = 1 << 24


def block_rows(columns: int) -> int:
    """How many rows of a ``[rows, columns]`` block fit in :data:`BLOCK_ELEMENTS` (at least one)."""
    return max(1, BLOCK_ELEMENTS // max(int(columns), 1))


def max_softmax(image_features: torch.Tensor, text_features: torch.Tensor, temperature: float) -> torch.Tensor:
    """``max_i softmax_i(cos(x, t_i) / temperature)`` per image, in float64 ([N, D] x [C, D] -> [N]).

    Float64 keeps the top probability from rounding to 1.0 for confident images, where float32 would
    turn their order into ties (and tiny kernel differences between CPUs into different FPR95s).
    """
    logits = (image_features.double() @ text_features.double().to(image_features.device).T) / temperature
    return torch.softmax(logits, dim=-1).max(dim=-1).values
