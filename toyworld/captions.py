"""The caption grammar: a scene's slots filled into the templates listed in ``world.json``.

Object scenes use forms such as ``"a photo of a {size} {colour} {object} on a {background} background"``;
object-free scenes ``"a photo of a {colour} {texture} texture"``. The article is always "a", as in the
benchmark's prompt ``"a photo of a {}"``: the toy grammar trades English for an exact prompt match.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from oodbench.toyworld.scene import Scene
from oodbench.toyworld.world import CaptionForm, World


def caption_slots(world: World, scene: Scene) -> dict[str, str]:
    """The words a caption may use for ``scene``."""
    if scene.is_object:
        return {
            "object": scene.object or "",
            "colour": scene.colour,
            "size": scene.size,
            "background": scene.texture,
            "position": world.position_phrases[scene.position],
        }
    return {"texture": scene.texture, "colour": scene.colour}


def caption_forms(world: World, scene: Scene) -> tuple[CaptionForm, ...]:
    return world.object_captions if scene.is_object else world.texture_captions


def all_captions(world: World, scene: Scene) -> list[str]:
    """Every caption the grammar allows for ``scene``, in the data file's order (short to long)."""
    slots = caption_slots(world, scene)
    return [f.template.format(**slots) for f in caption_forms(world, scene)]


def full_caption(world: World, scene: Scene) -> str:
    """The most detailed caption (the last form): what the generated folders record."""
    return all_captions(world, scene)[-1]


def sample_caption(world: World, scene: Scene, rng: np.random.Generator) -> str:
    """One caption, its form drawn by the grammar's weights."""
    forms = caption_forms(world, scene)
    weights = np.asarray([f.weight for f in forms], dtype=np.float64)
    k = int(rng.choice(len(forms), p=weights / weights.sum()))
    return all_captions(world, scene)[k]


def unique_batch_captions(world: World, scenes: Sequence[Scene],
                          rng: np.random.Generator) -> list[str | None]:
    """One caption per scene, no caption twice in the batch (``None`` where no unique one was left).

    Identical captions in a contrastive batch are false negatives for each other. Each scene draws a
    form by weight; when its caption is taken, the next longer forms are tried, then the shorter ones.
    """
    used: set[str] = set()
    out: list[str | None] = []
    for scene in scenes:
        forms = caption_forms(world, scene)
        texts = all_captions(world, scene)
        weights = np.asarray([f.weight for f in forms], dtype=np.float64)
        k = int(rng.choice(len(forms), p=weights / weights.sum()))
        order = list(range(k, len(forms))) + list(range(k - 1, -1, -1))
        choice = next((texts[i] for i in order if texts[i] not in used), None)
        if choice is not None:
            used.add(choice)
        out.append(choice)
    return out
