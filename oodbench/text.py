"""Text towers as plain parts, and encoding that runs only as far as the longest prompt.

CLIP's text tower is causal and reads its feature at the end-of-text (EOT) token, so nothing after
the last EOT of a batch can change the result: running the transformer on the first ``L`` positions
(token + positional embeddings and the causal mask cut to ``L``) gives the same features as the full
77 positions. NegLabel's ~70k short prompts then cost minutes instead of an hour on a CPU. Towers that
are not causal, or pool elsewhere, keep the full length (``TextTower.can_shorten``).

CLIPN's "no" tower is a second :class:`TextTower` with an additive prompt offset, encoded by the same
:func:`encode_tokens`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

SHORTENABLE_POOLS = ("argmax", "eos")


@dataclass
class TextTower:
    """The parts of an open_clip ``CLIP`` text tower (the standard, non-HF layout)."""

    token_embedding: nn.Embedding
    positional_embedding: torch.Tensor
    transformer: nn.Module
    ln_final: nn.Module
    text_projection: torch.Tensor | nn.Module | None
    attn_mask: torch.Tensor | None
    pool_type: str = "argmax"
    eos_id: int | None = None

    @classmethod
    def of(cls, model: nn.Module) -> TextTower | None:
        """The yes/plain text tower of an open_clip model, or None for other layouts (HF towers)."""
        if not hasattr(model, "token_embedding") or not hasattr(model, "transformer"):
            return None
        return cls(
            token_embedding=model.token_embedding,
            positional_embedding=model.positional_embedding,
            transformer=model.transformer,
            ln_final=model.ln_final,
            text_projection=model.text_projection,
            attn_mask=model.attn_mask,
            pool_type=getattr(model, "text_pool_type", "argmax"),
            eos_id=getattr(model, "text_eos_id", None),
        )

    @property
    def can_shorten(self) -> bool:
        return self.attn_mask is not None and self.pool_type in SHORTENABLE_POOLS

    @property
    def context_length(self) -> int:
        return int(self.positional_embedding.shape[0])

    @property
    def width(self) -> int:
        return int(self.positional_embedding.shape[-1])


def pooled_positions(tokens: torch.Tensor, pool_type: str, eos_id: int | None) -> torch.Tensor:
    """[B] index of the position each sequence's feature is read from."""
    if pool_type == "argmax":
        return tokens.argmax(dim=-1)
    if pool_type == "eos":
        return (tokens == eos_id).int().argmax(dim=-1)
    if pool_type == "first":
        return torch.zeros(tokens.shape[0], dtype=torch.long, device=tokens.device)
    return torch.full((tokens.shape[0],), tokens.shape[1] - 1, dtype=torch.long, device=tokens.device)


def encode_tokens(
    tower: TextTower,
    tokens: torch.Tensor,
    prompt_offset: torch.Tensor | None = None,
    shorten: bool = True,
    normalize: bool = True,
) -> torch.Tensor:
    """Encode [B, context] token ids with ``tower``; returns [B, D] (L2-normalised by default).

    ``prompt_offset`` ([context, width] or [B, context, width]) is added to the token + positional
    embeddings (CLIPN's learnable "no" prompt). With ``shorten`` and a causal, EOT-pooled tower, the
    sequence is cut after the last pooled position of the batch; the result is the same.
    """
    pos = pooled_positions(tokens, tower.pool_type, tower.eos_id)
    length = tokens.shape[1]
    if shorten and tower.can_shorten:
        length = int(pos.max().item()) + 1
    tokens = tokens[:, :length]
    cast_dtype = _cast_dtype(tower.transformer)
    x = tower.token_embedding(tokens).to(cast_dtype)
    x = x + tower.positional_embedding[:length].to(cast_dtype)
    if prompt_offset is not None:
        x = x + prompt_offset[..., :length, :].to(cast_dtype)
    mask = tower.attn_mask[:length, :length] if tower.attn_mask is not None else None
    x = tower.transformer(x, attn_mask=mask)
    x = tower.ln_final(x)
    x = x[torch.arange(x.shape[0], device=x.device), pos]
    proj = tower.text_projection
    if isinstance(proj, nn.Module):
        x = proj(x)
    elif proj is not None:
        x = x @ proj
    return F.normalize(x, dim=-1) if normalize else x


def _cast_dtype(transformer: nn.Module) -> torch.dtype:
    get = getattr(transformer, "get_cast_dtype", None)
    return get() if callable(get) else next(transformer.parameters()).dtype
