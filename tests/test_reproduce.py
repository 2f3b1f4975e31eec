"""Paper protocols as data and `oodbench reproduce`: the bundled files, --list, --dry-run, and a run end to end
on generated folders with the tiny model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image
from testkit import TINY
from typer.testing import CliRunner

from oodbench.cli import app
from oodbench.errors import OodbenchError
from oodbench.reproduce import bundled_protocols, load_protocol, parse_protocol
from oodbench.scorer import METHODS

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_bundled_protocols_are_consistent():
    from oodbench.benchmarks import resolve_benchmark

    protocols = {p.name: p for p in bundled_protocols()}
    assert set(protocols) == {"mcm-imagenet", "neglabel-imagenet", "clipn-imagenet", "clipn-cifar100",
                              "adaneg-imagenet", "tanl-imagenet", "csp-imagenet"}
    for p in protocols.values():
        assert set(p.ood) <= set(resolve_benchmark(p.suite).ood)
        for method in p.methods:
            METHODS.get(method).from_params(p.params.get(method, {}))  # every parameter is a real one
        assert p.unsupported and all(pub.source for pub in p.published)
    assert protocols["clipn-imagenet"].ood == ("inaturalist", "sun", "textures", "places")
    assert protocols["clipn-imagenet"].activation == "gelu" and protocols["mcm-imagenet"].activation == "quick_gelu"
    assert protocols["neglabel-imagenet"].precision == "fp16"
    names = protocols["clipn-cifar100"].class_name_list()
    assert len(names) == 100 and "aquarium_fish" in names and "maple_tree" in names
    templates = protocols["clipn-imagenet"].template_list()
    assert len(templates) == 128 and templates[34] == "'a photo of a {}.',"
    # the CLIPN repeats: the default compares with the mean, --variant with one repeat
    assert protocols["clipn-imagenet"].published_for("clipn-atd").fpr95["average"] == 29.46
    assert protocols["clipn-imagenet"].published_for("clipn-atd", "repeat 2").fpr95["sun"] == 23.41
    assert protocols["clipn-imagenet"].published_for("msp") is None
    # OpenOOD-VLM's test streams: Resize(256) bicubic + CenterCrop(224), OOD-positive FPR95; everything else
    # keeps the crop size
    for name in ("adaneg-imagenet", "tanl-imagenet"):
        p = protocols[name]
        assert (p.resize, p.interpolation, p.fpr_convention) == (256, "bicubic", "openood"), name
        assert p.backbone().resize == 256
    assert all(protocols[n].resize is None for n in ("mcm-imagenet", "neglabel-imagenet", "clipn-imagenet"))
    assert protocols["adaneg-imagenet"].published_for("adaneg").fpr95["average"] == 17.95  # default variant
    assert protocols["adaneg-imagenet"].published_for("adaneg", "paper").auroc == {"average": 96.66}
    assert protocols["tanl-imagenet"].published_for("tanl").auroc == {}  # not published
    assert protocols["csp-imagenet"].published_for("csp").fpr95["average"] == 17.51
    assert protocols["csp-imagenet"].lexicon_options == protocols["neglabel-imagenet"].lexicon_options


def test_list_and_dry_run_run_nothing(monkeypatch):
    import oodbench.reproduce as rep

    monkeypatch.setattr(rep, "run_protocol", lambda *a, **k: pytest.fail("--dry-run ran the protocol"))
    res = invoke("reproduce", "--list")
    assert res.exit_code == 0
    for name in ("mcm-imagenet", "neglabel-imagenet", "clipn-imagenet", "clipn-cifar100"):
        assert name in res.stdout
    res = runner.invoke(app, ["reproduce", "clipn-cifar100", "--dry-run"], catch_exceptions=False,
                        env={"COLUMNS": "200"})
    assert res.exit_code == 0
    text = res.stdout
    for expected in ("ViT-B-32 / laion2b_s34b_b79k, activation gelu", "resize bicubic", "cifar10, lsun, imagenet-r",
                     "cifar100_classes_underscores.txt (100 names)", "128: \"'a bad photo of a {}.'\"",
                     "FPR95 convention", "interpolate", "none known: ours only", "No released hand-crafted"):
        assert expected in text, expected
    assert invoke("reproduce").exit_code == 2  # neither a name nor --list
    assert runner.invoke(app, ["reproduce", "mcm-imagenet", "--variant", "repeat 9"]).exit_code == 2


def protocol_text(suite: Path, ood: list[str], **extra: str) -> str:
    text = (f'cite = "Test, 2024"\npaper = "A test paper"\ncode = "none"\nsuite = "{suite}"\n'
            f"ood = {json.dumps(ood)}\nmethods = [\"mcm\", \"msp\"]\nfpr_convention = \"interpolate\"\n"
            f'unsupported = ["nothing"]\n'
            f'[backbone]\nmodel = "{TINY}"\npretrained = "none"\nactivation = "gelu"\nprecision = "fp32"\n'
            f'interpolation = "bilinear"\n')
    return text + "".join(extra.values())


@pytest.fixture
def tiny_protocol(folder_benchmark, tmp_path):
    b = folder_benchmark
    suite = tmp_path / "tiny-suite.toml"
    ood = [f"folder:{b['ood_a']}", f"folder:{b['ood_b']}"]
    suite.write_text(f'description = "d"\nsource = "s"\nid = "folder:{b["id"]}"\nood = {json.dumps(ood)}\n')
    (tmp_path / "names.txt").write_text("# my spelling\ncrimson_square\nemerald_square\nazure_square\n")
    published = ('[[published]]\nmethod = "mcm"\nsource = "made up"\nfpr_convention = "interpolate"\n'
                 f'fpr95 = {{ "{ood[1]}" = 50.0, average = 40.0 }}\nauroc = {{ "{ood[1]}" = 60.0 }}\n')
    text = protocol_text(suite, ood[::-1], text='[text]\nclass_names = "names.txt"\n'
                         'templates = ["a photo of a {}"]\n', params="[params.mcm]\ntemperature = 2.0\n",
                         published=published)
    path = tmp_path / "tiny-proto.toml"
    path.write_text(text)
    other = tmp_path / "tiny-other.toml"  # the same backbone and preprocessing: shares the feature cache
    other.write_text(protocol_text(suite, ood[:1]))
    return path, other, ood


def test_reproduce_runs_the_protocol_and_compares(tiny_protocol, tmp_path, monkeypatch):
    import oodbench.runner as run_mod

    path, other, ood = tiny_protocol
    out = tmp_path / "results"
    seen = {}
    score_method = run_mod.score_method

    def spy(name, scorer, ctx, *rest):  # type: ignore[no-untyped-def]
        seen[name] = list(ctx.class_names)
        return score_method(name, scorer, ctx, *rest)

    monkeypatch.setattr(run_mod, "score_method", spy)
    res = runner.invoke(app, ["reproduce", str(path), "--out", str(out), "--workers", "0", "--device", "cpu"],
                        catch_exceptions=False, env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json"))
    assert files == [f"tiny-proto/{TINY}_none/mcm.json", f"tiny-proto/{TINY}_none/msp.json"]
    mcm = json.loads((out / files[0]).read_text())
    assert [r["ood"] for r in mcm["rows"]] == [ood[1], ood[0], "average"]  # the protocol's order
    assert mcm["params"]["temperature"] == 2.0 and mcm["provenance"]["fpr_convention"] == "interpolate"
    assert mcm["provenance"]["templates"] == ["a photo of a {}"]
    assert "bilinear" in mcm["backbone"]["preprocess"].lower() and mcm["backbone"]["quick_gelu"] is False
    # ours beside the published numbers, with ours - published
    fpr, auroc = 100 * mcm["rows"][0]["fpr95"], 100 * mcm["rows"][0]["auroc"]
    line = next(ln for ln in res.stdout.splitlines() if ood[1][-20:] in ln and "50.00" in ln)
    cells = [c.strip() for c in line.split("│") if c.strip()]
    assert cells[-6:] == [f"{fpr:.2f}", "50.00", f"{fpr - 50:+.2f}", f"{auroc:.2f}", "60.00", f"{auroc - 60:+.2f}"]
    avg = next(ln for ln in res.stdout.splitlines() if ln.strip("│ ").startswith("average") and "40.00" in ln)
    assert f"{100 * mcm['rows'][-1]['fpr95'] - 40:+.2f}" in avg
    assert "no published numbers known" in res.stdout  # msp has none

    assert seen["mcm"] == seen["msp"] == ["crimson_square", "emerald_square", "azure_square"]  # not the folders'

    # another protocol with the same backbone and preprocessing reads the cached features
    monkeypatch.setattr(Image, "open", lambda *a, **k: pytest.fail("an image was decoded again"))
    res = invoke("reproduce", str(other), "--out", str(out), "--workers", "0", "--device", "cpu", "-m", "mcm")
    assert res.exit_code == 0, res.output
    plain = json.loads(next((out / "tiny-other").rglob("mcm.json")).read_text())
    assert plain["rows"][0]["ood"] == ood[0] and plain["params"]["temperature"] == 1.0


def test_class_names_must_match_the_id_set(tiny_protocol, tmp_path):
    path, _, _ = tiny_protocol
    (path.parent / "names.txt").write_text("only_one\n")
    res = runner.invoke(app, ["reproduce", str(path), "--out", str(tmp_path / "r"), "--workers", "0"])
    assert res.exit_code == 2 and "1 class names" in res.output


@pytest.mark.parametrize("change, match", [
    (("fpr_convention = \"interpolate\"\n", "fpr_convention = \"closest\"\n"), "fpr_convention"),
    (("activation = \"gelu\"", "activation = \"relu\""), "activation"),
    (("interpolation = \"bilinear\"\n", "interpolation = \"bilinear\"\nactvation = \"gelu\"\n"), "unknown key"),
    (("methods = [\"mcm\", \"msp\"]", "methods = []"), "methods"),
    (("interpolation = \"bilinear\"\n", "interpolation = \"bilinear\"\nresize = \"256\"\n"),
     "backbone.resize"),
    (("interpolation = \"bilinear\"\n", "interpolation = \"bilinear\"\nresize = 0\n"), "backbone.resize"),
])
def test_bad_protocol_files_fail_clearly(tmp_path, change, match):
    text = protocol_text(tmp_path / "s.toml", ["sun"]).replace(*change)
    with pytest.raises(OodbenchError, match=match):
        parse_protocol(text, name="bad", origin="bad.toml")
    published = ('[[published]]\nmethod = "mcm"\nsource = "x"\nfpr_convention = "nearest"\n'
                 'fpr95 = { sun = 1.0 }\nauroc = { sun = 1.0 }\n')
    with pytest.raises(OodbenchError, match="like with like"):
        parse_protocol(protocol_text(tmp_path / "s.toml", ["sun"]) + published, name="bad", origin="bad.toml")
    with pytest.raises(OodbenchError, match="does not exist"):
        load_protocol(str(tmp_path / "missing.toml"))
    assert re.search("Unknown protocol", str(pytest.raises(OodbenchError, load_protocol, "mcm").value))


def test_a_protocols_resize_reaches_the_backbone_and_the_dry_run(tmp_path):
    text = protocol_text(tmp_path / "s.toml", ["sun"]).replace('interpolation = "bilinear"\n',
                                                               'interpolation = "bicubic"\nresize = 256\n')
    protocol = parse_protocol(text, name="wide", origin="wide.toml")
    assert protocol.resize == 256 and protocol.backbone().resize == 256
    from oodbench.reproduce import settings

    assert ("preprocessing", "resize bicubic to 256 on the shorter side, centre crop to the model's size, "
            "its mean/std") in settings(protocol)
    published = ('[[published]]\nmethod = "mcm"\nsource = "x"\nfpr_convention = "interpolate"\n')
    with pytest.raises(OodbenchError, match="neither fpr95 nor auroc"):
        parse_protocol(text + published, name="wide", origin="wide.toml")
    only_fpr = parse_protocol(text + published + "fpr95 = { sun = 3.0 }\n", name="wide", origin="wide.toml")
    assert only_fpr.published[0].auroc == {} and only_fpr.published[0].fpr95 == {"sun": 3.0}


def test_comparison_carries_a_stream_methods_spread(tmp_path):
    from oodbench.reproduce import comparison
    from oodbench.results import ResultSet

    text = protocol_text(tmp_path / "s.toml", ["sun"]) + (
        '[[published]]\nmethod = "mcm"\nsource = "x"\nfpr_convention = "interpolate"\n'
        'fpr95 = { sun = 30.0 }\n')
    protocol = parse_protocol(text, name="p", origin="p.toml")
    rows = [{"ood": "sun", "fpr95": 0.3125, "auroc": 0.9, "std": {"fpr95": 0.005, "auroc": 0.001}},
            {"ood": "average", "fpr95": 0.3125, "auroc": 0.9}]
    got = comparison(protocol, ResultSet("b", {"slug": "m"}, "mcm", {}, rows))
    assert got[0]["fpr95"] == (31.25, 30.0, pytest.approx(1.25)) and got[0]["auroc"] == (90.0, None, None)
    assert got[0]["std"] == {"fpr95": 0.5, "auroc": 0.1} and got[1]["std"] == {}
