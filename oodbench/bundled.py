"""Weights shipped inside a package, by name: ``--pretrained NAME`` (CLIP weights), ``checkpoint=NAME`` (CLIPN).

One registry per kind of file (``bundled("clip")``, ``bundled("clipn")``, ...), filled by plug-ins (see
:mod:`oodbench.plugins`; toyworld ships its tiny CLIP and its CLIPN tower this way). Core code and methods
look names up here and never import the package that ships them. Model configs that plug-ins bring for
open_clip are registered in :data:`MODEL_CONFIG_DIRS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from oodbench.registry import Registry


@dataclass(frozen=True)
class BundledFile:
    """A weights file shipped in a package: for which open_clip ``model``, and how to find it."""

    name: str
    model: str
    locate: Callable[[], Path]  # the path; raises CheckpointError when the file is missing
    description: str = ""

    def path(self) -> Path:
        return self.locate()


_BY_KIND: dict[str, Registry[BundledFile]] = {}

HINTS = {
    "clip": "Or pass an open_clip pretrained tag, a weights file, or 'none' to --pretrained.",
    "clipn": "Or pass a file: --clipn-checkpoint PATH.",
    "eoe-labels": "Or pass a file: -p eoe.labels=PATH.",
}


def bundled(kind: str) -> Registry[BundledFile]:
    """The registry of bundled files of ``kind`` (``"clip"``: CLIP weights; ``"clipn"``: CLIPN towers;
    ``"eoe-labels"``: EOE outlier-label files, whose ``model`` is empty)."""
    if kind not in _BY_KIND:
        _BY_KIND[kind] = Registry(f"bundled {kind} weights", hint=HINTS.get(kind, ""),
                                  sources=["oodbench.plugins:load_plugins"])
    return _BY_KIND[kind]


#: Folders of open_clip model configs (``*.json``) that plug-ins add, by plug-in name.
MODEL_CONFIG_DIRS: Registry[Path] = Registry("model config folder", sources=["oodbench.plugins:load_plugins"])
