"""Math that several methods share: float64 similarities, the max softmax of class logits (and its
log-odds), block sizes for big products, NegLabel's seeded grouping of negatives and its grouped score
(NegLabel, CSP, AdaNeg), and input checks of the stream methods.

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


def logsumexp64(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``log sum_j exp(x_j)`` over ``dim`` as float64: ``m + log sum exp(x - m)`` with m the maximum.

    The exponentials and their sum run in x's dtype (float32 logits stay fast), the two parts are added in
    float64, so a difference of two such values keeps ~1e-7 relative accuracy of the sums instead of
    rounding to the ~30-sized maxima as a float32 log-sum-exp would. For float64 x it is
    ``torch.logsumexp`` bit for bit (the same operations).
    """
    m = x.amax(dim=dim, keepdim=True)
    return m.squeeze(dim).double() + torch.log(torch.exp(x - m).sum(dim=dim)).double()


def group_indices(num_negatives: int, groups: int, *, permute: bool = True, seed: int = 0) -> torch.Tensor:
    """NegLabel's grouping of M negatives: a [groups, M // groups] int64 tensor of indices into them.

    The last ``M mod groups`` negatives are dropped; with ``permute`` the others are shuffled by
    ``torch.randperm(kept)`` on a CPU generator seeded with ``seed``: the permutation that
    ``torch.manual_seed(seed); torch.randperm(kept)`` gives on the CPU, drawn without touching the global
    generator, so it is the same on every device. Group g holds positions ``g*S .. (g+1)*S - 1`` of that
    order. Used by NegLabel, CSP (through NegLabel's score) and AdaNeg.
    """
    if groups < 1 or num_negatives < groups:
        raise ValueError(f"need 1 <= groups <= number of negatives; got groups={groups}, "
                         f"negatives={num_negatives}")
    kept = num_negatives - num_negatives % groups
    if permute:
        order = torch.randperm(kept, generator=torch.Generator(device="cpu").manual_seed(int(seed)))
    else:
        order = torch.arange(kept)
    return order.view(groups, kept // groups)


def grouped_log_odds(id_logits: torch.Tensor, grouped_neg_logits: torch.Tensor) -> torch.Tensor:
    """Per group g, ``l_g = LSE_c(l_c) - LSE_{j in G_g}(l~_j)``: [B, G] float64.

    ``id_logits`` [B, C]; ``grouped_neg_logits`` [B, G, S], the negatives' logits already arranged in
    groups (see :func:`group_indices`). ``sigmoid(l_g)`` is the ID share of the softmax over the ID labels
    and group g: ``sum_c e^{l_c} / (sum_c e^{l_c} + sum_{j in G_g} e^{l~_j})`` (NegLabel's grouped score).
    Log-sum-exps from :func:`logsumexp64`.
    """
    return logsumexp64(id_logits)[:, None] - logsumexp64(grouped_neg_logits)


def grouped_id_mass(id_logits: torch.Tensor, neg_logits: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """NegLabel's grouped score from logits: ``G = 1/n_g sum_g sigmoid(l_g)`` (:func:`grouped_log_odds`).

    Args:
        id_logits: [B, C] ID logits (scale already applied).
        neg_logits: [B, M] negative-label logits, in the negatives' own order.
        groups: [n_g, S] indices into the M negatives (:func:`group_indices`).

    Returns:
        [B] float64 masses in [0, 1].
    """
    grouped = neg_logits[:, groups.reshape(-1).to(neg_logits.device)].view(neg_logits.shape[0], *groups.shape)
    return torch.sigmoid(grouped_log_odds(id_logits, grouped)).mean(dim=1)


def check_features(name: str, features: torch.Tensor, dim: int | None = None) -> None:
    """Raise ``ValueError`` unless ``features`` is a 2-D floating tensor [n, D] (with D = ``dim``)."""
    if features.ndim != 2 or not features.is_floating_point():
        raise ValueError(f"{name} must be a 2-D floating tensor [n, D]; got shape {tuple(features.shape)} "
                         f"and dtype {features.dtype}")
    if dim is not None and features.shape[1] != dim:
        raise ValueError(f"{name} has feature dimension {features.shape[1]}, expected {dim}")


def check_batch_size(batch_size: int) -> None:
    """Raise ``ValueError`` unless ``batch_size`` is a positive integer."""
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
