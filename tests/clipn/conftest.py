"""Fixtures of the CLIPN tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from clipn_helpers import write_pairs_csv


@pytest.fixture(scope="session")
def pairs_csv(tmp_path_factory) -> Path:
    return write_pairs_csv(tmp_path_factory.mktemp("pairs"), 48)
