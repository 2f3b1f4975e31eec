"""The package's structure: no import cycles, core code that never names a method, a CLI that does not
load torch for what does not need it, and built-in methods that no folder of the user's can shadow."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: Repository folder -> the package it ships as (pyproject's package-dir mapping).
PACKAGE_DIRS = {"oodbench": "oodbench", "methods": "oodbench.methods", "toyworld": "oodbench.toyworld",
                "benchmarks/suites": "oodbench.suites"}


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for folder, package in PACKAGE_DIRS.items():
        base = REPO / folder
        for path in base.rglob("*.py"):
            rel = path.relative_to(base)
            if rel.parts[0] == "scripts" or any(p.startswith(".") for p in rel.parts):
                continue
            parts = [package, *rel.with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join(parts)
            if folder == "oodbench" and name.split(".")[1:2] in (["methods"], ["toyworld"], ["suites"]):
                continue
            out[name] = path
    return out


def _imports(path: Path, module: str, known: set[str]) -> set[str]:
    """Project modules imported anywhere in ``path`` (function-level imports included; those under
    ``if TYPE_CHECKING:`` are left out, as they never run)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    type_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                 and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING"
                 for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in type_only:  # imports for type checkers only never run
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_lazy_imports_included():
    modules = _modules()
    known = set(modules)
    graph = {m: _imports(p, m, known) for m, p in modules.items()}
    assert "oodbench.backbone.model" in graph and "oodbench.methods.neglabel" in graph
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_core_and_plugins_never_import_a_method_by_name():
    modules = _modules()
    known = set(modules)
    offenders = {m: sorted(i for i in _imports(p, m, known) if i.startswith("oodbench.methods"))
                 for m, p in modules.items() if not m.startswith("oodbench.methods")}
    assert {m: v for m, v in offenders.items() if v} == {}


def _python(code: str, cwd: Path, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OODBENCH_NO_PROGRESS": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


CLI_PROBE = """
import sys
from typer.testing import CliRunner
from oodbench.cli import app
result = CliRunner().invoke(app, {args!r})
assert result.exit_code == 0, result.output
heavy = sorted(m for m in ("torch", "open_clip", "sklearn", "oodbench.methods") if m in sys.modules)
print("HEAVY=" + ",".join(heavy))
"""


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["list", "benchmarks"], ["run", "--help"],
                                  ["report", "--help"]])
def test_cli_commands_that_need_no_model_import_no_torch(args, tmp_path):
    proc = _python(CLI_PROBE.format(args=args), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY=\n" in proc.stdout, proc.stdout


def test_report_imports_no_torch(tmp_path):
    result = REPO / "results" / "toyworld"
    proc = _python(CLI_PROBE.format(args=["report", str(result)]), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY=\n" in proc.stdout, proc.stdout


def test_a_users_own_methods_package_changes_nothing(tmp_path):
    """Research repositories often have a `methods/` package; run from inside one, nothing is lost."""
    own = tmp_path / "methods"
    own.mkdir()
    (own / "__init__.py").write_text("raise ImportError('this is the user\\'s own methods package')\n")
    (own / "mcm.py").write_text("MCM = None\n")
    code = ("import sys; sys.path.insert(0, '')\n"
            "from oodbench.scorer import METHODS\n"
            "print(','.join(METHODS.names()))\n"
            "import oodbench.methods.mcm as m; print(m.__file__)\n")
    proc = _python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    names, where = proc.stdout.split()
    assert {"mcm", "msp", "neglabel", "zoc-lite", "clipn-ctw", "clipn-atd"} <= set(names.split(","))
    assert Path(where).resolve() == (REPO / "methods" / "mcm.py").resolve()
    # `python -m oodbench.cli` from that folder too (cwd first on sys.path)
    proc = subprocess.run([sys.executable, "-m", "oodbench.cli", "list", "methods"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    assert "neglabel" in proc.stdout and "clipn-atd" in proc.stdout


def test_every_builtin_method_and_trainer_is_an_entry_point():
    from importlib.metadata import entry_points

    from oodbench.scorer import METHODS
    from oodbench.trainers import TRAINERS

    methods = {ep.name for ep in entry_points(group="oodbench.methods")}
    assert {"mcm", "msp", "neglabel", "zoc-lite", "clipn-ctw", "clipn-atd"} <= methods
    assert methods <= set(METHODS.names())
    for name in METHODS.names():
        assert METHODS.get(name).name == name
    assert "clipn" in {ep.name for ep in entry_points(group="oodbench.trainers")}
    assert callable(TRAINERS.get("clipn"))


def test_tables_written_to_a_pipe_are_not_cut_to_80_columns(tmp_path):
    # A pipe has no width; rich assumed 80 columns and printed 'negla…' and 'ViT-…' in `reproduce --list`.
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    proc = subprocess.run([sys.executable, "-m", "oodbench.cli", "reproduce", "--list"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "neglabel-imagenet" in proc.stdout and "ViT-B-16 laion2b_s34b_b88k" in proc.stdout
    assert "…" not in proc.stdout
    assert "1 row " in proc.stdout and "1 rows" not in proc.stdout


def test_help_written_to_a_pipe_is_not_wrapped_at_80_columns(tmp_path):
    # typer's help assumed 80 columns in a pipe: `oodbench run --help | less` wrapped each option's text
    # to a few words per line
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "TERMINAL_WIDTH")}
    proc = subprocess.run([sys.executable, "-m", "oodbench.cli", "run", "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert max(len(line) for line in proc.stdout.splitlines()) == 120
