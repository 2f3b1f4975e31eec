"""QuickGELU for pretrained tags, checked offline by spying on open_clip's model constructor.

open_clip's download and checkpoint loading are replaced by stubs, and its ``CLIP`` / ``CustomTextCLIP``
classes by a builder that records the ``quick_gelu`` it receives and builds the tiny test model with it,
so ``Backbone.load`` runs its real code path for a tag such as ``openai`` and nothing is downloaded.
"""

from __future__ import annotations

import json
import warnings
from importlib import resources

import open_clip
import open_clip.factory as factory
import pytest
from open_clip.model import CLIP
from open_clip.transformer import QuickGELU
from torch import nn

from oodbench.backbone import Backbone, BackboneSpec
from oodbench.backbone.activation import config_uses_quick_gelu, tag_needs_quick_gelu
from oodbench.errors import OodbenchError


@pytest.fixture
def spy(monkeypatch):
    """Calls of open_clip's model constructor: one dict of keyword arguments per model built."""
    tiny = json.loads(resources.files("oodbench").joinpath("model_configs/oodbench-tiny.json").read_text())
    calls: list[dict] = []

    def build(**cfg):
        calls.append(cfg)
        return CLIP(embed_dim=tiny["embed_dim"], vision_cfg=tiny["vision_cfg"], text_cfg=tiny["text_cfg"],
                    quick_gelu=cfg.get("quick_gelu", False))

    monkeypatch.setattr(factory, "download_pretrained", lambda *a, **k: "/nonexistent/weights.bin")
    monkeypatch.setattr(factory, "load_checkpoint", lambda *a, **k: None)
    monkeypatch.setattr("oodbench.backbone.model.load_weights_file", lambda *a, **k: None)  # oodbench's loader
    monkeypatch.setattr(factory, "CLIP", build)
    monkeypatch.setattr(factory, "CustomTextCLIP", build)
    return calls


def _load(model: str, tag: str, **kw) -> Backbone:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # open_clip's "QuickGELU mismatch" warning fails here
        return Backbone.load(BackboneSpec(model=model, pretrained=tag, device="cpu", **kw))


def _activation(bb: Backbone) -> type[nn.Module]:
    return type(bb.model.transformer.resblocks[0].mlp.gelu)


@pytest.mark.parametrize("model, tag, quick", [
    ("ViT-B-16", "openai", True),
    ("RN50", "openai", True),  # ResNets: the flag reaches the text tower
    ("ViT-B-16", "dfn2b", True),
    ("ViT-B-32", "laion400m_e32", True),
    ("ViT-B-16-quickgelu", "openai", True),
    ("ViT-B-16", "laion2b_s34b_b88k", False),
    ("ViT-B-32", "laion2b_s34b_b79k", False),
])
def test_tag_builds_the_activation_its_weights_were_trained_with(spy, model, tag, quick):
    bb = _load(model, tag)
    assert bool(spy[-1].get("quick_gelu")) is quick
    assert (_activation(bb) is QuickGELU) is quick
    assert bb.identity["quick_gelu"] is quick


@pytest.mark.filterwarnings("ignore:QuickGELU mismatch")
def test_activation_is_part_of_the_cache_key(spy):
    auto = _load("ViT-B-16", "openai")
    gelu = Backbone.load(BackboneSpec(model="ViT-B-16", pretrained="openai", device="cpu", quick_gelu=False))
    assert _activation(gelu) is nn.GELU and gelu.identity["quick_gelu"] is False
    assert auto.key != gelu.key


@pytest.mark.filterwarnings("ignore:QuickGELU mismatch")
def test_forcing_gelu_on_a_quickgelu_tag_warns(spy, caplog):
    with caplog.at_level("WARNING", logger="oodbench.backbone.model"):
        Backbone.load(BackboneSpec(model="ViT-B-16", pretrained="openai", device="cpu", quick_gelu=False))
    assert "trained with QuickGELU" in caplog.text


def test_quickgelu_config_cannot_be_turned_off(spy):
    with pytest.raises(OodbenchError, match="cannot turn QuickGELU off"):
        Backbone.load(BackboneSpec(model="ViT-B-16-quickgelu", pretrained="openai", device="cpu",
                                   quick_gelu=False))
    assert not spy  # refused before anything was built


def test_every_openai_tag_asks_for_quickgelu():
    openai = [m for m, t in open_clip.list_pretrained() if t == "openai"]
    assert {"RN50", "RN101", "ViT-B-32", "ViT-B-16", "ViT-L-14"} <= set(openai)
    assert all(tag_needs_quick_gelu(m, "openai") for m in openai)
    assert not tag_needs_quick_gelu("ViT-B-16", "laion2b_s34b_b88k")
    # a config that builds QuickGELU without '-quickgelu' in its name
    assert config_uses_quick_gelu("roberta-ViT-B-32") and not config_uses_quick_gelu("ViT-B-16")
