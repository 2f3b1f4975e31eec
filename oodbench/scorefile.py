"""Per-image scores: one row per image of every data set a method scored, beside its result JSON.

``<stem>.scores.csv.gz`` (gzip-compressed CSV, readable with ``pandas.read_csv``), columns:

- ``dataset``: the data set's name (the ID set and each OOD set, as in the result's rows);
- ``path``: the image's path relative to the data set's root (POSIX separators), or, for sets that
  are not files (torchvision's CIFAR / SVHN, generated arrays), a stable item id ``<split>/<index>``;
- ``label``: the ID class index, or -1 for OOD images;
- ``score``: the method's score, higher = more ID, written with every digit of its float64 value, so
  metrics recomputed from the file equal the result's exactly (:func:`metrics_from_scores`).

Test-time (stream) methods score the ID set once per stream, so their files have two more columns:
``stream`` (the OOD set whose stream the row was scored in) and ``repeat`` (0, 1, ...: the stream order);
their metrics are the mean over repeats of each stream's metrics.

CSV rather than Parquet: it needs no dependency beyond pandas, and gzip makes it about as small for
this table (a repeated dataset name, short paths, one float).
"""

from __future__ import annotations

import gzip
import hashlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oodbench.errors import OodbenchError
from oodbench.files import atomic_write_bytes
from oodbench.metrics import ood_metrics

SCORES_SUFFIX = "scores.csv.gz"
COLUMNS = ("dataset", "path", "label", "score")
#: The columns stream methods' files add: the stream (its OOD set) and the repeat of each row.
STREAM_COLUMNS = ("stream", "repeat")


def scores_table(dataset: str, items: Sequence[str], labels: np.ndarray, scores: np.ndarray, *,
                 stream: str | None = None, repeat: int | None = None) -> pd.DataFrame:
    """The rows of one data set (``labels``: ID class or -1; ``scores``: float64, higher = more ID); a stream
    method's rows also name their ``stream`` and ``repeat``."""
    if not len(items) == len(labels) == len(scores):
        raise ValueError(f"{dataset}: {len(items)} items, {len(labels)} labels, {len(scores)} scores")
    frame = pd.DataFrame({"dataset": dataset, "path": list(items),
                          "label": np.asarray(labels, dtype=np.int64),
                          "score": np.asarray(scores, dtype=np.float64)}, columns=list(COLUMNS))
    if stream is not None:
        frame["stream"] = stream
        frame["repeat"] = int(repeat or 0)
    return frame


def columns_of(frame: pd.DataFrame) -> list[str]:
    """The scores-file columns ``frame`` has: the four, plus ``stream`` / ``repeat`` for stream methods."""
    return [*COLUMNS, *(c for c in STREAM_COLUMNS if c in frame.columns)]


def encode_scores(frame: pd.DataFrame) -> tuple[bytes, dict[str, Any]]:
    """The bytes of a scores file (gzip CSV, byte-identical for equal tables: no time stamp inside) and
    ``{"rows", "sha256"}`` for the result's provenance, so that a reader can tell the file belongs to it."""
    text = frame.loc[:, columns_of(frame)].to_csv(index=False, float_format=None)
    data = gzip.compress(text.encode("utf-8"), compresslevel=6, mtime=0)
    return data, {"rows": int(len(frame)), "sha256": hashlib.sha256(data).hexdigest()}


def write_scores(frame: pd.DataFrame, path: Path) -> dict[str, Any]:
    """Write ``frame`` atomically as a scores file; returns :func:`encode_scores`' facts."""
    data, facts = encode_scores(frame)
    atomic_write_bytes(Path(path), data)
    return facts


