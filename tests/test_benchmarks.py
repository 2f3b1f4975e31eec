"""Benchmark suites: the bundled TOML files, their validation, and command-line benchmarks."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import pytest

from oodbench.benchmarks import (
    BENCHMARKS,
    BenchmarkSpec,
    bundled_suites,
    check_datasets,
    custom_benchmark,
    load_benchmark_file,
    with_ood,
)
from oodbench.data.base import open_dataset
from oodbench.data.spec import DataContext
from oodbench.errors import OodbenchError, UnknownNameError

MINIMAL = 'description = "d"\nsource = "s"\nid = "imagenet"\nood = ["sun"]\n'


def _register_datasets() -> None:
    """Import the modules that register data sets (skipping ones another engineer has not landed yet)."""
    importlib.import_module("oodbench.data.datasets")
    for module in ("oodbench.toyworld",):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def write_suite(tmp_path: Path, text: str, name: str = "mine") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def test_spec_fields_are_the_contract():
    assert [f.name for f in dataclasses.fields(BenchmarkSpec)] == [
        "name", "description", "source", "id", "ood", "templates", "lexicon", "lexicon_options", "model",
        "pretrained", "interpolation", "params", "groups", "suite_ood", "resize"]
    spec = BenchmarkSpec("x", "d", "s", "imagenet", ("sun",))
    assert spec.templates is None and spec.lexicon_options == {} and spec.params == {} and spec.groups == {}
    assert spec.suite_ood is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.id = "cifar10"  # type: ignore[misc]


def test_every_bundled_suite_loads_and_names_registered_datasets():
    _register_datasets()
    suites = bundled_suites()
    assert {"imagenet", "cifar10", "cifar100"} <= {s.name for s in suites}
    for spec in suites:
        assert spec.description and spec.source and spec.ood
        assert BENCHMARKS.get(spec.name) == spec
        check_datasets(spec)


def test_imagenet_suite():
    b = BENCHMARKS.get("imagenet")
    assert b.id == "imagenet" and b.ood == ("inaturalist", "sun", "places", "textures")
    assert b.lexicon == "wordnet" and b.lexicon_options == {"style": "neglabel",
                                                           "exclude": ["noun.animal", "noun.food"]}
    assert b.interpolation == "bilinear"
    assert (b.model, b.pretrained, b.templates) == ("ViT-B-16", "openai", None)
    assert "MOS" in b.source and "MCM" in b.source


@pytest.mark.parametrize(("name", "near"), [("cifar10", "cifar100"), ("cifar100", "cifar10")])
def test_cifar_suites(name, near):
    b = BENCHMARKS.get(name)
    assert b.id == name and b.ood == (near, "lsun", "imagenet-r", "svhn", "textures")
    assert b.lexicon == "wordnet" and b.lexicon_options == {}
    assert "CLIPN" in b.source and "inferred" in b.source


def test_unknown_benchmark_lists_the_known_ones():
    with pytest.raises(UnknownNameError) as err:
        BENCHMARKS.get("imagnet")
    msg = str(err.value)
    assert "imagenet" in msg and "cifar10" in msg and "cifar100" in msg and "folder:PATH" in msg
    assert isinstance(err.value, OodbenchError)
    assert "imagenet" in BENCHMARKS and len(BENCHMARKS) >= 3 and "imagenet" in list(BENCHMARKS)


def test_a_full_suite_file(tmp_path):
    path = write_suite(tmp_path, MINIMAL + 'templates = ["a photo of a {}.", "art of the {}."]\n'
                       'lexicon = "toyworld"\nmodel = "RN50"\npretrained = "openai"\n'
                       'resize = 256\n'
                       '[lexicon_options]\nexclude = ["noun.food"]\n[params.neglabel]\ngroups = 100\n',
                       name="my-suite")
    b = load_benchmark_file(path)
    assert b.name == "my-suite" and b.ood == ("sun",)
    assert b.templates == ("a photo of a {}.", "art of the {}.")
    assert b.params == {"neglabel": {"groups": 100}} and b.lexicon_options == {"exclude": ["noun.food"]}
    assert b.resize == 256
    # the OpenOOD suite preprocesses as OpenOOD does; the MOS suite as MCM and NegLabel do
    from oodbench.benchmarks import resolve_benchmark

    openood, mos = resolve_benchmark("openood-imagenet"), resolve_benchmark("imagenet")
    assert (openood.resize, openood.interpolation) == (256, "bicubic")
    assert (mos.resize, mos.interpolation) == (None, "bilinear")
    from oodbench.api import build_config

    assert build_config("mcm", "openood-imagenet").backbone.resize == 256
    assert build_config("mcm", "openood-imagenet", model="ViT-L-14-336").backbone.resize is None  # its own crop
    assert build_config("mcm", "openood-imagenet", model="ViT-L-14-336", resize=384).backbone.resize == 384


@pytest.mark.parametrize(("text", "problem"), [
    (MINIMAL + 'oods = ["places"]\n', "unknown key(s) 'oods'"),
    ('description = "d"\nsource = "s"\nood = ["sun"]\n', "missing required key 'id'"),
    ('description = "d"\nsource = "s"\nid = "imagenet"\n', "missing required key 'ood'"),
    ('description = "d"\nid = "imagenet"\nood = ["sun"]\n', "missing required key 'source'"),
    (MINIMAL.replace('["sun"]', "[]"), "'ood' must be a non-empty list"),
    (MINIMAL.replace('["sun"]', '"sun"'), "'ood' must be a non-empty list"),
    (MINIMAL.replace('["sun"]', '["sun", "sun"]'), "names sun more than once"),
    (MINIMAL + 'templates = ["a photo"]\n', "placeholder"),
    (MINIMAL + 'name = "other"\n', "'name' is 'other'"),
    (MINIMAL + "params = 3\n", "'params' must be a table"),
    (MINIMAL + "[params]\nneglabel = 3\n", "params.neglabel must be a table"),
    (MINIMAL + "id = 'twice'\n", "not valid TOML"),
    (MINIMAL + "resize = 0\n", "'resize' must be the shorter side"),
    (MINIMAL + "suite_ood = ['sun']\n", "unknown key(s) 'suite_ood'"),
])
def test_invalid_suite_files_name_the_file_and_the_problem(tmp_path, text, problem):
    path = write_suite(tmp_path, text)
    with pytest.raises(OodbenchError) as err:
        load_benchmark_file(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_suite_file_name_must_be_a_registry_name(tmp_path):
    with pytest.raises(OodbenchError, match="lower-case"):
        load_benchmark_file(write_suite(tmp_path, MINIMAL, name="My_Suite"))
    with pytest.raises(OodbenchError, match="does not exist"):
        load_benchmark_file(tmp_path / "absent.toml")


def test_check_datasets_rejects_unknown_names():
    _register_datasets()
    check_datasets(BenchmarkSpec("x", "d", "s", "folder:/data/id", ("sun", "folder:/data/ood")))
    with pytest.raises(OodbenchError, match="'nope'"):
        check_datasets(BenchmarkSpec("x", "d", "s", "imagenet", ("sun", "nope")))


def test_custom_benchmark(tmp_path):
    b = custom_benchmark("folder:/data/My ID set/",
                         [" folder:/data/a", "folder:/data/b", "folder:/data/a", ""])
    assert b.name == "custom-my-id-set" and b.id == "folder:/data/My ID set/"
    assert b.ood == ("folder:/data/a", "folder:/data/b")
    assert b.templates is None and b.params == {} and b.lexicon == "wordnet"
    with pytest.raises(OodbenchError, match="No OOD data sets"):
        custom_benchmark("folder:/data/id", [])
    with pytest.raises(OodbenchError, match="No ID data set"):
        custom_benchmark(" ", ["sun"])


def test_custom_benchmark_folders_open(tmp_path):
    from PIL import Image

    for cls in ("cat", "dog"):
        (tmp_path / "id" / cls).mkdir(parents=True)
        Image.new("RGB", (4, 4), (10, 20, 30)).save(tmp_path / "id" / cls / "a.png")
    (tmp_path / "ood").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "ood" / "x.png")
    b = custom_benchmark(f"folder:{tmp_path / 'id'}", [f"folder:{tmp_path / 'ood'}"])
    id_set = open_dataset(b.id, DataContext())
    assert id_set.class_names == ["cat", "dog"] and list(id_set.labels) == [0, 1]
    assert [len(open_dataset(o, DataContext())) for o in b.ood] == [1]


def test_with_ood_replaces_only_the_ood_sets():
    base = BENCHMARKS.get("imagenet")
    b = with_ood(base, ["textures", "folder:/x"])
    assert b.ood == ("textures", "folder:/x")
    kept = ("name", "id", "lexicon", "lexicon_options", "model", "pretrained", "params", "templates")
    assert all(getattr(b, k) == getattr(base, k) for k in kept)
    assert "replaced on the command line" in b.description
    assert with_ood(base, list(base.ood)) is base
    with pytest.raises(OodbenchError):
        with_ood(base, [" "])
