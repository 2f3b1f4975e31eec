"""The clipn-ctw / clipn-atd scorers: fitting from a checkpoint, caching, templates, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import oodbench.methods.clipn.scorers as scorers_mod
from oodbench.errors import CheckpointError
from oodbench.features import FeatureStore
from oodbench.methods.clipn.checkpoint import checkpoint_meta, save_weights
from oodbench.methods.clipn.model import CLIPN, class_heads, load_prompt_pairs
from oodbench.methods.clipn.scores import atd_score, ctw_score
from oodbench.scorer import METHODS, FitContext

NAMES = ["red circle", "blue square", "green circle"]


@pytest.fixture
def checkpoint(tmp_path, tiny_backbone):
    clipn = CLIPN(tiny_backbone.model)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in clipn.no.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    path = tmp_path / "clipn.safetensors"
    save_weights(path, clipn, checkpoint_meta(clipn, tiny_backbone.identity))
    return path, clipn


def ctx_for(backbone, tmp_path, templates=None):
    return FitContext(backbone=backbone, class_names=NAMES, templates=templates, device=torch.device("cpu"),
                      seed=0, cache=FeatureStore(tmp_path / "store"), cache_dir=tmp_path / "store")


def test_registered_with_parameters():
    assert {"clipn-ctw", "clipn-atd"} <= set(METHODS.names())
    ctw = METHODS.get("clipn-ctw").from_params({"checkpoint": "x.safetensors", "scale": "50",
                                                 "quote_templates": "false"})
    assert ctw.params() == {"checkpoint": "x.safetensors", "scale": 50.0, "quote_templates": False}


def test_fit_and_score_match_the_pure_functions(tmp_path, tiny_backbone, checkpoint):
    path, clipn = checkpoint
    ctw = METHODS.get("clipn-ctw")(checkpoint=str(path))
    atd = METHODS.get("clipn-atd")(checkpoint=str(path))
    ctw.fit(ctx_for(tiny_backbone, tmp_path))
    atd.fit(ctx_for(tiny_backbone, tmp_path))
    yes, no = class_heads(tiny_backbone, clipn.no, NAMES, load_prompt_pairs()[0])
    feats = F.normalize(torch.randn(9, yes.shape[1], generator=torch.Generator().manual_seed(1)), dim=-1)
    assert torch.allclose(ctw.score(feats), ctw_score(feats, yes, no), atol=1e-5)
    assert torch.allclose(atd.score(feats), atd_score(feats, yes, no), atol=1e-5)
    assert ctw.decide(feats).dtype == torch.bool and atd.decide(feats).shape == (9,)
    assert torch.equal(ctw.predict_classes(feats), (feats @ yes.T).argmax(-1))
    assert ctw.provenance()["variant"] == "learnable" and ctw.provenance()["n_templates"] == 128


def test_yes_heads_are_built_as_the_reference_builds_them(tmp_path, tiny_backbone, checkpoint):
    # merge_yes_no_feature: per class, tokenize line.format(name) for every raw line, encode with the
    # frozen tower, L2-normalise, sum, normalise.
    path, _ = checkpoint
    ctw = METHODS.get("clipn-ctw")(checkpoint=str(path))
    ctw.fit(ctx_for(tiny_backbone, tmp_path))
    lines = load_prompt_pairs()[0]
    with torch.no_grad():
        want = torch.stack([
            F.normalize(F.normalize(tiny_backbone.model.encode_text(
                tiny_backbone.tokenizer([ln.format(name) for ln in lines])), dim=-1).sum(0), dim=0)
            for name in NAMES])
    assert torch.allclose(ctw.heads()[0], want, atol=1e-5)  # float32 sums in another order


def test_heads_are_cached_and_the_checkpoint_is_not_read_again(tmp_path, tiny_backbone, checkpoint,
                                                                monkeypatch):
    path, _ = checkpoint
    first = METHODS.get("clipn-atd")(checkpoint=str(path))
    first.fit(ctx_for(tiny_backbone, tmp_path))

    def boom(*args, **kwargs):
        raise AssertionError("the checkpoint was loaded although the heads are cached")

    monkeypatch.setattr(scorers_mod, "load_clipn", boom)
    again = METHODS.get("clipn-atd")(checkpoint=str(path))
    again.fit(ctx_for(tiny_backbone, tmp_path))
    assert torch.equal(first.heads()[1], again.heads()[1])
    with pytest.raises(AssertionError, match="was loaded"):  # other templates: a new cache entry
        METHODS.get("clipn-atd")(checkpoint=str(path)).fit(ctx_for(tiny_backbone, tmp_path, ["a {}."]))


def test_user_templates_and_unquoted_templates_change_the_heads(tmp_path, tiny_backbone, checkpoint):
    path, _ = checkpoint
    heads = []
    for templates, quote in ((None, True), (None, False), (["a photo of a {}."], True)):
        s = METHODS.get("clipn-ctw")(checkpoint=str(path), quote_templates=quote)
        s.fit(ctx_for(tiny_backbone, tmp_path, templates))
        heads.append(s.heads()[0])
    assert not torch.allclose(heads[0], heads[1]) and not torch.allclose(heads[0], heads[2])


def test_missing_checkpoint_says_what_to_do(tmp_path, tiny_backbone):
    with pytest.raises(CheckpointError, match="--clipn-checkpoint.*oodbench train clipn"):
        METHODS.get("clipn-ctw")().fit(ctx_for(tiny_backbone, tmp_path))


def test_handcrafted_checkpoint_uses_the_no_pool(tmp_path, tiny_backbone):
    clipn = CLIPN(tiny_backbone.model, n_prompts=0)
    with torch.no_grad():
        clipn.no.ln_final_no.bias.add_(0.1)
    path = tmp_path / "hc.safetensors"
    save_weights(path, clipn, checkpoint_meta(clipn, tiny_backbone.identity))
    atd = METHODS.get("clipn-atd")(checkpoint=str(path))
    atd.fit(ctx_for(tiny_backbone, tmp_path))
    yes_t, no_t = load_prompt_pairs()
    _, want_no = class_heads(tiny_backbone, clipn.no, NAMES, yes_t, no_t)
    assert torch.allclose(atd.heads()[1], want_no, atol=1e-5)
    assert atd.provenance()["variant"] == "handcrafted"


def test_official_file_scores_like_the_compact_file(tmp_path, tiny_backbone, checkpoint):
    from test_clipn_checkpoint import official_file

    path, clipn = checkpoint
    official = official_file(tmp_path / "epoch_10.pt", clipn)
    feats = F.normalize(torch.randn(5, 32, generator=torch.Generator().manual_seed(2)), dim=-1)
    scores = []
    for p in (path, official):
        s = METHODS.get("clipn-ctw")(checkpoint=str(p))
        s.fit(ctx_for(tiny_backbone, tmp_path))
        scores.append(s.score(feats))
    assert torch.allclose(scores[0], scores[1], atol=1e-6)
