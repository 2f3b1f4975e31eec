"""Backbone loading, short-sequence text encoding, prompt ensembling and checkpoint errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from open_clip.transformer import QuickGELU
from testkit import TINY

from oodbench.backbone import Backbone, BackboneSpec
from oodbench.backbone.activation import file_needs_quick_gelu
from oodbench.errors import CheckpointError, OodbenchError
from oodbench.features import FeatureStore
from oodbench.text import TextTower, encode_tokens

PROMPTS = ["a photo of a cat", "the nice dog", "x", "This is a striped photo",
           "a much longer prompt about a very specific thing that goes on and on for a while"]


def test_short_sequences_equal_full_length(tiny_backbone):
    tokens = tiny_backbone.tokenizer(PROMPTS)
    with torch.no_grad():
        full = F.normalize(tiny_backbone.model.encode_text(tokens), dim=-1)
        short = encode_tokens(tiny_backbone.text_tower, tokens, shorten=True)
        unshortened = encode_tokens(tiny_backbone.text_tower, tokens, shorten=False)
    assert torch.allclose(short, full, atol=1e-6)
    assert torch.allclose(unshortened, full, atol=1e-6)
    assert torch.allclose(tiny_backbone.encode_texts(PROMPTS, use_cache=False), full, atol=1e-6)


def test_short_sequences_with_additive_prompt_offset(tiny_backbone):
    tower: TextTower = tiny_backbone.text_tower
    tokens = tiny_backbone.tokenizer(PROMPTS)
    offset = torch.randn(tower.context_length, tower.width, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        short = encode_tokens(tower, tokens, prompt_offset=offset, shorten=True)
        full = encode_tokens(tower, tokens, prompt_offset=offset, shorten=False)
        plain = encode_tokens(tower, tokens)
    assert torch.allclose(short, full, atol=1e-6)
    assert not torch.allclose(short, plain, atol=1e-3)  # the offset does change the features


def test_non_causal_tower_keeps_full_length(tiny_backbone):
    tower = TextTower.of(tiny_backbone.model)
    tower.attn_mask = None
    assert not tower.can_shorten


def test_prompt_ensemble_is_normalised_mean_of_normalised(tiny_backbone):
    names, templates = ["cat", "dog"], ["a photo of a {}", "a drawing of the {}.", "{} in the wild"]
    got = tiny_backbone.class_text_features(names, templates)
    each = tiny_backbone.encode_texts([t.format(n) for n in names for t in templates], use_cache=False)
    want = F.normalize(each.view(2, 3, -1).mean(1), dim=-1)
    assert torch.allclose(got, want, atol=1e-6)
    assert torch.allclose(got.norm(dim=-1), torch.ones(2))


def test_unnormalised_text_features_and_csp_style_ensembles(tiny_backbone, tmp_path):
    tokens = tiny_backbone.tokenizer(PROMPTS)
    with torch.no_grad():
        raw = tiny_backbone.model.encode_text(tokens)  # open_clip, full length, not normalised
    got = tiny_backbone.encode_texts(PROMPTS, use_cache=False, normalize=False)
    assert torch.allclose(got, raw, atol=1e-5)
    assert got.norm(dim=-1).std() > 1e-3  # the norms differ, so the two ensemble rules differ
    names, templates = ["cat", "dog"], ["a photo of a {}", "a drawing of the {}.", "{} in the wild"]
    each = tiny_backbone.encode_texts([t.format(n) for n in names for t in templates], use_cache=False,
                                      normalize=False)
    want = F.normalize(each.view(2, 3, -1).mean(1), dim=-1)
    got = tiny_backbone.class_text_features(names, templates, normalize_prompts=False)
    assert torch.allclose(got, want, atol=1e-6)
    assert (got - tiny_backbone.class_text_features(names, templates)).abs().max() > 1e-4
    # cached under their own key: the normalised features of the same prompts are another entry
    b = Backbone.load(BackboneSpec(TINY))
    b.store = FeatureStore(tmp_path)
    unit, rawc = b.encode_texts(PROMPTS), b.encode_texts(PROMPTS, normalize=False)
    assert b.store.misses == 2 and torch.allclose(F.normalize(rawc, dim=-1), unit, atol=1e-6)
    assert torch.equal(b.encode_texts(PROMPTS, normalize=False), rawc) and b.store.hits == 1


def test_text_features_are_cached(tmp_path):
    b = Backbone.load(BackboneSpec(TINY))
    b.store = FeatureStore(tmp_path)
    first = b.encode_texts(PROMPTS)
    assert b.store.misses == 1 and b.store.hits == 0
    second = b.encode_texts(PROMPTS)
    assert b.store.hits == 1 and torch.equal(first, second)


def test_random_init_is_seeded():
    a = Backbone.load(BackboneSpec(TINY, seed=1)).encode_texts(["a cat"], use_cache=False)
    b = Backbone.load(BackboneSpec(TINY, seed=1)).encode_texts(["a cat"], use_cache=False)
    c = Backbone.load(BackboneSpec(TINY, seed=2)).encode_texts(["a cat"], use_cache=False)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert Backbone.load(BackboneSpec(TINY, seed=1)).key != Backbone.load(BackboneSpec(TINY, seed=2)).key


def test_checkpoint_file_round_trip_and_identity(tmp_path, tiny_backbone):
    path = tmp_path / "tiny.pt"
    torch.save(tiny_backbone.model.state_dict(), path)
    loaded = Backbone.load(BackboneSpec(TINY, str(path)), cache_dir=tmp_path)
    assert loaded.identity["checkpoint_sha256"] and "pretrained" not in loaded.identity
    assert torch.equal(loaded.encode_texts(["a cat"], use_cache=False),
                       tiny_backbone.encode_texts(["a cat"], use_cache=False))


def test_checkpoint_that_does_not_fit_is_a_clear_error(tmp_path, tiny_backbone):
    sd = dict(tiny_backbone.model.state_dict())
    sd["renamed.weight"] = sd.pop("ln_final.weight")
    bad = tmp_path / "bad.pt"
    torch.save(sd, bad)
    with pytest.raises(CheckpointError, match="does not fit.*--model"):
        Backbone.load(BackboneSpec(TINY, str(bad)))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="Could not read"):
        Backbone.load(BackboneSpec(TINY, str(garbage)))


def test_unknown_names_are_user_errors():
    with pytest.raises(OodbenchError, match="Unknown model 'ViT-B-61'.*Did you mean"):
        Backbone.load(BackboneSpec("ViT-B-61"))
    with pytest.raises(OodbenchError, match="neither an existing file nor a known tag.*openai"):
        Backbone.load(BackboneSpec("ViT-B-16", "opnai"))
    with pytest.raises(OodbenchError, match="No file exists"):
        Backbone.load(BackboneSpec(TINY, "/no/such/weights.pt"))
    with pytest.raises(OodbenchError, match="fp16 needs a GPU"):
        Backbone.load(BackboneSpec(TINY, precision="fp16", device="cpu"))
    with pytest.raises(OodbenchError, match="precision"):
        Backbone.load(BackboneSpec(TINY, precision="fp8"))


def test_quick_gelu_for_weight_files(tmp_path, tiny_backbone):
    # A TorchScript archive (how OpenAI ships CLIP) is recognised as needing QuickGELU.
    scripted = torch.jit.script(torch.nn.Linear(2, 2))
    jit_path = tmp_path / "openai_style.pt"
    torch.jit.save(scripted, str(jit_path))
    assert file_needs_quick_gelu(TINY, jit_path, "0" * 64)
    # A plain state dict is not, unless forced; forcing switches the activation.
    plain = tmp_path / "plain.pt"
    torch.save(tiny_backbone.model.state_dict(), plain)
    assert not file_needs_quick_gelu(TINY, plain, "0" * 64)
    forced = Backbone.load(BackboneSpec(TINY, str(plain), quick_gelu=True))
    assert forced.identity["quick_gelu"] is True
    assert any(isinstance(m, QuickGELU) for m in forced.model.modules())
    assert not any(isinstance(m, QuickGELU) for m in tiny_backbone.model.modules())


def test_known_quick_gelu_release_by_hash(tmp_path, tiny_backbone):
    from open_clip.pretrained import get_pretrained_cfg

    url = get_pretrained_cfg("ViT-B-16", "openai")["url"]
    sha = url.split("/")[-2]  # OpenAI's URLs carry the file's sha256
    assert len(sha) == 64
    assert file_needs_quick_gelu("ViT-B-16", tmp_path, sha)


def test_bf16_autocast_on_cpu_is_close_to_fp32(tiny_backbone):
    b = Backbone.load(BackboneSpec(TINY, precision="bf16", device="cpu"))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad(), b.autocast():
        f16 = F.normalize(b.model.encode_image(x).float(), dim=-1)
    with torch.no_grad():
        f32 = F.normalize(tiny_backbone.model.encode_image(x), dim=-1)
    assert (f16 - f32).abs().max() < 0.05


def test_interpolation_is_part_of_the_identity():
    bicubic = Backbone.load(BackboneSpec(TINY))
    bilinear = Backbone.load(BackboneSpec(TINY, interpolation="bilinear"))
    assert "bicubic" in bicubic.identity["preprocess"] and "bilinear" in bilinear.identity["preprocess"]
    assert bicubic.key != bilinear.key  # so cached image features never mix the two
    with pytest.raises(OodbenchError, match="Unknown interpolation"):
        Backbone.load(BackboneSpec(TINY, interpolation="nearest"))


def test_resize_before_the_centre_crop_as_openood_does():
    # OpenOOD-VLM (AdaNeg, TANL) preprocesses with Resize(256) + CenterCrop(224); CLIP with Resize(224) +
    # CenterCrop(224). --resize gives the former, keeps the interpolation, and is part of the identity.
    import numpy as np
    from PIL import Image
    from torchvision import transforms as T

    plain = Backbone.load(BackboneSpec(TINY, interpolation="bicubic"))
    crop = plain.preprocess.transforms[1].size[0]
    wide = Backbone.load(BackboneSpec(TINY, interpolation="bicubic", resize=crop + 8))
    assert wide.key != plain.key and f"size={crop + 8}" in wide.identity["preprocess"]
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (61, 97, 3), dtype=np.uint8))
    want = T.Compose([T.Resize(crop + 8, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(crop),
                      T.ToTensor(), T.Normalize(plain.preprocess.transforms[-1].mean,
                                                plain.preprocess.transforms[-1].std)])(image)
    assert torch.equal(wide.preprocess(image), want)
    assert not torch.equal(plain.preprocess(image), want)  # the default resizes to the crop size
    with pytest.raises(OodbenchError, match=f"at least {crop}"):
        Backbone.load(BackboneSpec(TINY, resize=crop - 1))
