"""Image-caption pairs for training on toyworld (e.g. CLIPN's "no" tower), as a folder of PNGs plus a CSV.

The pairs come from their own seeded stream (``"pairs"``), apart from the benchmark splits and from the
tiny CLIP's training pool; each image gets one caption drawn from the grammar by its weights, so short
captions ("a photo of a star") and long ones both occur. The CSV's columns are open_clip's defaults,
``filepath`` (relative to the CSV's folder) and ``title``.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from oodbench.progress import progress_bar
from oodbench.toyworld.captions import sample_caption
from oodbench.toyworld.generate import class_dir_name
from oodbench.toyworld.render import render_scene
from oodbench.toyworld.scene import sample_object_scene, sample_texture_scene, scene_rng
from oodbench.toyworld.world import World

log = logging.getLogger(__name__)

STREAM = "pairs"
CSV_NAME = "pairs.csv"


def write_pairs(world: World, folder: Path, n_per_class: int, seed: int = 0, stream: str = STREAM) -> Path:
    """``n_per_class`` images of every object class and every scene texture under ``folder/images``;
    returns the CSV path. The CSV is written to a temporary name and renamed last."""
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    groups = [*((o, True) for o in world.object_names), *((t, False) for t in world.scene_textures)]
    tmp = folder / f".{CSV_NAME}.tmp"
    index = 0
    with progress_bar() as bar, tmp.open("w", newline="", encoding="utf-8") as fh:
        task = bar.add_task("toyworld pairs", total=len(groups) * n_per_class)
        writer = csv.writer(fh)
        writer.writerow(["filepath", "title"])
        for name, is_object in groups:
            for k in range(n_per_class):
                rng = scene_rng(seed, stream, index)
                index += 1
                scene = sample_object_scene(world, rng, name) if is_object else \
                    sample_texture_scene(world, rng, texture=name)
                rel = f"images/{class_dir_name(name)}_{k:05d}.png"
                render_scene(world, scene).save(folder / rel, format="PNG")
                writer.writerow([rel, sample_caption(world, scene, rng)])
                bar.advance(task)
    path = folder / CSV_NAME
    tmp.replace(path)
    log.info("wrote %d toyworld pairs to %s", index, path)
    return path
