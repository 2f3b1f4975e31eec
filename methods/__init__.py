"""The built-in methods, shipped as ``oodbench.methods`` (the repository folder ``methods/``).

One module (or package, for CLIPN) per method, each with a pure score function and a :class:`Scorer`
dataclass. Importing this package registers nothing: every method, built-in or third-party, is named by
an entry point of the group ``oodbench.methods`` (see ``pyproject.toml``) and reaches
:data:`oodbench.scorer.METHODS` only when that registry is first used.
"""
