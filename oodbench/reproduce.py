"""Paper protocols as data, and ``oodbench reproduce``: run a paper's exact settings, compare with its numbers.

One run of every method on a suite cannot match every paper: they differ in backbone, activation,
precision, resize interpolation, templates, class-name spelling, OOD sets and FPR95 convention. A
*protocol* file fixes all of them for one (paper, ID set). The bundled ones are the TOML files of the
``oodbench.protocols`` package (the repository's ``protocols/`` folder); the file's stem is the name::

    cite = "MCM, NeurIPS 2022"             # required: short name of the paper
    paper = "..."                          # required: the paper
    code = "owner/repo @ commit"           # required: the code whose settings these are
    suite = "imagenet"                     # required: an oodbench suite (or a suite file)
    ood = ["inaturalist", "sun"]           # required: a subset of the suite's OOD sets, in the paper's order
    methods = ["mcm"]                      # required: oodbench method names
    fpr_convention = "nearest"             # required: nearest | interpolate | openood
    default_variant = "mean of 3 repeats"  # optional: the published rows to compare with by default
    unsupported = ["..."]                  # what oodbench cannot express, each with its expected effect
    [backbone]                             # required: model, pretrained, activation (quick_gelu | gelu),
                                           # precision (fp32 | bf16 | fp16: autocast, fp32 on a CPU),
                                           # interpolation (bicubic | bilinear), optional resize
                                           # (the shorter side before the centre crop, e.g. 256)
    [text]                                 # optional: templates (a list) or templates_of (a method whose
                                           # published templates every method gets, e.g. "clipn-ctw": CLIPN's
                                           # 128 lines verbatim), and class_names (a file, one name per
                                           # line, beside the protocol file or in the protocols package)
    [lexicon_options]                      # optional: replaces the suite's lexicon options
    [params.METHOD]                        # optional: method parameters (over the suite's)
    [reference]                            # optional: what the reference ran, as text (printed by --dry-run)
    [[published]]                          # the paper's numbers, one table per method (and variant):
    method = "mcm"                         #   method, source, fpr_convention (must be the protocol's),
    variant = "repeat 1"                   #   optional variant (e.g. one released checkpoint of several),
    fpr95 = { sun = 37.59, average = 42.74 }   # per OOD set and optionally the average, in percent
    auroc = { sun = 92.57, average = 90.77 }

The run goes through the normal runner under the protocol's name (results in
``<out>/<protocol>/<backbone>/<method>.json``); image features come from the shared cache, so protocols
whose backbone and preprocessing agree (MCM's and NegLabel's on a CPU) encode each data set once.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oodbench.backbone.spec import INTERPOLATIONS, PRECISIONS, BackboneSpec, valid_resize
from oodbench.errors import OodbenchError
from oodbench.metrics import FPR_CONVENTIONS
from oodbench.registry import NAME_RE, Registry

if TYPE_CHECKING:
    from oodbench.benchmarks import BenchmarkSpec
    from oodbench.results import ResultSet

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

PROTOCOLS_PACKAGE = "oodbench.protocols"
ACTIVATIONS = {"quick_gelu": True, "gelu": False}


@dataclass(frozen=True)
class Published:
    """A paper's numbers for one method (and variant), in percent, with their source and FPR convention."""

    method: str
    source: str
    fpr_convention: str
    fpr95: dict[str, float]
    auroc: dict[str, float]
    variant: str | None = None


