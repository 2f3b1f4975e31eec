"""Shared fixtures: a tiny random open_clip model, generated image folders, an isolated cache.

Everything runs offline on the CPU. Progress bars are switched off so test logs stay readable.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("OODBENCH_NO_PROGRESS", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))

from testkit import TINY, write_images  # noqa: F401


@pytest.fixture(scope="session")
def tiny_backbone():
    from oodbench.backbone import Backbone, BackboneSpec

    return Backbone.load(BackboneSpec(TINY, "none", seed=0))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Never touch the user's ~/.cache/oodbench or results/ from a test."""
    monkeypatch.setenv("OODBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("OODBENCH_DATA", raising=False)


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
