"""Data sets by name, without loading anything: :class:`DatasetSpec`, :data:`DATASETS`, :class:`DataContext`.

This module imports neither torch nor PIL, so that plug-ins can register data sets cheaply; opening a
data set (``spec.open(ctx)``) imports what it needs. :data:`DATASETS` fills itself on first use with the
built-in data sets (:mod:`oodbench.data.datasets`) and the plug-ins' (:mod:`oodbench.plugins`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from oodbench.errors import DataError
from oodbench.registry import Registry

if TYPE_CHECKING:
    from oodbench.data.base import ImageSet

DATA_ROOT_ENV = "OODBENCH_DATA"
#: ``folder:PATH`` names any folder as a data set (ID: one sub-folder per class; OOD: images anywhere).
FOLDER_PREFIX = "folder:"


@dataclass
class DataContext:
    """Where data sets live and whether downloads are allowed (never by default)."""

    data_root: Path | None = None
    download: bool = False
    cache_dir: Path | None = None

    @property
    def root(self) -> Path:
        if self.data_root is not None:
            return Path(self.data_root).expanduser()
        env = os.environ.get(DATA_ROOT_ENV)
        if env:
            return Path(env).expanduser()
        raise DataError(
            "No data root given. Pass --data-root DIR (or set OODBENCH_DATA) to the folder that holds "
            "your data sets; `oodbench list datasets` shows the layout each one expects."
        )


@dataclass(frozen=True)
class DatasetSpec:
    """A registered data set: how to open it, what layout it expects, where it comes from."""

    name: str
    description: str
    source: str
    layout: str
    opener: Callable[[DatasetSpec, DataContext], ImageSet] = field(repr=False, compare=False)
    has_classes: bool = False

    def open(self, ctx: DataContext) -> ImageSet:
        return self.opener(self, ctx)


DATASETS: Registry[DatasetSpec] = Registry(
    "dataset", hint="Or use folder:PATH for any ImageFolder-style (ID) or flat (OOD) image folder.",
    sources=["oodbench.data.datasets:register_builtin", "oodbench.plugins:load_plugins"])


def folder_env_var(dataset: str) -> str:
    """The environment variable that points straight at ``dataset``'s folder: ``OODBENCH_<NAME>_DIR``."""
    return f"OODBENCH_{dataset.upper().replace('-', '_').replace('.', '_')}_DIR"


def find_folder(ctx: DataContext, dataset: str, candidates: Sequence[str]) -> Path:
    """The first existing ``<root>/<candidate>`` (or ``$OODBENCH_<NAME>_DIR``); else the first candidate."""
    env = os.environ.get(folder_env_var(dataset))
    if env:
        return Path(env).expanduser()
    root = ctx.root
    for c in candidates:
        if (root / c).is_dir():
            return root / c
    return root / candidates[0]
