"""The runner: encode each data set once, then score it with every method asked for.

Image features come from the :class:`~oodbench.features.FeatureStore` (keyed by backbone identity and
data set identity), so a second run with the same backbone decodes no image, and a full leaderboard of
all methods costs one encoding pass plus each method's text side.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
import time
import warnings
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from oodbench.backbone import Backbone, BackboneSpec
from oodbench.bootstrap import DEFAULT_RESAMPLES, LEVEL, attach_intervals
from oodbench.data.base import DataContext, ImageSet, check_names, open_dataset, same_folder, shared_files
from oodbench.distributed import Dist, broadcast, setup_distributed, world
from oodbench.errors import DataError, OodbenchError, unknown_name_message
from oodbench.features import FeatureStore
from oodbench.files import check_writable_dir
from oodbench.hashing import sha256_file, sha256_json
from oodbench.results import ResultSet, check_tag, result_path
from oodbench.scorer import FitContext, Scorer, load_methods
from oodbench.scoring import EncodedSet, score_static, score_streams
from oodbench.version import __version__

if TYPE_CHECKING:
    from oodbench.benchmarks import BenchmarkSpec

log = logging.getLogger(__name__)


@dataclass
class RunConfig:
    """Everything ``oodbench run`` needs; the CLI fills it from its options."""

    methods: list[str]  # as asked: names, comma lists, "all"
    benchmark: BenchmarkSpec
    backbone: BackboneSpec
    data: DataContext
    store: FeatureStore
    out_dir: Path = Path("results")
    batch_size: int = 128
    workers: int = 2
    seed: int = 0
    skip_existing: bool = False
    fpr_convention: str = "nearest"
    templates: list[str] | None = None
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    words_file: Path | None = None
    save: bool = True
    save_scores: bool = False
    bootstrap: int = DEFAULT_RESAMPLES  # resamples for the rows' ci95; 0 = no intervals
    tag: str | None = None  # names the run's variant instead of a hash of its non-default settings
    default_fpr_convention: str = "nearest"  # the convention that needs no variant in the file name
    verify_content: bool = False
    class_names: list[str] | None = None  # the ID classes' names in prompts (default: the ID set's own)
    stream_repeats: int = 3  # seeded stream orders per OOD set for test-time (stream) methods


def method_names(items: list[str]) -> list[str]:
    """The names in ``--method`` values as given: repeated options and comma lists, blanks dropped."""
    return [name for item in items for name in (n.strip() for n in item.split(",")) if name]


def resolve_methods(names: list[str]) -> list[str]:
    """Expand ``all`` and comma lists; check every name against the registry (unknown names fail)."""
    registry = load_methods()
    out: list[str] = []
    for name in method_names(names):
        if name == "all":
            expanded = registry.names()
        else:
            registry.get(name)  # unknown names fail here, with the known ones listed
            expanded = [name]
        out += [n for n in expanded if n not in out]
    if not out:
        raise OodbenchError(f"No method given. Pass --method NAME (repeatable) or --method all; "
                            f"known methods: {', '.join(registry.names())}.")
    return out


def runnable(methods: list[str], scorers: dict[str, Scorer], asked: list[str]) -> list[str]:
    """``methods`` without those that miss an input of the user's (:meth:`Scorer.unmet`).

    A method named on its own fails with its message; one that only ``all`` brought in is left out with
    a warning (``--method all`` on ImageNet without a CLIPN checkpoint runs every other method).
    """
    named = set(method_names(asked)) - {"all"}
    left_out: dict[str, list[str]] = {}  # message -> the methods it leaves out
    kept = []
    for m in methods:
        message = scorers[m].unmet()
        if message is None:
            kept.append(m)
        elif m in named:
            raise OodbenchError(message)
        else:
            left_out.setdefault(message, []).append(m)
    for message, names in left_out.items():
        log.warning("--method all: left out %s. %s", ", ".join(names), message)
    if not kept:
        raise OodbenchError("None of the methods can run: " + " ".join(left_out))
    return kept


def check_param_targets(methods: list[str], method_params: dict[str, dict[str, Any]]) -> None:
    """Every ``-p METHOD.NAME=VALUE`` must name a method that runs (a typo would otherwise be ignored)."""
    for target in method_params:
        if target not in methods:
            known = load_methods().names()
            hint = (f"It is not run: add -m {target}, or drop the parameter." if target in known else
                    unknown_name_message("method", target, known))
            raise OodbenchError(f"-p {target}.{next(iter(method_params[target]), '')}=... names method "
                                f"{target!r}, but this run scores {', '.join(methods)}. {hint}")


def meaningless_setups(id_set: ImageSet, ood_sets: list[ImageSet]) -> list[str]:
    """Warnings for set-ups whose numbers cannot mean anything (logged and kept in the provenance)."""
    out = []
    if id_set.class_names is not None and len(id_set.class_names) == 1:
        out.append(f"The ID set {id_set.name!r} has a single class: every class-head score (MSP, MCM, "
                   "NegLabel, ...) is the same for all images, so AUROC is 0.5 and FPR95 meaningless. "
                   "An ID set needs at least two classes.")
    for ood in ood_sets:
        if same_folder(id_set, ood):
            out.append(f"The OOD set {ood.name!r} is the same folder as the ID set {id_set.name!r}: its images "
                       "are ID images, so its metrics measure nothing.")
        elif (n := shared_files(id_set, ood)):
            out.append(f"The OOD set {ood.name!r} shares {n} of its {len(ood)} files with the ID set "
                       f"{id_set.name!r}: those images count as both ID and OOD.")
    return out


def encode_dataset(backbone: Backbone, dataset: ImageSet, store: FeatureStore, batch_size: int,
                   workers: int, kinds: Collection[str] = ("global",)) -> EncodedSet | None:
    """Image features of ``dataset``, from the cache or encoded once and cached.

    ``kinds``: the feature kinds the methods of the run need (``"global"``, and ``"patch"`` for GL-MCM).
    Global features are cached under the kind ``images``; patch features ([N, P, D] fp16, memory-mapped)
    under ``patches`` with the same key. Both come from one pass over the images: when patch features are
    needed and missing, that pass computes both, writes the patch features straight into their cache
    entry, and keeps the cached global features if there are any (they are the same computation).

    Under torchrun every process takes part in encoding; only rank 0 reads and writes the cache and
    gets the features back (the others get None).
    """
    main = world()[0] == 0
    key = {"backbone": backbone.identity, "dataset": dataset.identity}
    want_patches = "patch" in kinds
    found = store.load("images", key) if main else None
    found_patches = store.load("patches", key) if main and want_patches and found is not None else None
    if broadcast(found is not None and (found_patches is not None or not want_patches)):
        if not main:
            return None
        log.info("%s: %d cached image features%s", dataset.name, len(found["features"]),
                 " and patch features" if want_patches else "")
        feats = torch.from_numpy(np.array(found["features"], dtype=np.float32))
        return EncodedSet(dataset.name, feats, np.array(found["labels"]), dataset.identity, True,
                          _patch_tensor(found_patches), items=dataset.item_ids())
    dataset.with_transform(backbone.preprocess)
    desc = f"encoding {dataset.name}"
    if not want_patches:
        feats_np = backbone.encode_images(dataset, batch_size=batch_size, workers=workers, desc=desc)
        if not main:
            return None
        store.save("images", key, {"features": feats_np, "labels": dataset.labels},
                   meta={"dataset": dataset.name, "backbone": backbone.slug})
        return EncodedSet(dataset.name, torch.from_numpy(feats_np), dataset.labels, dataset.identity, False,
                          items=dataset.item_ids())

    if not main:
        backbone.encode_images(dataset, batch_size=batch_size, workers=workers, desc=desc, patches=True)
        return None
    if found is not None:
        log.info("%s: global features are cached, patch features are not: one pass over its %d images "
                 "computes the patch features (the cached global features are kept)", dataset.name,
                 len(dataset))
    shape = (len(dataset), backbone.patch_count, backbone.embed_dim)
    meta = {"dataset": dataset.name, "backbone": backbone.slug, "shape": list(shape)}
    with store.writing("patches", key, meta=meta) as entry:
        feats_np = backbone.encode_images(dataset, batch_size=batch_size, workers=workers,
                                          desc=f"{desc} (+ patch features)",
                                          patches=entry.open("patches", shape, np.float16))
    if found is None:
        store.save("images", key, {"features": feats_np, "labels": dataset.labels},
                   meta={"dataset": dataset.name, "backbone": backbone.slug})
    else:
        feats_np = np.array(found["features"], dtype=np.float32)
    patches = store.load("patches", key)
    if patches is None:
        raise RuntimeError(f"the patch features of {dataset.name} were written but cannot be read back")
    return EncodedSet(dataset.name, torch.from_numpy(feats_np), dataset.labels, dataset.identity, False,
                      _patch_tensor(patches), items=dataset.item_ids())


def _patch_tensor(found: dict[str, np.ndarray] | None) -> torch.Tensor | None:
    """The cached [N, P, D] fp16 patch features as a tensor over the memory map (nothing read yet)."""
    if found is None:
        return None
    with warnings.catch_warnings():  # a read-only memory map: torch warns that it must not be written
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(found["patches"])


def as_ood(enc: EncodedSet | None) -> EncodedSet | None:
    """``enc`` in the OOD role: every label -1. A set with classes (CIFAR, ImageNet-R, ImageNet-10) keeps
    them in the cache, which it shares with its ID role, but its classes are not the ID classes."""
    if enc is None:
        return None
    return dataclasses.replace(enc, labels=np.full(len(enc.labels), -1, dtype=np.int64))


def make_scorer(name: str, cfg: RunConfig, user: bool = True) -> Scorer:
    """The method with the benchmark's parameters and (``user``) the user's on top."""
    cls = load_methods().get(name)
    params = {**cfg.benchmark.params.get(name, {}), **(cfg.method_params.get(name, {}) if user else {})}
    return cls.from_params(params)


def run_settings(name: str, scorer: Scorer, cfg: RunConfig) -> dict[str, Any]:
    """What makes this run differ from the default run of ``name`` on this benchmark (JSON-able).

    Method parameters that differ from the benchmark's (values compared after type conversion, so
    ``-p mcm.temperature=1`` is the default), prompt templates other than the benchmark's, a words
    file (by content), a non-zero seed, a non-default FPR convention, OOD sets other than the suite's
    (``--ood``) and a test-time method's number of stream orders.
    """
    settings: dict[str, Any] = {}
    default = make_scorer(name, cfg, user=False).params()
    changed = {k: v for k, v in scorer.params().items() if default.get(k) != v}
    if changed:
        settings["params"] = changed
    if cfg.templates is not None and list(cfg.templates) != list(cfg.benchmark.templates or []):
        settings["templates"] = list(cfg.templates)
    if cfg.words_file is not None:
        settings["words_sha256"] = sha256_file(Path(cfg.words_file))
    if cfg.seed != 0:
        settings["seed"] = cfg.seed
    if cfg.fpr_convention != cfg.default_fpr_convention:
        settings["fpr_convention"] = cfg.fpr_convention
    if cfg.benchmark.suite_ood is not None:
        settings["ood"] = list(cfg.benchmark.ood)
    if scorer.stream and cfg.stream_repeats != RunConfig.stream_repeats:
        settings["stream_repeats"] = cfg.stream_repeats
    return settings


def run_variant(settings: dict[str, Any], tag: str | None) -> str:
    """The run's name after ``@``: its tag, else a short hash of its non-default settings, else ``""``."""
    if tag:
        return check_tag(tag)
    return sha256_json(settings, 8) if settings else ""


