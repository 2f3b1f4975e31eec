"""Patch features: MaskCLIP's value path of the last block, from the same pass as the global features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from open_clip.model import CLIP
from open_clip.modified_resnet import ModifiedResNet
from torch import nn

from oodbench.backbone.patches import PatchFeaturesUnsupported, encode_image_with_patches, patch_count
from oodbench.errors import OodbenchError

TEXT = {"context_length": 16, "vocab_size": 100, "width": 32, "heads": 2, "layers": 1}


def tiny_vit(**vision) -> CLIP:
    torch.manual_seed(0)
    cfg = {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8, **vision}
    return CLIP(embed_dim=24, vision_cfg=cfg, text_cfg=TEXT).eval()


def images(n=3, size=32):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(1))


def test_global_is_exactly_encode_image_and_locals_are_unit_patches():
    model = tiny_vit()
    x = images()
    with torch.no_grad():
        g, loc = encode_image_with_patches(model, x)
        assert torch.equal(g, model.encode_image(x))
    assert loc.shape == (3, 16, 24) and loc.dtype == torch.float32 and patch_count(model) == 16
    assert torch.allclose(loc.norm(dim=-1), torch.ones(3, 16), atol=1e-6)


def test_locals_are_the_last_block_with_attention_restricted_to_each_token_itself():
    # Independent route: run the last block through its own forward with a mask that lets every token
    # attend only to itself, so the attention output is out_proj(v): MaskCLIP's value path.
    model = tiny_vit(ls_init_value=0.5)  # layer scale on, to check it is applied
    v = model.visual
    x = images()
    with torch.no_grad():
        _, loc = encode_image_with_patches(model, x)
        h = v._embeds(x)
        for blk in v.transformer.resblocks[:-1]:
            h = blk(h)
        n = h.shape[1]
        self_only = torch.full((n, n), float("-inf")).fill_diagonal_(0.0)
        u = v.transformer.resblocks[-1](h, attn_mask=self_only)
        expected = F.normalize(v.ln_post(u[:, 1:]) @ v.proj, dim=-1)
        full = F.normalize(v.ln_post(v.transformer.resblocks[-1](h)[:, 1:]) @ v.proj, dim=-1)
    assert torch.allclose(loc, expected, atol=1e-5)
    assert not torch.allclose(loc, full, atol=1e-2)  # the ordinary attention path is something else


def test_resnet_locals_are_the_attention_pool_value_path():
    torch.manual_seed(0)
    visual = ModifiedResNet(layers=(1, 1, 1, 1), output_dim=16, heads=2, image_size=64, width=8).eval()

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.visual = visual

        def encode_image(self, x):
            return self.visual(x)

    x = images(2, 64)
    with torch.no_grad():
        g, loc = encode_image_with_patches(Wrapper(), x)
        fmap = visual.layer4(visual.layer3(visual.layer2(visual.layer1(visual.stem(x)))))  # [2, C, 2, 2]
        pool = visual.attnpool
        hw = fmap.flatten(2).transpose(1, 2)
        expected = F.normalize((hw @ pool.v_proj.weight.T + pool.v_proj.bias) @ pool.c_proj.weight.T
                               + pool.c_proj.bias, dim=-1)
        assert torch.equal(g, visual(x))
    assert loc.shape == (2, 4, 16) and patch_count(Wrapper()) == 4
    assert torch.allclose(loc, expected, atol=1e-5)


def test_unsupported_towers_are_user_errors():
    with pytest.raises(PatchFeaturesUnsupported, match="no image tower"):
        encode_image_with_patches(nn.Linear(2, 2), images())
    model = tiny_vit(attentional_pool=True, attn_pooler_queries=4, attn_pooler_heads=2)
    with pytest.raises(PatchFeaturesUnsupported, match="attentional pooler"):
        encode_image_with_patches(model, images())
    with pytest.raises(OodbenchError):
        patch_count(model)


def test_backbone_writes_patches_from_the_same_pass(tiny_backbone, folder_benchmark):
    from oodbench.data.base import open_dataset
    from oodbench.data.spec import DataContext

    ds = open_dataset(f"folder:{folder_benchmark['id']}", DataContext())
    ds.with_transform(tiny_backbone.preprocess)
    plain = tiny_backbone.encode_images(ds, batch_size=4)
    out = np.zeros((len(ds), tiny_backbone.patch_count, 32), dtype=np.float16)
    both = tiny_backbone.encode_images(ds, batch_size=4, patches=out)
    np.testing.assert_array_equal(both, plain)  # the global features do not change
    batch = torch.stack([ds[i][0] for i in range(len(ds))])
    with torch.no_grad():
        _, loc = encode_image_with_patches(tiny_backbone.model, batch)
    np.testing.assert_allclose(out.astype(np.float32), loc.numpy(), atol=1e-3)  # fp16: 3 decimal digits
    assert tiny_backbone.patch_count == 16  # 32 x 32 images, patches of 8
