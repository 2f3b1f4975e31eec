"""Leaderboards from any number of result files: markdown, CSV, LaTeX or HTML.

One table per (benchmark, backbone): a row per run (method, or ``method@variant``), per OOD set
``FPR95↓ / AUROC↑`` in percent, then the group averages (``avg near``, ``avg far``) when the suite
groups its OOD sets, the average, and ID accuracy. ``--long`` gives the tidy one-line-per-(run, OOD set)
table instead; ``--ci`` adds each number's 95% bootstrap interval.

- markdown: ``### title`` and a pipe table per benchmark x backbone;
- LaTeX (:mod:`oodbench.latex`): one ``table`` per benchmark x backbone, booktabs rules, caption and
  label, the best value of each column in bold, everything escaped; compiles with pdflatex;
- HTML (:mod:`oodbench.html`): a standalone page with one captioned table per benchmark x backbone and
  the figures of ``oodbench plot`` embedded below their table.

Two result files that claim the same row (same benchmark, backbone, run label and OOD set) are both
read; the later one is shown and a warning names both.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from oodbench.errors import OodbenchError
from oodbench.files import atomic_write_text, write_error
from oodbench.results import AVERAGE, ResultSet

log = logging.getLogger(__name__)

FORMATS = ("md", "csv", "latex", "html")
KEY = ["benchmark", "backbone", "method", "ood"]
GROUP_PREFIX = f"{AVERAGE}-"


def long_table(results: Iterable[ResultSet]) -> pd.DataFrame:
    frames = []
    for r in results:
        f = r.frame()
        f["_file"] = str(r.path) if r.path else f"<{r.label} in memory>"
        frames.append(f)
    if not frames:
        raise OodbenchError("No result files found. Run `oodbench run ...` first, or pass result "
                            "files / folders to `oodbench report`.")
    df = pd.concat(frames, ignore_index=True)
    warn_duplicates(df)
    # When the same (benchmark, backbone, run, OOD set) appears twice, the later file wins (warned above).
    return df.drop_duplicates(subset=KEY, keep="last").drop(columns="_file")


def warn_duplicates(df: pd.DataFrame) -> list[str]:
    """Log (and return) one warning per run that several result files claim."""
    dup = df[df.duplicated(subset=KEY, keep=False)]
    messages = []
    for (bench, backbone, method), g in dup.groupby(KEY[:3], sort=False):
        files = list(dict.fromkeys(g["_file"]))
        if len(files) < 2:
            continue  # one file read twice: the same numbers
        messages.append(f"{len(files)} result files claim {method} on {bench} / {backbone}: "
                        f"{', '.join(files)}; showing the last. Give runs with other settings their own "
                        "--tag, or remove the stale file.")
    for m in messages:
        log.warning("%s", m)
    return messages


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


def column_label(ood: str) -> str:
    """The wide table's name for a row: ``avg``, ``avg <group>`` or the OOD set's name."""
    if ood == AVERAGE:
        return "avg"
    if ood.startswith(GROUP_PREFIX):
        return f"avg {ood[len(GROUP_PREFIX):]}"
    return ood


def wide_table(long: pd.DataFrame, percent: bool = True, ci: bool = False) -> pd.DataFrame:
    """One row per (benchmark, backbone, run); columns ``<ood> FPR95`` / ``<ood> AUROC`` per OOD set,
    group averages, ``avg FPR95`` / ``avg AUROC``, ``ID acc``; with ``ci``, ``<column> low`` /
    ``<column> high`` after each metric column (NaN where a row has no interval)."""
    scale = 100.0 if percent else 1.0
    rows = []
    for (bench, backbone, method), g in long.groupby(["benchmark", "backbone", "method"], sort=False):
        row: dict[str, object] = {"benchmark": bench, "backbone": backbone, "method": method}
        ordered = [o for o in g["ood"] if o != AVERAGE] + [AVERAGE]
        for ood in ordered:
            r = g[g["ood"] == ood].iloc[0]
            label = column_label(ood)
            for metric in ("fpr95", "auroc"):
                col = f"{label} {metric.upper()}"
                row[col] = r[metric] * scale
                if ci:
                    for side in ("low", "high"):
                        v = r.get(f"{metric}_ci95_{side}")
                        row[f"{col} {side}"] = float("nan") if v is None or pd.isna(v) else v * scale
                spread = r.get(f"{metric}_std")
                if spread is not None and not pd.isna(spread):  # a stream method: spread over stream orders
                    row[f"{col} std"] = spread * scale
        # The average row's: a test-time method classifies each stream a little differently, and `run`
        # prints the average too.
        average = g[g["ood"] == AVERAGE].iloc[0]
        acc = average["id_accuracy"]
        row["ID acc"] = None if pd.isna(acc) else acc * scale
        if ci:
            for side in ("low", "high"):
                v = average.get(f"id_accuracy_ci95_{side}")
                row[f"ID acc {side}"] = float("nan") if v is None or pd.isna(v) else v * scale
        rows.append(row)
    df = pd.DataFrame(rows)
    return df.sort_values(["benchmark", "backbone", "avg FPR95"], kind="stable").reset_index(drop=True)


SUMMARY = ("avg FPR95", "avg AUROC", "ID acc")


@dataclass
class Board:
    """One leaderboard (benchmark x backbone), ready for an emitter."""

    benchmark: str
    backbone: str
    table: pd.DataFrame  # method, then metric columns (numbers in percent)
    intervals: dict[str, pd.DataFrame] = field(default_factory=dict)  # column -> frame of low / high
    spreads: dict[str, pd.Series] = field(default_factory=dict)  # column -> std over stream orders (or NaN)

    @property
    def title(self) -> str:
        return f"{self.benchmark} — {self.backbone} (FPR95 ↓, AUROC ↑, %)"

    def metric_columns(self) -> list[str]:
        return [c for c in self.table.columns if c != "method"]

    def spread(self, column: str, row: int) -> float | None:
        """A stream method's std over its stream orders in this cell; None for a static method."""
        values = self.spreads.get(column)
        value = None if values is None else values.iloc[row]
        return None if value is None or pd.isna(value) else float(value)

    @property
    def has_spreads(self) -> bool:
        return any(values.notna().any() for values in self.spreads.values())


