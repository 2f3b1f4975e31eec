"""The runner: one encoding pass shared by every method, and interrupted runs that cache nothing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from testkit import TINY

from oodbench.backbone import Backbone, BackboneSpec
from oodbench.benchmarks import custom_benchmark
from oodbench.data.base import FileImageSet
from oodbench.data.spec import DataContext
from oodbench.features import FeatureStore
from oodbench.runner import RunConfig, run


def config(bench, tmp_path, methods=("msp", "mcm")) -> RunConfig:
    spec = custom_benchmark(f"folder:{bench['id']}", [f"folder:{bench['ood_a']}", f"folder:{bench['ood_b']}"])
    return RunConfig(methods=list(methods), benchmark=spec, backbone=BackboneSpec(TINY, "none"),
                     data=DataContext(), store=FeatureStore(tmp_path / "cache"), out_dir=tmp_path / "out",
                     workers=0, batch_size=4)


def test_one_encoding_pass_for_all_methods(folder_benchmark, tmp_path, monkeypatch):
    calls = []
    real = Backbone.encode_images

    def counting(self, dataset, **kw):
        calls.append(dataset.name)
        return real(self, dataset, **kw)

    monkeypatch.setattr(Backbone, "encode_images", counting)
    results = run(config(folder_benchmark, tmp_path))
    assert [r.method for r in results] == ["msp", "mcm"]
    assert len(calls) == 3  # ID + 2 OOD sets, whatever the number of methods
    run(config(folder_benchmark, tmp_path))
    assert len(calls) == 3  # and none on the second run


def test_interrupted_encoding_leaves_no_cache_entry(folder_benchmark, tmp_path, monkeypatch):
    real = FileImageSet.load_image
    seen = {"n": 0}

    def interrupt_later(self, index):
        seen["n"] += 1
        if seen["n"] == 25:  # inside the first OOD set (the ID set has 18 images)
            raise KeyboardInterrupt
        return real(self, index)

    monkeypatch.setattr(FileImageSet, "load_image", interrupt_later)
    cfg = config(folder_benchmark, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    entries = cfg.store.entries("images")
    assert len(entries) == 1 and entries[0].meta["dataset"] == f"folder:{folder_benchmark['id']}"
    assert not list((tmp_path / "cache" / "images").glob(".tmp-*"))
    assert not (tmp_path / "out").exists()


def test_method_errors_come_before_any_encoding(folder_benchmark, tmp_path):
    from oodbench.errors import OodbenchError

    cfg = config(folder_benchmark, tmp_path, methods=("mcm", "clipn-atd"))  # no CLIPN checkpoint given
    with pytest.raises(OodbenchError, match="clipn-checkpoint"):
        run(cfg)
    assert cfg.store.entries("images") == []


def test_method_all_leaves_out_the_methods_missing_an_input(folder_benchmark, tmp_path, caplog, monkeypatch):
    # `--method all` on ImageNet without a CLIPN checkpoint failed (after AdaNeg had mined its bank); now
    # it runs every other method and says what it left out. A method named on its own still fails, and
    # before any data set is opened.
    import logging

    import oodbench.runner as runner
    from oodbench.errors import OodbenchError

    cfg = config(folder_benchmark, tmp_path, methods=("mcm", "clipn-ctw", "eoe"))
    scorers = {m: runner.make_scorer(m, cfg) for m in ("mcm", "clipn-ctw", "eoe")}
    assert scorers["mcm"].unmet() is None
    with caplog.at_level(logging.WARNING, logger="oodbench.runner"):
        assert runner.runnable(list(scorers), scorers, ["all"]) == ["mcm"]
    text = caplog.text
    assert "left out clipn-ctw" in text and "--clipn-checkpoint" in text
    assert "left out eoe" in text and "envisioned_classes" in text
    with pytest.raises(OodbenchError, match="clipn-checkpoint"):
        runner.runnable(list(scorers), scorers, ["all", "clipn-ctw"])  # named: its error
    with pytest.raises(OodbenchError, match="None of the methods can run"):
        runner.runnable(["eoe"], {"eoe": scorers["eoe"]}, ["all"])
    # given its input, the method runs
    cfg.method_params["eoe"] = {"labels": "toyworld"}
    assert runner.make_scorer("eoe", cfg).unmet() is None
    monkeypatch.setattr(runner, "open_dataset", lambda *a, **k: pytest.fail("opened a data set"))
    with pytest.raises(OodbenchError, match="clipn-checkpoint"):
        run(config(folder_benchmark, tmp_path, methods=("mcm", "clipn-ctw")))


def test_patch_features_only_when_a_method_needs_them(folder_benchmark, tmp_path, monkeypatch):
    calls = []
    real = Backbone.encode_images

    def counting(self, dataset, **kw):
        calls.append((dataset.name, kw.get("patches", False) is not False))
        return real(self, dataset, **kw)

    monkeypatch.setattr(Backbone, "encode_images", counting)
    cfg = config(folder_benchmark, tmp_path, methods=("mcm",))
    run(cfg)
    assert [p for _, p in calls] == [False] * 3 and cfg.store.entries("patches") == []
    before = {e.key: e.path.stat().st_mtime_ns for e in cfg.store.entries("images")}
    # global features cached, patch features not: one pass per set computes them, the cached globals stay
    gl = run(config(folder_benchmark, tmp_path, methods=("gl-mcm", "mcm")))
    assert [p for _, p in calls[3:]] == [True] * 3
    assert {e.key: e.path.stat().st_mtime_ns for e in cfg.store.entries("images")} == before
    entries = cfg.store.entries("patches")
    assert len(entries) == 3 and {tuple(e.meta["shape"][1:]) for e in entries} == {(16, 32)}
    stored = np.load(entries[0].path / "patches.npy", mmap_mode="r")
    assert stored.dtype == np.float16 and stored.shape[1:] == (16, 32)
    assert [r.method for r in gl] == ["gl-mcm", "mcm"] and gl[0].rows[-1]["auroc"] >= 0
    # everything cached now: no image is decoded again
    again = run(config(folder_benchmark, tmp_path, methods=("gl-mcm",)))
    assert len(calls) == 6
    assert again[0].rows == gl[0].rows


def test_patch_scores_equal_the_pure_function_on_cached_patches(folder_benchmark, tmp_path):
    from oodbench.methods.gl_mcm import glmcm_score
    from oodbench.runner import encode_dataset

    cfg = config(folder_benchmark, tmp_path, methods=("gl-mcm",))
    cfg.save = False
    result = run(cfg)[0]
    backbone = Backbone.load(cfg.backbone)
    from oodbench.data.base import open_dataset

    id_set = open_dataset(cfg.benchmark.id, cfg.data)
    ood_set = open_dataset(cfg.benchmark.ood[0], cfg.data)
    enc_id = encode_dataset(backbone, id_set, cfg.store, 4, 0, ("global", "patch"))
    enc_ood = encode_dataset(backbone, ood_set, cfg.store, 4, 0, ("global", "patch"))
    assert enc_id.cached and enc_id.patches.dtype == torch.float16 and enc_id.patches.shape == (18, 16, 32)
    text = backbone.class_text_features(id_set.class_names, ["a photo of a {}"])
    from oodbench.metrics import ood_metrics

    s_id = glmcm_score(enc_id.features, enc_id.patches, text).numpy()
    s_ood = glmcm_score(enc_ood.features, enc_ood.patches, text).numpy()
    assert result.rows[0]["auroc"] == pytest.approx(ood_metrics(s_id, s_ood, "nearest")["auroc"], abs=1e-12)


def test_towers_without_patch_features_fail_before_encoding(folder_benchmark, tmp_path, monkeypatch):
    from oodbench.backbone.patches import PatchFeaturesUnsupported

    def unsupported(self):
        raise PatchFeaturesUnsupported("no patches here")

    monkeypatch.setattr(Backbone, "patch_count", property(unsupported))
    cfg = config(folder_benchmark, tmp_path, methods=("mcm", "gl-mcm"))
    with pytest.raises(PatchFeaturesUnsupported, match="no patches here"):
        run(cfg)
    assert cfg.store.entries("images") == [] and cfg.store.entries("patches") == []


def test_interrupted_patch_encoding_leaves_no_patch_entry(folder_benchmark, tmp_path, monkeypatch):
    cfg = config(folder_benchmark, tmp_path, methods=("mcm",))
    run(cfg)
    real = FileImageSet.load_image
    seen = {"n": 0}

    def interrupt_later(self, index):
        seen["n"] += 1
        if seen["n"] == 10:  # inside the ID set's patch pass
            raise KeyboardInterrupt
        return real(self, index)

    monkeypatch.setattr(FileImageSet, "load_image", interrupt_later)
    with pytest.raises(KeyboardInterrupt):
        run(config(folder_benchmark, tmp_path, methods=("gl-mcm",)))
    assert cfg.store.entries("patches") == [] and len(cfg.store.entries("images")) == 3
    assert not list((tmp_path / "cache" / "patches").glob(".tmp-*"))


def test_methods_may_exclude_more_word_files(tmp_path):
    import dataclasses

    from oodbench.lexicon import LEXICONS, Lexicon
    from oodbench.runner import _lexicon_loader

    seen = []

    def recording(options):
        seen.append(options)
        return Lexicon(["kettle"], ["noun"], source="recording")

    LEXICONS.register("recording-test", recording)
    bench = dataclasses.replace(custom_benchmark("folder:/x", ["folder:/y"]), lexicon="recording-test",
                                lexicon_options={"exclude": ["noun.animal"]})
    cfg = RunConfig(methods=["mcm"], benchmark=bench, backbone=BackboneSpec(TINY, "none"), data=DataContext(),
                    store=FeatureStore(tmp_path / "cache"))
    load = _lexicon_loader(cfg)
    load()
    load(exclude=["noun.person", "adj.pert"])
    load(exclude=["noun.person", "adj.pert"])  # memoised per options
    assert seen == [{"exclude": ["noun.animal"]}, {"exclude": ["adj.pert", "noun.animal", "noun.person"]}]
    words = tmp_path / "words.txt"
    words.write_text("teapot\n")
    lex = _lexicon_loader(dataclasses.replace(cfg, words_file=words))(exclude=["noun.person"])
    assert lex.words == ["teapot"]  # a word file has no files to exclude


def test_set_ups_whose_numbers_mean_nothing_are_warned_about_and_recorded(tmp_path, caplog):
    from testkit import write_images

    one_class = write_images(tmp_path / "id" / "cat", 6, (200, 40, 40), seed=1)
    (tmp_path / "mixed").mkdir()
    for p in one_class[:2]:  # two ID files linked into an OOD folder
        (tmp_path / "mixed" / p.name).symlink_to(p)
    write_images(tmp_path / "mixed" / "own", 3, (40, 40, 200), seed=2)
    spec = custom_benchmark(f"folder:{tmp_path / 'id'}", [f"folder:{tmp_path / 'id'}", f"folder:{tmp_path / 'mixed'}"])
    cfg = RunConfig(methods=["mcm"], benchmark=spec, backbone=BackboneSpec(TINY, "none"), data=DataContext(),
                    store=FeatureStore(tmp_path / "cache"), out_dir=tmp_path / "out", workers=0, batch_size=8,
                    verify_content=True)
    result = run(cfg)[0]
    warnings = result.provenance["warnings"]
    assert len(warnings) == 3
    assert "single class" in warnings[0]
    assert "is the same folder as the ID set" in warnings[1]
    assert "shares 2 of its 5 files with the ID set" in warnings[2]
    assert all(w in caplog.text for w in warnings)
    identity = result.provenance["datasets"][f"folder:{tmp_path / 'mixed'}"]
    assert identity["covers"].endswith("content") and len(identity["content_sha256"]) == 24


def test_a_custom_run_on_other_ood_sets_says_it_replaces_the_last(folder_benchmark, tmp_path, caplog):
    # A custom benchmark is named after its ID folder alone: a run against other OOD folders wrote the
    # same file without a word.
    import logging

    cfg = config(folder_benchmark, tmp_path, methods=("mcm",))
    cfg.bootstrap = 0
    run(cfg)
    with caplog.at_level(logging.WARNING, logger="oodbench.runner"):
        run(cfg)  # the same sets: nothing to say
        assert "replaces them" not in caplog.text
        other = custom_benchmark(f"folder:{folder_benchmark['id']}", [f"folder:{folder_benchmark['ood_a']}"])
        run(dataclasses.replace(cfg, benchmark=other))
    assert "held results on other OOD sets" in caplog.text and "--tag NAME" in caplog.text
