"""Trainers exposed as ``oodbench train NAME``: typer-annotated command functions, by name.

A package names its trainer in the entry-point group ``oodbench.trainers`` (``clipn =
"oodbench.methods.clipn.command:train_clipn"``); :data:`TRAINERS` fills itself from that group on first use
and the CLI loads a trainer only when its sub-command runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from oodbench.registry import Registry, entry_point_source

GROUP = "oodbench.trainers"

TRAINERS: Registry[Callable[..., Any]] = Registry("trainer", sources=[entry_point_source(GROUP)])


def trainer_names() -> list[str]:
    """The names of the trainers, read from the entry points without importing any of them."""
    from importlib.metadata import entry_points

    return sorted({ep.name for ep in entry_points(group=GROUP)} | set(TRAINERS._items))
