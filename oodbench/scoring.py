"""Scoring a fitted method on encoded data sets: the rows, score tables and bootstrap replicates of a run.

Two protocols. A static method (:func:`score_static`) scores the ID set once and each OOD set once; every
row pairs the ID scores with one OOD set's. A test-time method (:func:`score_streams`) sees, per OOD set and
repeat, one seeded stream of the ID images and that set's, scored in stream order from a fresh state; its
rows are the means over repeats, with their spread under ``std``. Both work on cached features only: no
image is decoded here. :func:`oodbench.runner.score_method` turns their output into a result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from oodbench.bootstrap import accuracy_replicates, bootstrap_replicates
from oodbench.errors import OodbenchError
from oodbench.hashing import sha256_json
from oodbench.metrics import decision_rates, id_accuracy, ood_metrics
from oodbench.progress import progress_bar
from oodbench.results import summary_rows
from oodbench.scorefile import scores_table
from oodbench.scorer import Scorer

if TYPE_CHECKING:
    from oodbench.runner import RunConfig


@dataclass
class EncodedSet:
    name: str
    features: torch.Tensor  # [N, D] float32, L2-normalised
    labels: np.ndarray
    identity: dict[str, Any]
    cached: bool
    patches: torch.Tensor | None = None  # [N, P, D] fp16, memory-mapped; only when a method needs them
    items: list[str] = field(default_factory=list)  # stable per-image ids (ImageSet.item_ids)



def _row(cfg: RunConfig, enc: EncodedSet, s_id: np.ndarray, s_ood: np.ndarray,
         acc: float | None) -> dict[str, Any]:
    group = cfg.benchmark.group_of(enc.name)
    return {"ood": enc.name, **({"group": group} if group else {}),
            **ood_metrics(s_id, s_ood, cfg.fpr_convention),
            "id_accuracy": acc, "n_id": len(s_id), "n_ood": len(s_ood)}


def _replicates(cfg: RunConfig, id_enc: EncodedSet, enc: EncodedSet, s_id: np.ndarray,
                s_ood: np.ndarray, accuracy: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The set's bootstrap replicates of every metric; ``accuracy``: the ID accuracy's, when it classifies."""
    reps = bootstrap_replicates(s_id, s_ood, id_name=id_enc.name, ood_name=enc.name, resamples=cfg.bootstrap,
                                seed=cfg.seed, fpr_convention=cfg.fpr_convention)
    return reps if accuracy is None else {**reps, "id_accuracy": accuracy}


def _accuracy_replicates(cfg: RunConfig, id_enc: EncodedSet, pred: np.ndarray | None) -> np.ndarray | None:
    if cfg.bootstrap <= 0 or pred is None or not (id_enc.labels >= 0).all():
        return None
    return accuracy_replicates(pred == id_enc.labels, id_name=id_enc.name, resamples=cfg.bootstrap,
                               seed=cfg.seed)


def score_static(scorer: Scorer, id_enc: EncodedSet, ood_enc: list[EncodedSet], cfg: RunConfig,
                  ) -> tuple[list[dict[str, Any]], list[pd.DataFrame], dict[str, dict[str, np.ndarray]]]:
    """A static method: the ID set scored once, each OOD set once; rows, score tables, replicates."""
    s_id = _scores(scorer, id_enc)
    pred = scorer.predict_classes(id_enc.features)
    labels = id_enc.labels
    acc = id_accuracy(pred.cpu().numpy(), labels) if pred is not None and (labels >= 0).all() else None
    acc_reps = _accuracy_replicates(cfg, id_enc, pred.cpu().numpy() if pred is not None else None)
    dec_id = scorer.decide(id_enc.features)
    rows = []
    tables = [scores_table(id_enc.name, id_enc.items, labels, s_id)]
    replicates = {}
    for enc in ood_enc:
        s_ood = _scores(scorer, enc)
        tables.append(scores_table(enc.name, enc.items, np.full(len(s_ood), -1), s_ood))
        row = _row(cfg, enc, s_id, s_ood, acc)
        if dec_id is not None:
            row.update(decision_rates(dec_id.cpu().numpy(), scorer.decide(enc.features).cpu().numpy()))
        rows.append(row)
        if cfg.bootstrap > 0:
            replicates[enc.name] = _replicates(cfg, id_enc, enc, s_id, s_ood, acc_reps)
    rows += summary_rows(rows, cfg.benchmark.groups)
    return rows, tables, replicates


#: The metrics whose spread over stream orders a stream method's rows report under ``std``.
STREAM_METRICS = ("auroc", "fpr95", "aupr_in", "aupr_out", "id_accuracy")


def stream_seed(seed: int, ood: str, repeat: int) -> int:
    """The seed of one stream: a function of the run's seed, the OOD set's name and the repeat (not of the
    order of the OOD sets), as a 63-bit integer."""
    return int(sha256_json({"seed": seed, "ood": ood, "repeat": repeat}, 15), 16)


