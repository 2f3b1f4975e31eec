"""LaTeX tables that compile where they are pasted: escaped text, booktabs rules, best values in bold.

Each leaderboard becomes a ``table`` float with ``\\caption`` and ``\\label``; the document needs
``\\usepackage{booktabs}`` (said in a comment above the first table). Column groups (an OOD set's FPR95
and AUROC) share a ``\\multicolumn`` header with a ``\\cmidrule`` under it. In each column the best
value, compared as printed (after rounding), is bold: the lowest for FPR95, the highest otherwise.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from oodbench.report import Board

#: Characters with a meaning in LaTeX, and characters the default (OT1) font encoding misprints.
_ESCAPES = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
    "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
    ">": r"\textgreater{}", "|": r"\textbar{}",
    "—": "---", "–": "--", "↓": r"$\downarrow$", "↑": r"$\uparrow$", "×": r"$\times$", "±": r"$\pm$",
}
_ESCAPE_RE = re.compile("|".join(re.escape(c) for c in _ESCAPES))
PREAMBLE = "% oodbench report: needs \\usepackage{booktabs} in the preamble\n"
PREAMBLE_CI = "% oodbench report: needs \\usepackage{booktabs} and \\usepackage{graphicx} in the preamble\n"
METRIC_HEADS = {"FPR95": r"FPR95$\downarrow$", "AUROC": r"AUROC$\uparrow$", "ID acc": r"ID acc.$\uparrow$"}


def latex_escape(text: object) -> str:
    """``text`` with every LaTeX special character escaped (``a_b 5%`` -> ``a\\_b 5\\%``)."""
    return _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group(0)], str(text))


def latex_label(*parts: str) -> str:
    """A ``\\label`` key: ``tab:`` and the parts, lower case, runs of other characters as ``-``."""
    return "tab:" + re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")


def _split(column: str) -> tuple[str, str]:
    """``"toyworld-near AUROC"`` -> ``("toyworld-near", "AUROC")``; ``"ID acc"`` -> ``("", "ID acc")``."""
    head, _, metric = column.rpartition(" ")
    return (head, metric) if metric in ("FPR95", "AUROC") else ("", column)


def best_rows(values: pd.Series, digits: int, lower_is_better: bool) -> set[int]:
    """Row positions holding the column's best value as printed with ``digits`` decimals."""
    shown = [round(float(v), digits) if v is not None and not pd.isna(v) else None for v in values]
    present = [v for v in shown if v is not None]
    if not present:
        return set()
    best = min(present) if lower_is_better else max(present)
    return {i for i, v in enumerate(shown) if v == best}


def format_number(value: object, digits: int, missing: str = "--") -> str:
    """``value`` with ``digits`` decimals; ``missing`` for None or NaN (LaTeX's en dash ``--`` by default)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    return f"{float(value):.{digits}f}"


def latex_board(board: Board, digits: int = 2) -> str:
    """One leaderboard as a ``table`` float."""
    columns = board.metric_columns()
    split = [_split(c) for c in columns]
    cells = [[latex_escape(m) for m in board.table["method"]]]
    for col, (_, metric) in zip(columns, split):
        best = best_rows(board.table[col], digits, lower_is_better=metric == "FPR95")
        bounds = board.intervals.get(col)
        out = []
        for i, v in enumerate(board.table[col]):
            text = format_number(v, digits)
            if i in best:
                text = rf"\textbf{{{text}}}"
            spread = board.spread(col, i)
            if spread is not None:
                text += rf"\,{{\scriptsize$\pm${spread:.{digits}f}}}"
            if bounds is not None and not pd.isna(bounds["low"].iloc[i]):
                text += (rf"\,{{\scriptsize[{bounds['low'].iloc[i]:.{digits}f}, "
                         rf"{bounds['high'].iloc[i]:.{digits}f}]}}")
            out.append(text)
        cells.append(out)
    # header: a \multicolumn per OOD set (or average) over its metrics, then the metric names
    groups: list[tuple[str, int]] = []
    for head, _ in split:
        if groups and groups[-1][0] == head and head:
            groups[-1] = (head, groups[-1][1] + 1)
        else:
            groups.append((head, 1))
    top, rules, col = [""], [], 2
    for head, width in groups:
        name = "Average" if head == "avg" else head
        top.append(rf"\multicolumn{{{width}}}{{c}}{{{latex_escape(name)}}}" if head else "")
        if head:
            rules.append(rf"\cmidrule(lr){{{col}-{col + width - 1}}}")
        col += width
    second = ["Method"] + [METRIC_HEADS.get(metric, latex_escape(metric)) for _, metric in split]
    accuracy = " and ID accuracy" if "ID acc" in columns else ""
    brackets = "; 95\\% bootstrap intervals in brackets" if board.intervals else ""
    if board.has_spreads:
        brackets += "; test-time methods: mean $\\pm$ std over seeded stream orders"
    caption = (f"{latex_escape(board.benchmark)} with {latex_escape(board.backbone)}: FPR95 (\\%, lower is "
               f"better) and AUROC (\\%, higher is better) per OOD set, their average{accuracy}; best in "
               f"bold{brackets}.")
    wide = bool(board.intervals)  # values with intervals: scaled to the text width (graphicx)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        r"\setlength{\tabcolsep}{3.5pt}",
        rf"\caption{{{caption}}}",
        rf"\label{{{latex_label('oodbench', board.benchmark, board.backbone)}}}",
        r"\resizebox{\linewidth}{!}{%" if wide else "",
        rf"\begin{{tabular}}{{l{'r' * len(columns)}}}",
        r"\toprule",
        " & ".join(top) + r" \\",
        "".join(rules),
        " & ".join(second) + r" \\",
        r"\midrule",
        *(" & ".join(row) + r" \\" for row in zip(*cells)),
        r"\bottomrule",
        r"\end{tabular}",
        r"}" if wide else "",
        r"\end{table}",
    ]
    return "\n".join(line for line in lines if line) + "\n"


def latex_boards(boards: Sequence[Board], digits: int = 2) -> str:
    head = PREAMBLE_CI if any(b.intervals for b in boards) else PREAMBLE
    return head + "\n".join(latex_board(b, digits) for b in boards)


def latex_long(df: pd.DataFrame, digits: int = 2, caption: str = "oodbench results, one row per run and "
               "OOD set (metrics as fractions).") -> str:
    """A flat table (``report --long``): text columns left-aligned, numbers right-aligned."""
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in df.columns]
    spec = "".join("r" if n else "l" for n in numeric)
    body = []
    for _, row in df.iterrows():
        body.append(" & ".join(format_number(v, digits) if n else ("" if v is None or (isinstance(v, float) and
                                                                                  math.isnan(v))
                                                             else latex_escape(v))
                               for v, n in zip(row, numeric)) + r" \\")
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{latex_escape(caption)}}}",
             rf"\label{{{latex_label('oodbench', 'long')}}}", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(latex_escape(c) for c in df.columns) + r" \\", r"\midrule", *body, r"\bottomrule",
             r"\end{tabular}", r"\end{table}"]
    return PREAMBLE + "\n".join(lines) + "\n"
