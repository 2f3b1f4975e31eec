"""toyworld's vocabulary, read from the data file ``world.json`` beside this module.

Everything a generated image or caption can contain is named there: object classes with their geometry,
colours, sizes, positions, background / scene textures and the caption grammar. This module only reads it.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WORLD_FILE = Path(__file__).resolve().parent / "world.json"


@dataclass(frozen=True)
class CaptionForm:
    """One production of the caption grammar: a template with ``{slot}`` fields and a sampling weight."""

    template: str
    weight: float


@dataclass(frozen=True)
class World:
    """The toy world's vocabulary and rendering constants (see ``world.json`` for their meaning)."""

    image_size: int
    supersample: int
    id_classes: tuple[str, ...]
    objects: dict[str, list[dict[str, Any]]]
    colours: dict[str, tuple[int, int, int]]
    colour_jitter: int
    sizes: dict[str, float]
    size_jitter: float
    positions: dict[str, tuple[float, float]]
    position_jitter: float
    max_rotation: float
    backgrounds: tuple[str, ...]
    background_grey: tuple[tuple[int, int], tuple[int, int]]
    scene_textures: tuple[str, ...]
    object_captions: tuple[CaptionForm, ...]
    texture_captions: tuple[CaptionForm, ...]
    position_phrases: dict[str, str]
    sha256: str

    @property
    def object_names(self) -> list[str]:
        """All object classes, in the data file's order."""
        return list(self.objects)

    @property
    def near_classes(self) -> tuple[str, ...]:
        """The object classes that are not ID: toyworld's near-OOD classes."""
        return tuple(n for n in self.objects if n not in self.id_classes)

    @property
    def texture_words(self) -> list[str]:
        """Every texture word (backgrounds and object-free scenes), without repeats."""
        return list(dict.fromkeys([*self.backgrounds, *self.scene_textures]))


def _forms(items: list[dict[str, Any]]) -> tuple[CaptionForm, ...]:
    return tuple(CaptionForm(str(i["template"]), float(i["weight"])) for i in items)


def parse_world(raw: dict[str, Any], sha256: str = "") -> World:
    """Build a :class:`World` from the parsed JSON, checking the few cross-references it has."""
    objects = {str(k): list(v) for k, v in raw["objects"].items()}
    id_classes = tuple(raw["id_classes"])
    missing = [c for c in id_classes if c not in objects]
    if missing:
        raise ValueError(f"toyworld: ID classes without geometry: {missing}")
    caps = raw["captions"]
    world = World(
        image_size=int(raw["image_size"]),
        supersample=int(raw["supersample"]),
        id_classes=id_classes,
        objects=objects,
        colours={k: tuple(v) for k, v in raw["colours"].items()},  # type: ignore[misc]
        colour_jitter=int(raw["colour_jitter"]),
        sizes={k: float(v) for k, v in raw["sizes"].items()},
        size_jitter=float(raw["size_jitter"]),
        positions={k: (float(v[0]), float(v[1])) for k, v in raw["positions"].items()},
        position_jitter=float(raw["position_jitter"]),
        max_rotation=float(raw["max_rotation"]),
        backgrounds=tuple(raw["backgrounds"]),
        background_grey=tuple(tuple(p) for p in raw["background_grey"]),  # type: ignore[arg-type]
        scene_textures=tuple(raw["scene_textures"]),
        object_captions=_forms(caps["object"]),
        texture_captions=_forms(caps["texture"]),
        position_phrases=dict(caps["position_phrases"]),
        sha256=sha256,
    )
    if set(world.position_phrases) != set(world.positions):
        raise ValueError("toyworld: every position needs a caption phrase")
    return world


@functools.lru_cache(maxsize=4)
def load_world(path: Path = WORLD_FILE) -> World:
    """The world described by ``path`` (default: the bundled ``world.json``), cached."""
    data = Path(path).read_bytes()
    return parse_world(json.loads(data), hashlib.sha256(data).hexdigest())
