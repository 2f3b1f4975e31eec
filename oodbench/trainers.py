"""Trainers exposed as ``oodbench train NAME``: a registry of typer-annotated command functions.

A method package registers its trainer with ``TRAINERS.register("clipn", train_clipn)``; the CLI turns
every entry into a sub-command of ``oodbench train``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from oodbench.registry import Registry

TRAINERS: Registry[Callable[..., Any]] = Registry("trainer")
