"""Paper protocols as data: one TOML file per (paper, ID set), shipped as ``oodbench.protocols``; see
:mod:`oodbench.reproduce` for the format and ``oodbench reproduce --list``."""
