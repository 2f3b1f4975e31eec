"""The Python API: run a benchmark in one call, read result files, compare two runs.

    import oodbench
    ev = oodbench.evaluate(["mcm", "neglabel"], "toyworld")
    ev.to_frame()                  # one row per method and OOD set: auroc, fpr95, ..., ci95 bounds
    ev.scores                      # one row per image: method, dataset, path, label, score
    ev.compare("mcm", "neglabel")  # paired bootstrap difference per OOD set, with its interval

``oodbench.evaluate`` runs what ``oodbench run`` runs (the same configuration, built by
:func:`build_config`), with the same feature cache; it writes files only when ``out`` is given.
Importing this module imports neither torch nor open_clip: :func:`evaluate` imports them when called.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from oodbench.errors import OodbenchError
from oodbench.results import ResultSet, find_result_files

if TYPE_CHECKING:
    from oodbench.runner import RunConfig

#: Identity columns first in every frame; metrics and the rest follow in the rows' order.
FRAME_HEAD = ("benchmark", "backbone", "method", "ood", "group")


def results_frame(results: Iterable[ResultSet]) -> pd.DataFrame:
    """The tidy table of results: one row per (run, OOD set or average), identity columns first.

    Columns: ``benchmark``, ``backbone``, ``method`` (the run's label, ``method@variant`` for
    non-default settings), ``ood``, ``group`` (when the suite groups its OOD sets), ``auroc``,
    ``fpr95``, ``aupr_in``, ``aupr_out``, ``id_accuracy``, ``n_id``, ``n_ood``, and, when the rows
    carry intervals, ``<metric>_ci95_low`` / ``<metric>_ci95_high``. Metrics are fractions.
    """
    frames = [r.frame() for r in results]
    if not frames:
        return pd.DataFrame(columns=[c for c in FRAME_HEAD if c != "group"])
    df = pd.concat(frames, ignore_index=True)
    head = [c for c in FRAME_HEAD if c in df.columns]
    return df[head + [c for c in df.columns if c not in head]]


def load_results(paths: str | Path | Iterable[str | Path] = "results") -> pd.DataFrame:
    """Read result files (or folders, searched recursively) into :func:`results_frame`'s table."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    return results_frame(ResultSet.load(f) for f in find_result_files([Path(p) for p in paths]))


@dataclass
class Evaluation:
    """What :func:`evaluate` returns: one :class:`~oodbench.results.ResultSet` per method."""

    results: list[ResultSet]

    def to_frame(self) -> pd.DataFrame:
        """One row per method and OOD set (and averages); see :func:`results_frame`."""
        return results_frame(self.results)

    @property
    def scores(self) -> pd.DataFrame:
        """Per-image scores of every method: ``benchmark``, ``backbone``, ``method``, ``dataset``,
        ``path``, ``label`` (ID class or -1 for OOD) and ``score`` (higher = more ID)."""
        parts = []
        for r in self.results:
            part = r.load_scores().copy()
            part.insert(0, "method", r.label)
            part.insert(0, "backbone", r.backbone.get("slug", ""))
            part.insert(0, "benchmark", r.benchmark)
            parts.append(part)
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    @property
    def exports(self) -> dict[str, dict[str, pd.DataFrame]]:
        """Tables each method exported (e.g. ``ev.exports["neglabel"]["negatives"]``), by run label."""
        return {r.label: r.exports for r in self.results}

    def result(self, method: str) -> ResultSet:
        """The ResultSet of a method (its label, e.g. ``"mcm"`` or ``"mcm@t2"``)."""
        for r in self.results:
            if method in (r.label, r.method):
                return r
        raise OodbenchError(f"No result for {method!r}; this evaluation has "
                            f"{', '.join(r.label for r in self.results)}.")

    def compare(self, a: str, b: str, *, resamples: int = 1000, seed: int = 0,
                fpr_convention: str | None = None) -> pd.DataFrame:
        """Paired bootstrap of ``b - a`` per OOD set (and averages): see :func:`oodbench.compare.compare`."""
        from oodbench.compare import compare

        return compare(self.result(a), self.result(b), resamples=resamples, seed=seed,
                       fpr_convention=fpr_convention)


