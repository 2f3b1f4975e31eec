"""Method parameters parsed by their declared type (typing.get_origin / get_args), not by its text."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import re

import pytest

from oodbench.errors import OodbenchError
from oodbench.params import convert, describe
from oodbench.scorer import MethodInfo, Scorer


@dataclass
class Typed(Scorer):
    info = MethodInfo(paper="test", summary="test")
    counts: list[int] = None  # type: ignore[assignment]
    flag: bool = False
    maybe: int | None = None
    old_style: Optional[float] = None  # noqa: UP007 - the typing.Optional spelling must work too
    mode: Literal["mass", "log-odds"] = "mass"
    path: Path | None = None
    ratio: float = 0.5
    name: str = "x"
    pair: tuple[float, ...] = (1.0,)

    def fit(self, ctx):
        pass

    def score(self, image_features):
        return image_features.sum(-1)


def test_list_of_int_parses_as_a_list_not_as_an_int():
    # The old text matching saw "int" in "list[int]" and called int("1,2,3").
    assert Typed.from_params({"counts": "1, 2,3"}).counts == [1, 2, 3]
    assert Typed.from_params({"counts": [4, 5]}).counts == [4, 5]  # from a TOML array
    with pytest.raises(OodbenchError, match=r"counts.*list of int"):
        Typed.from_params({"counts": "1,two"})


@pytest.mark.parametrize("text,value", [("true", True), ("Yes", True), ("on", True), ("1", True),
                                        ("false", False), ("no", False), ("OFF", False), ("0", False)])
def test_bool(text, value):
    assert Typed.from_params({"flag": text}).flag is value


def test_bool_rejects_other_words():
    with pytest.raises(OodbenchError, match="flag"):
        Typed.from_params({"flag": "maybe"})


def test_optional_fields():
    assert Typed.from_params({"maybe": "none"}).maybe is None
    assert Typed.from_params({"maybe": "null"}).maybe is None
    assert Typed.from_params({"maybe": "7"}).maybe == 7
    assert Typed.from_params({"old_style": "NONE"}).old_style is None
    assert Typed.from_params({"old_style": "2.5"}).old_style == 2.5
    assert Typed.from_params({"path": "~/x.txt"}).path == Path("~/x.txt").expanduser()
    with pytest.raises(OodbenchError, match=r"maybe.*int or none"):
        Typed.from_params({"maybe": "7.5"})


def test_literal_fields():
    assert Typed.from_params({"mode": "log-odds"}).mode == "log-odds"
    with pytest.raises(OodbenchError, match=r"mode.*one of 'mass', 'log-odds'"):
        Typed.from_params({"mode": "odds"})


def test_numbers_and_text():
    t = Typed.from_params({"ratio": "1e-3", "name": "a, b", "pair": "0.5,2"})
    assert (t.ratio, t.name, t.pair) == (1e-3, "a, b", (0.5, 2.0))
    assert Typed.from_params({"ratio": 2}).ratio == 2.0 and isinstance(Typed.from_params({"ratio": 2}).ratio, float)
    for bad in ("nan", "NaN", "abc"):
        with pytest.raises(OodbenchError, match="ratio"):
            Typed.from_params({"ratio": bad})
    with pytest.raises(OodbenchError, match="integer"):
        convert(True, int, "x.n")  # a TOML boolean is not a count
    with pytest.raises(OodbenchError, match="text"):
        convert(3, str, "x.s")


def test_unknown_parameter_is_named_with_the_known_ones():
    with pytest.raises(OodbenchError, match=r"no parameter 'ratoi'.*ratio"):
        Typed.from_params({"ratoi": "1"})


def test_describe():
    assert describe(list[int]) == "list of int"
    assert describe(int | None) == "int or none"
    assert describe(Literal["a", "b"]) == "one of 'a', 'b'"


# --------------------------------------------------------------------------------------------- domains
def _numeric(hint) -> bool:
    import typing

    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    return any(a in (int, float) for a in args)


def test_every_method_declares_the_domain_of_its_numbers_and_marks_its_templates():
    import dataclasses
    import typing

    from oodbench.scorer import METHODS

    for name, cls in METHODS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if _numeric(hints[f.name]):
                assert "domain" in f.metadata, f"{name}.{f.name} declares no domain (use oodbench.params.param)"
            if "template" in f.name and hints[f.name] is str:
                assert f.metadata.get("template"), f"{name}.{f.name} is not marked as a template"


OUT_OF_DOMAIN = [
    ("msp", "logit_scale", "0", "> 0"),
    ("mcm", "temperature", "-1", "> 0"),
    ("mcm", "temperature", "inf", "> 0"),
    ("neglabel", "percentile", "1.5", "in [0, 1]"),
    ("neglabel", "eta", "0", "in (0, 1]"),
    ("neglabel", "groups", "0", ">= 1"),
    ("neglabel", "num_negatives", "0", ">= 1"),
    ("neglabel", "temperature", "0", "> 0"),
    ("neglabel", "noun_template", "the {} {}", "exactly one '{}'"),
    ("zoc-lite", "k", "0", ">= 1"),
    ("zoc-lite", "scale", "-5", "> 0"),
    ("zoc-lite", "max_id_cosine", "1.01", "in [-1, 1]"),
    ("zoc-lite", "template", "a {kind} of {}", "exactly one '{}'"),
    ("clipn-ctw", "scale", "0", "> 0"),
    ("clipn-atd", "scale", "-100", "> 0"),
    ("energy", "temperature", "0", "> 0"),
    ("gen", "gamma", "1", "in (0, 1)"),
    ("gen", "top_k", "0", ">= 1"),
    ("csp", "eta", "0", "in (0, 1]"),
    ("csp", "max_cosine", "1.5", "in [-1, 1]"),
    ("csp", "noun_templates", "a {} {}", "exactly one '{}'"),
    ("eoe", "beta", "-1", ">= 0"),
    ("eoe", "template", "a {kind} of {}", "exactly one '{}'"),
    ("gl-mcm", "lambda_local", "-0.5", ">= 0"),
]


@pytest.mark.parametrize("method, name, value, domain", OUT_OF_DOMAIN)
def test_values_outside_a_domain_are_refused(method, name, value, domain):
    from oodbench.scorer import METHODS

    cls = METHODS.get(method)
    with pytest.raises(OodbenchError, match=re.escape(domain)):
        cls.from_params({name: value})
    cls.from_params({})  # the defaults are inside every domain


def test_domains_are_shown_with_the_parameters():
    import dataclasses

    from oodbench.cli import _domain
    from oodbench.scorer import METHODS

    fields = {f.name: f for f in dataclasses.fields(METHODS.get("neglabel"))}
    assert _domain(fields["percentile"]) == " (in [0, 1])" and _domain(fields["groups"]) == " (>= 1)"
    assert _domain(fields["seed"]) == "" and _domain(fields["output"]) == ""