@dataclass(frozen=True)
class Protocol:
    """One paper's protocol (see the module docstring for the file format)."""

    name: str
    cite: str
    paper: str
    code: str
    suite: str
    ood: tuple[str, ...]
    methods: tuple[str, ...]
    fpr_convention: str
    model: str
    pretrained: str
    activation: str
    precision: str
    interpolation: str
    origin: str
    resize: int | None = None  # the shorter side before the centre crop (None: the crop size)
    templates: tuple[str, ...] | None = None
    templates_of: str | None = None
    class_names: str | None = None
    lexicon_options: dict[str, Any] | None = None
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    reference: dict[str, str] = field(default_factory=dict)
    published: tuple[Published, ...] = ()
    unsupported: tuple[str, ...] = ()
    default_variant: str | None = None
    folder: Path | None = None  # where a protocol file's own data files sit (None: the protocols package)

    # ------------------------------------------------------------------------------ what to run
    def benchmark(self) -> BenchmarkSpec:
        """The suite with the protocol's OOD sets (in its order), lexicon options and method parameters,
        named after the protocol (so its results do not overwrite a plain run of the suite)."""
        from oodbench.benchmarks import resolve_benchmark, with_ood

        suite = resolve_benchmark(self.suite)
        strangers = [o for o in self.ood if o not in suite.ood]
        if strangers:
            raise OodbenchError(f"Protocol {self.name} ({self.origin}) names OOD set(s) {', '.join(strangers)} "
                                f"that suite {suite.name!r} does not have ({', '.join(suite.ood)}).")
        bench = with_ood(suite, self.ood)
        templates = self.template_list()
        params = {m: dict(v) for m, v in suite.params.items()}
        for method, values in self.params.items():
            params.setdefault(method, {}).update(values)
        return dataclasses.replace(  # the protocol's OOD sets are its own: no suite_ood
            bench, name=self.name, interpolation=self.interpolation, resize=self.resize, model=self.model,
            suite_ood=None,
            templates=tuple(templates) if templates is not None else bench.templates,
            pretrained=self.pretrained, params=params,
            lexicon_options=dict(self.lexicon_options) if self.lexicon_options is not None
            else bench.lexicon_options,
            description=f"{self.paper}: {bench.description}", source=f"{self.code}; {bench.source}")

    def backbone(self, device: str = "auto", precision: str | None = None, seed: int = 0) -> BackboneSpec:
        return BackboneSpec(model=self.model, pretrained=self.pretrained, precision=precision or self.precision,
                            device=device, quick_gelu=ACTIVATIONS[self.activation], seed=seed,
                            interpolation=self.interpolation, resize=self.resize)

    def template_list(self) -> list[str] | None:
        """The templates every method gets (None: each method's own default)."""
        if self.templates_of is not None:
            from oodbench.scorer import load_methods

            templates = load_methods().get(self.templates_of).published_templates()
            if not templates:
                raise OodbenchError(f"Protocol {self.name}: method {self.templates_of!r} has no published "
                                    "template list to give every method (text.templates_of).")
            return templates
        return None if self.templates is None else list(self.templates)

    def class_name_list(self) -> list[str] | None:
        if self.class_names is None:
            return None
        text = _data_file(self.class_names, self.folder).read_text(encoding="utf-8")
        return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]

    # ------------------------------------------------------------------------------ what to compare
    @property
    def variants(self) -> list[str]:
        return sorted({p.variant for p in self.published if p.variant is not None})

    def published_for(self, method: str, variant: str | None = None) -> Published | None:
        """The published row of ``method`` for ``variant`` (default: the protocol's default variant)."""
        variant = variant or self.default_variant
        rows = [p for p in self.published if p.method == method]
        return next((p for p in rows if p.variant in (variant, None)), None)


# ----------------------------------------------------------------------------------------- parsing
def _data_file(name: str, folder: Path | None) -> Any:
    """A data file named by a protocol: beside the protocol file, else in the protocols package."""
    if folder is not None and (folder / name).is_file():
        return folder / name
    return resources.files(PROTOCOLS_PACKAGE).joinpath(name)


def _fail(origin: str, problem: str) -> OodbenchError:
    return OodbenchError(f"Protocol file {origin}: {problem}. See the docstring of oodbench/reproduce.py or the "
                         "files in protocols/ for the format.")


def _req(data: Mapping[str, Any], key: str, origin: str, kind: type = str) -> Any:
    value = data.get(key)
    if value is None:
        raise _fail(origin, f"missing required key {key!r}")
    if not isinstance(value, kind) or (kind is str and not value.strip()):
        raise _fail(origin, f"{key!r} must be a {kind.__name__}, got {value!r}")
    return value