def read_templates(arg: str | Sequence[str] | None) -> list[str] | None:
    """Prompt templates from a file (UTF-8, one per line, ``#`` comments), one template string, or a list;
    each checked (:func:`oodbench.prompts.check_template`)."""
    from oodbench.prompts import check_template

    if not arg:
        return None
    if isinstance(arg, str):
        path = Path(arg).expanduser()
        if path.is_file():
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                raise OodbenchError(f"The templates file {path} is not UTF-8 text ({exc.reason} at byte "
                                    f"{exc.start}). Save it as UTF-8, one template per line.") from None
            lines = [ln.strip() for ln in text.splitlines()]
            templates = [ln for ln in lines if ln and not ln.startswith("#")]
            source = str(path)
        elif "{" in arg:
            templates, source = [arg], "the --templates argument"
        else:
            raise OodbenchError(f"--templates {arg!r} is neither a file nor a template containing '{{}}' "
                                "(e.g. --templates 'a photo of a {}.').")
    else:
        templates, source = [str(t) for t in arg], "the templates given"
    if not templates:
        raise OodbenchError(f"{source} holds no template (only blank lines or # comments). Put one template "
                            "per line, with '{}' where the class name goes.")
    for t in templates:
        check_template(t, source)
    return templates


def build_config(methods: str | Sequence[str], benchmark: str = "toyworld", *, ood: Sequence[str] | None = None,
                 model: str | None = None, pretrained: str | None = None, data_root: str | Path | None = None,
                 cache_dir: str | Path | None = None, device: str = "auto", precision: str = "fp32",
                 params: Mapping[str, Mapping[str, Any]] | None = None,
                 templates: str | Sequence[str] | None = None, words: str | Path | None = None,
                 clipn_checkpoint: str | None = None, fpr_convention: str = "nearest",
                 interpolation: str | None = None, resize: int | None = None,
                 quick_gelu: bool | None = None, batch_size: int = 128,
                 workers: int | None = None, seed: int = 0, download: bool = False,
                 out: str | Path | None = None, skip_existing: bool = False, save_scores: bool = False,
                 bootstrap: int = 1000, tag: str | None = None, verify_content: bool = False,
                 stream_repeats: int = 3) -> RunConfig:
    """The :class:`~oodbench.runner.RunConfig` of a run, as ``oodbench run`` and :func:`evaluate` build it.

    ``benchmark``: a suite name, a suite file, or ``folder:PATH`` (then ``ood`` is required);
    ``ood`` overrides the suite's OOD sets. ``params`` maps a method to its parameters
    (``{"neglabel": {"groups": 10}}``). ``out=None`` writes nothing.
    """
    from oodbench.backbone import BackboneSpec, valid_resize
    from oodbench.benchmarks import custom_benchmark, resolve_benchmark, with_ood
    from oodbench.data.base import DataContext
    from oodbench.features import FeatureStore
    from oodbench.metrics import FPR_CONVENTIONS
    from oodbench.results import check_tag
    from oodbench.runner import RunConfig, resolve_methods

    asked = [methods] if isinstance(methods, str) else list(methods)
    names = resolve_methods(asked)
    ood_list = [o.strip() for o in ood if o.strip()] if ood else None
    if benchmark.startswith("folder:"):
        if not ood_list:
            raise OodbenchError("A custom ID set (--id folder:PATH) needs --ood with at least one OOD set, "
                                "e.g. --ood folder:/data/my_ood.")
        bench = custom_benchmark(benchmark, ood_list)
    else:
        bench = resolve_benchmark(benchmark)
        if ood_list:
            bench = with_ood(bench, ood_list)
    if fpr_convention not in FPR_CONVENTIONS:
        raise OodbenchError(f"Unknown FPR95 convention {fpr_convention!r}; choose one of "
                            f"{', '.join(FPR_CONVENTIONS)}.")
    if bootstrap < 0:
        raise OodbenchError(f"--bootstrap takes a number of resamples (0 = no intervals); got {bootstrap}.")
    if tag is not None:
        check_tag(tag)
    if stream_repeats < 1:
        raise OodbenchError(f"--stream-repeats must be at least 1; got {stream_repeats}.")
    if resize is not None and not valid_resize(resize):
        raise OodbenchError(f"--resize takes the shorter side in pixels before the centre crop (OpenOOD: "
                            f"256); got {resize!r}.")
    method_params = {m: dict(p) for m, p in (params or {}).items()}
    if clipn_checkpoint:
        users = [name for name in ("clipn-ctw", "clipn-atd") if name in names]
        if not users:
            raise OodbenchError("--clipn-checkpoint is only read by clipn-ctw and clipn-atd, and neither is run "
                                f"({', '.join(names)}). Add -m clipn-ctw / -m clipn-atd, or drop the option.")
        for name in users:
            method_params.setdefault(name, {})["checkpoint"] = clipn_checkpoint
    store = FeatureStore(Path(cache_dir) if cache_dir is not None else None)
    # the suite's weights and resize belong to its own model (a resize of 256 to its crop of 224)
    suite_model = model in (None, bench.model)
    return RunConfig(
        methods=asked,  # as asked: the runner tells a method named from one that `all` brought in
        benchmark=bench,
        backbone=BackboneSpec(
            model=model or bench.model or "ViT-B-16",
            pretrained=pretrained or (bench.pretrained if suite_model else None) or "openai",
            precision=precision, device=device, quick_gelu=quick_gelu, seed=seed,
            interpolation=interpolation or bench.interpolation,
            resize=resize or (bench.resize if suite_model else None)),
        data=DataContext(data_root=Path(data_root) if data_root is not None else None, download=download,
                         cache_dir=store.root),
        store=store, out_dir=Path(out) if out is not None else Path("results"), batch_size=batch_size,
        workers=min(4, os.cpu_count() or 1) if workers is None else workers, seed=seed,
        skip_existing=skip_existing, fpr_convention=fpr_convention, templates=read_templates(templates),
        method_params=method_params, words_file=Path(words) if words is not None else None,
        save=out is not None, save_scores=save_scores, bootstrap=bootstrap, tag=tag,
        verify_content=verify_content, stream_repeats=stream_repeats,
    )


