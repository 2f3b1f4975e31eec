"""Built-in methods. Importing this package registers every one of them in ``oodbench.scorer.METHODS``.

One module (or package) per method, each with a pure score function and a registered :class:`Scorer`.
"""

from __future__ import annotations

import importlib

# Modules are imported by name so that the list reads as data; each registers itself on import.
BUILTIN = ["msp", "mcm", "neglabel", "zoc_lite", "clipn"]

for _name in BUILTIN:
    try:
        importlib.import_module(f"methods.{_name}")
    except ModuleNotFoundError as exc:  # a method still being written must not break the others
        if exc.name != f"methods.{_name}":
            raise
