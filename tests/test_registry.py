"""The registry type and the method registry's completeness."""

from __future__ import annotations

import dataclasses

import pytest

from oodbench.errors import OodbenchError, UnknownNameError
from oodbench.registry import Registry
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
