"""A report as one standalone HTML page: a captioned table per benchmark x backbone, figures below.

The page carries its own style sheet (numbers right-aligned in tabular figures, the best value of each
column in bold) and, when a folder of ``oodbench plot`` figures is given, embeds each PNG / SVG figure
of a table's benchmark and backbone under it as a data URI, so the single file can be mailed or
archived as it is. PDF figures are linked, not embedded.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from oodbench.errors import OodbenchError
from oodbench.latex import best_rows, format_number

if TYPE_CHECKING:
    from oodbench.report import Board

PLOT_INDEX = "index.json"
EN_DASH = "–"  # a cell without a value
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 72rem;
       padding: 0 1rem; color: #222; }
h1 { font-size: 1.6rem; }
table { border-collapse: collapse; margin: 1.5rem 0 0.5rem; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: 0.5rem; }
th, td { padding: 0.3rem 0.7rem; white-space: nowrap; }
thead tr:first-child th { border-top: 2px solid #222; }
thead tr:last-child th { border-bottom: 1px solid #222; }
tbody tr:last-child td { border-bottom: 2px solid #222; }
th.group { text-align: center; border-bottom: 1px solid #888; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { font-weight: 700; }
.ci { display: block; color: #666; font-size: 0.8em; font-weight: 400; }
.std { color: #555; font-size: 0.85em; font-weight: 400; white-space: nowrap; }
figure { display: inline-block; margin: 0.5rem 1rem 1rem 0; vertical-align: top; }
figure img { max-width: 34rem; width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.9rem; color: #444; max-width: 34rem; }
""".strip()
MIME = {".png": "image/png", ".svg": "image/svg+xml"}


def read_plot_index(folder: Path) -> list[dict[str, Any]]:
    """The figures ``oodbench plot`` wrote to ``folder`` (its ``index.json``), with absolute ``path``s."""
    folder = Path(folder)
    index = folder / PLOT_INDEX
    if not index.is_file():
        raise OodbenchError(f"{folder} holds no figures of `oodbench plot` (no {PLOT_INDEX}). Make them with "
                            f"`oodbench plot RESULTS... --out {folder}`.")
    try:
        entries = json.loads(index.read_text())
    except (OSError, ValueError) as exc:
        raise OodbenchError(f"Cannot read {index}: {exc}.") from None
    return [{**e, "path": folder / e["file"]} for e in entries if (folder / e["file"]).is_file()]


def html_table(board: Board, digits: int = 2) -> str:
    columns = board.metric_columns()
    heads = [c.rpartition(" ") if c.endswith((" FPR95", " AUROC")) else ("", "", c) for c in columns]
    groups: list[tuple[str, int]] = []
    for head, _, _ in heads:
        if groups and head and groups[-1][0] == head:
            groups[-1] = (head, groups[-1][1] + 1)
        else:
            groups.append((head, 1))
    arrow = {"FPR95": "FPR95 ↓", "AUROC": "AUROC ↑", "ID acc": "ID acc ↑"}
    top = ['<th rowspan="2">method</th>'] + [
        f'<th class="group" colspan="{w}">{escape("average" if h == "avg" else h)}</th>' if h
        else '<th rowspan="2" class="num">' + escape(arrow.get(m, m)) + "</th>"
        for (h, w), m in zip(groups, _group_metrics(heads, groups))]
    second = [f'<th class="num">{escape(arrow.get(m, m))}</th>' for h, _, m in heads if h]
    best = {c: best_rows(board.table[c], digits, lower_is_better=c.endswith("FPR95")) for c in columns}
    body = []
    for i, method in enumerate(board.table["method"]):
        cells = [f"<td>{escape(str(method))}</td>"]
        for c in columns:
            text = escape(format_number(board.table[c].iloc[i], digits, EN_DASH))
            spread = board.spread(c, i)
            if spread is not None:
                text += f' <span class="std">± {spread:.{digits}f}</span>'
            bounds = board.intervals.get(c)
            if bounds is not None and not pd.isna(bounds["low"].iloc[i]):
                text += (f' <span class="ci">[{bounds["low"].iloc[i]:.{digits}f}, '
                         f'{bounds["high"].iloc[i]:.{digits}f}]</span>')
            cls = "num best" if i in best[c] else "num"
            cells.append(f'<td class="{cls}">{text}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    note = "; 95% bootstrap intervals in brackets" if board.intervals else ""
    if board.has_spreads:
        note += "; test-time methods: mean ± std over seeded stream orders"
    caption = (f"{board.benchmark} with {board.backbone}: FPR95 (%, lower is better) and AUROC (%, higher is "
               f"better) per OOD set and averaged; best in bold{note}.")
    return ("<table>\n"
            f"<caption>{escape(caption)}</caption>\n"
            f"<thead>\n<tr>{''.join(top)}</tr>\n<tr>{''.join(second)}</tr>\n</thead>\n"
            "<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>\n")


def _group_metrics(heads: list[tuple[str, str, str]], groups: list[tuple[str, int]]) -> list[str]:
    """The metric of each single-column group (ID acc), aligned with ``groups``."""
    out, i = [], 0
    for _, width in groups:
        out.append(heads[i][2])
        i += width
    return out


def html_figure(entry: dict[str, Any]) -> str:
    path = Path(entry["path"])
    caption = escape(entry.get("caption", path.stem))
    mime = MIME.get(path.suffix.lower())
    if mime is None:  # PDF: a link (browsers do not show PDFs in <img>)
        return f'<figure><a href="{escape(path.name)}">{escape(path.name)}</a><figcaption>{caption}</figcaption></figure>'
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:{mime};base64,{data}" alt="{caption}">'
            f"<figcaption>{caption}</figcaption></figure>")


def html_page(boards: Sequence[Board], digits: int = 2, figures: Sequence[dict[str, Any]] = (),
              title: str = "oodbench report") -> str:
    """The whole page: a title, then per board its table and the figures of its benchmark and backbone."""
    sections = []
    for b in boards:
        mine = [f for f in figures if f.get("benchmark") == b.benchmark and f.get("backbone") == b.backbone]
        figs = "\n".join(html_figure(f) for f in mine)
        sections.append(f"<section>\n<h2>{escape(b.benchmark)} — {escape(b.backbone)}</h2>\n"
                        f"{html_table(b, digits)}{figs}\n</section>")
    return _page(title, "\n".join(sections))


def html_long(df: pd.DataFrame, digits: int = 2, title: str = "oodbench results") -> str:
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in df.columns]
    head = "".join(f'<th class="{"num" if n else ""}">{escape(str(c))}</th>' for c, n in zip(df.columns, numeric))
    rows = []
    for _, row in df.iterrows():
        rows.append("<tr>" + "".join(
            f'<td class="num">{escape(format_number(v, digits, EN_DASH))}</td>' if n
            else f"<td>{'' if v is None or (isinstance(v, float) and math.isnan(v)) else escape(str(v))}</td>"
            for v, n in zip(row, numeric)) + "</tr>")
    table = ("<table>\n<caption>One row per run and OOD set (metrics as fractions).</caption>\n"
             f"<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>\n")
    return _page(title, table)


def _page(title: str, body: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{escape(title)}</title>\n"
            f"<style>\n{STYLE}\n</style>\n</head>\n<body>\n<h1>{escape(title)}</h1>\n"
            f"<p>Made by <code>oodbench report</code> on {stamp}.</p>\n{body}\n</body>\n</html>\n")
