"""Built-in methods. Importing this package registers every one of them in ``oodbench.scorer.METHODS``.

One module (or package) per method, each with a pure score function and a registered :class:`Scorer`.
"""

from __future__ import annotations

from methods import clipn, mcm, msp, neglabel, zoc_lite  # noqa: F401  (each registers itself)
