"""Texture fields for backgrounds and object-free scenes, as pure numpy functions of their parameters.

A texture function takes pixel-centre coordinates (in output pixels, so periods do not depend on the
supersampling factor) and :class:`TextureParams`, and returns a float mask in [0, 1]: 0 = the
texture's base colour, 1 = its pattern colour. :data:`TEXTURES` maps each texture word to one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TextureParams:
    """Everything random about a texture, drawn once by the sampler so that rendering is pure."""

    period: float  # pattern period in output pixels
    angle: float  # orientation in degrees
    phase: float  # offset in [0, 1) of a period
    noise_seed: int  # for the "noisy" texture


def _rotated(x: np.ndarray, y: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    a = np.deg2rad(angle)
    return x * np.cos(a) + y * np.sin(a), -x * np.sin(a) + y * np.cos(a)


def plain(x: np.ndarray, y: np.ndarray, p: TextureParams) -> np.ndarray:
    return np.zeros_like(x)


def striped(x: np.ndarray, y: np.ndarray, p: TextureParams) -> np.ndarray:
    u, _ = _rotated(x, y, p.angle)
    return ((u / p.period + p.phase) % 1.0 < 0.5).astype(np.float32)


def dotted(x: np.ndarray, y: np.ndarray, p: TextureParams) -> np.ndarray:
    u, v = _rotated(x, y, p.angle)
    fu = (u / p.period + p.phase) % 1.0 - 0.5
    fv = (v / p.period + p.phase) % 1.0 - 0.5
    return (fu**2 + fv**2 < 0.28**2).astype(np.float32)


def checkered(x: np.ndarray, y: np.ndarray, p: TextureParams) -> np.ndarray:
    u, v = _rotated(x, y, p.angle)
    return ((np.floor(u / p.period + p.phase) + np.floor(v / p.period + p.phase)) % 2).astype(np.float32)


def grid(x: np.ndarray, y: np.ndarray, p: TextureParams) -> np.ndarray:
    u, v = _rotated(x, y, p.angle)
    width = 1.0 / p.period  # about one output pixel wide
    fu = (u / p.period + p.phase) % 1.0
    fv = (v / p.period + p.phase) % 1.0
    return ((fu < width) | (fv < width)).astype(np.float32)


def noisy(x: np.ndarray, y: np.ndarray, p: TextureParams) -> np.ndarray:
    rng = np.random.default_rng(p.noise_seed)
    cell = max(1.0, p.period / 4)  # noise grain in output pixels
    ix = np.floor(x / cell).astype(np.int64)
    iy = np.floor(y / cell).astype(np.int64)
    field = rng.random((int(iy.max()) + 1, int(ix.max()) + 1)).astype(np.float32)
    return field[iy, ix]


def wavy(x: np.ndarray, y: np.ndarray, p: TextureParams) -> np.ndarray:
    u, v = _rotated(x, y, p.angle)
    bent = u + 0.35 * p.period * np.sin(2 * np.pi * v / (2.5 * p.period))
    return ((bent / p.period + p.phase) % 1.0 < 0.5).astype(np.float32)


TEXTURES: dict[str, Callable[[np.ndarray, np.ndarray, TextureParams], np.ndarray]] = {
    "plain": plain,
    "striped": striped,
    "dotted": dotted,
    "checkered": checkered,
    "grid": grid,
    "noisy": noisy,
    "wavy": wavy,
}


def render_texture(kind: str, size: int, supersample: int, params: TextureParams,
                   base: tuple[int, int, int], pattern: tuple[int, int, int]) -> np.ndarray:
    """[size*supersample, size*supersample, 3] uint8 texture blending ``base`` and ``pattern``."""
    n = size * supersample
    coords = (np.arange(n, dtype=np.float32) + 0.5) / supersample
    x, y = np.meshgrid(coords, coords)
    mask = TEXTURES[kind](x, y, params)[..., None]
    out = (1.0 - mask) * np.asarray(base, np.float32) + mask * np.asarray(pattern, np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