def boards(wide: pd.DataFrame, ci: bool = False) -> list[Board]:
    """Split a wide table into one :class:`Board` per (benchmark, backbone), columns in reading order."""
    out = []
    for (bench, backbone), g in wide.groupby(["benchmark", "backbone"], sort=False):
        g = g.drop(columns=["benchmark", "backbone"]).reset_index(drop=True)
        bounds = [c for c in g.columns if c.endswith((" low", " high", " std"))]
        values = g.drop(columns=bounds).dropna(axis=1, how="all")
        tail = [c for c in SUMMARY if c in values.columns]
        values = values[[c for c in values.columns if c not in tail] + tail]  # per-set columns, then summary
        intervals = {}
        if ci:
            for c in values.columns:
                if f"{c} low" in g.columns and g[f"{c} low"].notna().any():
                    intervals[c] = pd.DataFrame({"low": g[f"{c} low"], "high": g[f"{c} high"]})
        spreads = {c: g[f"{c} std"] for c in values.columns if f"{c} std" in g.columns}
        out.append(Board(str(bench), str(backbone), values, intervals, spreads))
    return out


def render(results: Iterable[ResultSet], fmt: str = "md", long: bool = False, digits: int = 2,
           references: Iterable[Path] = (), ci: bool = False, plots: Path | None = None) -> str:
    """The report text in ``fmt``; ``ci`` adds intervals; ``plots`` (HTML) embeds ``oodbench plot``'s figures."""
    if fmt not in FORMATS:
        raise OodbenchError(f"Unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    refs = [reference_table(Path(p)) for p in references]
    results = list(results)
    frames = [long_table(results)] if results or not refs else []  # no results and no references: error
    table = pd.concat([*frames, *refs], ignore_index=True)
    if long:
        if not ci:
            table = table.drop(columns=[c for c in table.columns if "_ci95_" in c])
        return _emit_long(table, fmt, digits)
    wide = wide_table(table, ci=ci)
    if fmt == "csv":
        return wide.to_csv(index=False, float_format=f"%.{digits}f")
    parts = boards(wide, ci)
    if fmt == "md":
        return "\n\n".join(f"### {b.title}\n\n{_markdown(b, digits)}" for b in parts) + "\n"
    if fmt == "latex":
        from oodbench.latex import latex_boards

        return latex_boards(parts, digits)
    from oodbench.html import html_page, read_plot_index

    return html_page(parts, digits, figures=read_plot_index(plots) if plots else [])


def _markdown(board: Board, digits: int) -> str:
    """Markdown table; a stream method's numbers read ``mean ± std`` (over stream orders), intervals follow."""
    if not board.intervals and not board.spreads:
        table = board.table.astype(object).where(board.table.notna(), None)  # a set a run left out: "–"
        return table.to_markdown(index=False, floatfmt=f".{digits}f", missingval="–")
    shown = board.table.astype(object)
    for col in board.metric_columns():
        bounds = board.intervals.get(col)
        spread = board.spreads.get(col)
        shown[col] = [_with_interval(v, *(bounds.iloc[i] if bounds is not None else (np.nan, np.nan)), digits,
                                     spread.iloc[i] if spread is not None else np.nan)
                      for i, v in enumerate(board.table[col])]
    return shown.to_markdown(index=False, floatfmt=f".{digits}f", colalign=["left"] + ["right"] * (shown.shape[1] - 1))


def _with_interval(value: float, low: float, high: float, digits: int, spread: float = np.nan) -> str:
    if pd.isna(value):
        return ""
    text = f"{value:.{digits}f}" + ("" if pd.isna(spread) else f" ± {spread:.{digits}f}")
    return text if pd.isna(low) else f"{text} [{low:.{digits}f}, {high:.{digits}f}]"


def _emit_long(df: pd.DataFrame, fmt: str, digits: int) -> str:
    # The long table holds fractions: two more decimals keep the precision of the percent tables
    # (AdaNeg's 0.9179 printed as 0.92 before).
    digits += 2
    if fmt == "md":
        return df.to_markdown(index=False, floatfmt=f".{digits}f")
    if fmt == "csv":
        return df.to_csv(index=False)
    if fmt == "latex":
        from oodbench.latex import latex_long

        return latex_long(df, digits)
    from oodbench.html import html_long

    return html_long(df, digits)


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


# ------------------------------------------------------------------------------------ comparisons
def select_runs(results: list[ResultSet], key: str) -> list[ResultSet]:
    """Runs named by ``key``: a result file, else every loaded run whose label (``mcm``, ``mcm@t2``) is
    ``key``."""
    path = Path(key)
    if path.suffix == ".json" and path.is_file():
        return [ResultSet.load(path)]
    found = [r for r in results if r.label == key]
    if not found:
        labels = sorted({r.label for r in results})
        raise OodbenchError(f"--compare: {key!r} is neither a result file nor a run among the results read "
                            f"({', '.join(labels) or 'none'}).")
    return found


def comparison_pairs(results: list[ResultSet], a: str, b: str) -> list[tuple[ResultSet, ResultSet]]:
    """(A, B) pairs to compare: two files directly, else runs of the two labels on the same benchmark
    and backbone."""
    runs_a, runs_b = select_runs(results, a), select_runs(results, b)
    if len(runs_a) == 1 and len(runs_b) == 1:
        return [(runs_a[0], runs_b[0])]
    pairs = [(x, y) for x in runs_a for y in runs_b
             if (x.benchmark, x.backbone.get("slug")) == (y.benchmark, y.backbone.get("slug"))]
    if not pairs:
        raise OodbenchError(f"--compare: {a} and {b} were never run on the same benchmark and backbone.")
    return pairs


def render_comparisons(pairs: list[tuple[ResultSet, ResultSet]], fmt: str = "md", digits: int = 2,
                       resamples: int = 1000, seed: int = 0) -> str:
    """``B - A`` per OOD set with its paired 95% interval (:func:`oodbench.compare.compare`), in points
    of percent; ``*`` marks intervals that exclude 0."""
    from oodbench.compare import compare

    if fmt not in ("md", "csv"):
        raise OodbenchError("--compare prints markdown or CSV (--format md or csv).")
    tidy, parts = [], []
    for a, b in pairs:
        frame = compare(a, b, resamples=resamples, seed=seed)
        head = {"benchmark": a.benchmark, "backbone": a.backbone.get("slug", ""), "a": a.label, "b": b.label}
        tidy.append(frame.assign(**head)[[*head, *frame.columns]])
        rows = []
        for ood, g in frame.groupby("ood", sort=False):
            row: dict[str, str] = {"OOD set": column_label(ood)}
            for metric in ("auroc", "fpr95"):
                m = g[g["metric"] == metric].iloc[0]
                name = metric.upper()
                row[f"{name} A"] = f"{m['a'] * 100:.{digits}f}"
                row[f"{name} B"] = f"{m['b'] * 100:.{digits}f}"
                star = "*" if m["excludes_zero"] else ""
                row[f"Δ {name}"] = f"{m['difference'] * 100:+.{digits}f}{star}"
                row[f"{name} 95% CI"] = f"[{m['ci95_low'] * 100:+.{digits}f}, {m['ci95_high'] * 100:+.{digits}f}]"
            rows.append(row)
        conv = frame.attrs["fpr_convention"]
        title = (f"### {b.label} vs {a.label} on {a.benchmark} — {a.backbone.get('slug', '')}\n\n"
                 f"A = {a.label} ({a.path or 'in memory'}), B = {b.label} ({b.path or 'in memory'}). "
                 f"Δ = B − A in points of %, with the paired bootstrap's 95% interval ({resamples} resamples "
                 f"of the same images for both, seed {seed}; FPR95 convention {conv}). AUROC ↑: a gain is "
                 "positive; FPR95 ↓: a gain is negative. * = the interval excludes 0.")
        table = pd.DataFrame(rows)
        align = ["left"] + ["right"] * (table.shape[1] - 1)
        parts.append(f"{title}\n\n{table.to_markdown(index=False, disable_numparse=True, colalign=align)}")
    if fmt == "csv":
        return pd.concat(tidy, ignore_index=True).to_csv(index=False)
    return "\n\n".join(parts) + "\n"
