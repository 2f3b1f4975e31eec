"""FeatureStore: round trip, keys, atomic writes, maintenance."""

from __future__ import annotations

import numpy as np
import pytest

from oodbench.errors import OodbenchError
from oodbench.features import FeatureStore, key_of


def test_round_trip_is_memory_mapped(tmp_path):
    store = FeatureStore(tmp_path)
    parts = {"backbone": {"model": "m"}, "dataset": {"name": "d", "files_sha256": "abc"}}
    feats = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    store.save("images", parts, {"features": feats, "labels": np.arange(5)}, meta={"dataset": "d"})
    got = store.load("images", parts)
    assert isinstance(got["features"], np.memmap)
    np.testing.assert_array_equal(got["features"], feats)
    np.testing.assert_array_equal(got["labels"], np.arange(5))
    assert store.load("images", {**parts, "dataset": {"name": "d", "files_sha256": "abd"}}) is None
    assert (store.hits, store.misses) == (1, 1)


def test_key_is_order_independent_and_content_sensitive():
    assert key_of({"a": 1, "b": [1, 2]}) == key_of({"b": [1, 2], "a": 1})
    assert key_of({"a": 1}) != key_of({"a": 2})


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    store = FeatureStore(tmp_path)
    calls = {"n": 0}
    real_save = np.save

    def exploding_save(path, arr, allow_pickle=False):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-write
        real_save(path, arr, allow_pickle=allow_pickle)

    monkeypatch.setattr(np, "save", exploding_save)
    with pytest.raises(KeyboardInterrupt):
        store.save("images", {"k": 1}, {"a": np.zeros(3), "b": np.ones(3)})
    monkeypatch.setattr(np, "save", real_save)
    assert store.load("images", {"k": 1}) is None
    assert list((tmp_path / "images").iterdir()) == []  # no temporary folder left either


def test_get_or_compute_computes_once(tmp_path):
    store = FeatureStore(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return {"x": np.arange(3)}

    for _ in range(3):
        np.testing.assert_array_equal(store.get_or_compute("text", {"p": "q"}, compute)["x"], np.arange(3))
    assert len(calls) == 1


def test_entries_and_clear(tmp_path):
    store = FeatureStore(tmp_path)
    store.save("images", {"k": 1}, {"a": np.zeros(10)}, meta={"dataset": "cifar10"})
    store.save("text", {"k": 2}, {"a": np.zeros(10)})
    assert [e.kind for e in store.entries()] == ["images", "text"]
    assert store.entries("images")[0].meta["dataset"] == "cifar10"
    with pytest.raises(OodbenchError, match="Kinds present: images, text"):
        store.clear("imgs")
    assert store.clear("text") == 1
    assert [e.kind for e in store.entries()] == ["images"]
    assert store.clear() == 1 and store.entries() == []


def test_default_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("OODBENCH_CACHE", str(tmp_path / "elsewhere"))
    assert FeatureStore().root == tmp_path / "elsewhere"


def test_entries_written_in_place(tmp_path):
    store = FeatureStore(tmp_path)
    with store.writing("patches", {"k": 1}, meta={"dataset": "d"}) as entry:
        big = entry.open("patches", (4, 3, 2), np.float16)
        assert store.load("patches", {"k": 1}) is None  # not visible before the block ends
        big[:] = np.arange(24).reshape(4, 3, 2)
        entry.put("labels", np.arange(4))
    got = store.load("patches", {"k": 1})
    assert got["patches"].dtype == np.float16 and isinstance(got["patches"], np.memmap)
    np.testing.assert_array_equal(got["patches"], np.arange(24).reshape(4, 3, 2))
    np.testing.assert_array_equal(got["labels"], np.arange(4))
    with pytest.raises(KeyboardInterrupt):
        with store.writing("patches", {"k": 2}) as entry:
            entry.open("patches", (4, 3, 2), np.float16)[:2] = 1
            raise KeyboardInterrupt  # interrupted half-way: nothing is left
    assert store.load("patches", {"k": 2}) is None
    assert sorted(p.name for p in (tmp_path / "patches").iterdir()) == [store.entries("patches")[0].key]