def evaluate(methods: str | Sequence[str], benchmark: str = "toyworld", *, ood: Sequence[str] | None = None,
             model: str | None = None, pretrained: str | None = None, data_root: str | Path | None = None,
             cache_dir: str | Path | None = None, device: str = "auto",
             params: Mapping[str, Mapping[str, Any]] | None = None, **options: Any) -> Evaluation:
    """Run ``methods`` on ``benchmark`` and return an :class:`Evaluation` (metrics, intervals, scores).

    Arguments as ``oodbench run``'s options: ``methods`` (a name, ``"all"`` or a list), ``benchmark``
    (suite name, suite file or ``folder:PATH``), ``ood`` (a list of OOD set names overriding the
    suite's), ``model`` / ``pretrained`` (default: the suite's backbone), ``data_root``,
    ``cache_dir`` (default ``$OODBENCH_CACHE`` or ``~/.cache/oodbench``), ``device``, ``params``
    (``{"mcm": {"temperature": 2}}``); further keywords: ``precision``, ``templates``, ``words``,
    ``clipn_checkpoint``, ``fpr_convention``, ``interpolation``, ``resize``, ``quick_gelu``, ``batch_size``,
    ``workers``, ``seed``, ``download``, ``verify_content``, ``bootstrap`` (resamples, 0 = none),
    ``stream_repeats`` (stream orders per OOD set for test-time methods), and
    ``out`` (a results folder: then result files are written as by the CLI, with ``save_scores`` and
    ``tag``).
    Features are cached, so a second call with the same backbone and data encodes nothing.
    """
    from oodbench.runner import run

    cfg = build_config(methods, benchmark, ood=ood, model=model, pretrained=pretrained, data_root=data_root,
                       cache_dir=cache_dir, device=device, params=params, **options)
    return Evaluation(run(cfg))
