"""Shared test helpers (importable as ``testkit``; ``conftest`` names clash between test folders)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
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


# --------------------------------------------------------------------- hand-built features (float64)
def basis(n: int, dim: int) -> torch.Tensor:
    """The first n standard basis vectors of R^dim as float64 rows: text features with known cosines."""
    return torch.eye(dim, dtype=torch.float64)[:n]


def image_with_cosines(cosines: list[float], dim: int) -> torch.Tensor:
    """A unit vector x with cos(x, e_i) = cosines[i]; the rest of its norm sits on the last axis."""
    x = torch.zeros(dim, dtype=torch.float64)
    x[:len(cosines)] = torch.tensor(cosines, dtype=torch.float64)
    rest = 1.0 - sum(c * c for c in cosines)
    assert rest >= 0 and len(cosines) < dim
    x[-1] = math.sqrt(rest)
    return x


def images_with_cosines(rows: list[list[float]], dim: int) -> torch.Tensor:
    """[len(rows), dim] unit vectors; row i has the cosines rows[i] to the basis (see image_with_cosines)."""
    return torch.stack([image_with_cosines(r, dim) for r in rows])
