"""The CLIPN model: a frozen open_clip CLIP plus a trainable "no" text tower (Wang et al., ICCV 2023).

- Frozen: the image tower, the "yes" text tower and the logit scale of the backbone's open_clip model.
- Trainable (:class:`NoTextEncoder`): a full copy of the text tower (token and positional embeddings,
  transformer, final LayerNorm, projection), initialised from the "yes" tower, plus for the
  *learnable* variant the additive "no" prompt ``prompt_no`` [P, context, width] (P = 16), initialised to
  zeros and added to the "no" tower's token + positional embeddings of the *same* tokenized caption.
  Training draws, per sample, one of P + 1 options (the P prompts or their mean); eval uses the mean.
- The *hand-crafted* variant has no ``prompt_no``: its "no" tower reads captions written into the
  hand-crafted "no" templates instead (``prompts.txt``).

Parameter names are those of the reference's ``*_no`` modules (``transformer_no.*``,
``token_embedding_no.weight``, ``positional_embedding_no``, ``ln_final_no.*``, ``text_projection_no``,
``prompt_no``), so :meth:`NoTextEncoder.state_dict` is the released checkpoints' "no" part verbatim.
Sizes come from the backbone: any open_clip text tower of the standard layout works.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from oodbench.errors import CheckpointError, OodbenchError
from oodbench.prompts import class_prompts
from oodbench.text import TextTower, encode_tokens

if TYPE_CHECKING:
    from oodbench.backbone import Backbone

log = logging.getLogger(__name__)

N_PROMPTS = 16
PROMPTS_FILE = Path(__file__).with_name("prompts.txt")
VARIANTS = ("learnable", "handcrafted")


class NoTextEncoder(nn.Module):
    """The trainable "no" text tower (+ the learnable additive prompts when ``n_prompts > 0``)."""

    def __init__(self, tower: TextTower, n_prompts: int = N_PROMPTS) -> None:
        super().__init__()
        if n_prompts < 0:
            raise ValueError("n_prompts must be >= 0 (0 = the hand-crafted variant)")
        self.token_embedding_no = copy.deepcopy(tower.token_embedding)
        self.positional_embedding_no = nn.Parameter(tower.positional_embedding.detach().clone())
        self.transformer_no = copy.deepcopy(tower.transformer)
        self.ln_final_no = copy.deepcopy(tower.ln_final)
        proj = tower.text_projection
        if isinstance(proj, nn.Module):
            self.text_projection_no: nn.Module | nn.Parameter | None = copy.deepcopy(proj)
        elif proj is not None:
            self.text_projection_no = nn.Parameter(proj.detach().clone())
        else:
            self.text_projection_no = None
        mask = tower.attn_mask.detach().clone() if tower.attn_mask is not None else None
        self.register_buffer("attn_mask", mask, persistent=False)
        self.pool_type = tower.pool_type
        self.eos_id = tower.eos_id
        if n_prompts:
            shape = (n_prompts, tower.context_length, tower.width)
            self.prompt_no: nn.Parameter | None = nn.Parameter(
                torch.zeros(shape, device=tower.positional_embedding.device))
        else:
            self.prompt_no = None
        self.requires_grad_(True)

    @property
    def n_prompts(self) -> int:
        return 0 if self.prompt_no is None else int(self.prompt_no.shape[0])

    @property
    def variant(self) -> str:
        return "learnable" if self.prompt_no is not None else "handcrafted"

    def tower(self) -> TextTower:
        return TextTower(
            token_embedding=self.token_embedding_no,
            positional_embedding=self.positional_embedding_no,
            transformer=self.transformer_no,
            ln_final=self.ln_final_no,
            text_projection=self.text_projection_no,
            attn_mask=self.attn_mask,
            pool_type=self.pool_type,
            eos_id=self.eos_id,
        )

    def prompt_offset(self, choice: torch.Tensor | None = None) -> torch.Tensor | None:
        """The additive prompt: per sample ``options[choice]`` in training, the mean prompt otherwise.

        ``options`` = the P prompts followed by their mean (P + 1 rows); ``choice`` is [B] in [0, P].
        ``None`` for the hand-crafted variant.
        """
        if self.prompt_no is None:
            return None
        mean = self.prompt_no.mean(dim=0, keepdim=True)
        if not self.training or choice is None:
            return mean[0]
        options = torch.cat([self.prompt_no, mean], dim=0)
        return options[choice.to(options.device)]

    def forward(self, tokens: torch.Tensor, choice: torch.Tensor | None = None,
                shorten: bool = True) -> torch.Tensor:
        """[B, context] token ids -> [B, D] L2-normalised "no" features."""
        return encode_tokens(self.tower(), tokens, prompt_offset=self.prompt_offset(choice), shorten=shorten)

    def load_checked(self, state: Mapping[str, torch.Tensor], source: str) -> None:
        """Load ``state`` strictly: a missing, unexpected or mis-shaped key is a :class:`CheckpointError`."""
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
                  for k in sorted(set(own) & set(state)) if tuple(state[k].shape) != tuple(own[k].shape)]
        if missing or unexpected or shapes:
            raise CheckpointError(
                f"The CLIPN 'no' tower in {source} does not fit this backbone's text tower. "
                + key_report(missing, unexpected, shapes)
                + " Check that the checkpoint was trained from the same --model, and with the same variant.")
        with torch.no_grad():
            for k, v in own.items():
                v.copy_(state[k].to(v.dtype))


class CLIPN(nn.Module):
    """A frozen open_clip ``CLIP`` (``clip``) and its trainable :class:`NoTextEncoder` (``no``)."""

    def __init__(self, clip: nn.Module, n_prompts: int = N_PROMPTS) -> None:
        super().__init__()
        tower = TextTower.of(clip)
        if tower is None:
            raise OodbenchError(
                f"CLIPN needs an open_clip model with the standard text tower (token_embedding, "
                f"transformer, ln_final, text_projection); {type(clip).__name__} has another layout "
                "(e.g. a Hugging Face text tower). Pick another --model.")
        self.clip = clip.requires_grad_(False).eval()
        self.no = NoTextEncoder(tower, n_prompts)

    @classmethod
    def for_variant(cls, clip: nn.Module, variant: str, n_prompts: int = N_PROMPTS) -> CLIPN:
        if variant not in VARIANTS:
            raise OodbenchError(f"Unknown CLIPN variant {variant!r}. Choose one of: {', '.join(VARIANTS)}.")
        return cls(clip, n_prompts if variant == "learnable" else 0)

    @property
    def variant(self) -> str:
        return self.no.variant

    @property
    def yes_tower(self) -> TextTower:
        tower = TextTower.of(self.clip)  # rebuilt on each use: `.to()` replaces buffers such as attn_mask
        assert tower is not None
        return tower

    def train(self, mode: bool = True) -> CLIPN:
        super().train(mode)
        self.clip.eval()  # the frozen towers never leave eval mode
        return self

    @torch.no_grad()
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.clip.encode_image(images), dim=-1)

    @torch.no_grad()
    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Frozen "yes" features, [B, D] L2-normalised."""
        return encode_tokens(self.yes_tower, tokens)

    def encode_text_no(self, tokens: torch.Tensor, choice: torch.Tensor | None = None) -> torch.Tensor:
        return self.no(tokens, choice)


