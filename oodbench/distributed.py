"""torch.distributed plumbing shared by feature extraction and CLIPN training.

One process by default; under ``torchrun`` (``WORLD_SIZE > 1``) a process group is set up: NCCL with one
GPU per process, Gloo on CPUs. Nothing here is home-made beyond choosing the backend and device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from oodbench.devices import resolve_device


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def setup_distributed(device: str) -> Dist:
    """One process, or torchrun's environment (WORLD_SIZE > 1): NCCL on GPUs, Gloo on CPUs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(device=resolve_device(device))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    want = resolve_device(device)
    if want.type == "cuda":
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), local_rank, dev, owns)


def world() -> tuple[int, int]:
    """(rank, world size) of the current process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def broadcast(value: Any) -> Any:
    """``value`` as rank 0 has it, on every rank (identity in one process)."""
    rank, size = world()
    if size == 1:
        return value
    box = [value if rank == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_rows(local: torch.Tensor, total: int) -> torch.Tensor:
    """Reassemble a strided split: rank r holds rows r, r + W, r + 2W, ... of ``total`` rows."""
    rank, size = world()
    if size == 1:
        return local
    longest = (total + size - 1) // size
    padded = torch.zeros(longest, *local.shape[1:], dtype=local.dtype, device=local.device)
    padded[: len(local)] = local
    parts = [torch.empty_like(padded) for _ in range(size)]
    dist.all_gather(parts, padded)
    out = torch.empty(total, *local.shape[1:], dtype=local.dtype, device=local.device)
    for r, part in enumerate(parts):
        n = len(range(r, total, size))
        out[r::size] = part[:n]
    return out
