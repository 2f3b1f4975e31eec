"""ResultSet: one (benchmark, backbone, method, variant) run, saved as self-describing JSON plus CSV.

JSON layout (``format: oodbench-result/1``)::

    {"format", "benchmark", "backbone": {identity..., "slug"}, "method", "params",
     "rows": [{"ood": NAME, ["group"], "auroc", "fpr95", "aupr_in", "aupr_out", "id_accuracy", "n_id",
               "n_ood", ["id_acceptance", "ood_rejection"], ["ci95": {metric: [low, high]}],
               ["std": {metric: spread over stream orders}]}, ...,
              [{"ood": "average-<group>", "group": GROUP, ...}, ...], {"ood": "average", ...}],
     "provenance": {versions, date, seed, fpr_convention, datasets, method facts, bootstrap, timings},
     "variant": "" | TAG | HASH, "settings": {the run's non-default settings}}

Rows come in suite order, one per OOD set; a suite with groups (near / far) adds ``group`` to each of
them and one ``average-<group>`` row per group after them; the last row is always the overall
``average`` over the OOD sets (:func:`summary_rows`).

A run with default settings is ``<out>/<benchmark>/<backbone slug>/<method>.json``; a run whose method
parameters, templates, words, seed or FPR convention differ from the defaults is
``<method>@<variant>.json``, the variant being ``--tag NAME`` or a short hash of those settings, so it
never overwrites the default run and shows as its own row (``mcm@t2``). Beside the JSON, sharing its
stem: ``.csv`` (the rows), ``.scores.csv.gz`` (per-image scores, ``--save-scores``) and one
``.<name>.tsv`` per table the method exported (e.g. NegLabel's ``.negatives.tsv``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from oodbench.errors import OodbenchError
from oodbench.files import atomic_write_many, write_error
from oodbench.metrics import METRIC_KEYS
from oodbench.scorefile import SCORES_SUFFIX, encode_scores, read_scores

FORMAT = "oodbench-result/1"
AVERAGE = "average"
ROW_KEYS = ("ood", *METRIC_KEYS, "id_accuracy", "n_id", "n_ood")
#: Fields written to the JSON file, in order (``path``, ``scores`` and ``exports`` stay in memory).
SAVED = ("benchmark", "backbone", "method", "params", "rows", "provenance", "variant", "settings")
TAG_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass
class ResultSet:
    benchmark: str
    backbone: dict[str, Any]
    method: str
    params: dict[str, Any]
    rows: list[dict[str, Any]]
    provenance: dict[str, Any] = field(default_factory=dict)
    variant: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    #: where it was loaded from or saved to
    path: Path | None = field(default=None, repr=False, compare=False)
    #: per-image scores (``dataset``, ``path``, ``label``, ``score``), when kept or loaded
    scores: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    #: tables the method exported (:meth:`oodbench.scorer.Scorer.exports`)
    exports: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False, compare=False)

    @property
    def label(self) -> str:
        """The run's name in tables: the method, plus ``@variant`` for non-default settings."""
        return f"{self.method}@{self.variant}" if self.variant else self.method

    @property
    def id_set(self) -> str | None:
        """The ID data set's name (from the provenance)."""
        return self.provenance.get("benchmark", {}).get("id")

    @staticmethod
    def average_row(rows: list[dict[str, Any]], ood: str = AVERAGE) -> dict[str, Any]:
        """Arithmetic mean over OOD sets of every numeric metric (unweighted, as MCM/NegLabel report)."""
        avg: dict[str, Any] = {"ood": ood}
        keys = [k for k in rows[0] if k not in ("ood", "group", "n_ood", "n_id", "ci95", "std")]
        for k in keys:
            vals = [r[k] for r in rows if isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool)]
            avg[k] = sum(vals) / len(vals) if vals else None
        avg["n_id"] = rows[0].get("n_id")
        avg["n_ood"] = sum(r.get("n_ood") or 0 for r in rows)
        return avg

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **{k: getattr(self, k) for k in SAVED}}

    def frame(self) -> pd.DataFrame:
        """Long-form table: one line per OOD set (and the averages) with the run's identity columns.

        ``method`` is the run's :attr:`label`; a row's ``ci95`` becomes ``<metric>_ci95_low`` /
        ``<metric>_ci95_high`` columns, and a stream method's ``std`` ``<metric>_std`` columns.
        """
        rows = []
        for row in self.rows:
            flat = {k: v for k, v in row.items() if k not in ("ci95", "std")}
            for metric, (low, high) in (row.get("ci95") or {}).items():
                flat[f"{metric}_ci95_low"], flat[f"{metric}_ci95_high"] = low, high
            for metric, spread in (row.get("std") or {}).items():
                flat[f"{metric}_std"] = spread
            rows.append(flat)
        df = pd.DataFrame(rows)
        df.insert(0, "method", self.label)
        df.insert(0, "backbone", self.backbone.get("slug", ""))
        df.insert(0, "benchmark", self.benchmark)
        return df

    def save(self, path: Path, scores: bool = False) -> Path:
        """Write ``path`` (JSON), its ``.csv``, the exported tables and (``scores``) the per-image scores.

        All of them are on disk before any is renamed into place, the JSON last, so there is never a JSON
        without its side files; a failed write (disk full) leaves none of them and is an
        :class:`OodbenchError`. A scores file left from an earlier run at this path is removed when this
        run saves none (it would not belong to these numbers).
        """
        path = Path(path)
        blobs = {side_file(path, f"{name}.tsv"): table.to_csv(sep="\t", index=False).encode("utf-8")
                 for name, table in self.exports.items()}
        score_file = side_file(path, SCORES_SUFFIX)
        if scores:
            if self.scores is None:
                raise RuntimeError(f"{self.label}: no per-image scores to save")
            data, facts = encode_scores(self.scores)
            blobs[score_file] = data
            self.provenance["scores"] = {"file": score_file.name, **facts}
        else:
            self.provenance.pop("scores", None)
        blobs[path.with_suffix(".csv")] = self.frame().to_csv(index=False).encode("utf-8")
        blobs[path] = (json.dumps(self.to_dict(), indent=2, default=str) + "\n").encode("utf-8")
        try:
            atomic_write_many(blobs)
        except OSError as exc:
            raise write_error("the results", path, exc,
                              then="(the image features are cached: only the scoring is redone)") from None
        if not scores:
            score_file.unlink(missing_ok=True)
        self.path = path
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
        return cls(**{k: data[k] for k in SAVED if k in data}, path=Path(path))

    def load_scores(self) -> pd.DataFrame:
        """The per-image scores saved beside this result (``--save-scores``), checked against it."""
        if self.scores is not None:
            return self.scores
        recorded = self.provenance.get("scores")
        if self.path is None or not recorded:
            raise OodbenchError(
                f"The result {self.path or self.label} has no per-image scores. Run it again with "
                "`oodbench run ... --save-scores` (cached features make that quick).")
        self.scores = read_scores(self.path.with_name(recorded["file"]), expect_sha256=recorded.get("sha256"))
        return self.scores


