"""oodbench: zero-shot OOD detection benchmarks for CLIP-like models.

Encode once, score many: image features of one backbone are cached per data set, and every
method (MSP, MCM, ZOC-lite, NegLabel, CLIPN-CTW/ATD) scores those same features.

The public API is imported on first use, so ``import oodbench`` (and ``oodbench --help``) stays light:

- :func:`oodbench.evaluate` runs a benchmark and returns an :class:`~oodbench.api.Evaluation`
  (``.to_frame()``, ``.scores``, ``.compare(a, b)``);
- :func:`oodbench.load_results` reads result files into the same tidy frame;
- :func:`oodbench.ood_metrics` (AUROC, FPR95, AUPR-In/Out) is the pure metric function behind them;
  :mod:`oodbench.bootstrap` and :mod:`oodbench.compare` hold the intervals and paired comparisons.
"""

from __future__ import annotations

from typing import Any

from oodbench.errors import OodbenchError
from oodbench.version import __version__

_API = ("evaluate", "load_results", "Evaluation")
__all__ = ["OodbenchError", "__version__", *_API, "ood_metrics"]


def __getattr__(name: str) -> Any:
    """Import the public API when it is first used (PEP 562)."""
    if name in _API:
        from oodbench import api

        return getattr(api, name)
    if name == "ood_metrics":
        from oodbench.metrics import ood_metrics

        return ood_metrics
    raise AttributeError(f"module 'oodbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
