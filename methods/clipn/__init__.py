"""CLIPN (Wang et al., ICCV 2023): a frozen CLIP taught to say "no" by a second, trained text tower.

- ``model``: :class:`~oodbench.methods.clipn.model.CLIPN` (frozen open_clip model + trainable "no" tower and
  learnable additive "no" prompts, or the hand-crafted variant) and the class heads;
- ``losses``: ITBO and TSO (pure functions, DDP-aware gathering);
- ``scores``: CTW and ATD scores and their threshold-free decisions (pure functions);
- ``scorers``: the ``clipn-ctw`` / ``clipn-atd`` methods (parameters ``checkpoint``, ``scale``,
  ``quote_templates``);
- ``data`` / ``trainer`` / ``runtime`` / ``command``: ``oodbench train clipn`` (CSV/TSV or WebDataset shards,
  torchrun/DDP, AMP, exact ``--resume``);
- ``checkpoint``: oodbench's compact safetensors files, the released checkpoints, training state;
- ``prompts.txt``: the reference's 128 positive template lines and its hand-crafted "no" pool, verbatim.

Nothing registers on import: the methods ``clipn-ctw`` / ``clipn-atd`` and the trainer ``clipn`` are entry
points (groups ``oodbench.methods`` and ``oodbench.trainers``, see ``pyproject.toml``).
"""
