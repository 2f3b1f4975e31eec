"""The runner: one encoding pass shared by every method, and interrupted runs that cache nothing."""

from __future__ import annotations

import pytest
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
