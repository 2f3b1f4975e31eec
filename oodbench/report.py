"""Leaderboards from any number of result files: markdown, CSV, LaTeX or HTML.

One table per (benchmark, backbone): a row per method, per OOD set ``FPR95↓ / AUROC↑`` in percent,
each group's average (``avg near``, ``avg far``) where the suite groups its sets, their overall
average, and ID accuracy. ``--long`` gives the tidy one-line-per-(method, OOD set) table instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from oodbench.errors import OodbenchError
from oodbench.files import atomic_write_text, write_error
from oodbench.results import AVERAGE, ResultSet

FORMATS = ("md", "csv", "latex", "html")


def long_table(results: Iterable[ResultSet]) -> pd.DataFrame:
    frames = [r.frame() for r in results]
    if not frames:
        raise OodbenchError("No result files found. Run `oodbench run ...` first, or pass result "
                            "files / folders to `oodbench report`.")
    df = pd.concat(frames, ignore_index=True)
    # When the same (benchmark, backbone, method) appears twice, the later file wins.
    return df.drop_duplicates(subset=["benchmark", "backbone", "method", "ood"], keep="last")


REFERENCE_COLUMNS = ("benchmark", "backbone", "method", "ood", "fpr95", "auroc", "source")


def reference_table(path: Path) -> pd.DataFrame:
    """Published numbers (percent) from a CSV like ``results/reference/*.csv``, as long-table rows.

    Methods are marked ``"<method> (published)"``; metrics are converted to fractions; AUPR and ID
    accuracy are left empty (the papers' tables rarely give them).
    """
    try:
        ref = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise OodbenchError(f"Cannot read reference numbers {path}: {exc}.") from None
    missing = [c for c in REFERENCE_COLUMNS if c not in ref.columns]
    if missing:
        raise OodbenchError(f"Reference file {path} lacks column(s) {', '.join(missing)}; it needs "
                            f"{', '.join(REFERENCE_COLUMNS)} (values in percent), one row per OOD set "
                            "and one with ood = average.")
    out = ref[["benchmark", "backbone", "method", "ood"]].copy()
    out["method"] = out["method"].astype(str) + " (published)"
    out["fpr95"] = ref["fpr95"] / 100.0
    out["auroc"] = ref["auroc"] / 100.0
    out["id_accuracy"] = float("nan")
    return out


def wide_table(long: pd.DataFrame, percent: bool = True) -> pd.DataFrame:
    """One row per (benchmark, backbone, method); columns ``<ood> FPR95`` / ``<ood> AUROC``, average, ID acc."""
    scale = 100.0 if percent else 1.0
    rows = []
    for (bench, backbone, method), g in long.groupby(["benchmark", "backbone", "method"], sort=False):
        row: dict[str, object] = {"benchmark": bench, "backbone": backbone, "method": method}
        ordered = [o for o in g["ood"] if o != AVERAGE] + [AVERAGE]
        for ood in ordered:
            r = g[g["ood"] == ood].iloc[0]
            label = "avg" if ood == AVERAGE else ood.replace(f"{AVERAGE}-", "avg ", 1)  # group averages
            row[f"{label} FPR95"] = r["fpr95"] * scale
            row[f"{label} AUROC"] = r["auroc"] * scale
        acc = g["id_accuracy"].iloc[0]
        row["ID acc"] = None if pd.isna(acc) else acc * scale
        rows.append(row)
    df = pd.DataFrame(rows)
    return df.sort_values(["benchmark", "backbone", "avg FPR95"], kind="stable").reset_index(drop=True)


def render(results: Iterable[ResultSet], fmt: str = "md", long: bool = False, digits: int = 2,
           references: Iterable[Path] = ()) -> str:
    if fmt not in FORMATS:
        raise OodbenchError(f"Unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    refs = [reference_table(Path(p)) for p in references]
    results = list(results)
    frames = [long_table(results)] if results or not refs else []  # no results and no references: error
    table = pd.concat([*frames, *refs], ignore_index=True)
    if long:
        return _emit(table, fmt, digits)
    wide = wide_table(table)
    if fmt == "csv":
        return wide.to_csv(index=False, float_format=f"%.{digits}f")
    parts = []
    for (bench, backbone), g in wide.groupby(["benchmark", "backbone"], sort=False):
        g = g.drop(columns=["benchmark", "backbone"]).dropna(axis=1, how="all")
        tail = [c for c in ("avg FPR95", "avg AUROC", "ID acc") if c in g.columns]
        g = g[[c for c in g.columns if c not in tail] + tail]  # per-set columns, then the summary
        title = f"{bench} — {backbone} (FPR95 ↓, AUROC ↑, %)"
        if fmt == "md":
            parts.append(f"### {title}\n\n{_emit(g, fmt, digits)}")
        else:
            parts.append(_emit(g, fmt, digits, caption=title))
    return "\n\n".join(parts) + "\n"


def _emit(df: pd.DataFrame, fmt: str, digits: int, caption: str | None = None) -> str:
    if fmt == "md":
        return df.to_markdown(index=False, floatfmt=f".{digits}f")
    if fmt == "csv":
        return df.to_csv(index=False)
    if fmt == "latex":
        return df.to_latex(index=False, float_format=f"%.{digits}f", caption=caption, na_rep="--")
    return df.to_html(index=False, float_format=f"%.{digits}f".__mod__, na_rep="--")


def write(text: str, output: Path | None) -> None:
    if output is None:
        print(text, end="" if text.endswith("\n") else "\n")
        return
    if output.is_dir():
        raise OodbenchError(f"--output {output} is a folder; name the file to write, e.g. {output / 'board.md'}.")
    try:
        atomic_write_text(output, text)
    except OSError as exc:
        raise write_error("the report", output, exc) from None
