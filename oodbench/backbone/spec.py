"""What the user asks for: :class:`BackboneSpec` (model, weights, precision, device, activation, resize)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PRECISIONS = ("fp32", "bf16", "fp16")
#: Resize interpolations: open_clip's default is bicubic; MCM's and NegLabel's code resized bilinearly.
INTERPOLATIONS = ("bicubic", "bilinear")


def valid_resize(value: Any) -> bool:
    """Whether ``value`` can be a ``resize``: a whole number of pixels, at least 1 (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass(frozen=True)
class BackboneSpec:
    """What the user asked for. ``pretrained``: an open_clip tag, a file, a bundled name, or ``none``."""

    model: str
    pretrained: str = "none"
    precision: str = "fp32"
    device: str = "auto"
    quick_gelu: bool | None = None  # None = decide automatically
    seed: int = 0  # random initialisation seed, used only with pretrained "none"
    interpolation: str | None = None  # image resize: None = the model's default (bicubic for CLIP)
    # the shorter side before the centre crop: None = the crop size, as CLIP and open_clip resize; OpenOOD
    # and OpenOOD-VLM (AdaNeg, TANL) resize to 256, then crop 224
    resize: int | None = None
