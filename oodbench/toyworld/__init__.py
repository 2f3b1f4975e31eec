"""toyworld: oodbench's bundled offline benchmark.

A deterministic generator of small RGB images of shapes and textures with captions (vocabulary and
caption grammar as data in ``oodbench/data/toyworld.json``), a tiny CLIP trained on them (config
``toyclip``, weights shipped as ``oodbench/assets/toyclip.safetensors``) and the benchmark built from
them: ID = 10 object classes, near-OOD = the other 20 classes, far-OOD = object-free texture scenes.

Importing this package registers:

- data sets ``toyworld``, ``toyworld-near``, ``toyworld-far`` and the small ``toyworld-mini*`` splits
  (generated on first use; see :mod:`oodbench.toyworld.datasets`);
- the lexicon ``toyworld`` (see :mod:`oodbench.toyworld.lexicon`);
- the bundled weights ``toyworld`` for ``--model toyclip`` (see :mod:`oodbench.toyworld.weights`).

Modules: ``world`` (the vocabulary), ``geometry`` / ``textures`` / ``render`` (pixels), ``scene``
(seeded sampling), ``captions`` (the grammar), ``generate`` (PNG folders), ``quickeval`` (a quick
zero-shot check of a model).
"""

from __future__ import annotations

from oodbench.toyworld import datasets, lexicon, weights
from oodbench.toyworld.captions import all_captions, full_caption, sample_caption, unique_batch_captions
from oodbench.toyworld.generate import SplitSpec, ensure_split
from oodbench.toyworld.render import render_scene
from oodbench.toyworld.scene import (
    GENERATOR_VERSION,
    Scene,
    sample_object_scene,
    sample_texture_scene,
    scene_rng,
)
from oodbench.toyworld.world import World, load_world

__all__ = [
    "GENERATOR_VERSION",
    "Scene",
    "SplitSpec",
    "World",
    "all_captions",
    "datasets",
    "ensure_split",
    "full_caption",
    "lexicon",
    "load_world",
    "render_scene",
    "sample_caption",
    "sample_object_scene",
    "sample_texture_scene",
    "scene_rng",
    "unique_batch_captions",
    "weights",
]
