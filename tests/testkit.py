"""Shared test helpers (importable as ``testkit``; ``conftest`` names clash between test folders)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

TINY = "oodbench-tiny"


def write_images(folder: Path, n: int, colour: tuple[int, int, int], seed: int, size: int = 32) -> list[Path]:
    """``n`` small PNGs: a coloured square on noise, different per index."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        arr = rng.integers(0, 60, size=(size, size, 3), dtype=np.uint8)
        x, y = rng.integers(0, size // 2, size=2)
        arr[y:y + size // 2, x:x + size // 2] = colour
        p = folder / f"img_{i:03d}.png"
        Image.fromarray(arr).save(p)
        paths.append(p)
    return paths
