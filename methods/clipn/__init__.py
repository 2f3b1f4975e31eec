"""CLIPN (Wang et al., ICCV 2023): a frozen CLIP taught to say "no" by a second, trained text tower.

- ``model``: :class:`~methods.clipn.model.CLIPN` (frozen open_clip model + trainable "no" tower and
  learnable additive "no" prompts, or the hand-crafted variant) and the class heads;
- ``losses``: ITBO and TSO (pure functions, DDP-aware gathering);
- ``scores``: CTW and ATD scores and their threshold-free decisions (pure functions);
- ``scorers``: the ``clipn-ctw`` / ``clipn-atd`` methods (parameters ``checkpoint``, ``scale``,
  ``quote_templates``);
- ``data`` / ``trainer`` / ``runtime`` / ``command``: ``oodbench train clipn`` (CSV/TSV or WebDataset shards,
  torchrun/DDP, AMP, exact ``--resume``);
- ``checkpoint``: oodbench's compact safetensors files, the released checkpoints, training state;
- ``prompts.txt``: the 128 positive templates and the hand-crafted "no" pool.

Importing this package registers the methods ``clipn-ctw`` and ``clipn-atd`` and the trainer ``clipn``.
"""

from __future__ import annotations

from methods.clipn.command import train_clipn
from methods.clipn.scorers import ClipnATD, ClipnCTW
from oodbench.scorer import register_method
from oodbench.trainers import TRAINERS

register_method("clipn-ctw")(ClipnCTW)
register_method("clipn-atd")(ClipnATD)
TRAINERS.register("clipn", train_clipn)

__all__ = ["ClipnATD", "ClipnCTW", "train_clipn"]