# --------------------------------------------------------------------------------------------- templates
def load_prompt_pairs(path: Path = PROMPTS_FILE, verbatim: bool = True) -> tuple[list[str], list[str]]:
    """The 128 positive templates and the index-aligned hand-crafted "no" pool (``prompts.txt``).

    ``verbatim`` (default): each line exactly as CLIPN's inference reads it, literal quotes and the two
    trailing commas included (``'a bad photo of a {}.'``, ``'a photo of a {}.',``), so the class heads equal
    the reference's. ``verbatim=False``: the clean templates (:func:`clean_template`).
    """
    yes: list[str] = []
    no: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        pos, neg = line.split("\t")
        yes.append(pos if verbatim else clean_template(pos))
        no.append(neg if verbatim else clean_template(neg))
    return yes, no


def clean_template(line: str) -> str:
    """A reference line without its reading artefacts: ``'a photo of a {}.',`` -> ``a photo of a {}.``."""
    return line.rstrip(",").strip("'")


def ensemble(features: torch.Tensor, n_classes: int) -> torch.Tensor:
    """[C * T, D] per-prompt features (class-major) -> [C, D]: normalise each, sum over T, normalise again."""
    per = F.normalize(features.float(), dim=-1).view(n_classes, -1, features.shape[-1])
    return F.normalize(per.sum(dim=1), dim=-1)


@torch.no_grad()
def encode_no_prompts(no: NoTextEncoder, backbone: Backbone, prompts: Sequence[str],
                      batch_size: int = 256) -> torch.Tensor:
    """[n, D] float32 CPU features of ``prompts`` through the "no" tower in eval mode (mean prompt).

    Prompts are sorted by token length so that each batch runs only as far as its longest prompt.
    """
    was_training = no.training
    no.eval()
    device = next(no.parameters()).device
    tokens = backbone.tokenizer(list(prompts))
    order = torch.argsort(tokens.argmax(dim=-1), stable=True)
    out = torch.empty(len(prompts), 0)
    try:
        for start in range(0, len(prompts), batch_size):
            idx = order[start:start + batch_size]
            with backbone.autocast():
                feats = no(tokens[idx].to(device)).float().cpu()
            if out.shape[1] == 0:
                out = torch.empty(len(prompts), feats.shape[1])
            out[idx] = feats
    finally:
        no.train(was_training)
    return out


def class_heads(
    backbone: Backbone,
    no: NoTextEncoder,
    class_names: Sequence[str],
    templates: Sequence[str],
    no_templates: Sequence[str] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The CLIPN classifier heads ``(w, w_no)``, each [C, D] float32 (``merge_yes_no_feature``).

    Every class prompt of every template is encoded by the frozen "yes" tower and by the "no" tower
    (eval mode: the mean prompt); per class the template embeddings are L2-normalised, summed and
    normalised again (a mean gives the same). The learnable variant feeds the *same* templates to both
    towers; the hand-crafted variant feeds ``no_templates`` (its "no" pool) to the "no" tower.
    """
    names = list(class_names)
    yes = backbone.class_text_features(names, templates)  # the frozen tower: the backbone's own (cached)
    no_prompts = class_prompts(names, no_templates if no_templates is not None else templates)
    return yes, ensemble(encode_no_prompts(no, backbone, no_prompts), len(names))


def key_report(missing: Sequence[str], unexpected: Sequence[str], shapes: Sequence[str] = ()) -> str:
    def show(keys: Sequence[str]) -> str:
        return ", ".join(keys[:12]) + (f" (and {len(keys) - 12} more)" if len(keys) > 12 else "")

    parts = []
    if missing:
        parts.append(f"Missing keys ({len(missing)}): {show(missing)}.")
    if unexpected:
        parts.append(f"Unexpected keys ({len(unexpected)}): {show(unexpected)}.")
    if shapes:
        parts.append(f"Shape mismatches ({len(shapes)}): {show(list(shapes))}.")
    return " ".join(parts)
