"""Fixtures of the CLIPN tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from clipn_helpers import write_pairs_csv


@pytest.fixture(scope="session")
def pairs_csv(tmp_path_factory) -> Path:
    return write_pairs_csv(tmp_path_factory.mktemp("pairs"), 48)


@pytest.fixture(autouse=True)
def _one_thread():
    """The tiny model gains nothing from intra-op threads, and on a loaded 2-core machine two OpenMP
    threads spin against each other (a 24-step run: 33 s with 2 threads, 2 s with 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
