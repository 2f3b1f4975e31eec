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


# --------------------------------------------------------------------------------------------- integrity
PARTS = {"backbone": {"model": "m"}, "dataset": {"name": "d", "files_sha256": "abc"}}


def _saved(tmp_path):
    store = FeatureStore(tmp_path)
    feats = np.random.default_rng(1).normal(size=(40, 8)).astype(np.float32)
    entry = store.save("images", PARTS, {"features": feats, "labels": np.arange(40)})
    return store, entry, feats


def _damage_zero_bytes(path):
    path.write_bytes(b"")


def _damage_flip(path):
    data = bytearray(path.read_bytes())
    data[-37] ^= 0x10  # one bit inside the float data, far from the header
    path.write_bytes(bytes(data))


def _damage_truncate(path):
    path.write_bytes(path.read_bytes()[:-4])


def _damage_swap(path):
    np.save(path, np.zeros((40, 8), np.float32))  # a valid file, but another array


@pytest.mark.parametrize("damage", [_damage_zero_bytes, _damage_flip, _damage_truncate, _damage_swap])
def test_a_damaged_entry_is_named_deleted_and_recomputed(tmp_path, caplog, damage):
    store, entry, feats = _saved(tmp_path)
    damage(entry / "features.npy")
    calls = []

    def compute():
        calls.append(1)
        return {"features": feats, "labels": np.arange(40)}

    got = store.get_or_compute("images", PARTS, compute)  # before: EOFError (-> "Aborted.") or wrong numbers
    assert calls == [1] and store.damaged == 1
    np.testing.assert_array_equal(got["features"], feats)
    assert f"cache entry {entry} is damaged" in caplog.text and "features.npy" in caplog.text
    again = FeatureStore(tmp_path).load("images", PARTS)  # the recomputed entry is whole again
    np.testing.assert_array_equal(again["features"], feats)
    assert [p.name for p in (tmp_path / "images").iterdir()] == [entry.name]  # no trash left


def test_a_damaged_meta_file_counts_as_damage(tmp_path, caplog):
    store, entry, _ = _saved(tmp_path)
    (entry / "meta.json").write_text("{not json")
    assert store.load("images", PARTS) is None and store.damaged == 1
    assert "meta.json is unreadable" in caplog.text and not entry.exists()


def test_arrays_and_meta_are_fsynced_before_the_rename(tmp_path, monkeypatch):
    import os
    from pathlib import Path

    events = []
    real_fsync, real_rename = os.fsync, Path.rename
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(Path, "rename", lambda self, t: (events.append("rename"), real_rename(self, t))[1])
    FeatureStore(tmp_path).save("images", PARTS, {"a": np.zeros(3), "b": np.ones(3)})
    assert "rename" in events
    assert events[:events.index("rename")].count("fsync") >= 3  # a.npy, b.npy, meta.json (+ the folder)


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    return int(proc.stdout)


def test_temporary_folders_of_killed_writers_are_swept(tmp_path):
    import os
    import time

    from oodbench.files import owner_tag

    host = owner_tag().split("@", 1)[1]
    kind = tmp_path / "images"
    dead = kind / f".tmp-0123-pid{_dead_pid()}@{host}-abcd1234"
    alive = kind / f".tmp-4567-pid{os.getppid()}@{host}-abcd1234"  # the parent of this process runs
    old = kind / ".tmp-89ab-legacyname"  # an older oodbench's name: only its age tells
    young = kind / ".tmp-cdef-legacyname"
    for d in (dead, alive, old, young):
        (d / "sub").mkdir(parents=True)
    day_ago = time.time() - 25 * 3600
    os.utime(old, (day_ago, day_ago))
    FeatureStore(tmp_path).save("images", PARTS, {"a": np.zeros(3)})
    left = {p.name for p in kind.iterdir() if p.name.startswith(".")}
    assert left == {alive.name, young.name}


def test_a_full_disk_while_caching_is_a_warning_and_leaves_nothing(tmp_path, monkeypatch, caplog):
    import errno

    import oodbench.features as features_mod

    def full(path, array):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(features_mod, "_save_array", full)
    store = FeatureStore(tmp_path)
    got = store.get_or_compute("images", PARTS, lambda: {"a": np.arange(3)})
    np.testing.assert_array_equal(got["a"], np.arange(3))
    assert "No space left on device" in caplog.text
    assert list((tmp_path / "images").iterdir()) == []


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
    # the memory-mapped array is checksummed when the block ends: damage to it is caught on reading
    path = store.entries("patches")[0].path / "patches.npy"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x10
    path.write_bytes(bytes(data))
    assert store.load("patches", {"k": 1}) is None and store.damaged == 1
    with pytest.raises(KeyboardInterrupt), store.writing("patches", {"k": 2}) as entry:
        entry.open("patches", (4, 3, 2), np.float16)[:2] = 1
        raise KeyboardInterrupt  # interrupted half-way: nothing is left
    assert store.load("patches", {"k": 2}) is None
    assert list((tmp_path / "patches").iterdir()) == []  # the damaged entry went; the interrupted left none
