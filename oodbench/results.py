"""ResultSet: one (benchmark, backbone, method) run, saved as self-describing JSON plus CSV.

JSON layout (``format: oodbench-result/1``)::

    {"format", "benchmark", "backbone": {identity..., "slug"}, "method", "params",
     "rows": [{"ood": NAME, ["group"], "auroc", "fpr95", "aupr_in", "aupr_out", "id_accuracy", "n_id",
               "n_ood", ["id_acceptance", "ood_rejection"]}, ...,
              [{"ood": "average-<group>", "group": GROUP, ...}, ...], {"ood": "average", ...}],
     "provenance": {versions, date, seed, fpr_convention, datasets, method facts, timings}}

Rows come in suite order, one per OOD set; a suite with groups (near / far) adds ``group`` to each of
them and one ``average-<group>`` row per group after them; the last row is always the overall
``average`` over the OOD sets (:func:`summary_rows`).

The default path is ``<out>/<benchmark>/<backbone slug>/<method>.json`` (``.csv`` beside it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from oodbench.errors import OodbenchError
from oodbench.files import atomic_write_many, write_error
from oodbench.metrics import METRIC_KEYS

FORMAT = "oodbench-result/1"
AVERAGE = "average"
ROW_KEYS = ("ood", *METRIC_KEYS, "id_accuracy", "n_id", "n_ood")


@dataclass
class ResultSet:
    benchmark: str
    backbone: dict[str, Any]
    method: str
    params: dict[str, Any]
    rows: list[dict[str, Any]]
    provenance: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def average_row(rows: list[dict[str, Any]], ood: str = AVERAGE) -> dict[str, Any]:
        """Arithmetic mean over OOD sets of every numeric metric (unweighted, as MCM/NegLabel report)."""
        avg: dict[str, Any] = {"ood": ood}
        keys = [k for k in rows[0] if k not in ("ood", "group", "n_ood", "n_id")]
        for k in keys:
            vals = [r[k] for r in rows if r.get(k) is not None]
            avg[k] = sum(vals) / len(vals) if vals else None
        avg["n_id"] = rows[0].get("n_id")
        avg["n_ood"] = sum(r.get("n_ood") or 0 for r in rows)
        return avg

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    def frame(self) -> pd.DataFrame:
        """Long-form table: one line per OOD set (and the average) with the run's identity columns."""
        df = pd.DataFrame(self.rows)
        df.insert(0, "method", self.method)
        df.insert(0, "backbone", self.backbone.get("slug", ""))
        df.insert(0, "benchmark", self.benchmark)
        return df

    def save(self, path: Path) -> Path:
        """Write ``path`` (JSON) and ``path.with_suffix('.csv')``: both are on disk before either is renamed
        into place, the JSON last, so there is never a JSON without its CSV; a failed write (disk full)
        leaves neither and is an :class:`OodbenchError`."""
        blobs = {path.with_suffix(".csv"): self.frame().to_csv(index=False).encode("utf-8"),
                 path: (json.dumps(self.to_dict(), indent=2, default=str) + "\n").encode("utf-8")}
        try:
            atomic_write_many(blobs)
        except OSError as exc:
            raise write_error("the results", path, exc,
                              then="(the image features are cached: only the scoring is redone)") from None
        return path

    @classmethod
    def load(cls, path: Path) -> ResultSet:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # ValueError: bad JSON, not UTF-8
            raise OodbenchError(f"Cannot read result file {path}: {exc}.") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise OodbenchError(f"{path} is not an oodbench result file (expected \"format\": \"{FORMAT}\").")
        problem = _problem(data)
        if problem:
            raise OodbenchError(f"The result file {path} is damaged or was edited by hand: {problem}. Run the "
                                "command that made it again (its provenance says which), or remove the file.")
        return cls(**{k: data[k] for k in ("benchmark", "backbone", "method", "params", "rows", "provenance")})


def summary_rows(rows: list[dict[str, Any]], groups: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    """The average rows after the per-set ``rows``: one ``average-<group>`` row per group (unweighted mean
    over the group's sets, as OpenOOD v1.5 reports near / far), then the overall ``average``."""
    by_ood = {r["ood"]: r for r in rows}
    out = []
    for group, members in groups.items():
        avg = ResultSet.average_row([by_ood[m] for m in members], f"{AVERAGE}-{group}")
        out.append({"ood": avg.pop("ood"), "group": group, **avg})
    return [*out, ResultSet.average_row(rows)]


NUMERIC_ROW_KEYS = ("fpr95", "auroc")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _problem(data: dict[str, Any]) -> str:
    """What is wrong with a result file's content ("" when nothing): the fields ``report`` relies on."""
    missing = [k for k in ("benchmark", "backbone", "method", "params", "rows", "provenance") if k not in data]
    if missing:
        return f"it lacks the field(s) {', '.join(missing)}"
    if not isinstance(data["backbone"], dict) or not isinstance(data["rows"], list) or not data["rows"]:
        return "'backbone' must be an object and 'rows' a non-empty list"
    for i, row in enumerate(data["rows"]):
        if not isinstance(row, dict) or not isinstance(row.get("ood"), str):
            return f"row {i} has no OOD set name ('ood')"
        for key in NUMERIC_ROW_KEYS:
            if not _is_number(row.get(key)):
                return f"row {i} ({row['ood']}) has {key} = {row.get(key)!r}, not a number"
        for key in (*METRIC_KEYS, "id_accuracy"):
            if row.get(key) is not None and not _is_number(row[key]):
                return f"row {i} ({row['ood']}) has {key} = {row[key]!r}, not a number"
    if not any(row["ood"] == AVERAGE for row in data["rows"]):
        return f"it has no '{AVERAGE}' row"
    return ""


def result_path(out_dir: Path, benchmark: str, backbone_slug: str, method: str) -> Path:
    safe = benchmark.replace("/", "-").replace(":", "-")
    return Path(out_dir) / safe / backbone_slug / f"{method}.json"


def find_result_files(paths: list[Path]) -> list[Path]:
    """Result JSON files among ``paths`` (files, or folders searched recursively)."""
    found: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found += sorted(q for q in p.rglob("*.json") if _is_result(q))
        elif p.is_file():
            found.append(p)
        else:
            raise OodbenchError(f"No such result file or folder: {p}.")
    return found


def _is_result(path: Path) -> bool:
    try:
        with path.open() as fh:
            head = fh.read(200)
    except OSError:
        return False
    return FORMAT in head