def read_scores(path: Path, expect_sha256: str | None = None) -> pd.DataFrame:
    """Read a scores file; with ``expect_sha256``, check it is the one its result recorded."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise OodbenchError(f"Cannot read the per-image scores {path}: {exc}. Run the benchmark again with "
                            "--save-scores.") from None
    if expect_sha256 and hashlib.sha256(data).hexdigest() != expect_sha256:
        raise OodbenchError(f"The per-image scores {path} do not belong to the result beside them (another "
                            "run wrote them). Run the benchmark again with --save-scores.")
    try:
        frame = pd.read_csv(io.BytesIO(gzip.decompress(data)),
                            dtype={"dataset": str, "path": str, "stream": str}, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise OodbenchError(f"{path} is not a readable scores file ({exc}).") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise OodbenchError(f"{path} lacks the column(s) {', '.join(missing)} of a scores file "
                            f"({', '.join(COLUMNS)}).")
    return frame


def _by_set(frame: pd.DataFrame, id_set: str | None) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """``(ID rows, {OOD set: its rows})`` of a table in which each data set's images appear once.

    The ID set is ``id_set`` when given (a result's provenance names it), else the one data set whose
    labels are class indices (>= 0).
    """
    names = list(dict.fromkeys(frame["dataset"]))
    if id_set is None:
        labelled = [n for n in names if (frame.loc[frame["dataset"] == n, "label"] >= 0).all()]
        if len(labelled) != 1:
            raise OodbenchError(f"Cannot tell the ID set among {', '.join(names)}: name it.")
        id_set = labelled[0]
    if id_set not in names:
        raise OodbenchError(f"The scores hold no rows of the ID set {id_set!r} (found {', '.join(names)}).")
    return frame[frame["dataset"] == id_set], {n: frame[frame["dataset"] == n] for n in names if n != id_set}


def set_runs(frame: pd.DataFrame,
             id_set: str | None = None) -> dict[str, list[tuple[pd.DataFrame, pd.DataFrame]]]:
    """``{OOD set: [(ID rows, that set's rows), ...]}``: the samples each OOD set's metrics come from.

    A static method scored the ID images once: one pair per set, the same ID rows for every set. A
    test-time method scored them anew in each OOD set's stream, once per stream order: one pair per
    repeat, in repeat order (its result rows are the means over them). Sets in file order.
    """
    if "stream" not in frame.columns:
        id_rows, sets = _by_set(frame, id_set)
        return {name: [(id_rows, rows)] for name, rows in sets.items()}
    runs: dict[str, list[tuple[pd.DataFrame, pd.DataFrame]]] = {}
    for name in dict.fromkeys(frame["stream"]):
        for _, part in frame[frame["stream"] == name].groupby("repeat", sort=True):
            id_rows, sets = _by_set(part.drop(columns=list(STREAM_COLUMNS)), id_set)
            runs.setdefault(name, []).append((id_rows, sets[name]))
    return runs


def _scores(rows: pd.DataFrame) -> np.ndarray:
    return rows["score"].to_numpy(np.float64)


def split_scores(frame: pd.DataFrame, id_set: str | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(ID scores, {OOD set: scores})`` of a scores table, in file order (see :func:`set_runs` for the ID
    set). A stream method's table gives its first repeat: each OOD set's own stream, and the ID scores of
    the first stream (:func:`score_pairs` pairs each set with its own stream's)."""
    if "stream" not in frame.columns:
        id_rows, sets = _by_set(frame, id_set)
        return _scores(id_rows), {name: _scores(rows) for name, rows in sets.items()}
    pairs = score_pairs(frame, id_set)
    return next(iter(pairs.values()))[0], {name: ood for name, (_, ood) in pairs.items()}


def score_pairs(frame: pd.DataFrame, id_set: str | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{OOD set: (ID scores, that set's scores)}`` of the first (or only) run of each set
    (:func:`set_runs`): a test-time method's sets each with their own stream's ID scores."""
    return {name: (_scores(pairs[0][0]), _scores(pairs[0][1]))
            for name, pairs in set_runs(frame, id_set).items()}


def metrics_from_scores(frame: pd.DataFrame, id_set: str | None = None,
                        fpr_convention: str = "nearest") -> dict[str, dict[str, float]]:
    """``{OOD set: ood_metrics(...)}`` recomputed from a scores table (a stream method's: the mean over
    repeats of each stream's metrics, as its result rows report them)."""
    out: dict[str, dict[str, float]] = {}
    for name, pairs in set_runs(frame, id_set).items():
        runs = [ood_metrics(_scores(id_rows), _scores(rows), fpr_convention) for id_rows, rows in pairs]
        out[name] = {k: float(np.mean([m[k] for m in runs])) for k in runs[0]}
    return out
