"""toyworld as an oodbench plug-in: what it adds, registered like any third-party package's.

Entry point ``toyworld = "oodbench.toyworld.plugin:register"`` of the group ``oodbench.plugins``. It adds:

- data sets ``toyworld``, ``toyworld-near``, ``toyworld-far`` and the small ``toyworld-mini*`` splits
  (generated on first use; :mod:`oodbench.toyworld.datasets`);
- the lexicon ``toyworld`` (:mod:`oodbench.toyworld.lexicon`);
- the open_clip model config ``toyclip`` and its bundled weights ``toyworld``, and the bundled CLIPN
  tower ``toyworld`` (:mod:`oodbench.toyworld.weights`);
- the benchmark suite ``toyworld`` (``toyworld.toml``);
- the EOE outlier-label file ``toyworld`` (``eoe_labels.txt``, oodbench's own hand-written list; see its
  header).

Registering imports neither torch nor PIL; each piece imports what it needs when it is used.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

PACKAGE = "oodbench.toyworld"
EOE_LABELS = Path(__file__).resolve().with_name("eoe_labels.txt")


def eoe_labels() -> Path:
    """Path of toyworld's EOE outlier-label file (``-p eoe.labels=toyworld``, set by the toyworld suite)."""
    return EOE_LABELS


def register() -> None:
    from oodbench.benchmarks import BENCHMARKS, parse_suite
    from oodbench.bundled import MODEL_CONFIG_DIRS, BundledFile, bundled
    from oodbench.data.spec import DATASETS
    from oodbench.lexicon import LEXICONS
    from oodbench.toyworld import datasets, lexicon, weights

    datasets.register_splits(DATASETS)
    LEXICONS.register("toyworld", lexicon.toyworld_lexicon)
    MODEL_CONFIG_DIRS.register("toyworld", weights.MODEL_CONFIGS)
    bundled("clip").register(weights.BUNDLED_NAME, weights.TOYCLIP)
    bundled("clipn").register(weights.BUNDLED_NAME, weights.TOYCLIP_CLIPN)
    bundled("eoe-labels").register(weights.BUNDLED_NAME, BundledFile(
        weights.BUNDLED_NAME, "", eoe_labels, "toyworld's hand-written envisioned outlier labels for EOE"))
    suite = resources.files(PACKAGE) / "toyworld.toml"
    BENCHMARKS.register("toyworld", parse_suite(suite.read_text(encoding="utf-8"), name="toyworld",
                                                origin=f"{PACKAGE}/toyworld.toml"))
