"""EOE: the score on hand-built features, label files (released JSON and text), cleaning, and the fit."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from testkit import basis
from testkit import images_with_cosines as images

from oodbench.errors import OodbenchError
from oodbench.methods import eoe
from oodbench.scorer import METHODS, FitContext

D = 8


def _softmax(values, temp):
    z = [math.exp(v / temp) for v in values]
    return [v / sum(z) for v in z]


def test_score_is_max_id_prob_minus_beta_max_outlier_prob_over_one_softmax():
    cos = [0.3, 0.1, 0.25, 0.05]  # 2 ID classes, 2 outlier labels
    x = images([cos], D)
    ids, outs = basis(2, D), basis(4, D)[2:]
    for temp, beta in ((1.0, 0.25), (0.1, 0.25), (1.0, 1.0)):
        p = _softmax(cos, temp)
        expected = max(p[:2]) - beta * max(p[2:])
        assert eoe.eoe_score(x, ids, outs, temp, beta).item() == pytest.approx(expected, rel=1e-12)


def test_defaults_are_t1_beta_quarter():
    cos = [0.3, 0.1, 0.25]
    p = _softmax(cos, 1.0)
    x = images([cos], D)
    got = eoe.eoe_score(x, basis(2, D), basis(3, D)[2:]).item()
    assert got == pytest.approx(p[0] - 0.25 * p[2], rel=1e-12)
    assert (eoe.EOE().temperature, eoe.EOE().beta) == (1.0, 0.25)


def test_an_outlier_match_lowers_the_score():
    ids, outs = basis(2, D), basis(3, D)[2:]
    x = images([[0.3, 0.0, 0.0], [0.3, 0.0, 0.5]], D)
    s = eoe.eoe_score(x, ids, outs)
    assert s[0] > s[1]


def test_labels_from_json_far_and_near():
    assert eoe.labels_from_json({"far": ["Waterfall", "desert"]}) == ["Waterfall", "desert"]
    near = {"tench": ["goldfish", "coral reef"], "goldfish": ["koi fish"]}
    assert eoe.labels_from_json(near) == ["goldfish", "coral reef", "koi fish"]  # keys are not labels
    assert eoe.labels_from_json(["a", "b"]) == ["a", "b"]
    for bad in ({"far": "waterfall"}, {"far": [1, 2]}, "waterfall", 3):
        with pytest.raises(OodbenchError):
            eoe.labels_from_json(bad)


def test_read_json_and_text_files(tmp_path):
    j = tmp_path / "ImageNet_gpt_0.json"
    j.write_text(json.dumps({"far": ["Sunflower", "Desert"]}))
    assert eoe.read_outlier_labels(j) == ["Sunflower", "Desert"]
    t = tmp_path / "labels.txt"
    t.write_text("# my labels\nsunflower\n\n  desert dunes \n")
    assert eoe.read_outlier_labels(t) == ["sunflower", "  desert dunes "]
    (tmp_path / "empty.txt").write_text("\n# nothing\n")
    with pytest.raises(OodbenchError, match="no labels"):
        eoe.read_outlier_labels(tmp_path / "empty.txt")
    (tmp_path / "broken.json").write_text('{"far": [')
    with pytest.raises(OodbenchError, match="does not parse"):
        eoe.read_outlier_labels(tmp_path / "broken.json")


def test_missing_file_says_where_the_released_files_are(tmp_path):
    with pytest.raises(OodbenchError) as err:
        eoe.read_outlier_labels(tmp_path / "nope.json")
    text = str(err.value)
    assert "nope.json" in text and "Aboriginer/EOE" in text and "envisioned_classes" in text
    assert "https://github.com/Aboriginer/EOE" in text and "far_500/ImageNet_gpt-3.5-turbo-16k_0.json" in text
    assert "No outlier-label file was given" in eoe.missing_labels_message()


def test_cleaning_lowercases_dedups_and_drops_id_names():
    ids = ["Siamese cat", "tench"]
    raw = ["Goldfish", "goldfish", "TENCH", "tench ", "siamese cat", "paper  towels", "paper towels"]
    assert eoe.clean_outlier_labels(raw, ids) == ["goldfish", "paper towels"]


def test_near_overlap_removal_is_case_sensitive_like_the_reference():
    ids = ["Siamese cat", "tench"]
    raw = ["cat toy", "siamese fighting fish", "tench net", "goldfish"]
    assert eoe.clean_outlier_labels(raw, ids, near=True) == ["siamese fighting fish", "goldfish"]
    assert eoe.clean_outlier_labels(raw, ids, near=True, overlap_case_sensitive=False) == ["goldfish"]
    assert eoe.clean_outlier_labels(raw, ids, near=False) == raw


def test_pre_filter_mask():
    ids = basis(2, D)
    outs = images([[0.9, 0.0], [0.5, 0.2], [0.86, 0.1]], D)
    assert eoe.pre_filter_mask(outs, ids, 0.85).tolist() == [False, True, False]
    assert eoe.pre_filter_mask(outs, ids, None).tolist() == [True, True, True]


def test_score_needs_outlier_labels():
    with pytest.raises(OodbenchError):
        eoe.eoe_score(images([[0.1]], D), basis(1, D), torch.empty(0, D, dtype=torch.float64))


# -------------------------------------------------------------------------------------------- fit
CLASSES = ["red square", "green square", "blue square"]


def make_ctx(backbone):
    return FitContext(backbone=backbone, class_names=CLASSES, templates=None, device=torch.device("cpu"),
                      seed=0, cache=None)


def test_fit_without_labels_is_a_clear_error(tiny_backbone, tmp_path):
    assert METHODS.get("eoe") is eoe.EOE
    with pytest.raises(OodbenchError, match="No outlier-label file was given.*Aboriginer/EOE"):
        eoe.EOE().fit(make_ctx(tiny_backbone))
    with pytest.raises(OodbenchError, match="missing.json does not exist"):
        eoe.EOE(labels=str(tmp_path / "missing.json")).fit(make_ctx(tiny_backbone))
    only_ids = tmp_path / "ids.txt"
    only_ids.write_text("Red Square\ngreen square\n")
    with pytest.raises(OodbenchError, match="none is left"):
        eoe.EOE(labels=str(only_ids)).fit(make_ctx(tiny_backbone))


def test_fit_and_score(tiny_backbone, tmp_path):
    f = tmp_path / "ImageNet_gpt_0.json"
    f.write_text(json.dumps({"far": ["Kettle", "kettle", "Red Square", "violin", "blue whale"]}))
    scorer = eoe.EOE(labels=str(f), near=True)
    scorer.fit(make_ctx(tiny_backbone))
    assert scorer.outlier_labels == ["kettle", "violin"]  # near: "blue whale" shares "blue" with an ID name
    prov = scorer.provenance()
    assert prov["labels_raw"] == 5 and prov["labels_used"] == 2
    ids = tiny_backbone.class_text_features(CLASSES, ["a photo of a {}"])
    outs = tiny_backbone.encode_texts(["a photo of a kettle", "a photo of a violin"])
    x = F.normalize(torch.randn(5, 32, generator=torch.Generator().manual_seed(0)), dim=1)
    torch.testing.assert_close(scorer.score(x), eoe.eoe_score(x, ids, outs), atol=1e-7, rtol=0)
    assert scorer.predict_classes(x).tolist() == (x @ ids.T).argmax(1).tolist()
    assert prov["labels_file"] == "ImageNet_gpt_0.json"  # the file's name, never a local path
    table = scorer.exports({})["labels"]
    assert table["label"].tolist() == ["kettle", "violin"]
    assert table["max_id_cosine"].tolist() == pytest.approx((outs @ ids.T).amax(1).tolist(), abs=1e-6)
    far = eoe.EOE(labels=str(f))
    far.fit(make_ctx(tiny_backbone))
    assert far.outlier_labels == ["kettle", "violin", "blue whale"]
    everything = eoe.EOE(labels=str(f), pre_filter=-1.0)  # every cosine exceeds -1: nothing would be left
    with pytest.raises(OodbenchError, match="pre_filter"):
        everything.fit(make_ctx(tiny_backbone))


def test_toyworld_ships_its_own_label_file():
    path = eoe.resolve_labels_file("toyworld")
    labels = eoe.read_outlier_labels(path)
    assert path.name == "eoe_labels.txt" and len(labels) == 23
    assert "not produced by a language model" in path.read_text().lower()
