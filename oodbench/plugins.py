"""Plug-ins: packages that add data sets, suites, lexicons, bundled weights or model configs.

A plug-in names a ``register()`` function in the entry-point group ``oodbench.plugins``::

    [project.entry-points."oodbench.plugins"]
    mybench = "mybench.plugin:register"

:func:`load_plugins` calls every such function once, the first time any registry that plug-ins fill is
looked at (data sets, benchmarks, lexicons, bundled weights, model configs). A ``register()`` should only
register (cheap objects, openers and loaders that import their heavy parts when they run), so that listing
the benchmarks stays fast. toyworld, the bundled benchmark, is such a plug-in (``oodbench.toyworld``).
Methods and trainers have entry-point groups of their own (``oodbench.methods``, ``oodbench.trainers``).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

GROUP = "oodbench.plugins"

_state = {"loaded": False}


def load_plugins(_registry: Any = None) -> None:
    """Call every ``oodbench.plugins`` entry point's ``register()`` once (idempotent; a registry source)."""
    if _state["loaded"]:
        return
    _state["loaded"] = True
    from importlib.metadata import entry_points

    seen: set[str] = set()
    for ep in entry_points(group=GROUP):
        if ep.value in seen:  # the same plug-in offered by two installs of one package
            continue
        seen.add(ep.value)
        try:
            ep.load()()
        except Exception:  # a broken plug-in must not take the others down with it
            log.exception("could not load oodbench plug-in %r (%s)", ep.name, ep.value)
