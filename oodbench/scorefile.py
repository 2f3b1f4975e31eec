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


def split_scores(frame: pd.DataFrame, id_set: str | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(ID scores, {OOD set: scores})`` of a scores table, in file order.

    The ID set is ``id_set`` when given (a result's provenance names it), else the one data set whose
    labels are class indices (>= 0). A stream method's table (``stream`` / ``repeat`` columns) gives its
    first repeat: each OOD set's own stream, and the ID scores of the first stream.
    """
    if "stream" in frame.columns:
        first = frame[frame["repeat"] == frame["repeat"].min()]
        streams = list(dict.fromkeys(first["stream"]))
        s_id, _ = split_scores(first[first["stream"] == streams[0]].drop(columns=list(STREAM_COLUMNS)), id_set)
        oods = {}
        for name in streams:
            _, sets = split_scores(first[first["stream"] == name].drop(columns=list(STREAM_COLUMNS)), id_set)
            oods.update(sets)
        return s_id, oods
    names = list(dict.fromkeys(frame["dataset"]))
    if id_set is None:
        labelled = [n for n in names if (frame.loc[frame["dataset"] == n, "label"] >= 0).all()]
        if len(labelled) != 1:
            raise OodbenchError(f"Cannot tell the ID set among {', '.join(names)}: name it.")
        id_set = labelled[0]
    if id_set not in names:
        raise OodbenchError(f"The scores hold no rows of the ID set {id_set!r} (found {', '.join(names)}).")
    by_set = {n: frame.loc[frame["dataset"] == n, "score"].to_numpy(np.float64) for n in names}
    s_id = by_set.pop(id_set)
    return s_id, by_set


def score_pairs(frame: pd.DataFrame, id_set: str | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{OOD set: (ID scores, that set's scores)}``: the two samples each OOD set's metrics come from.

    A static method scores the ID images once, so every set shares them. A test-time method scores the ID
    images anew in each OOD set's stream (what it adapted to differs): each set gets its own stream's ID
    scores, of the first repeat.
    """
    if "stream" in frame.columns:
        first = frame[frame["repeat"] == frame["repeat"].min()]
        pairs = {}
        for name in dict.fromkeys(first["stream"]):
            s_id, sets = split_scores(first[first["stream"] == name].drop(columns=list(STREAM_COLUMNS)), id_set)
            pairs[name] = (s_id, sets[name])
        return pairs
    s_id, sets = split_scores(frame, id_set)
    return {name: (s_id, s) for name, s in sets.items()}


def metrics_from_scores(frame: pd.DataFrame, id_set: str | None = None,
                        fpr_convention: str = "nearest") -> dict[str, dict[str, float]]:
    """``{OOD set: ood_metrics(...)}`` recomputed from a scores table (a stream method's: the mean over
    repeats of each stream's metrics, as its result rows report them)."""
    if "stream" in frame.columns:
        out: dict[str, dict[str, float]] = {}
        for name in dict.fromkeys(frame["stream"]):
            runs = [metrics_from_scores(part.drop(columns=list(STREAM_COLUMNS)), id_set, fpr_convention)[name]
                    for _, part in frame[frame["stream"] == name].groupby("repeat", sort=True)]
            out[name] = {k: float(np.mean([m[k] for m in runs])) for k in runs[0]}
        return out
    s_id, oods = split_scores(frame, id_set)
    return {name: ood_metrics(s_id, s, fpr_convention) for name, s in oods.items()}
