"""Import every module that registers something: data sets, benchmarks' lexicons, toyworld, methods.

Registration happens at import time; this module is the one place that says which modules those are.
"""

from __future__ import annotations

import importlib

from oodbench.scorer import load_methods

# Modules that register data sets, lexicons and bundled weights when imported.
REGISTERING_MODULES = [
    "oodbench.data.datasets",
    "oodbench.lexicon",
    "oodbench.toyworld",
]

_done = False


def load_all() -> None:
    """Populate every registry (idempotent)."""
    global _done
    if _done:
        return
    for module in REGISTERING_MODULES:
        importlib.import_module(module)
    load_methods()
    _done = True
