"""The CLIPN model: what is trainable, the additive prompts, the class heads."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from oodbench.methods.clipn.losses import clipn_loss
from oodbench.methods.clipn.model import (
    CLIPN,
    class_heads,
    ensemble,
    clean_template,
    load_prompt_pairs,
)
from oodbench.prompts import class_prompts


@pytest.fixture
def clipn(tiny_backbone):
    return CLIPN(tiny_backbone.model)


# sha256 of the reference's lines as its inference reads them ("\n"-joined, newline stripped):
# xmed-lab/CLIPN e465074 src/prompt/prompt.txt and src/prompt/prompt_no.txt (= the hand-crafted tree's).
REFERENCE_YES_SHA256 = "b6c115442a72f3d7167d201a02149541be98d50d99c3a905632bb177b1f09269"
REFERENCE_NO_SHA256 = "06fa24f96e695eee96d017f3bb258be8fc5d5e22de6e20e06e07d93c9366ba80"


def test_prompt_file_is_the_reference_lines_verbatim():
    import hashlib

    yes, no = load_prompt_pairs()
    assert hashlib.sha256("\n".join(yes).encode()).hexdigest() == REFERENCE_YES_SHA256
    assert hashlib.sha256("\n".join(no).encode()).hexdigest() == REFERENCE_NO_SHA256
    assert len(yes) == len(no) == 128 and len(set(yes)) == 128 and len(set(no)) == 98
    assert all(t.startswith("'") and "{}" in t for t in yes + no)
    commas = [i + 1 for i, t in enumerate(yes) if t.endswith("',")]
    assert commas == [35, 99] == [i + 1 for i, t in enumerate(no) if t.endswith("',")]
    assert yes[34].format("tench") == "'a photo of a tench.',"


def test_clean_templates_drop_the_reading_artefacts():
    yes, no = load_prompt_pairs(verbatim=False)
    assert all(t.endswith(".") and "'" not in t and "{}" in t for t in yes + no)
    assert yes[34] == "a photo of a {}." and no[34] == "a photo of no {}."
    assert yes[64 + 34] == "a photo with a {}." and no[64 + 34] == "a photo without a {}."
    assert len(set(no)) == 97  # line 35's negation now equals another line's
    assert clean_template("'a {}.',") == clean_template("'a {}.'") == "a {}."


def test_shapes_follow_the_backbone_and_prompt_starts_at_zero(clipn, tiny_backbone):
    width = tiny_backbone.model.transformer.width
    assert clipn.no.prompt_no.shape == (16, 77, width)  # width 64 here: nothing assumes 512
    assert torch.count_nonzero(clipn.no.prompt_no) == 0
    assert set(clipn.no.state_dict()) == {
        k.replace(k.split(".")[0], k.split(".")[0] + "_no", 1)
        for k in tiny_backbone.model.state_dict()
        if k.split(".")[0] in ("transformer", "token_embedding", "positional_embedding", "ln_final",
                               "text_projection")} | {"prompt_no"}


def test_no_tower_starts_as_the_yes_tower(clipn, tiny_backbone):
    tokens = tiny_backbone.tokenizer(["a red circle", "a photo of a small blue square"])
    clipn.eval()
    assert torch.allclose(clipn.encode_text_no(tokens), clipn.encode_text(tokens), atol=1e-6)
    ref = F.normalize(tiny_backbone.model.encode_text(tokens), dim=-1)
    assert torch.allclose(clipn.encode_text(tokens), ref, atol=1e-5)


def test_prompt_choice_in_training_mean_in_eval(clipn):
    with torch.no_grad():
        clipn.no.prompt_no.copy_(torch.arange(16.0).view(16, 1, 1).expand_as(clipn.no.prompt_no))
    clipn.train()
    offsets = clipn.no.prompt_offset(torch.tensor([0, 3, 16]))
    assert offsets[:, 0, 0].tolist() == [0.0, 3.0, 7.5]  # prompt 0, prompt 3, the mean
    clipn.eval()
    assert clipn.no.prompt_offset(torch.tensor([3])).shape == (77, clipn.no.prompt_no.shape[-1])
    assert clipn.no.prompt_offset()[0, 0].item() == 7.5
    assert CLIPN(clipn.clip, n_prompts=0).no.prompt_offset() is None  # hand-crafted


def test_gradients_reach_only_the_no_tower(clipn, tiny_backbone):
    clipn.train()
    tokens = tiny_backbone.tokenizer(["a red circle", "a green square", "a blue circle"])
    images = torch.randn(3, 3, 32, 32)
    loss = clipn_loss(clipn.encode_image(images), clipn.encode_text(tokens),
                      clipn.encode_text_no(tokens, torch.tensor([0, 5, 16])), scale=10.0, gather=False)
    loss.total.backward()
    assert all(p.grad is None and not p.requires_grad for p in clipn.clip.parameters())
    grads = {n: p.grad for n, p in clipn.no.named_parameters()}
    assert all(g is not None for g in grads.values()), [n for n, g in grads.items() if g is None]
    assert grads["prompt_no"].abs().sum() > 0
    assert grads["transformer_no.resblocks.0.attn.in_proj_weight"].abs().sum() > 0
    # the train-mode clipn keeps its frozen towers in eval mode
    assert not clipn.clip.training and clipn.no.training


def test_class_heads_are_normalised_sums(clipn, tiny_backbone):
    names, templates = ["cat", "dog"], ["a {}.", "a photo of the {}."]
    with torch.no_grad():
        clipn.no.prompt_no.normal_()
    yes, no = class_heads(tiny_backbone, clipn.no, names, templates)
    tokens = tiny_backbone.tokenizer(class_prompts(names, templates))
    clipn.eval()
    want_yes = F.normalize(F.normalize(clipn.encode_text(tokens), dim=-1).view(2, 2, -1).sum(1), dim=-1)
    with torch.no_grad():
        want_no = F.normalize(clipn.encode_text_no(tokens).view(2, 2, -1).sum(1), dim=-1)
    assert torch.allclose(yes, want_yes, atol=1e-5) and torch.allclose(no, want_no, atol=1e-5)
    assert not torch.allclose(yes, no, atol=1e-3)  # the prompt offset changed the "no" side
    assert torch.allclose(ensemble(torch.ones(4, 3), 2), torch.full((2, 3), 3 ** -0.5))


def test_other_tower_sizes_and_a_linear_projection(tmp_path):
    """Width 48, context 32 and an nn.Linear text projection (proj_bias): nothing assumes ViT-B's 512 / 77."""
    from oodbench.backbone import Backbone, BackboneSpec
    from oodbench.methods.clipn.checkpoint import checkpoint_meta, load_clipn, save_weights

    backbone = Backbone.load(BackboneSpec("oodbench-tiny-linproj", "none"))
    clipn = CLIPN(backbone.model)
    assert clipn.no.prompt_no.shape == (16, 32, 48)
    assert isinstance(clipn.no.text_projection_no, torch.nn.Linear)
    tokens = backbone.tokenizer(["a red circle", "two blue squares on a table"])
    clipn.eval()
    assert torch.allclose(clipn.encode_text_no(tokens), clipn.encode_text(tokens), atol=1e-6)
    clipn.train()
    loss = clipn_loss(clipn.encode_image(torch.randn(2, 3, 32, 32)), clipn.encode_text(tokens),
                      clipn.encode_text_no(tokens, torch.tensor([1, 16])), gather=False)
    loss.total.backward()
    assert clipn.no.text_projection_no.bias.grad is not None
    path = tmp_path / "lin.safetensors"
    save_weights(path, clipn, checkpoint_meta(clipn, backbone.identity))
    loaded, _ = load_clipn(path, backbone.model)
    assert torch.equal(loaded.no.text_projection_no.weight, clipn.no.text_projection_no.weight)
