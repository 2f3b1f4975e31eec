"""Scenes: every random choice behind one toyworld image, drawn from a seeded generator.

A :class:`Scene` is plain data; :func:`oodbench.toyworld.render.render_scene` turns it into pixels and
:mod:`oodbench.toyworld.captions` into words, both deterministically. Image ``index`` of stream
``stream`` under ``seed`` always gets the same scene (:func:`scene_rng`), so any item can be
regenerated on its own, in any order, in any process.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from oodbench.toyworld.textures import TextureParams
from oodbench.toyworld.world import World

#: Bump when sampling or rendering changes in a way the world file does not capture.
GENERATOR_VERSION = 1


@dataclass(frozen=True)
class Scene:
    """One image's content. ``object`` is None for an object-free texture scene."""

    object: str | None
    colour: str  # the object's colour word, or a texture scene's pattern colour
    rgb: tuple[int, int, int]  # the colour actually painted (jittered)
    size: str  # size word (objects only; "" otherwise)
    scale: float  # half-extent of the unit box as a fraction of the image side
    position: str  # position word (objects only; "" otherwise)
    center: tuple[float, float]  # object centre, in fractions of the side from the image centre
    rotation: float  # degrees
    texture: str  # the background texture word, or the scene's texture
    base_rgb: tuple[int, int, int]
    pattern_rgb: tuple[int, int, int]
    texture_params: TextureParams

    @property
    def is_object(self) -> bool:
        return self.object is not None


def scene_rng(seed: int, stream: str, index: int) -> np.random.Generator:
    """The generator for item ``index`` of ``stream`` (e.g. a dataset name) under ``seed``."""
    stream_key = int.from_bytes(hashlib.sha256(stream.encode()).digest()[:8], "little")
    return np.random.default_rng([int(seed), stream_key, int(index)])


def _texture_params(rng: np.random.Generator) -> TextureParams:
    return TextureParams(
        period=float(rng.uniform(4.0, 8.0)),
        angle=float(rng.choice([0.0, 45.0, 90.0, 135.0]) + rng.uniform(-10, 10)),
        phase=float(rng.random()),
        noise_seed=int(rng.integers(0, 2**31)),
    )


def _jitter(rgb: tuple[int, ...], rng: np.random.Generator, amount: int) -> tuple[int, int, int]:
    out = np.clip(np.asarray(rgb) + rng.integers(-amount, amount + 1, size=3), 0, 255)
    return (int(out[0]), int(out[1]), int(out[2]))


def _greys(world: World, rng: np.random.Generator) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Two greys for a background (dark and light, in random order), slightly tinted."""
    (dlo, dhi), (llo, lhi) = world.background_grey
    dark, light = int(rng.integers(dlo, dhi + 1)), int(rng.integers(llo, lhi + 1))
    pair = [_jitter((dark,) * 3, rng, 8), _jitter((light,) * 3, rng, 8)]
    if rng.random() < 0.5:
        pair.reverse()
    return pair[0], pair[1]


def sample_object_scene(world: World, rng: np.random.Generator, obj: str) -> Scene:
    """A scene with one object of class ``obj`` on a grey background texture."""
    colour = str(rng.choice(list(world.colours)))
    size = str(rng.choice(list(world.sizes)))
    scale = world.sizes[size] * (1 + rng.uniform(-world.size_jitter, world.size_jitter)) / 2
    # Positions other than the centre only fit for objects that leave room to move.
    positions = list(world.positions) if size == "small" else ["center"]
    position = str(rng.choice(positions))
    px, py = world.positions[position]
    j = world.position_jitter
    base, pattern = _greys(world, rng)
    return Scene(
        object=obj,
        colour=colour,
        rgb=_jitter(world.colours[colour], rng, world.colour_jitter),
        size=size,
        scale=float(scale),
        position=position,
        center=(float(px + rng.uniform(-j, j)), float(py + rng.uniform(-j, j))),
        rotation=float(rng.uniform(-world.max_rotation, world.max_rotation)),
        texture=str(rng.choice(world.backgrounds)),
        base_rgb=base,
        pattern_rgb=pattern,
        texture_params=_texture_params(rng),
    )


def sample_texture_scene(world: World, rng: np.random.Generator, texture: str | None = None) -> Scene:
    """An object-free scene: a texture in one of the world's colours over a grey base."""
    texture = texture or str(rng.choice(world.scene_textures))
    colour = str(rng.choice(list(world.colours)))
    base, _ = _greys(world, rng)
    return Scene(
        object=None,
        colour=colour,
        rgb=_jitter(world.colours[colour], rng, world.colour_jitter),
        size="",
        scale=0.0,
        position="",
        center=(0.0, 0.0),
        rotation=0.0,
        texture=texture,
        base_rgb=base,
        pattern_rgb=(0, 0, 0),  # unused: a texture scene's pattern is painted in ``rgb``
        texture_params=_texture_params(rng),
    )


def sample_mixed_scene(world: World, rng: np.random.Generator, objects: list[str],
                       texture_fraction: float) -> Scene:
    """An object-free texture scene with probability ``texture_fraction``, else one of ``objects``."""
    if rng.random() < texture_fraction:
        return sample_texture_scene(world, rng)
    return sample_object_scene(world, rng, str(rng.choice(objects)))
