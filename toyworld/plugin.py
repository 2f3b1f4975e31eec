"""toyworld as an oodbench plug-in: what it adds, registered like any third-party package's.

Entry point ``toyworld = "oodbench.toyworld.plugin:register"`` of the group ``oodbench.plugins``. It adds:

- data sets ``toyworld``, ``toyworld-near``, ``toyworld-far`` and the small ``toyworld-mini*`` splits
  (generated on first use; :mod:`oodbench.toyworld.datasets`);
- the lexicon ``toyworld`` (:mod:`oodbench.toyworld.lexicon`);
- the open_clip model config ``toyclip`` and its bundled weights ``toyworld``, and the bundled CLIPN
  tower ``toyworld`` (:mod:`oodbench.toyworld.weights`);
- the benchmark suite ``toyworld`` (``toyworld.toml``).

Registering imports neither torch nor PIL; each piece imports what it needs when it is used.
"""

from __future__ import annotations

from importlib import resources

PACKAGE = "oodbench.toyworld"


def register() -> None:
    from oodbench.benchmarks import BENCHMARKS, parse_suite
    from oodbench.bundled import MODEL_CONFIG_DIRS, bundled
    from oodbench.data.spec import DATASETS
    from oodbench.lexicon import LEXICONS
    from oodbench.toyworld import datasets, lexicon, weights

    datasets.register_splits(DATASETS)
    LEXICONS.register("toyworld", lexicon.toyworld_lexicon)
    MODEL_CONFIG_DIRS.register("toyworld", weights.MODEL_CONFIGS)
    bundled("clip").register(weights.BUNDLED_NAME, weights.TOYCLIP)
    bundled("clipn").register(weights.BUNDLED_NAME, weights.TOYCLIP_CLIPN)
    suite = resources.files(PACKAGE) / "toyworld.toml"
    BENCHMARKS.register("toyworld", parse_suite(suite.read_text(encoding="utf-8"), name="toyworld",
                                                origin=f"{PACKAGE}/toyworld.toml"))
