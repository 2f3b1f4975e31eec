"""A quick, in-memory check of a toyworld CLIP: zero-shot ID accuracy and MCM AUROC near / far.

Used by the training script to log progress and by the tests as an accuracy floor; the benchmark
proper goes through the generated folders and ``oodbench run``. Images are rendered straight from
scenes of their own stream (``"quickeval"``), never the training stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from oodbench.toyworld.render import render_scene
from oodbench.toyworld.scene import sample_object_scene, sample_texture_scene, scene_rng
from oodbench.toyworld.world import World

STREAM = "quickeval"


@dataclass
class EvalImages:
    """Rendered images ``[N, H, W, 3]`` uint8 with ID labels (-1 for OOD) and group names."""

    images: np.ndarray
    labels: np.ndarray
    groups: np.ndarray  # "id", "near" or "far" per image


def eval_images(world: World, seed: int, n_id_per_class: int, n_near: int, n_far: int) -> EvalImages:
    """``n_id_per_class`` images per ID class, ``n_near`` near-OOD and ``n_far`` far-OOD images."""
    images, labels, groups = [], [], []
    i = 0
    for k, cls in enumerate(world.id_classes):
        for _ in range(n_id_per_class):
            images.append(render_scene(world, sample_object_scene(world, scene_rng(seed, STREAM, i), cls)))
            labels.append(k)
            groups.append("id")
            i += 1
    near = world.near_classes
    for j in range(n_near):
        images.append(render_scene(world, sample_object_scene(world, scene_rng(seed, STREAM, i),
                                                              near[j % len(near)])))
        labels.append(-1)
        groups.append("near")
        i += 1
    for _ in range(n_far):
        images.append(render_scene(world, sample_texture_scene(world, scene_rng(seed, STREAM, i))))
        labels.append(-1)
        groups.append("far")
        i += 1
    return EvalImages(np.stack([np.asarray(im) for im in images]), np.asarray(labels), np.asarray(groups))


def mcm_scores(image_features: torch.Tensor, class_features: torch.Tensor,
               temperature: float = 1.0) -> np.ndarray:
    """MCM (Ming et al., 2022): max softmax of cosine / T over the ID classes; higher = more ID."""
    return torch.softmax(image_features @ class_features.T / temperature, dim=1).amax(dim=1).numpy()


def summarise(image_features: torch.Tensor, class_features: torch.Tensor, ev: EvalImages) -> dict[str, float]:
    """Zero-shot top-1 on the ID images and MCM AUROC (ID positive) against near and far OOD."""
    from sklearn.metrics import roc_auc_score

    is_id = ev.groups == "id"
    pred = (image_features[torch.from_numpy(is_id)] @ class_features.T).argmax(dim=1).numpy()
    out = {"id_accuracy": float((pred == ev.labels[is_id]).mean())}
    score = mcm_scores(image_features, class_features)
    for group in ("near", "far"):
        sel = is_id | (ev.groups == group)
        if (ev.groups == group).any():
            out[f"mcm_auroc_{group}"] = float(roc_auc_score(is_id[sel], score[sel]))
    return out
