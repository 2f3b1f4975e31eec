"""Process-level plumbing of CLIPN training: precision, RNG state, determinism (process groups: oodbench.distributed)."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

import torch

from oodbench.errors import OodbenchError


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto``: bf16 on GPUs that support it, else fp16; fp32 elsewhere. fp16 needs a GPU."""
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise OodbenchError(f"Unknown precision {precision!r}. Choose auto, fp32, bf16 or fp16.")
    if precision == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp16" and device.type != "cuda":
        raise OodbenchError("--precision fp16 needs a CUDA GPU (it trains with a GradScaler). "
                            "Use fp32 or bf16.")
    return precision


def capture_rng() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuple(state["python"]))
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(x: Any) -> Any:
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


@contextlib.contextmanager
def deterministic_kernels(enabled: bool) -> Iterator[None]:
    """``torch.use_deterministic_algorithms`` for the duration of a run, then the previous setting.

    On the CPU, some multi-threaded backward kernels (scatter-style accumulation such as the token
    embedding's gradient) otherwise sum in an order that depends on thread timing: runs then drift apart
    by ~1e-6 per step, and a resumed run would not end bit for bit where an uninterrupted one does.
    """
    if not enabled:
        yield
        return
    before = torch.are_deterministic_algorithms_enabled()
    before_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=before_warn)
