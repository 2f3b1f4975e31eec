"""The method contract: a :class:`Scorer` fits its text side once, then scores cached image features.

Orientation, stated once for the whole project: **higher score = more in-distribution**.

A method is a dataclass subclass of :class:`Scorer` registered in :data:`METHODS`::

    @METHODS.register("mcm")
    @dataclass
    class MCM(Scorer):
        info = MethodInfo(paper="Ming et al., NeurIPS 2022", summary="max softmax of cosine / T")
        temperature: float = 1.0

        def fit(self, ctx): ...
        def score(self, image_features): ...

Its dataclass fields are its parameters: they are set from the CLI (``--param mcm.temperature=2``) and
from benchmark files, and written into every result's provenance.
"""

from __future__ import annotations

import dataclasses
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, get_type_hints

import numpy as np
import torch

from oodbench.errors import OodbenchError
from oodbench.registry import Registry

if TYPE_CHECKING:
    from oodbench.backbone import Backbone
    from oodbench.features import FeatureStore
    from oodbench.lexicon import Lexicon

log = logging.getLogger(__name__)


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
    lexicon_loader: Callable[[], Lexicon] | None = None
    cache_dir: Path | None = None

    def load_lexicon(self) -> Lexicon:
        """The candidate-word lexicon of this benchmark (WordNet, toyworld's words, or ``--words``)."""
        if self.lexicon_loader is None:
            raise OodbenchError(
                f"Benchmark {self.benchmark!r} names no lexicon, and this method needs candidate words. "
                "Pass --words FILE (one word per line) or use a benchmark that names one."
            )
        return self.lexicon_loader()

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


@dataclass
class Scorer(ABC):
    """Base class of every method; subclasses are dataclasses whose fields are the parameters."""

    info: ClassVar[MethodInfo]
    name: ClassVar[str] = ""

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
            kwargs[key] = _convert(value, hints.get(key, str), f"{cls.name}.{key}")
        return cls(**kwargs)


@dataclass
class ClassHeadScorer(Scorer):
    """A scorer whose text side is one prompt-ensembled embedding per ID class (MSP, MCM, ...).

    ``fit`` sets ``self.text_features`` ([C, D], from ``ctx.templates`` or ``default_templates``);
    ``predict_classes`` is the zero-shot argmax over them. Subclasses only define ``score``.
    """

    default_templates: ClassVar[list[str]] = ["a photo of a {}"]

    def fit(self, ctx: FitContext) -> None:
        self.text_features = ctx.backbone.class_text_features(
            ctx.class_names, ctx.templates_or(self.default_templates))

    def predict_classes(self, image_features: torch.Tensor) -> torch.Tensor:
        return (image_features @ self.text_features.to(image_features.device).T).argmax(dim=-1)


def _convert(value: Any, hint: Any, where: str) -> Any:
    if not isinstance(value, str):
        return value
    text = str(hint)
    try:
        if value.lower() in ("none", "null") and "None" in text:
            return None
        if "bool" in text:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if "int" in text and "float" not in text:
            return int(value)
        if "float" in text:
            return float(value)
        if "Path" in text:
            return Path(value).expanduser()
        if "list" in text or "tuple" in text:
            return [v.strip() for v in value.split(",") if v.strip()]
    except ValueError:
        raise OodbenchError(f"Parameter {where}: cannot read {value!r} as {text}.") from None
    return value


METHODS: Registry[type[Scorer]] = Registry(
    "method", hint="Third-party methods register through the 'oodbench.methods' entry-point group."
)


def register_method(name: str) -> Callable[[type[Scorer]], type[Scorer]]:
    """Class decorator: make ``cls`` a dataclass (if it is not yet) and register it as ``name``."""

    def wrap(cls: type[Scorer]) -> type[Scorer]:
        if not dataclasses.is_dataclass(cls) or "__dataclass_fields__" not in cls.__dict__:
            cls = dataclass(cls)
        cls.name = name
        if not isinstance(getattr(cls, "info", None), MethodInfo):
            raise TypeError(f"method {name!r} must define `info = MethodInfo(...)`")
        return METHODS.register(name, cls)

    return wrap


_loaded = False


def load_methods() -> Registry[type[Scorer]]:
    """Import the built-in ``methods`` package and every ``oodbench.methods`` entry point once."""
    global _loaded
    if _loaded:
        return METHODS
    _loaded = True
    import importlib
    from importlib.metadata import entry_points

    importlib.import_module("methods")
    for ep in entry_points(group="oodbench.methods"):
        try:
            obj = ep.load()
        except Exception:  # a broken plug-in must not take the built-in methods down with it
            log.exception("could not load oodbench method plug-in %r (%s)", ep.name, ep.value)
            continue
        if isinstance(obj, type) and issubclass(obj, Scorer) and ep.name not in METHODS:
            register_method(ep.name)(obj)
    return METHODS
