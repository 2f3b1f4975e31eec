"""oodbench: zero-shot OOD detection benchmarks for CLIP-like models.

Encode once, score many: image features of one backbone are cached per data set, and every
method (MSP, MCM, ZOC-lite, NegLabel, CLIPN-CTW/ATD) scores those same features.
"""

from __future__ import annotations

__version__ = "0.1.0"

from oodbench.errors import OodbenchError  # noqa: E402

__all__ = ["OodbenchError", "__version__"]