def stream_order(n: int, seed: int) -> torch.Tensor:
    """The stream: a permutation of ``n`` images (``torch.randperm`` on a CPU generator seeded by
    ``seed``)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def score_streams(scorer: Scorer, id_enc: EncodedSet, ood_enc: list[EncodedSet], cfg: RunConfig):  # type: ignore[no-untyped-def]
    """A test-time method: per OOD set and repeat, one seeded stream of ID + that OOD set, scored in order.

    Every repeat gives a full set of rows (per set, then the averages); the rows reported are their mean
    over repeats, with the standard deviation (ddof 1; 0 for one repeat) of each metric under ``std``.
    Intervals: each repeat is bootstrapped with the same resample indices and the replicates averaged, so
    ``ci95`` is the interval of the repeat-mean metric. Score tables hold every stream and repeat (columns
    ``stream``, ``repeat``; the ID images appear once per stream).
    """
    repeats = int(cfg.stream_repeats)
    if repeats < 1:
        raise OodbenchError(f"--stream-repeats must be at least 1; got {repeats}.")
    labels = id_enc.labels
    n_id = len(id_enc.features)
    per_repeat: list[list[dict[str, Any]]] = [[] for _ in range(repeats)]
    reps: dict[str, list[dict[str, np.ndarray]]] = {}
    tables = []
    seeds: dict[str, list[int]] = {}
    bar = progress_bar()  # TANL's 60,000-image streams take about 90 s each on a 2-core CPU
    task = bar.add_task(f"{scorer.name}: streams", total=len(ood_enc) * repeats)
    with bar:
        for enc in ood_enc:
            feats = torch.cat([id_enc.features, enc.features.to(id_enc.features.dtype)])
            for r in range(repeats):
                seed = stream_seed(cfg.seed, enc.name, r)
                seeds.setdefault(enc.name, []).append(seed)
                order = stream_order(len(feats), seed)
                out = scorer.score_stream(feats[order], seed=seed)
                if out.scores.shape != (len(feats),):
                    raise RuntimeError(f"{scorer.name}.score_stream returned shape "
                                       f"{tuple(out.scores.shape)} for {len(feats)} images")
                scores = np.empty(len(feats), dtype=np.float64)
                scores[order.numpy()] = out.scores.detach().double().cpu().numpy()
                s_id, s_ood = scores[:n_id], scores[n_id:]
                acc, pred = None, None
                if out.predictions is not None and (labels >= 0).all():
                    pred = np.empty(len(feats), dtype=np.int64)
                    pred[order.numpy()] = out.predictions.detach().cpu().numpy()
                    acc = id_accuracy(pred[:n_id], labels)
                per_repeat[r].append(_row(cfg, enc, s_id, s_ood, acc))
                if cfg.bootstrap > 0:
                    acc_reps = _accuracy_replicates(cfg, id_enc, None if pred is None else pred[:n_id])
                    reps.setdefault(enc.name, []).append(
                        _replicates(cfg, id_enc, enc, s_id, s_ood, acc_reps))
                tables += [scores_table(id_enc.name, id_enc.items, labels, s_id, stream=enc.name, repeat=r),
                           scores_table(enc.name, enc.items, np.full(len(s_ood), -1), s_ood, stream=enc.name,
                                        repeat=r)]
                bar.advance(task)
    full = [rows + summary_rows(rows, cfg.benchmark.groups) for rows in per_repeat]
    rows = []
    for variants in zip(*full):
        row = dict(variants[0])
        spread = {}
        for key in STREAM_METRICS:
            values = [v[key] for v in variants if v.get(key) is not None]
            if len(values) == len(variants):
                row[key] = float(np.mean(values))
                spread[key] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        row["std"] = spread
        rows.append(row)
    replicates = {name: {k: np.mean([rep[k] for rep in runs], axis=0) for k in runs[0]}
                  for name, runs in reps.items()}
    facts = {
        "repeats": repeats,
        "batch_size": int(getattr(scorer, "batch_size", 0)),
        "seeds": seeds,
        "protocol": "per OOD set: the ID set and that OOD set mixed into one stream, shuffled by "
                    "torch.randperm on a CPU generator seeded per (run seed, OOD set, repeat); the method "
                    "starts fresh on "
                    "each stream and scores it in batches of batch_size in stream order; metrics on the "
                    "whole pass; rows: mean over repeats, std (ddof 1) under 'std'",
    }
    return rows, tables, replicates, facts


def _scores(scorer: Scorer, enc: EncodedSet) -> np.ndarray:
    if "patch" in scorer.features:
        s = scorer.score(enc.features, patch_features=enc.patches)
    else:
        s = scorer.score(enc.features)
    if s.shape != (len(enc.features),):
        raise RuntimeError(f"{scorer.name}.score returned shape {tuple(s.shape)} for {len(enc.features)} "
                           "images")
    return s.detach().double().cpu().numpy()
