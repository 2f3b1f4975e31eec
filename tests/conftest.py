"""Shared fixtures: a tiny random open_clip model, generated image folders, an isolated cache.

Everything runs offline on the CPU. Progress bars are switched off so test logs stay readable.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("OODBENCH_NO_PROGRESS", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))

TINY = "oodbench-tiny"


@pytest.fixture(scope="session")
def tiny_backbone():
    from oodbench.backbone import Backbone, BackboneSpec

    return Backbone.load(BackboneSpec(TINY, "none", seed=0))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Never touch the user's ~/.cache/oodbench or results/ from a test."""
    monkeypatch.setenv("OODBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("OODBENCH_DATA", raising=False)


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


@pytest.fixture
def folder_benchmark(tmp_path) -> dict[str, Path]:
    """A generated ID set (3 classes x 6 images) and two flat OOD folders."""
    root = tmp_path / "bench"
    for k, (name, colour) in enumerate([("red square", (220, 30, 30)), ("green square", (30, 200, 40)),
                                        ("blue square", (30, 40, 220))]):
        write_images(root / "id" / name.replace(" ", "_"), 6, colour, seed=k)
    write_images(root / "ood_a", 8, (240, 240, 240), seed=10)
    write_images(root / "ood_b" / "nested", 5, (0, 0, 0), seed=11)
    return {"id": root / "id", "ood_a": root / "ood_a", "ood_b": root / "ood_b"}