def _lexicon_loader(cfg: RunConfig):  # type: ignore[no-untyped-def]
    bench = cfg.benchmark
    if cfg.words_file is None and bench.lexicon is None:
        return None

    cache: dict[str, Any] = {}

    def load(exclude: list[str] | None = None):  # type: ignore[no-untyped-def]
        options = dict(bench.lexicon_options)
        if exclude and cfg.words_file is None:
            options["exclude"] = sorted({*options.get("exclude", []), *exclude})
        elif exclude:
            log.info("--words %s: the word files to exclude (%s) do not apply", cfg.words_file,
                     ", ".join(exclude))
        memo = repr(sorted(options.items()))
        if memo not in cache:
            from oodbench.lexicon import load_lexicon

            cache[memo] = load_lexicon(bench.lexicon, options, cfg.words_file, cache_dir=cfg.store.root)
        return cache[memo]

    return load


def _class_names(cfg: RunConfig, id_set: ImageSet) -> list[str]:
    """The ID set's class names, or the run's own spelling of them (one per class, same order)."""
    names = list(id_set.class_names or [])
    if cfg.class_names is None:
        return names
    if len(cfg.class_names) != len(names):
        raise OodbenchError(f"{len(cfg.class_names)} class names were given for the ID set {id_set.name!r}, "
                            f"which has {len(names)} classes; give one name per class, in label order.")
    return list(cfg.class_names)


