"""Device resolution: ``auto`` picks CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

from typing import TYPE_CHECKING

from oodbench.errors import OodbenchError

if TYPE_CHECKING:
    import torch


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """The torch device for ``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or a device)."""
    import torch

    if isinstance(device, torch.device):
        return device
    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise OodbenchError(f"Unknown device {device!r}. Use auto, cpu, cuda, cuda:N or mps.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise OodbenchError(f"Device {device!r} was asked for, but torch sees no CUDA GPU. Use --device cpu.")
    return dev
