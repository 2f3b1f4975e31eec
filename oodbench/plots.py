"""Figures from saved per-image scores (``oodbench plot``): ROC curves and score histograms.

- ``roc_<benchmark>_<backbone>_<ood set>.<fmt>``: one figure per benchmark x backbone x OOD set, a ROC
  curve per run (ID positive: x = OOD images accepted as ID, y = ID images accepted), AUROC in the
  legend, the 95% TPR level dotted;
- ``hist_<benchmark>_<backbone>_<run>.<fmt>``: one figure per run, a panel per OOD set with the ID and
  that set's score densities on shared bins (the central 99.8% of the scores, so that a few extreme
  scores do not squeeze the rest into one bin).

``index.json`` in the folder lists every figure with its benchmark, backbone, subject and caption (the
HTML report embeds them from it). matplotlib is imported here only, with the Agg canvas (no display
needed); file contents carry no time stamp.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from oodbench.errors import OodbenchError
from oodbench.files import atomic_write_text
from oodbench.results import ResultSet
from oodbench.scorefile import score_pairs

log = logging.getLogger(__name__)

FORMATS = ("png", "pdf", "svg")
#: Per format, the metadata that would otherwise hold the creation date.
_NO_DATE = {"png": {}, "pdf": {"CreationDate": None}, "svg": {"Date": None}}


def figure_name(kind: str, *parts: str, fmt: str = "png") -> str:
    """``roc_toyworld_toyclip_toyworld_toyworld-near.png``: runs of characters unsafe in file names
    become ``-``."""
    safe = [re.sub(r"[^A-Za-z0-9.@+-]+", "-", p).strip("-") or "x" for p in parts]
    return f"{kind}_{'_'.join(safe)}.{fmt}"


def _figure(width: float, height: float) -> Any:
    """A figure on its own Agg canvas: no display, and the caller's pyplot backend is left alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format=fmt, dpi=150, metadata=_NO_DATE[fmt])


def roc_figure(curves: Sequence[tuple[str, np.ndarray, np.ndarray]], ood: str, id_set: str, benchmark: str,
               backbone: str) -> Any:
    """ROC curves of several runs on one OOD set; ``curves``: (run label, ID scores, OOD scores)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fig = _figure(4.8, 4.4)
    ax = fig.add_subplot()
    for label, s_id, s_ood in curves:
        y = np.r_[np.ones(len(s_id)), np.zeros(len(s_ood))]
        s = np.r_[s_id, s_ood]
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, lw=1.6, label=f"{label} (AUROC {100 * roc_auc_score(y, s):.2f})")
    ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls="--", label="chance")
    ax.axhline(0.95, color="0.4", lw=0.8, ls=":")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="FPR: OOD images accepted as ID",
           ylabel="TPR: ID images accepted", title=f"ROC: {id_set} (ID) vs {ood} (OOD)")
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    fig.suptitle(f"{benchmark}, {backbone}", fontsize=9, color="0.3")
    return fig


def hist_figure(label: str, pairs: dict[str, tuple[np.ndarray, np.ndarray]], id_set: str, benchmark: str,
                backbone: str, bins: int = 50) -> Any:
    """One panel per OOD set: densities of the ID and that set's scores on shared bins; ``pairs``: OOD set
    -> (ID scores, its scores), as :func:`oodbench.scorefile.score_pairs` gives them."""
    fig = _figure(3.6 * len(pairs) + 0.4, 3.4)
    axes = fig.subplots(1, len(pairs), squeeze=False)[0]
    every = np.concatenate([s for pair in pairs.values() for s in pair])
    lo, hi = np.quantile(every, [0.001, 0.999])
    if not hi > lo:
        lo, hi = float(every.min()) - 0.5, float(every.max()) + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    for ax, (name, (s_id, s_ood)) in zip(axes, pairs.items()):
        ax.hist(s_id, bins=edges, density=True, alpha=0.55, color="tab:blue", label=f"{id_set} (ID, n={len(s_id)})")
        ax.hist(s_ood, bins=edges, density=True, alpha=0.55, color="tab:red", label=f"{name} (OOD, n={len(s_ood)})")
        ax.set(xlabel=f"{label} score (higher = more ID)", ylabel="density", title=f"ID vs {name}")
        ax.legend(fontsize=7, frameon=False)
        ax.grid(alpha=0.3)
    fig.suptitle(f"Score distributions of {label} ({benchmark}, {backbone})", fontsize=10)
    return fig


def plot_results(results: Sequence[ResultSet], out: Path, fmt: str = "png", bins: int = 50) -> list[Path]:
    """Write the ROC and histogram figures of every result that has saved scores; return their paths."""
    if fmt not in FORMATS:
        raise OodbenchError(f"Unknown figure format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    runs: dict[tuple[str, str], dict[str, ResultSet]] = {}
    missing = []
    for r in results:
        if not r.provenance.get("scores") and r.scores is None:
            missing.append(str(r.path or r.label))
            continue
        runs.setdefault((r.benchmark, r.backbone.get("slug", "")), {})[r.label] = r  # the later one wins
    if missing:
        log.warning("no per-image scores for %d result(s), left out: %s (run them with --save-scores)",
                    len(missing), ", ".join(missing))
    if not runs:
        raise OodbenchError("None of these results has per-image scores. Run the benchmark with "
                            "`oodbench run ... --save-scores` (cached features make it quick), then plot.")
    out = Path(out)
    index: list[dict[str, Any]] = []
    written: list[Path] = []

    def save(fig: Any, kind: str, bench: str, backbone: str, subject: str, caption: str) -> None:
        name = figure_name(kind, bench, backbone, subject, fmt=fmt)
        _save(fig, out / name, fmt)
        written.append(out / name)
        index.append({"file": name, "kind": kind, "benchmark": bench, "backbone": backbone,
                      "subject": subject, "caption": caption})

    for (bench, backbone), by_label in runs.items():
        pairs = {label: score_pairs(r.load_scores(), r.id_set) for label, r in by_label.items()}
        streams = {label for label, r in by_label.items() if r.provenance.get("stream")}
        id_set = next(iter(by_label.values())).id_set or "ID"
        oods = list(dict.fromkeys(o for sets in pairs.values() for o in sets))
        note = " Test-time methods: the first seeded stream order." if streams else ""
        for ood in oods:
            curves = [(label, *sets[ood]) for label, sets in pairs.items() if ood in sets]
            save(roc_figure(curves, ood, id_set, bench, backbone), "roc", bench, backbone, ood,
                 f"ROC curves on {ood} ({bench}, {backbone}): one curve per method, ID positive.{note}")
        for label, sets in pairs.items():
            first = " (the first seeded stream order of each OOD set)" if label in streams else ""
            save(hist_figure(label, sets, id_set, bench, backbone, bins), "hist", bench, backbone, label,
                 f"Score histograms of {label} ({bench}, {backbone}): ID vs each OOD set{first}.")
    _update_index(out / "index.json", index)
    return written


def _update_index(path: Path, entries: list[dict[str, Any]]) -> None:
    """Add ``entries`` to the folder's index, replacing earlier entries of the same files."""
    old: list[dict[str, Any]] = []
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = []
    names = {e["file"] for e in entries}
    kept = [e for e in old if isinstance(e, dict) and e.get("file") not in names and (path.parent / e["file"]).is_file()]
    atomic_write_text(path, json.dumps(kept + entries, indent=2) + "\n")
