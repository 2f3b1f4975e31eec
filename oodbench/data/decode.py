"""Decoding an image file into the RGB picture it shows, for every mode PIL opens.

8-bit modes convert as the references' loaders do (torchvision's ``pil_loader``: ``.convert("RGB")``):
``1`` -> black / white, ``L`` -> grey, ``P`` -> its palette colours, ``RGBA`` / ``LA`` / ``PA`` -> the colour
channels (alpha dropped), ``CMYK`` / ``YCbCr`` / ``LAB`` / ``HSV`` -> PIL's conversion.

High-bit-depth greyscale is *scaled*, not clipped (PIL's ``convert`` clips at 255, which turns a 16-bit
PNG almost white):

- ``I;16`` (and ``I;16B`` / ``I;16L`` / ``I;16N``), 16-bit: ``round(v / 257)``, so 0 -> 0 and 65535 -> 255;
- ``I`` (32-bit integers, how 16-bit files open in some readers): the same 16-bit scale when every value
  lies in [0, 65535], else the image's own range ``[min, max]`` mapped linearly onto [0, 255];
- ``F`` (32-bit floats): ``round(255 v)`` when every value lies in [0, 1], else ``[min, max]`` onto
  [0, 255]; NaN and infinities become 0 (black).

Decompression bombs: PIL refuses images of more than twice ``Image.MAX_IMAGE_PIXELS`` pixels (89.5
million by default); ``OODBENCH_MAX_IMAGE_PIXELS`` sets that limit (``0`` or ``none``: no limit).
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from oodbench.errors import OodbenchError

MAX_PIXELS_ENV = "OODBENCH_MAX_IMAGE_PIXELS"
_UINT16_MAX = 65535


def pixel_limit() -> int | None | bool:
    """PIL's pixel limit asked for by ``$OODBENCH_MAX_IMAGE_PIXELS``: a number, None (no limit), or False
    (not set: PIL's default stays)."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return False
    if raw.lower() in ("0", "none"):
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 1:
        raise OodbenchError(f"${MAX_PIXELS_ENV} is {raw!r}; set it to a number of pixels (e.g. 300000000), or "
                            "to 0 for no limit.")
    return value


def apply_pixel_limit(limit: int | None | bool) -> None:
    """Set PIL's decompression-bomb limit in this process (``False``: leave PIL's default)."""
    if limit is not False:
        Image.MAX_IMAGE_PIXELS = limit  # type: ignore[assignment]


def bomb_hint() -> str:
    return (f"PIL refuses to decode it as a possible decompression bomb. If you trust the file, raise the "
            f"limit with {MAX_PIXELS_ENV}=<pixels> (or {MAX_PIXELS_ENV}=0 for no limit), or shrink the image")


def _to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    span = high - low
    scaled = (values - low) * (255.0 / span) if span > 0 else np.zeros_like(values)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def grey_levels(image: Image.Image) -> np.ndarray:
    """[H, W] uint8 grey levels of a high-bit-depth greyscale image (``I;16*``, ``I``, ``F``), scaled."""
    values = np.asarray(image).astype(np.float64)
    if image.mode.startswith("I;16"):
        return _to_uint8(values, 0.0, _UINT16_MAX)
    bad = ~np.isfinite(values)
    finite = values[~bad]
    if finite.size == 0:
        return np.zeros(values.shape, np.uint8)
    low, high = float(finite.min()), float(finite.max())
    values[bad] = low
    if image.mode == "I" and low >= 0 and high <= _UINT16_MAX:
        out = _to_uint8(values, 0.0, _UINT16_MAX)
    elif image.mode == "F" and low >= 0 and high <= 1:
        out = _to_uint8(values, 0.0, 1.0)
    else:
        out = _to_uint8(values, low, high)
    out[bad] = 0
    return out


def to_rgb(image: Image.Image) -> Image.Image:
    """The RGB picture ``image`` shows (see the module docstring for each mode), always a new image (the
    file ``image`` was read from may be closed afterwards)."""
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        return Image.fromarray(grey_levels(image), "L").convert("RGB")
    return image.convert("RGB")
