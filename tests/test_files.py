"""Files oodbench writes: whole or not at all, readable by others as the umask says (not 0600 / 0700)."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from oodbench.features import FeatureStore
from oodbench.files import atomic_write_text, make_temp_dir
from oodbench.results import ResultSet


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_write_respects_the_umask(tmp_path, umask_022):
    target = tmp_path / "sub" / "a.txt"
    atomic_write_text(target, "hello")
    assert target.read_text() == "hello" and _mode(target) == 0o644
    assert not [p for p in target.parent.iterdir() if p.name != "a.txt"]  # no temporary left behind
    assert _mode(make_temp_dir(tmp_path, ".t-")) == 0o755


def test_a_stricter_umask_is_kept(tmp_path):
    old = os.umask(0o077)
    try:
        atomic_write_text(tmp_path / "b.txt", "x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "b.txt") == 0o600


def test_cache_entries_and_results_are_readable_by_colleagues(tmp_path, umask_022):
    store = FeatureStore(tmp_path / "cache")
    entry = store.save("images", {"k": 1}, {"features": np.zeros((2, 3), np.float32)})
    assert _mode(entry) == 0o755
    assert {_mode(p) for p in entry.iterdir()} == {0o644}
    result = ResultSet("b", {"slug": "m_w"}, "mcm", {}, [{"ood": "o", "auroc": 0.5, "fpr95": 0.5,
                                                          "aupr_in": 0.5, "aupr_out": 0.5}])
    path = result.save(tmp_path / "results" / "mcm.json")
    assert _mode(path) == 0o644 and _mode(path.with_suffix(".csv")) == 0o644


def test_a_full_disk_while_saving_results_leaves_no_json_without_its_csv(tmp_path, monkeypatch):
    import errno

    from oodbench.errors import OodbenchError

    result = ResultSet("b", {"slug": "m_w"}, "mcm", {}, [{"ood": "o", "auroc": 0.5, "fpr95": 0.5}])
    calls = {"n": 0}
    real = os.fsync

    def fill_up(fd):
        calls["n"] += 1
        if calls["n"] == 2:  # the second of the two files
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(os, "fsync", fill_up)
    path = tmp_path / "results" / "mcm.json"
    with pytest.raises(OodbenchError, match=r"Could not write the results .*No space left on device.*free some"):
        result.save(path)
    assert sorted(p.name for p in path.parent.iterdir()) == []  # neither file, no temporaries


def test_an_out_folder_that_cannot_be_written_is_named_before_any_work(tmp_path, monkeypatch):
    from oodbench.errors import OodbenchError
    from oodbench.files import check_writable_dir

    check_writable_dir(tmp_path / "new" / "deeper", "the result files", "--out")  # creatable: fine
    assert not (tmp_path / "new").exists()  # and nothing was created
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: os.fspath(p) != os.fspath(tmp_path) and real(p, mode))
    with pytest.raises(OodbenchError, match=r"--out .*new: .* is not writable by you"):
        check_writable_dir(tmp_path / "new", "the result files", "--out")
