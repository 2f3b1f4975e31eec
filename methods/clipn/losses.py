"""CLIPN's training losses (Wang et al., "CLIPN for Zero-Shot OOD Detection: Teaching CLIP to Say No",
ICCV 2023): the image-text binary-opposite loss (ITBO) and the text semantic-opposite loss (TSO).

All features are L2-normalised ``[N, D]`` tensors of the *global* batch: ``f`` (images), ``g`` ("yes"
texts, frozen tower) and ``g_no`` ("no" texts, trained tower). Pair ``(i, i)`` is an image with its own
caption; ``(i, j != i)`` pairs it with another image's caption.

Under DDP, :func:`gather_keep_own_grad` all-gathers a rank's features without gradient and puts the
rank's own slice back with its gradient, exactly as the reference's ``ClipLoss`` does with its defaults
(``local_loss=False``, ``gather_with_grad=False``): every rank computes the same full ``N x N`` loss and
DDP averages the gradients (so the update is that of the full loss divided by the world size, as in the
reference). In one process the gather is the identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F

#: The reference clamps the (frozen) logit scale to ln(100): s <= 100.
MAX_SCALE = 100.0
TSO_EPS = 1e-4


def itbo_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    no_text_features: torch.Tensor,
    scale: float = 100.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Image-text binary-opposite loss, returned as its two terms ``(L_yes, L_no)``.

    For every image ``i`` and caption ``j`` a 2-way softmax over the pair of logits
    ``(s<f_i, g_j>, s<f_i, g_no_j>)`` gives ``p_no_ij = sigmoid(s<f_i, g_no_j> - s<f_i, g_j>)`` and
    ``p_yes_ij = 1 - p_no_ij``. The diagonal is pushed to "yes" (the "no" text of an image's own caption
    is a *reverse* match), the off-diagonal to "no" (another caption's "no" text is true of the image)::

        L_yes = -1/N         sum_i      log p_yes_ii
        L_no  = -1/(N^2 - N) sum_{i!=j} log p_no_ij

    The two terms are normalised separately (``image_text_binary_opposite_loss`` of xmed-lab/CLIPN);
    the total CLIPN loss is ``0.5 * (L_yes + L_no + L_tso)``. Default ``s = 100`` (the frozen LAION
    logit scale, clamped to 100 by the reference). Log-probabilities are computed as ``logsigmoid`` of
    the logit difference, so large ``s`` does not overflow.

    **N = 1** has no off-diagonal pair: ``L_no`` is then defined as 0 (an empty sum over a count of
    ``max(N^2 - N, 1)``), still connected to the graph; the reference would divide 0 by 0.
    """
    n = image_features.shape[0]
    if text_features.shape[0] != n or no_text_features.shape[0] != n:
        raise ValueError(f"itbo_loss needs as many captions as images, got {n}, "
                         f"{text_features.shape[0]} and {no_text_features.shape[0]}")
    logits_yes = scale * image_features @ text_features.T  # [N, N]
    logits_no = scale * image_features @ no_text_features.T
    margin = logits_yes - logits_no  # log-odds of "yes" for every pair
    diagonal = torch.eye(n, dtype=torch.bool, device=margin.device)
    loss_yes = -F.logsigmoid(margin.diagonal()).mean()
    loss_no = -F.logsigmoid(-margin[~diagonal]).sum() / max(n * n - n, 1)
    return loss_yes, loss_no


def tso_loss(text_features: torch.Tensor, no_text_features: torch.Tensor) -> torch.Tensor:
    """Text semantic-opposite loss: ``mean_i [2 - sqrt(2 - 2<g_i, g_no_i> + 1e-4)]``.

    For unit vectors ``2 - 2<g, g_no> = ||g - g_no||^2``, so this is about ``mean(2 - ||g - g_no||)``: it
    lies in [0, 2] and reaches (almost) 0 when ``g_no = -g``. The ``1e-4`` inside the root keeps the
    gradient finite when the two are equal (at initialisation the "no" tower is a copy of the "yes"
    tower). Mode "L2" of ``text_semantic_opposite_loss`` in xmed-lab/CLIPN.
    """
    cosine = (text_features * no_text_features).sum(dim=-1)
    return (2.0 - torch.sqrt(2.0 - 2.0 * cosine + TSO_EPS)).mean()


@dataclass
class ClipnLoss:
    """The CLIPN objective ``total = 0.5 * (yes + no + tso)`` and its terms (scalar tensors)."""

    total: torch.Tensor
    yes: torch.Tensor
    no: torch.Tensor
    tso: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        return {"loss": self.total.item(), "loss_yes": self.yes.item(), "loss_no": self.no.item(),
                "loss_tso": self.tso.item()}


def clipn_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    no_text_features: torch.Tensor,
    scale: float = 100.0,
    gather: bool = True,
) -> ClipnLoss:
    """``0.5 * (L_yes + L_no + L_tso)`` over the global batch (all-gathered under DDP when ``gather``).

    Features are cast to float32 and L2-normalised again first: under bf16/fp16 autocast a "normalised"
    vector can have norm 1.004, and ``2 - 2<g, g_no>`` then dips below zero inside TSO's square root
    when the two towers agree (as they do at initialisation).
    """
    feats = [F.normalize(x.float(), dim=-1) for x in (image_features, text_features, no_text_features)]
    if gather:
        feats = [gather_keep_own_grad(x) for x in feats]
    f, g, g_no = feats
    loss_yes, loss_no = itbo_loss(f, g, g_no, scale)
    loss_tso = tso_loss(g, g_no)
    return ClipnLoss(0.5 * (loss_yes + loss_no + loss_tso), loss_yes, loss_no, loss_tso)


def gather_keep_own_grad(x: torch.Tensor) -> torch.Tensor:
    """All-gather ``x`` along dim 0; the own slice keeps its gradient (the identity in one process)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    parts[dist.get_rank()] = x
    return torch.cat(parts, dim=0)
