"""The method contract: a :class:`Scorer` fits its text side once, then scores cached image features.

Orientation, stated once for the whole project: **higher score = more in-distribution**.

A method is a dataclass subclass of :class:`Scorer`, named by an entry point of the group
``oodbench.methods`` (``mcm = "oodbench.methods.mcm:MCM"`` in ``pyproject.toml``), from which
:data:`METHODS` fills itself on first use::

    @dataclass
    class MCM(ClassHeadScorer):
        info = MethodInfo(paper="Ming et al., NeurIPS 2022", summary="max softmax of cosine / T")
        temperature: float = 1.0

        def fit(self, ctx): ...
        def score(self, image_features): ...

Its dataclass fields are its parameters: they are set from the CLI (``--param mcm.temperature=2``) and
from benchmark files, and written into every result's provenance. Each declares what values are valid
with :func:`oodbench.params.param` (``temperature: float = param(1.0, gt=0)``; ``template=True`` for a
prompt template); :meth:`Scorer.check_params` enforces them when the method is built (a subclass that
defines ``__post_init__`` calls ``super().__post_init__()``), and :meth:`Scorer.check` may add rules that
tie several parameters together.

Feature kinds: a method declares the image features it needs in ``features`` (default ``("global",)``).
A method that also lists ``"patch"`` (GL-MCM) gets the patch features of the same images as a keyword,
``score(image_features, patch_features=...)``; the runner encodes and caches patch features only when such
a method runs (see :class:`Scorer`).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, get_type_hints

import numpy as np
import torch

from oodbench.errors import OodbenchError
from oodbench.params import Domain, convert, param
from oodbench.prompts import check_template
from oodbench.registry import Registry, entry_point_source

if TYPE_CHECKING:
    import pandas as pd

    from oodbench.backbone import Backbone
    from oodbench.features import FeatureStore
    from oodbench.lexicon import Lexicon

@dataclass(frozen=True)
class MethodInfo:
    """What a method is, for `oodbench list methods` and the results' provenance."""

    paper: str
    summary: str
    url: str = ""


@dataclass
class FitContext:
    """Everything a method may use to build its text side. Methods never load images.

    ``templates`` is the prompt-template override of the benchmark or the user (``--templates``);
    ``None`` means "use the method's own published default".
    """

    backbone: Backbone
    class_names: list[str]
    templates: list[str] | None
    device: torch.device
    seed: int
    cache: FeatureStore | None
    benchmark: str = ""
    lexicon_loader: Callable[..., Lexicon] | None = None
    cache_dir: Path | None = None
    #: The benchmark's parameters per method (``[params.<method>]``), for :meth:`build_method`.
    method_params: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)

    def load_lexicon(self, exclude: Sequence[str] = ()) -> Lexicon:
        """The candidate-word lexicon of this benchmark (WordNet, toyworld's words, or ``--words``).

        ``exclude``: word files (e.g. WordNet lexicographer files such as ``"noun.person"``) to leave out on
        top of the benchmark's own exclusions, for a lexicon that has the option ``exclude``; the words of an
        excluded file then take no part in the lexicon's first-seen rule. Ignored (with a log line) for a
        ``--words`` file, which has no files to exclude.
        """
        if self.lexicon_loader is None:
            raise OodbenchError(
                f"Benchmark {self.benchmark!r} names no lexicon, and this method needs candidate words. "
                "Pass --words FILE (one word per line) or use a benchmark that names one."
            )
        if exclude:
            return self.lexicon_loader(exclude=list(exclude))
        return self.lexicon_loader()

    def build_method(self, name: str, **overrides: Any) -> Scorer:
        """Another method, unfitted, with this benchmark's parameters for it and ``overrides`` on top.

        For a method built on another one's score (OODD on NegLabel's or MCM's). The user's ``-p`` values
        for ``name`` do not apply: they would change this method's numbers without changing its identity.
        """
        return METHODS.get(name).from_params({**self.method_params.get(name, {}), **overrides})

    def templates_or(self, default: list[str]) -> list[str]:
        return list(self.templates) if self.templates else list(default)

    def cached(
        self,
        kind: str,
        key: Mapping[str, Any],
        compute: Callable[[], dict[str, np.ndarray]],
        meta: Mapping[str, Any] | None = None,
    ) -> dict[str, np.ndarray]:
        """Arrays from the cache for (kind, key), computed and stored on a miss (no cache: computed)."""
        if self.cache is None:
            return compute()
        return self.cache.get_or_compute(kind, dict(key), compute, meta=meta)


#: The kinds of image features a method may declare in :attr:`Scorer.features`.
FEATURE_KINDS = ("global", "patch")