def versions() -> dict[str, str]:
    import open_clip

    return {"oodbench": __version__, "torch": torch.__version__, "open_clip": open_clip.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def run(cfg: RunConfig) -> list[ResultSet]:
    """Run every method of ``cfg`` on its benchmark; save and return one ResultSet per method.

    Under ``torchrun`` (WORLD_SIZE > 1) the processes share the image encoding; rank 0 fits, scores and
    writes everything, the other ranks return an empty list.
    """
    env = setup_distributed(cfg.backbone.device)
    try:
        return _run(cfg, env)
    finally:
        env.close()


def open_datasets(names: list[str], ctx: DataContext) -> list[ImageSet]:
    """Open every data set; when some cannot be, one error names them all (not one per attempt)."""
    opened, failed = [], []
    for name in names:
        try:
            opened.append(open_dataset(name, ctx))
        except DataError as exc:
            failed.append((name, str(exc)))
    if len(failed) == 1:
        raise DataError(failed[0][1])
    if failed:
        raise DataError(f"{len(failed)} of the run's data sets cannot be opened: "
                        f"{', '.join(name for name, _ in failed)}. Each is explained below; put them in "
                        "place (or leave them out with --ood) and run again.\n\n"
                        + "\n\n".join(f"- {text}" for _, text in failed))
    return opened


def _run(cfg: RunConfig, env: Dist) -> list[ResultSet]:
    bench = cfg.benchmark
    methods = resolve_methods(cfg.methods)
    check_param_targets(methods, cfg.method_params)
    # Build every scorer before loading anything, so that a bad parameter or a missing input fails at once.
    scorers = {m: make_scorer(m, cfg) for m in methods}
    methods = runnable(methods, scorers, cfg.methods)
    settings = {m: run_settings(m, scorers[m], cfg) for m in methods}
    variants = {m: run_variant(settings[m], cfg.tag) for m in methods}
    torch.manual_seed(cfg.seed)
    if cfg.save and env.main:
        check_writable_dir(cfg.out_dir, "the result files", "--out")

    # Open every data set first: a missing folder fails before any model is loaded or image encoded, and
    # an unknown name before any data set is opened (toyworld's are generated when opened).
    check_names([bench.id, *bench.ood])
    if not bench.ood:
        raise OodbenchError(f"Benchmark {bench.name!r} has no OOD sets; pass --ood NAME[,NAME...].")
    id_set, *ood_sets = open_datasets([bench.id, *bench.ood], cfg.data)
    if not id_set.class_names:
        raise OodbenchError(f"The ID data set {bench.id!r} has no class names; an ID set needs one "
                            "sub-folder per class (folder:PATH/<class>/<images>).")
    class_names = _class_names(cfg, id_set)
    warnings = meaningless_setups(id_set, ood_sets)
    for text in warnings if env.main else []:
        log.warning(text)
    if cfg.verify_content:
        for dataset in (id_set, *ood_sets):
            dataset.add_content_hash()

    spec = cfg.backbone if env.world_size == 1 else dataclasses.replace(cfg.backbone, device=str(env.device))
    backbone = Backbone.load(spec, cache_dir=cfg.store.root)
    backbone.store = cfg.store
    paths = {m: result_path(cfg.out_dir, bench.name, backbone.slug, m, variants[m]) for m in methods}
    todo = broadcast([m for m in methods if not (cfg.skip_existing and paths[m].is_file())])
    for m in set(methods) - set(todo):
        log.info("skipping %s: %s exists (--skip-existing)", m, paths[m])
    if not todo:
        return []
    # Feature kinds: patch features are encoded (and cached) only when a method to run needs them; a tower
    # without them fails here, before any work.
    kinds = sorted({k for m in todo for k in scorers[m].features})
    if "patch" in kinds:
        backbone.patch_count  # noqa: B018 - raises PatchFeaturesUnsupported for towers without patches

    ctx = FitContext(
        backbone=backbone, class_names=class_names, templates=cfg.templates or (
            list(bench.templates) if bench.templates else None),
        device=backbone.device, seed=cfg.seed, cache=cfg.store, benchmark=bench.name,
        lexicon_loader=_lexicon_loader(cfg), cache_dir=cfg.store.root, method_params=bench.params)

    # Every method's text side first: methods never need images, so a missing checkpoint or lexicon
    # fails before the (long) encoding pass.
    fit_s = {}
    for name in todo if env.main else []:
        t = time.perf_counter()
        with torch.no_grad():
            scorers[name].fit(ctx)
        fit_s[name] = time.perf_counter() - t

    t0 = time.perf_counter()
    id_enc = encode_dataset(backbone, id_set, cfg.store, cfg.batch_size, cfg.workers, kinds)
    ood_enc = [as_ood(encode_dataset(backbone, s, cfg.store, cfg.batch_size, cfg.workers, kinds))
               for s in ood_sets]
    encode_s = time.perf_counter() - t0
    if not env.main or id_enc is None:
        return []

    results = []
    for name in todo:
        result = score_method(name, scorers[name], ctx, id_enc, ood_enc, cfg, backbone,
                              {"encode_all_sets": encode_s, "fit": fit_s[name]}, warnings)
        result.variant, result.settings = variants[name], settings[name]
        if cfg.save:
            warn_if_replacing_other_sets(paths[name], result)
            result.save(paths[name], scores=cfg.save_scores)
        results.append(result)
    return results


def warn_if_replacing_other_sets(path: Path, result: ResultSet) -> None:
    """Say so when ``path`` holds a run on other OOD sets: a custom benchmark (``--id folder:PATH``) is
    named after its ID set alone, so a run against other OOD folders lands in the same file."""
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        before = [r["ood"] for r in old["rows"]]
    except (OSError, ValueError, KeyError, TypeError):
        return  # no file, or one that is not a result: nothing to compare
    now = [r["ood"] for r in result.rows]
    if set(before) != set(now):
        log.warning("%s held results on other OOD sets (%s); this run (%s) replaces them. Pass --tag NAME to "
                    "keep runs on different OOD sets side by side.", path, ", ".join(before), ", ".join(now))


@torch.no_grad()
def score_method(name: str, scorer: Scorer, ctx: FitContext, id_enc: EncodedSet, ood_enc: list[EncodedSet],
                 cfg: RunConfig, backbone: Backbone, seconds: dict[str, float],
                 warnings: list[str] | None = None) -> ResultSet:
    """Score a fitted method on the encoded sets and build its ResultSet (rows with ``ci95``, per-image
    scores in ``.scores``, exported tables in ``.exports``); the caller saves it."""
    t1 = time.perf_counter()
    if scorer.stream:
        rows, tables, replicates, stream_facts = score_streams(scorer, id_enc, ood_enc, cfg)
    else:
        rows, tables, replicates = score_static(scorer, id_enc, ood_enc, cfg)
        stream_facts = None
    if replicates:
        attach_intervals(rows, replicates)
    score_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    exports = scorer.exports({e.name: e.features for e in [id_enc, *ood_enc]})
    export_s = time.perf_counter() - t2

    provenance: dict[str, Any] = {
        "versions": versions(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seed": cfg.seed,
        "fpr_convention": cfg.fpr_convention,
        "benchmark": {"id": cfg.benchmark.id, "ood": list(cfg.benchmark.ood),
                      **({"groups": {g: list(m) for g, m in cfg.benchmark.groups.items()}}
                         if cfg.benchmark.groups else {}),
                      "source": cfg.benchmark.source},
        "datasets": {id_enc.name: id_enc.identity, **{e.name: e.identity for e in ood_enc}},
        "templates": ctx.templates,
        "method": {"paper": scorer.info.paper, "summary": scorer.info.summary, **scorer.provenance()},
        "device": str(backbone.device),
        "seconds": {**{k: round(v, 3) for k, v in seconds.items()}, "score": round(score_s, 3),
                    "exports": round(export_s, 3)},
        **({"warnings": list(warnings)} if warnings else {}),
        **({"stream": stream_facts} if stream_facts else {}),
    }
    if cfg.bootstrap > 0:
        provenance["bootstrap"] = {
            "resamples": cfg.bootstrap, "seed": cfg.seed, "level": LEVEL, "interval": "percentile",
            "scheme": "ID images and each OOD set's images resampled independently with replacement, "
                      "streams seeded by (seed, set name); average rows: mean of the sets' replicates "
                      "under the same ID resamples (oodbench.bootstrap)"}
    return ResultSet(
        benchmark=cfg.benchmark.name,
        backbone={**backbone.identity, "slug": backbone.slug},
        method=name,
        params=scorer.params(),
        rows=rows,
        provenance=provenance,
        scores=pd.concat(tables, ignore_index=True),
        exports=exports,
    )
