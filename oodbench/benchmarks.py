"""Benchmark suites: an ID data set, its OOD sets and the protocol's defaults, kept as data.

Each suite is one TOML file in the ``oodbench.suites`` package (the repository's ``benchmarks/suites/``
folder); the file's stem is the suite's name. :data:`BENCHMARKS` reads them all the first time it is
asked for a name. A suite file holds::

    description = "one line"                 # required
    source = "paper / protocol it follows"   # required
    id = "imagenet"                          # required: a data set name or folder:PATH
    ood = ["inaturalist", "sun"]             # required, at least one
    templates = ["a photo of a {}."]         # optional prompt-template override for every method
    lexicon = "wordnet"                      # optional lexicon for negative-label methods
    model = "ViT-B-16"                       # optional default backbone ...
    pretrained = "openai"                    # ... and its weights tag
    interpolation = "bilinear"               # optional default image resize (bicubic or bilinear)
    resize = 256                             # optional: the shorter side before the centre crop (OpenOOD)
    [lexicon_options]                        # optional, handed to the lexicon
    exclude = ["noun.animal"]
    [params.neglabel]                        # optional per-method parameter defaults
    groups = 100
    [groups]                                 # optional: OOD sets by group, each set in exactly one
    near = ["sun"]
    far = ["inaturalist"]

A suite with ``[groups]`` gets one average row per group (``"ood": "average-<group>"``) before the
overall average, and each per-set row names its ``group`` (OpenOOD v1.5 reports near / far this way).

Data set names are not checked when a file is read (some are registered by optional modules such as
toyworld); :func:`check_datasets` does that once the registries are populated, and opening a data set
fails with the list of known names anyway.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from oodbench.backbone.spec import valid_resize
from oodbench.data.spec import FOLDER_PREFIX
from oodbench.errors import OodbenchError
from oodbench.prompts import check_template
from oodbench.registry import NAME_RE, Registry

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

SUITES_PACKAGE = "oodbench.suites"


@dataclass(frozen=True)
class BenchmarkSpec:
    """One benchmark: ``id`` against each of ``ood``, with the suite's defaults.

    ``templates`` overrides every method's prompt templates (None: each method's own default);
    ``lexicon`` / ``lexicon_options`` name the word source of negative-label methods; ``model`` /
    ``pretrained`` are the suite's default backbone, ``interpolation`` its default image resize (None:
    the model's own, bicubic for CLIP) and ``resize`` the shorter side before the centre crop (None: the
    crop size); ``params`` maps a method name to its parameter
    defaults (the user's ``--param`` wins over them); ``groups`` maps a group name to its OOD sets
    (empty: no groups; otherwise every OOD set is in exactly one group). ``suite_ood``: the suite's own OOD
    sets when ``--ood`` replaced them (None otherwise): such a run is another run, written to another file.
    """

    name: str
    description: str
    source: str
    id: str
    ood: tuple[str, ...]
    templates: tuple[str, ...] | None = None
    lexicon: str | None = None
    lexicon_options: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    pretrained: str | None = None
    interpolation: str | None = None
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    suite_ood: tuple[str, ...] | None = None
    resize: int | None = None

    @property
    def datasets(self) -> tuple[str, ...]:
        """The ID set followed by the OOD sets."""
        return (self.id, *self.ood)

    def group_of(self, ood: str) -> str | None:
        """The group of the OOD set ``ood``, or None in a suite without groups."""
        return next((g for g, members in self.groups.items() if ood in members), None)


REQUIRED_KEYS = ("description", "source", "id", "ood")
#: What a suite file may set: the spec's fields, but not what a run records about itself.
ALLOWED_KEYS = frozenset(f.name for f in dataclasses.fields(BenchmarkSpec)) - {"suite_ood"}


def _fail(origin: str, problem: str) -> OodbenchError:
    return OodbenchError(
        f"Benchmark suite {origin}: {problem}. A suite file needs {', '.join(REQUIRED_KEYS)} and may set "
        f"{', '.join(sorted(ALLOWED_KEYS - set(REQUIRED_KEYS) - {'name'}))} (see the docstring of "
        "oodbench/benchmarks.py or the files in benchmarks/suites/)."
    )


def _str(data: Mapping[str, Any], key: str, origin: str, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise _fail(origin, f"missing required key {key!r}")
        return None
    if not isinstance(value, str) or not value.strip():
        raise _fail(origin, f"{key!r} must be a non-empty string, got {value!r}")
    return value.strip()


def _str_list(value: Any, key: str, origin: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise _fail(origin, f"{key!r} must be a non-empty list of strings, got {value!r}")
    if not all(isinstance(v, str) and v.strip() for v in value):
        raise _fail(origin, f"{key!r} must hold only non-empty strings, got {value!r}")
    items = tuple(v.strip() for v in value)
    duplicates = sorted({v for v in items if items.count(v) > 1})
    if duplicates:
        raise _fail(origin, f"{key!r} names {', '.join(duplicates)} more than once")
    return items


def spec_from_mapping(data: Mapping[str, Any], *, name: str, origin: str) -> BenchmarkSpec:
    """Validate a parsed suite (a TOML table) and build its :class:`BenchmarkSpec`.

    ``origin`` (usually the file path) is named in every error.
    """
    unknown = sorted(set(data) - ALLOWED_KEYS)
    if unknown:
        raise _fail(origin, f"unknown key(s) {', '.join(repr(k) for k in unknown)}")
    given_name = _str(data, "name", origin)
    if given_name is not None and given_name != name:
        raise _fail(origin, f"'name' is {given_name!r} but the file defines suite {name!r} (its stem); "
                            "drop 'name' or rename the file")
    if not NAME_RE.match(name):
        raise _fail(origin, f"the suite name {name!r} must be lower-case words joined by dashes")
    if "ood" not in data:
        raise _fail(origin, "missing required key 'ood'")
    templates = None
    if data.get("templates") is not None:
        templates = _str_list(data["templates"], "templates", origin)
        for t in templates:
            check_template(t, f"the 'templates' of {origin}")
    for key in ("lexicon_options", "params"):
        if not isinstance(data.get(key, {}), dict):
            raise _fail(origin, f"{key!r} must be a table, got {data[key]!r}")
    params = data.get("params", {})
    for method, values in params.items():
        if not isinstance(values, dict):
            raise _fail(origin, f"params.{method} must be a table of parameter values, got {values!r}")
    ood = _str_list(data["ood"], "ood", origin)
    groups = _groups(data.get("groups", {}), ood, origin)
    interpolation = _str(data, "interpolation", origin)  # checked where the backbone loads (no torch here)
    resize = data.get("resize")
    if resize is not None and not valid_resize(resize):
        raise _fail(origin, f"'resize' must be the shorter side in pixels before the centre crop (e.g. 256), "
                            f"got {resize!r}")
    return BenchmarkSpec(
        name=name,
        description=_str(data, "description", origin, required=True) or "",
        source=_str(data, "source", origin, required=True) or "",
        id=_str(data, "id", origin, required=True) or "",
        ood=ood,
        templates=templates,
        lexicon=_str(data, "lexicon", origin),
        lexicon_options=dict(data.get("lexicon_options", {})),
        model=_str(data, "model", origin),
        pretrained=_str(data, "pretrained", origin),
        interpolation=interpolation,
        params={m: dict(v) for m, v in params.items()},
        groups=groups,
        resize=resize,
    )


def _groups(value: Any, ood: tuple[str, ...], origin: str) -> dict[str, tuple[str, ...]]:
    """Validate a ``[groups]`` table: named like registry names, each OOD set in exactly one group."""
    if not isinstance(value, dict):
        raise _fail(origin, f"'groups' must be a table of group name -> list of OOD sets, got {value!r}")
    groups = {}
    for name, members in value.items():
        if not NAME_RE.match(name):
            raise _fail(origin, f"the group name {name!r} must be lower-case words joined by dashes")
        groups[name] = _str_list(members, f"groups.{name}", origin)
    if not groups:
        return {}
    listed = [m for members in groups.values() for m in members]
    twice = sorted({m for m in listed if listed.count(m) > 1})
    strangers = [m for m in listed if m not in ood]
    left_out = [o for o in ood if o not in listed]
    if twice or strangers or left_out:
        problems = [f"{', '.join(twice)} in more than one group" if twice else "",
                    f"{', '.join(strangers)} not in 'ood'" if strangers else "",
                    f"{', '.join(left_out)} in no group" if left_out else ""]
        raise _fail(origin, "every OOD set must be in exactly one group: "
                            + "; ".join(p for p in problems if p))
    return groups


def parse_suite(text: str, *, name: str, origin: str) -> BenchmarkSpec:
    """Parse the TOML ``text`` of a suite named ``name``; errors name ``origin``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _fail(origin, f"not valid TOML ({exc})") from None
    return spec_from_mapping(data, name=name, origin=origin)


def load_benchmark_file(path: Path | str) -> BenchmarkSpec:
    """A suite from any TOML file (its stem is the suite's name), e.g. a user's own protocol."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise OodbenchError(f"Benchmark suite file {path} does not exist. A suite is a TOML file with "
                            f"{', '.join(REQUIRED_KEYS)}; see benchmarks/suites/ for examples.")
    return parse_suite(path.read_text(encoding="utf-8"), name=path.stem, origin=str(path))


def bundled_suites() -> list[BenchmarkSpec]:
    """Every ``*.toml`` suite shipped in the ``oodbench.suites`` package, sorted by name."""
    folder = resources.files(SUITES_PACKAGE)
    specs = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml") and entry.is_file():
            origin = f"{SUITES_PACKAGE}/{entry.name}"
            specs.append(parse_suite(entry.read_text(encoding="utf-8"), name=entry.name[: -len(".toml")],
                                     origin=origin))
    return specs


def register_bundled_suites(registry: Registry[BenchmarkSpec]) -> None:
    """Register every suite file of ``oodbench.suites`` (the source of :data:`BENCHMARKS`)."""
    for spec in bundled_suites():
        registry.register(spec.name, spec)


BENCHMARKS: Registry[BenchmarkSpec] = Registry(
    "benchmark",
    hint="Or pass a suite file (--id path/to/suite.toml), or --id folder:PATH --ood folder:A,folder:B for "
         "your own folders.",
    sources=[register_bundled_suites, "oodbench.plugins:load_plugins"])


def resolve_benchmark(name: str) -> BenchmarkSpec:
    """A suite by name, or from a TOML file when ``name`` is the path of one (``--id my/suite.toml``)."""
    if name.endswith(".toml") or Path(name).expanduser().is_file():
        return load_benchmark_file(name)
    return BENCHMARKS.get(name)


def _clean_list(values: Iterable[str], what: str) -> tuple[str, ...]:
    items: list[str] = []
    for v in values:
        v = v.strip()
        if v and v not in items:
            items.append(v)
    if not items:
        raise OodbenchError(f"No {what} given: name at least one registered data set or folder:PATH "
                            "(`oodbench list datasets` shows the registered ones).")
    return tuple(items)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "data"


def custom_benchmark(id: str, ood: Sequence[str]) -> BenchmarkSpec:
    """A benchmark from the command line: ``--id folder:PATH --ood folder:A,folder:B`` (names work too).

    Its name is ``custom-<last part of the ID path>`` (or ``custom-<data set name>``), so results of
    different custom ID sets land in different folders. Its lexicon is WordNet (all noun and adjective
    files): folders hold real images, and ``--words FILE`` replaces it.
    """
    id = id.strip()
    if not id:
        raise OodbenchError("No ID data set given: pass --id folder:PATH (one sub-folder per class) or a "
                            "benchmark name (`oodbench list benchmarks`).")
    ood_sets = _clean_list(ood, "OOD data sets")
    stem = Path(id[len(FOLDER_PREFIX):].rstrip("/\\")).name if id.startswith(FOLDER_PREFIX) else id
    return BenchmarkSpec(
        name=f"custom-{_slug(stem)}",
        description=f"{id} (ID) vs {', '.join(ood_sets)} (OOD), given on the command line",
        source="given on the command line",
        id=id,
        ood=ood_sets,
        lexicon="wordnet",
    )


def with_ood(spec: BenchmarkSpec, ood: Sequence[str]) -> BenchmarkSpec:
    """``spec`` with its OOD sets replaced (``--ood`` on top of a suite); everything else is kept."""
    ood_sets = _clean_list(ood, "OOD data sets")
    suite_ood = spec.suite_ood or spec.ood
    if ood_sets == spec.ood:
        return spec
    return dataclasses.replace(
        spec, ood=ood_sets, groups=_regroup(spec.groups, ood_sets),
        suite_ood=None if set(ood_sets) == set(suite_ood) else suite_ood,  # the same sets in another order: the same run
        description=f"{spec.description} [OOD sets replaced on the command line: {', '.join(ood_sets)}]")


def _regroup(groups: Mapping[str, tuple[str, ...]], ood: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """The suite's groups restricted to ``ood`` when every one of them has a group; else no groups."""
    grouped = {m for members in groups.values() for m in members}
    if not groups or any(o not in grouped for o in ood):
        return {}
    kept = {g: tuple(o for o in ood if o in members) for g, members in groups.items()}
    return {g: members for g, members in kept.items() if members}


def check_datasets(spec: BenchmarkSpec) -> None:
    """Fail if ``spec`` names a data set that is neither registered nor ``folder:PATH``.

    """
    from oodbench.data.spec import DATASETS

    unknown = [d for d in spec.datasets if not d.startswith(FOLDER_PREFIX) and d not in DATASETS]
    if unknown:
        raise OodbenchError(
            f"Benchmark {spec.name!r} names unknown data set(s) {', '.join(repr(u) for u in unknown)}. "
            f"Known data sets: {', '.join(DATASETS.names())}; or use folder:PATH."
        )