def summary_rows(rows: list[dict[str, Any]], groups: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    """The average rows after the per-set ``rows``: one ``average-<group>`` row per group (unweighted mean
    over the group's sets, as OpenOOD v1.5 reports near / far), then the overall ``average``."""
    by_ood = {r["ood"]: r for r in rows}
    out = []
    for group, members in groups.items():
        avg = ResultSet.average_row([by_ood[m] for m in members], f"{AVERAGE}-{group}")
        out.append({"ood": avg.pop("ood"), "group": group, **avg})
    return [*out, ResultSet.average_row(rows)]


def side_file(result: Path, suffix: str) -> Path:
    """``<stem>.<suffix>`` beside a result JSON (``mcm@t2.json`` -> ``mcm@t2.scores.csv.gz``)."""
    return result.with_name(f"{result.stem}.{suffix}")


def check_tag(tag: str) -> str:
    """A ``--tag``, checked: letters, digits, ``.``, ``_``, ``-``; it becomes part of file names."""
    if not TAG_PATTERN.fullmatch(tag):
        raise OodbenchError(f"--tag {tag!r} must be 1-64 letters, digits, '.', '_' or '-', starting with a "
                            "letter or digit (it becomes part of the result's file name).")
    return tag


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


def result_path(out_dir: Path, benchmark: str, backbone_slug: str, method: str, variant: str = "") -> Path:
    safe = benchmark.replace("/", "-").replace(":", "-")
    name = f"{method}@{variant}" if variant else method
    return Path(out_dir) / safe / backbone_slug / f"{name}.json"


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
    return list(dict.fromkeys(found))  # a file named twice (a folder and a file in it) is read once


def _is_result(path: Path) -> bool:
    try:
        with path.open() as fh:
            head = fh.read(200)
    except OSError:
        return False
    return FORMAT in head