@dataclass
class Scorer(ABC):
    """Base class of every method; subclasses are dataclasses whose fields are the parameters.

    ``features`` names the image features the method needs: ``("global",)`` (the default; one [D] feature
    per image) or ``("global", "patch")``. A method that lists ``"patch"`` is called as
    ``score(image_features, patch_features=patches)`` with ``patches`` an [N, P, D] L2-normalised fp16
    tensor of the same N images (P patches each; memory-mapped from the cache, so the method should read
    it in blocks); ``predict_classes`` and ``decide`` still get the global features only. Patch features
    are encoded and cached only for such methods; methods with global features only never pay for them.
    """

    info: ClassVar[MethodInfo]
    name: ClassVar[str] = ""
    features: ClassVar[tuple[str, ...]] = ("global",)
    #: True for test-time methods that keep state over the images they see (:class:`StreamScorer`).
    stream: ClassVar[bool] = False

    @abstractmethod
    def fit(self, ctx: FitContext) -> None:
        """Build the text side once (prompt features, mined negatives, ...)."""

    @abstractmethod
    def score(self, image_features: torch.Tensor) -> torch.Tensor:
        """[N, D] L2-normalised image features -> [N] float scores, higher = more ID. Batched."""

    def predict_classes(self, image_features: torch.Tensor) -> torch.Tensor | None:
        """[N] predicted ID class indices, or ``None`` when the method does not classify."""
        return None

    def decide(self, image_features: torch.Tensor) -> torch.Tensor | None:
        """[N] bool, True = accepted as ID by the method's own threshold-free rule, or ``None``."""
        return None

    def __post_init__(self) -> None:
        self.check_params()

    def check_params(self) -> None:
        """Every parameter inside its declared domain (and :meth:`check`), else an :class:`OodbenchError`."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            where = f"{self.name or type(self).__name__}.{f.name}"
            domain = f.metadata.get("domain")
            if isinstance(domain, Domain) and value is not None and not domain.accepts(value):
                raise OodbenchError(f"Parameter {where} is {value!r}, outside its domain: it must be "
                                    f"{domain.describe()}. Give another value with -p {where}=VALUE.")
            if f.metadata.get("template") and value is not None:
                check_template(value, f"parameter {where}")
        self.check()

    def check(self) -> None:
        """Rules that tie several parameters together (default: none); raise an :class:`OodbenchError`."""

    def unmet(self) -> str | None:
        """What this method needs from the user and was not given (a checkpoint, a label file), as an
        error message; None when it can run. The runner asks before it opens any data: a method named
        with ``--method`` fails with this message, ``--method all`` leaves the method out with a warning."""
        return None

    def params(self) -> dict[str, Any]:
        """The method's parameters as JSON-friendly values (for provenance)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = str(v) if isinstance(v, Path) else v
        return out

    def provenance(self) -> dict[str, Any]:
        """Extra facts about what ``fit`` did (e.g. the mined negatives), written into the results."""
        return {}

    def exports(self, image_features: Mapping[str, torch.Tensor]) -> dict[str, pd.DataFrame]:
        """Tables of everything the method decided, in full, by name (e.g. ``{"negatives": ...}``).

        Called once after scoring, with each scored data set's [N, D] image features (ID set first).
        Each table is saved beside the result as ``<stem>.<name>.tsv`` and kept in
        ``ResultSet.exports``; :meth:`provenance` keeps only a summary. Default: nothing.
        """
        return {}

    @classmethod
    def published_templates(cls) -> list[str] | None:
        """The prompt templates of the method's paper, for a protocol that gives them to every method it runs
        (``[text] templates_of = NAME`` in a protocol file); None when the method has no single list."""
        return None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Scorer:
        """Build from ``{field: value}``; string values are converted to the field's type."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = get_type_hints(cls)
        kwargs: dict[str, Any] = {}
        for key, value in params.items():
            if key not in fields:
                raise OodbenchError(
                    f"Method {cls.name!r} has no parameter {key!r}. "
                    f"Its parameters: {', '.join(sorted(fields)) or '(none)'}."
                )
            kwargs[key] = convert(value, hints.get(key, str), f"{cls.name}.{key}")
        return cls(**kwargs)


@dataclass(frozen=True)
class StreamScores:
    """What a test-time method gives for one stream: per image, in stream order, its ``scores`` ([N]
    float64, higher = more ID) and, when it classifies, its ``predictions`` ([N] int64 ID class indices)."""

    scores: torch.Tensor
    predictions: torch.Tensor | None = None


@dataclass
class StreamScorer(Scorer):
    """A test-time method: it adapts to the stream of images it has seen (AdaNeg, TANL, CLIPScope).

    The stream contract. For every OOD set, the runner mixes the ID set and that OOD set, shuffles them
    with a seeded permutation (one per repeat, ``--stream-repeats``), and calls :meth:`score_stream` once
    with the image features in that stream order. The method starts from a fresh state at each call (the
    reset per OOD set of OpenOOD-VLM's test-time evaluator), consumes the features in batches of
    ``batch_size`` in order (a batch is seen whole: these methods are transductive within a batch), and
    returns one score per image in the same order; the runner puts them back in data-set order, computes
    the metrics on the whole pass, and reports the mean over repeats with their standard deviations.

    ``score`` (one stream of exactly the features given, seed 0) makes a stream method usable wherever a
    static one is; :meth:`predict_classes` is not used (predictions come with the stream).
    """

    stream: ClassVar[bool] = True
    batch_size: int = param(256, ge=1)

    @abstractmethod
    def score_stream(self, image_features: torch.Tensor, *, seed: int) -> StreamScores:
        """[N, D] L2-normalised features in stream order -> :class:`StreamScores` in that order.

        ``seed`` seeds whatever the method draws at random for this stream (start-up states, group
        permutations), so each (OOD set, repeat) is reproducible.
        """

    def score(self, image_features: torch.Tensor) -> torch.Tensor:
        return self.score_stream(image_features, seed=0).scores


@dataclass
class ClassHeadScorer(Scorer):
    """A scorer whose text side is one prompt-ensembled embedding per ID class (MSP, MCM, ...).

    ``fit`` sets ``self.text_features`` ([C, D], from ``ctx.templates`` or ``default_templates``);
    ``predict_classes`` is the zero-shot argmax over them. Subclasses only define ``score``.
    """

    #: MCM's reference prompt, which MSP, MCM, GL-MCM and the zero-shot baselines all use
    default_templates: ClassVar[list[str]] = ["a photo of a {}"]

    def fit(self, ctx: FitContext) -> None:
        self.text_features = ctx.backbone.class_text_features(
            ctx.class_names, ctx.templates_or(self.default_templates))

    @classmethod
    def published_templates(cls) -> list[str] | None:
        return list(cls.default_templates)

    def predict_classes(self, image_features: torch.Tensor) -> torch.Tensor:
        x = image_features.to(torch.float64)  # float64: near-tied classes pick the same on every CPU
        return (x @ self.text_features.to(x.device, torch.float64).T).argmax(dim=-1)


def error_of(check: Callable[[], object]) -> str | None:
    """The message of the :class:`OodbenchError` that ``check()`` raises, or None when it passes: a
    method's :meth:`Scorer.unmet` is usually ``error_of(lambda: resolve(self.some_file))``."""
    try:
        check()
    except OodbenchError as exc:
        return str(exc)
    return None


def as_method(name: str, cls: Any) -> type[Scorer]:
    """Check that ``cls`` is a method class (a :class:`Scorer` with ``info``), make it a dataclass if it is
    not one yet, and name it ``name``. Used for every entry point of the group ``oodbench.methods``."""
    if not (isinstance(cls, type) and issubclass(cls, Scorer)):
        raise TypeError(f"method {name!r} must be a Scorer subclass, got {cls!r}")
    if not dataclasses.is_dataclass(cls) or "__dataclass_fields__" not in cls.__dict__:
        cls = dataclass(cls)
    if not isinstance(getattr(cls, "info", None), MethodInfo):
        raise TypeError(f"method {name!r} must define `info = MethodInfo(...)`")
    kinds = tuple(cls.features)
    if "global" not in kinds or set(kinds) - set(FEATURE_KINDS):
        raise TypeError(f"method {name!r} declares features {kinds}; they must include 'global' and be among "
                        f"{FEATURE_KINDS}")
    cls.name = name
    return cls


METHODS: Registry[type[Scorer]] = Registry(
    "method",
    hint="Methods register through the 'oodbench.methods' entry-point group (built-in ones too: reinstall "
         "with `pip install -e .` after adding one).",
    sources=[entry_point_source("oodbench.methods", as_method)],
)


def register_method(name: str) -> Callable[[type[Scorer]], type[Scorer]]:
    """Class decorator for methods defined outside a package (a notebook, a test): register it as ``name``.

    Packaged methods use the entry-point group ``oodbench.methods`` instead.
    """

    def wrap(cls: type[Scorer]) -> type[Scorer]:
        return METHODS.register(name, as_method(name, cls))

    return wrap


def load_methods() -> Registry[type[Scorer]]:
    """The method registry (it fills itself from the entry points on first use)."""
    return METHODS
