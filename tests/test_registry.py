"""The registry type and the method registry's completeness."""

from __future__ import annotations

import dataclasses

import pytest

from oodbench.errors import OodbenchError, UnknownNameError
from oodbench.registry import Registry, entry_point_source
from oodbench.scorer import METHODS, MethodInfo, Scorer, load_methods


def test_unknown_name_lists_known_and_close_matches():
    r: Registry[int] = Registry("widget")
    r.register("neglabel", 1)
    r.register("mcm", 2)
    with pytest.raises(UnknownNameError) as err:
        r.get("neglable")
    msg = str(err.value)
    assert "Did you mean 'neglabel'" in msg and "Known widgets: mcm, neglabel" in msg
    assert isinstance(err.value, OodbenchError)


def test_names_must_be_lower_case_dashed_and_unique():
    r: Registry[int] = Registry("widget")
    with pytest.raises(ValueError):
        r.register("Bad_Name", 1)
    r.register("ok-name", 1)
    with pytest.raises(ValueError):
        r.register("ok-name", 2)


def test_every_registered_method_is_complete():
    load_methods()
    assert {"msp", "mcm"} <= set(METHODS.names())
    for name, cls in METHODS.items():
        assert cls.name == name
        assert isinstance(cls.info, MethodInfo) and cls.info.paper and cls.info.summary
        assert issubclass(cls, Scorer) and dataclasses.is_dataclass(cls)
        cls()  # every parameter has a default


def test_unknown_method_parameter_is_a_user_error():
    load_methods()
    with pytest.raises(OodbenchError, match="no parameter 'tempreature'.*temperature"):
        METHODS.get("mcm").from_params({"tempreature": "2"})
    with pytest.raises(OodbenchError, match="cannot read 'hot'"):
        METHODS.get("mcm").from_params({"temperature": "hot"})


def test_third_party_method_through_entry_point(monkeypatch):
    import importlib.metadata as md

    import oodbench.scorer as scorer_mod

    class Energy(Scorer):
        info = MethodInfo(paper="Liu et al., NeurIPS 2020", summary="logsumexp")

        def fit(self, ctx):
            pass

        def score(self, image_features):
            return image_features.sum(-1)

    class FakeEntryPoint:
        name, value = "energy-test", "pkg.mod:Energy"

        def load(self):
            return Energy

    class BrokenEntryPoint:
        name, value = "broken-test", "pkg.missing:Nothing"

        def load(self):
            raise ImportError("No module named 'pkg'")

    entries = {"oodbench.methods": [BrokenEntryPoint(), FakeEntryPoint()]}
    monkeypatch.setattr(md, "entry_points", lambda group: entries.get(group, []))
    # A registry built like METHODS, filled from the (patched) entry points on first use.
    registry = Registry("method", sources=[entry_point_source("oodbench.methods", scorer_mod.as_method)])
    assert registry._items == {}  # nothing loaded before the registry is used
    cls = registry.get("energy-test")
    assert cls is Energy and cls.name == "energy-test" and dataclasses.is_dataclass(cls)
    assert registry.names() == ["energy-test"]  # the broken plug-in is skipped, not fatal
