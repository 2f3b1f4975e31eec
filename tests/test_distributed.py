"""Feature extraction under torchrun: two CPU processes (Gloo) give the results of one process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from testkit import TINY

from oodbench.distributed import gather_rows


def test_gather_rows_is_identity_in_one_process():
    x = torch.arange(12.0).view(6, 2)
    assert torch.equal(gather_rows(x, 6), x)


@pytest.mark.slow
def test_torchrun_two_processes_match_one(folder_benchmark, tmp_path):
    args = ["run", "-m", "mcm", "-m", "msp", "--id", f"folder:{folder_benchmark['id']}",
            "--ood", f"folder:{folder_benchmark['ood_a']},folder:{folder_benchmark['ood_b']}",
            "--model", TINY, "--pretrained", "none", "--workers", "0", "--batch-size", "4", "--device", "cpu"]
    env_single = {"OODBENCH_CACHE": str(tmp_path / "c1")}
    env_ddp = {"OODBENCH_CACHE": str(tmp_path / "c2")}
    import os

    single = subprocess.run([sys.executable, "-m", "oodbench.cli", *args, "--out", str(tmp_path / "one")],
                            capture_output=True, text=True, timeout=300, env={**os.environ, **env_single})
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "oodbench.cli", *args, "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, **env_ddp, "OMP_NUM_THREADS": "1"})
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    for method in ("mcm", "msp"):
        one = json.loads(next((tmp_path / "one").rglob(f"{method}.json")).read_text())
        two = json.loads(next((tmp_path / "two").rglob(f"{method}.json")).read_text())
        for r1, r2 in zip(one["rows"], two["rows"]):
            assert r1["ood"] == r2["ood"] and r1["n_id"] == r2["n_id"] and r1["n_ood"] == r2["n_ood"]
            for key in ("auroc", "fpr95", "aupr_in", "aupr_out", "id_accuracy"):
                assert r1[key] == pytest.approx(r2[key], abs=1e-6)
    # the cache written by rank 0 holds the same features as the single process wrote
    import numpy as np

    f1 = sorted((tmp_path / "c1" / "images").glob("*/features.npy"))
    f2 = sorted((tmp_path / "c2" / "images").glob("*/features.npy"))
    assert len(f1) == len(f2) == 3
    for a, b in zip(f1, f2):
        assert a.parent.name == b.parent.name
        np.testing.assert_allclose(np.load(a), np.load(b), atol=1e-5)
