"""Patch features: per-patch image features of an open_clip image tower, from the pass of the global ones.

GL-MCM's local features (Miyai et al., IJCV 2025; ``AtsuMiyai/GL-MCM`` @ 8708a08, ``clip/model.py``
L217-300) follow MaskCLIP: in the **last** transformer block the attention output of every token is
replaced by its own value vector, ``u = x + W_o (W_v LN_1(x) + b_v) + b_o``, followed by the block's MLP,
``u <- u + MLP(LN_2(u))``; the patch tokens of ``u`` (class token dropped) then go through ``ln_post`` and
``proj`` and are L2-normalised. The global feature is the unchanged tower output.

:func:`encode_image_with_patches` runs ``model.encode_image`` once with a forward pre-hook on the last
block that keeps the block's input ``x``, and computes the value path from it afterwards: about one
transformer block without attention, +7.4 % FLOPs on ViT-B/16 (the reference's modified tower, which
runs q/k/v through ``out_proj`` and a second MLP in every block, costs +116 %). open_clip's layer scale
(``ls_1``/``ls_2``) is applied; it is the identity for CLIP weights.

Supported towers:

- open_clip ``VisionTransformer`` with the standard ``ResidualAttentionBlock`` (fused q/k/v projection), no
  attentional pooler: P = (H / patch) x (W / patch) patches in row-major order (196 for ViT-B/16 at 224);
- open_clip ``ModifiedResNet`` (CLIP ResNets), as the reference (``clip/model.py`` L89-118, L177): the
  attention pool's value path ``c_proj(v_proj(x_hw))`` at every position of the last feature map (no
  positional embedding), P = 7 x 7 at 224.

Anything else (timm or Hugging Face towers, attentional poolers, custom blocks) raises
:class:`PatchFeaturesUnsupported`, a user error naming the tower.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from oodbench.errors import OodbenchError


class PatchFeaturesUnsupported(OodbenchError):
    """The model's image tower has no patch features of the kind GL-MCM uses."""


def patch_count(model: nn.Module) -> int:
    """P, the number of patch features per image of ``model``'s image tower (raises if it has none)."""
    visual = _visual(model)
    _patch_path(visual)
    from open_clip.modified_resnet import ModifiedResNet

    if isinstance(visual, ModifiedResNet):
        return int(visual.attnpool.positional_embedding.shape[0]) - 1
    grid = visual.grid_size
    return int(grid[0]) * int(grid[1])


def encode_image_with_patches(model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(global, local)`` features of ``images`` from one pass through ``model``'s image tower.

    Args:
        model: an open_clip ``CLIP``-like model (``model.visual`` and ``model.encode_image``).
        images: [B, 3, H, W] preprocessed images on the model's device.

    Returns:
        global: [B, D], exactly ``model.encode_image(images)`` (not normalised, in its dtype).
        local: [B, P, D] float32 L2-normalised patch features (see the module docstring for P's order).

    Runs under whatever autocast / no_grad context the caller has set.
    """
    visual = _visual(model)
    hook_target, local_from = _patch_path(visual)
    captured: dict[str, torch.Tensor] = {}

    def keep_input(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        captured["x"] = args[0] if args else kwargs["q_x"]

    handle = hook_target.register_forward_pre_hook(keep_input, with_kwargs=True)
    try:
        global_features = model.encode_image(images)
    finally:
        handle.remove()
    if "x" not in captured:
        raise RuntimeError("the last block of the image tower did not run")
    local = local_from(captured["x"])
    return global_features, F.normalize(local.float(), dim=-1)


def _visual(model: nn.Module) -> nn.Module:
    visual = getattr(model, "visual", None)
    if visual is None:
        raise PatchFeaturesUnsupported(
            f"{type(model).__name__} has no image tower 'visual'; patch features need an open_clip CLIP "
            "model.")
    return visual


def _patch_path(visual: nn.Module) -> tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor]]:
    """The module to hook and the function from its input to the (unnormalised) patch features."""
    from open_clip.modified_resnet import ModifiedResNet
    from open_clip.transformer import ResidualAttentionBlock, VisionTransformer

    if isinstance(visual, VisionTransformer):
        block = visual.transformer.resblocks[-1]
        why = None
        if visual.attn_pool is not None:
            why = "it pools with an attentional pooler"
        elif not isinstance(block, ResidualAttentionBlock) or hasattr(block, "ln_1_kv"):
            why = f"its blocks are {type(block).__name__}, not the standard ResidualAttentionBlock"
        elif not block.attn._qkv_same_embed_dim or block.attn.in_proj_weight is None:
            why = "its attention has separate q/k/v projections"
        if why is None:
            batch_first = getattr(visual.transformer, "batch_first", True)
            return block, lambda x: _vit_value_path(visual, block, x if batch_first else x.transpose(0, 1))
        raise PatchFeaturesUnsupported(
            f"Patch features (GL-MCM's local features) are not defined for this VisionTransformer: {why}. "
            "Use a CLIP ViT or ResNet model, or methods that need only global features.")
    if isinstance(visual, ModifiedResNet):
        pool = visual.attnpool
        return pool, lambda x: _resnet_value_path(pool, x)
    raise PatchFeaturesUnsupported(
        f"Patch features (GL-MCM's local features) need an open_clip VisionTransformer or ModifiedResNet "
        f"image tower; this model's is {type(visual).__name__}. Use a CLIP ViT or ResNet model, or methods "
        "that need only global features.")


def _vit_value_path(visual: nn.Module, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """MaskCLIP value path of the last block on its input x [B, 1 + P, W] -> [B, P, D] (not normalised)."""
    attn = block.attn
    width = x.shape[-1]
    bias = attn.in_proj_bias[2 * width:] if attn.in_proj_bias is not None else None
    v = F.linear(block.ln_1(x), attn.in_proj_weight[2 * width:], bias)
    u = x + block.ls_1(attn.out_proj(v))
    u = u + block.ls_2(block.mlp(block.ln_2(u)))
    tokens = visual.ln_post(u[:, 1:])
    return tokens @ visual.proj if visual.proj is not None else tokens


def _resnet_value_path(pool: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Attention pool's value path on the last feature map x [B, C, H, W] -> [B, H * W, D]."""
    return pool.c_proj(pool.v_proj(x.flatten(2).transpose(1, 2)))
