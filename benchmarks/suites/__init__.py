"""Benchmark suites as data: one TOML file per suite (shipped as ``oodbench.suites``)."""