def _strings(value: Any, key: str, origin: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise _fail(origin, f"{key!r} must be a non-empty list of strings, got {value!r}")
    return tuple(v.strip() for v in value)


def _choice(value: Any, key: str, allowed: Sequence[str], origin: str) -> str:
    if value not in allowed:
        raise _fail(origin, f"{key!r} must be one of {', '.join(allowed)}, got {value!r}")
    return str(value)


def _numbers(value: Any, key: str, sets: Sequence[str], origin: str) -> dict[str, float]:
    if value is None:
        return {}  # not published (e.g. TANL's AUROCs); the other metric must be there
    if not isinstance(value, dict) or not value:
        raise _fail(origin, f"{key} must be a table of OOD set -> number, got {value!r}")
    strangers = sorted(set(value) - set(sets) - {"average"})
    if strangers:
        raise _fail(origin, f"{key} names {', '.join(strangers)}, which are not among the protocol's OOD sets")
    if not all(isinstance(v, (int, float)) for v in value.values()):
        raise _fail(origin, f"{key} values must be numbers (percent), got {value!r}")
    return {k: float(v) for k, v in value.items()}


def _resize(value: Any, origin: str) -> int | None:
    if value is not None and not valid_resize(value):
        raise _fail(origin, f"backbone.resize must be the shorter side in pixels before the centre crop "
                            f"(e.g. 256), got {value!r}")
    return value


SECTIONS = {"backbone", "text", "lexicon_options", "params", "reference", "published"}
SECTION_KEYS = {"backbone": {"model", "pretrained", "activation", "precision", "interpolation", "resize"},
                "text": {"templates", "templates_of", "class_names"},
                "published": {"method", "variant", "source", "fpr_convention", "fpr95", "auroc"}}
KEYS = {"name", "cite", "paper", "code", "suite", "ood", "methods", "fpr_convention", "default_variant", "unsupported"}


def parse_protocol(text: str, *, name: str, origin: str, folder: Path | None = None) -> Protocol:
    """Parse and check the TOML ``text`` of protocol ``name``; errors name ``origin``; data files it names
    are looked for in ``folder`` (a protocol file's own folder), then in the protocols package."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _fail(origin, f"not valid TOML ({exc})") from None
    unknown = sorted(set(data) - KEYS - SECTIONS)
    if unknown:
        raise _fail(origin, f"unknown key(s) {', '.join(map(repr, unknown))}")
    if data.get("name", name) != name or not NAME_RE.match(name):
        raise _fail(origin, f"the protocol's name must be its file stem, lower-case words joined by dashes "
                            f"(file: {name!r}, name: {data.get('name')!r})")
    for section, allowed in SECTION_KEYS.items():
        tables = data.get(section, {})
        for table in tables if isinstance(tables, list) else [tables]:
            extra = sorted(set(table) - allowed) if isinstance(table, dict) else []
            if extra:
                raise _fail(origin, f"[{section}] has unknown key(s) {', '.join(map(repr, extra))} (known: "
                                    f"{', '.join(sorted(allowed))}; top-level keys go before the first table)")
    ood = _strings(data.get("ood"), "ood", origin)
    methods = _strings(data.get("methods"), "methods", origin)
    convention = _choice(data.get("fpr_convention"), "fpr_convention", FPR_CONVENTIONS, origin)
    bb = _req(data, "backbone", origin, dict)
    text_cfg = data.get("text", {})
    templates = text_cfg.get("templates")
    templates_of = text_cfg.get("templates_of")
    if templates is not None and templates_of is not None:
        raise _fail(origin, "give text.templates or text.templates_of, not both")
    if templates is not None:
        templates = _strings(templates, "text.templates", origin)
        if any("{" not in t for t in templates):
            raise _fail(origin, "every template in text.templates needs a {} for the class name")
    if templates_of is not None and not isinstance(templates_of, str):
        raise _fail(origin, f"text.templates_of must be a method name, got {templates_of!r}")
    class_names = text_cfg.get("class_names")
    if class_names is not None and not _data_file(str(class_names), folder).is_file():
        raise _fail(origin, f"text.class_names {class_names!r} is neither beside the protocol file nor in the "
                            "protocols package")
    params = data.get("params", {})
    if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
        raise _fail(origin, "[params.METHOD] tables must hold parameter values")
    published = []
    for i, row in enumerate(data.get("published", [])):
        where = f"published[{i}]"
        method = _req(row, "method", origin)
        if method not in methods:
            raise _fail(origin, f"{where} is for method {method!r}, which is not in 'methods'")
        row_convention = _choice(row.get("fpr_convention"), f"{where}.fpr_convention", FPR_CONVENTIONS, origin)
        if row_convention != convention:
            raise _fail(origin, f"{where} was computed with FPR95 convention {row_convention!r} but the protocol "
                                f"runs {convention!r}; compare like with like")
        fpr95 = _numbers(row.get("fpr95"), f"{where}.fpr95", ood, origin)
        auroc = _numbers(row.get("auroc"), f"{where}.auroc", ood, origin)
        if not fpr95 and not auroc:
            raise _fail(origin, f"{where} gives neither fpr95 nor auroc")
        published.append(Published(
            method=method, source=_req(row, "source", origin), fpr_convention=row_convention,
            fpr95=fpr95, auroc=auroc, variant=row.get("variant")))
    unsupported = data.get("unsupported", [])
    return Protocol(
        name=name, cite=_req(data, "cite", origin), paper=_req(data, "paper", origin), code=_req(data, "code", origin),
        suite=_req(data, "suite", origin), ood=ood, methods=methods, fpr_convention=convention,
        model=_req(bb, "model", origin), pretrained=_req(bb, "pretrained", origin),
        activation=_choice(bb.get("activation"), "backbone.activation", tuple(ACTIVATIONS), origin),
        precision=_choice(bb.get("precision", "fp32"), "backbone.precision", PRECISIONS, origin),
        interpolation=_choice(bb.get("interpolation"), "backbone.interpolation", INTERPOLATIONS, origin),
        resize=_resize(bb.get("resize"), origin),
        origin=origin, templates=templates, templates_of=templates_of, class_names=class_names,
        lexicon_options=dict(data["lexicon_options"]) if "lexicon_options" in data else None,
        params={m: dict(v) for m, v in params.items()},
        reference={k: str(v) for k, v in data.get("reference", {}).items()},
        published=tuple(published), unsupported=tuple(unsupported) if unsupported else (),
        default_variant=data.get("default_variant"), folder=folder)


def bundled_protocols() -> list[Protocol]:
    """Every ``*.toml`` protocol of the ``oodbench.protocols`` package, sorted by name."""
    folder = resources.files(PROTOCOLS_PACKAGE)
    return [parse_protocol(entry.read_text(encoding="utf-8"), name=entry.name[: -len(".toml")],
                           origin=f"{PROTOCOLS_PACKAGE}/{entry.name}")
            for entry in sorted(folder.iterdir(), key=lambda e: e.name)
            if entry.name.endswith(".toml") and entry.is_file()]


PROTOCOLS: Registry[Protocol] = Registry(
    "protocol", hint="`oodbench reproduce --list` shows them; a protocol file path works too.",
    sources=[lambda reg: [reg.register(p.name, p) for p in bundled_protocols()]])


def load_protocol(name: str) -> Protocol:
    """A bundled protocol by name, or a protocol file (``path/to/name.toml``)."""
    path = Path(name).expanduser()
    if name.endswith(".toml") or path.is_file():
        if not path.is_file():
            raise OodbenchError(f"Protocol file {path} does not exist.")
        return parse_protocol(path.read_text(encoding="utf-8"), name=path.stem, origin=str(path),
                              folder=path.resolve().parent)
    return PROTOCOLS.get(name)


# ----------------------------------------------------------------------------------------- running
def settings(protocol: Protocol, methods: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """The exact settings of a protocol as (what, value) lines (``--dry-run``); loads nothing."""
    templates = protocol.template_list()
    names = protocol.class_name_list()
    lines = [
        ("protocol", f"{protocol.name} ({protocol.origin})"),
        ("paper", protocol.paper),
        ("reference code", protocol.code),
        ("suite", protocol.suite),
        ("OOD sets (table order)", ", ".join(protocol.ood)),
        ("methods", ", ".join(methods or protocol.methods)),
        ("backbone", f"{protocol.model} / {protocol.pretrained}, activation {protocol.activation}"),
        ("precision", protocol.precision + (" (autocast on a GPU; fp32 on a CPU)" if protocol.precision != "fp32"
                                            else "")),
        ("preprocessing", f"resize {protocol.interpolation} to "
                          + (f"{protocol.resize} on the shorter side" if protocol.resize
                             else "the model's size") + ", centre crop to the model's size, its mean/std"),
        ("class names", f"{protocol.class_names} ({len(names)} names)" if names else "the suite's ID set's"),
        ("templates", "each method's own default" if templates is None else
         (f"{protocol.templates_of}'s, " if protocol.templates_of else "") + f"{len(templates)}: "
         + ", ".join(repr(t) for t in templates[:3]) + (" ..." if len(templates) > 3 else "")),
    ]
    if protocol.lexicon_options is not None:
        lines.append(("lexicon options", ", ".join(f"{k} = {v!r}" for k, v in protocol.lexicon_options.items())))
    for method, values in protocol.params.items():
        lines.append((f"params.{method}", ", ".join(f"{k} = {v!r}" for k, v in values.items())))
    lines.append(("FPR95 convention", protocol.fpr_convention))
    for p in protocol.published:
        lines.append((f"published {p.method}" + (f" ({p.variant})" if p.variant else ""), p.source))
    if not protocol.published:
        lines.append(("published", "none known: ours only"))
    lines += [(f"reference {k}", v) for k, v in protocol.reference.items()]
    lines += [("differs from the reference", item) for item in protocol.unsupported]
    return lines


def run_protocol(protocol: Protocol, *, data_root: Path | None = None, cache_dir: Path | None = None,
                 out_dir: Path = Path("results"), device: str = "auto", batch_size: int = 128, workers: int = 2,
                 download: bool = False, methods: Sequence[str] | None = None,
                 method_params: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[list[ResultSet], list[str]]:
    """Run ``protocol`` through the normal runner; returns the results and notes on what was adapted
    (e.g. fp16 on a CPU runs fp32)."""
    from oodbench.data.base import DataContext
    from oodbench.devices import resolve_device
    from oodbench.features import FeatureStore
    from oodbench.runner import RunConfig, run

    chosen = list(methods or protocol.methods)
    strangers = [m for m in chosen if m not in protocol.methods]
    if strangers:
        raise OodbenchError(f"Protocol {protocol.name} runs {', '.join(protocol.methods)}; not "
                            f"{', '.join(strangers)}.")
    notes = []
    precision = protocol.precision
    if precision == "fp16" and resolve_device(device).type == "cpu":
        precision = "fp32"
        notes.append("fp16 needs a GPU: this run used fp32 (see 'differs from the reference').")
    store = FeatureStore(cache_dir)
    params = {m: dict(v) for m, v in (method_params or {}).items()}
    cfg = RunConfig(
        methods=chosen, benchmark=protocol.benchmark(), backbone=protocol.backbone(device, precision),
        data=DataContext(data_root=data_root, download=download, cache_dir=store.root), store=store,
        out_dir=out_dir, batch_size=batch_size, workers=workers, fpr_convention=protocol.fpr_convention,
        default_fpr_convention=protocol.fpr_convention, templates=protocol.template_list(),
        method_params=params, class_names=protocol.class_name_list())
    return run(cfg), notes


def comparison(protocol: Protocol, result: ResultSet, variant: str | None = None) -> list[dict[str, Any]]:
    """Ours beside the published numbers, per OOD set and average, in percent, with ours - published;
    ``std``: a test-time method's spread over its stream orders (percent), per metric."""
    pub = protocol.published_for(result.method, variant)
    rows = []
    for row in result.rows:
        ood = row["ood"]
        entry: dict[str, Any] = {"ood": ood, "std": {k: 100.0 * v for k, v in (row.get("std") or {}).items()}}
        for metric in ("fpr95", "auroc"):
            ours = 100.0 * row[metric]
            theirs = (getattr(pub, metric).get(ood) if pub else None)
            entry[metric] = (ours, theirs, None if theirs is None else ours - theirs)
        rows.append(entry)
    return rows
