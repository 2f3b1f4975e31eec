"""CLIPN under torch.distributed on CPUs (Gloo): the gathered loss, and torchrun running the trainer."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from clipn_helpers import write_pairs_csv
from safetensors.torch import load_file

from oodbench.backbone import Backbone, BackboneSpec
from oodbench.methods.clipn.losses import clipn_loss
from oodbench.methods.clipn.model import CLIPN


def _features(n: int = 6, d: int = 5) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return [F.normalize(torch.randn(n, d, generator=gen), dim=-1) for _ in range(3)]


def _worker(rank: int, world: int, init_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        full = _features()
        ref_inputs = [x.clone().requires_grad_(True) for x in full]
        ref = clipn_loss(*ref_inputs, scale=10.0, gather=False)
        ref.total.backward()
        rows = slice(rank * 3, rank * 3 + 3)
        mine = [x[rows].clone().requires_grad_(True) for x in full]
        loss = clipn_loss(*mine, scale=10.0, gather=True)
        loss.total.backward()
        assert torch.allclose(loss.total, ref.total, atol=1e-6)  # every rank sees the global batch
        for x, r in zip(mine, ref_inputs):  # the own slice keeps its gradient of the full loss
            assert torch.allclose(x.grad, r.grad[rows], atol=1e-6)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_gathered_loss_and_own_slice_gradients(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "rendezvous")), nprocs=2, join=True)


@pytest.mark.slow
def test_torchrun_two_processes_match_one_process_with_the_global_batch(tmp_path):
    data = write_pairs_csv(tmp_path / "pairs", 16)
    common = ["--data", str(data), "--model", "oodbench-tiny", "--pretrained", "none", "--epochs", "1",
              "--workers", "0", "--log-every", "1", "--max-steps", "2"]
    env = {**os.environ, "OODBENCH_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "oodbench.cli", "train", "clipn", *common, "--out", str(tmp_path / "ddp"),
         "--batch-size", "4"],
        capture_output=True, text=True, env=env, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = subprocess.run(
        [sys.executable, "-m", "oodbench.cli", "train", "clipn", *common, "--out", str(tmp_path / "one"),
         "--batch-size", "8"], capture_output=True, text=True, env=env, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    logs = {k: [json.loads(x) for x in (tmp_path / k / "log.jsonl").read_text().splitlines()]
            for k in ("ddp", "one")}
    # step 1: same weights, same global batch -> the same loss
    assert logs["ddp"][0]["loss"] == pytest.approx(logs["one"][0]["loss"], abs=1e-5)
    assert json.loads((tmp_path / "ddp" / "config.json").read_text())["world_size"] == 2
    # DDP averages the ranks' gradients (as the reference does): half the single-process gradient,
    # which Adam's normalised update almost cancels
    assert logs["ddp"][1]["loss"] == pytest.approx(logs["one"][1]["loss"], abs=1e-4)
    a, b = (load_file(str(tmp_path / k / "clipn.safetensors")) for k in ("ddp", "one"))
    init = CLIPN(Backbone.load(BackboneSpec("oodbench-tiny", "none")).model).no.state_dict()
    moved = max(float((b[k] - init[k]).abs().max()) for k in b)
    apart = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert apart < 0.25 * moved, (apart, moved)
