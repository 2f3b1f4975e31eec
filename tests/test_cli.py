"""End-to-end CLI runs on generated folders: results, report, cache hits, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from testkit import TINY
from typer.testing import CliRunner

from oodbench.cli import app
from oodbench.results import ResultSet

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def custom_run_args(bench: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["run", "--method", "msp", "--method", "mcm", "--id", f"folder:{bench['id']}",
            "--ood", f"folder:{bench['ood_a']},folder:{bench['ood_b']}", "--model", TINY,
            "--pretrained", "none", "--out", str(out), "--workers", "0", "--batch-size", "8", *extra]


def test_run_writes_results_and_report(folder_benchmark, tmp_path):
    out = tmp_path / "results"
    res = invoke(*custom_run_args(folder_benchmark, out))
    assert res.exit_code == 0, res.output
    files = sorted(out.rglob("*.json"))
    assert [f.name for f in files] == ["mcm.json", "msp.json"]
    data = json.loads(files[0].read_text())
    assert data["format"] == "oodbench-result/1" and data["method"] == "mcm"
    assert [r["ood"] for r in data["rows"]] == [f"folder:{folder_benchmark['ood_a']}",
                                                f"folder:{folder_benchmark['ood_b']}", "average"]
    for row in data["rows"]:
        assert set(row) >= {"auroc", "fpr95", "aupr_in", "aupr_out", "id_accuracy", "n_id", "n_ood"}
        assert 0 <= row["auroc"] <= 1 and 0 <= row["id_accuracy"] <= 1
    assert data["rows"][0]["n_id"] == 18 and data["rows"][0]["n_ood"] == 8 and data["rows"][1]["n_ood"] == 5
    avg = data["rows"][-1]
    assert avg["auroc"] == pytest.approx((data["rows"][0]["auroc"] + data["rows"][1]["auroc"]) / 2)
    prov = data["provenance"]
    assert prov["versions"]["torch"] and prov["seed"] == 0 and prov["fpr_convention"] == "nearest"
    assert data["backbone"]["model"] == TINY and data["backbone"]["pretrained"] == "none"
    assert data["params"] == {"temperature": 1.0}
    assert files[0].with_suffix(".csv").is_file()

    md = invoke("report", str(out))
    assert md.exit_code == 0
    assert "| method" in md.output and "mcm" in md.output and "msp" in md.output
    csv_out = tmp_path / "board.csv"
    res = invoke("report", str(out), "--format", "csv", "--output", str(csv_out))
    assert res.exit_code == 0
    header = csv_out.read_text().splitlines()[0].split(",")
    assert header[:3] == ["benchmark", "backbone", "method"] and "avg FPR95" in header and "ID acc" in header
    mcm = ResultSet.load(files[0])
    line = [ln for ln in csv_out.read_text().splitlines() if ",mcm," in ln][0]
    assert f"{mcm.rows[-1]['auroc'] * 100:.2f}" in line


def test_second_run_decodes_no_image(folder_benchmark, tmp_path, monkeypatch):
    out = tmp_path / "results"
    assert invoke(*custom_run_args(folder_benchmark, out)).exit_code == 0
    first = json.loads((next(out.rglob("mcm.json"))).read_text())

    def no_decoding(*a, **k):
        raise AssertionError("an image was decoded on the second run")

    monkeypatch.setattr(Image, "open", no_decoding)
    res = invoke(*custom_run_args(folder_benchmark, out))
    assert res.exit_code == 0, res.output
    second = json.loads((next(out.rglob("mcm.json"))).read_text())
    assert second["rows"] == first["rows"]


def test_skip_existing_does_nothing_twice(folder_benchmark, tmp_path):
    out = tmp_path / "results"
    assert invoke(*custom_run_args(folder_benchmark, out)).exit_code == 0
    stamp = {f: f.stat().st_mtime_ns for f in out.rglob("*.json")}
    res = invoke(*custom_run_args(folder_benchmark, out, "--skip-existing"))
    assert res.exit_code == 0 and "Nothing to do" in res.output
    assert {f: f.stat().st_mtime_ns for f in out.rglob("*.json")} == stamp


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "oodbench.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


BAD_INPUT = [
    (["--method", "nosuch"], "Unknown method 'nosuch'"),
    (["--method", "mcm", "--id", "imagenett"], "Unknown benchmark 'imagenett'"),
    (["--method", "mcm", "--model", "ViT-Q-99"], "Unknown model 'ViT-Q-99'"),
    (["--method", "mcm", "--ood", "nosuchset"], "Unknown dataset 'nosuchset'"),
    (["--method", "mcm", "-p", "mcm.temperature"], "METHOD.NAME=VALUE"),
    (["--method", "mcm", "-p", "mcm.tau=2"], "has no parameter 'tau'"),
    (["--method", "mcm", "--templates", "no placeholder"], "neither a file nor a template"),
    (["--method", "mcm", "--pretrained", "/no/such/file.pt"], "No file exists"),
    # templates with two fields or a named one (str.format would raise IndexError / KeyError)
    (["--method", "mcm", "--templates", "a {} next to a {}"], "needs exactly one '{}'"),
    (["--method", "mcm", "--templates", "a photo of a {name}"], "(found: {name})"),
    # -p naming a method that does not run (silently ignored before)
    (["--method", "mcm", "-p", "mcn.temperature=2"], "Did you mean 'mcm'"),
    (["--method", "mcm", "-p", "msp.logit_scale=50"], "It is not run: add -m msp"),
    (["--method", "mcm", "--clipn-checkpoint", "x.safetensors"], "neither is run"),
    # values outside a parameter's domain
    (["--method", "mcm", "-p", "mcm.temperature=0"], "mcm.temperature is 0.0, outside its domain: it must be > 0"),
    (["--method", "msp", "-p", "msp.logit_scale=-100"], "it must be > 0"),
    (["--method", "mcm", "-p", "mcm.temperature=nan"], "NaN is not a valid value"),
]


@pytest.mark.parametrize("args, message", BAD_INPUT)
def test_bad_input_is_a_short_error_with_exit_code_2(folder_benchmark, tmp_path, args, message):
    options = {"--id": f"folder:{folder_benchmark['id']}", "--ood": f"folder:{folder_benchmark['ood_a']}",
               "--model": TINY, "--pretrained": "none", "--out": str(tmp_path / "r"), "--workers": "0"}
    given = dict(zip(args[::2], args[1::2]))
    if given.get("--id", "folder:").startswith("folder:") is False:
        options.pop("--ood")
    options.update(given)
    flat = [x for kv in options.items() for x in kv]
    res = runner.invoke(app, ["run", *flat])
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split())
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert not (tmp_path / "r").exists()


def test_user_error_in_a_real_process_has_no_traceback(tmp_path):
    proc = run_cli("run", "--method", "nosuch", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Unknown method 'nosuch'" in proc.stderr and "Known methods:" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_missing_folders_and_data_root(tmp_path):
    proc = run_cli("run", "-m", "mcm", "--id", f"folder:{tmp_path / 'nope'}", "--ood", f"folder:{tmp_path}",
                   "--model", TINY, "--pretrained", "none", cwd=tmp_path)
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("run", "-m", "mcm", "--id", "imagenet", "--model", TINY, "--pretrained", "none", cwd=tmp_path)
    assert proc.returncode == 2 and "--data-root" in proc.stderr
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    proc = run_cli("run", "-m", "mcm", "--id", f"folder:{tmp_path / 'empty'}", "--ood", f"folder:{tmp_path}",
                   "--model", TINY, "--pretrained", "none", cwd=tmp_path)
    assert proc.returncode == 2 and "1 class folder(s)" in proc.stderr and "hold no images (cls)" in proc.stderr


def test_corrupt_image_names_the_file_and_caches_nothing(folder_benchmark, tmp_path):
    bad = folder_benchmark["ood_a"] / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    cache = tmp_path / "cache"
    proc = run_cli(*custom_run_args(folder_benchmark, tmp_path / "r"), "--cache-dir", str(cache), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "broken.png" in proc.stderr and "Traceback" not in proc.stderr
    # The ID set was encoded and cached; the OOD set with the broken file was not, and no result was written.
    entries = [p for p in (cache / "images").iterdir()] if (cache / "images").exists() else []
    assert len(entries) == 1 and not any(p.name.startswith(".tmp") for p in entries)
    assert not (tmp_path / "r").exists()
    bad.unlink()
    proc = run_cli(*custom_run_args(folder_benchmark, tmp_path / "r"), "--cache-dir", str(cache), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_list_and_cache_commands(folder_benchmark, tmp_path):
    res = invoke("list", "methods", "-v")
    assert res.exit_code == 0 and "mcm" in res.output and "temperature=1.0" in res.output
    res = invoke("list", "benchmarks")
    assert res.exit_code == 0 and "imagenet" in res.output and "inaturalist" in res.output
    res = invoke("list", "datasets")
    assert res.exit_code == 0 and "textures" in res.output
    cache = tmp_path / "cache"
    assert invoke(*custom_run_args(folder_benchmark, tmp_path / "r"), "--cache-dir", str(cache)).exit_code == 0
    res = invoke("cache", "list", "--cache-dir", str(cache))
    assert res.exit_code == 0 and "3 entries" in res.output.replace("\n", " ") or "entries" in res.output
    res = invoke("cache", "clear", "--cache-dir", str(cache), "--kind", "images", "--yes")
    assert res.exit_code == 0 and "Deleted 3 entries" in res.output


def test_id_takes_a_suite_file(folder_benchmark, tmp_path):
    """`--id path/to/suite.toml`: a user's own protocol from the command line; its name is the file's stem."""
    suite = tmp_path / "my-suite.toml"
    suite.write_text(
        'description = "my protocol"\nsource = "my lab"\n'
        f'id = "folder:{folder_benchmark["id"]}"\nood = ["folder:{folder_benchmark["ood_a"]}"]\n'
        'templates = ["a picture of a {}"]\n[params.mcm]\ntemperature = 2.0\n')
    out = tmp_path / "results"
    res = invoke("run", "-m", "mcm", "--id", str(suite), "--model", TINY, "--pretrained", "none",
                 "--out", str(out), "--workers", "0")
    assert res.exit_code == 0, res.output
    data = json.loads(next(out.rglob("mcm.json")).read_text())
    assert data["benchmark"] == "my-suite" and data["params"] == {"temperature": 2.0}
    assert data["provenance"]["templates"] == ["a picture of a {}"]
    missing = invoke("run", "-m", "mcm", "--id", str(tmp_path / "nope.toml"), "--out", str(out))
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_templates_file_that_is_not_utf8(folder_benchmark, tmp_path):
    path = tmp_path / "templates.txt"
    path.write_bytes("une photo d'un {} \u00e9lev\u00e9\n".encode("latin-1"))
    res = runner.invoke(app, custom_run_args(folder_benchmark, tmp_path / "r", "--templates", str(path)))
    assert res.exit_code == 2 and "is not UTF-8 text" in " ".join(res.output.split())
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("make", ["file", "parent-file"])
def test_out_that_cannot_be_a_folder_fails_before_encoding(folder_benchmark, tmp_path, make):
    (tmp_path / "taken").write_text("a file")
    out = tmp_path / "taken" if make == "file" else tmp_path / "taken" / "results"
    res = runner.invoke(app, [*custom_run_args(folder_benchmark, out), "--cache-dir", str(tmp_path / "c")])
    assert res.exit_code == 2, res.output
    assert "--out" in res.output and "is a file" in " ".join(res.output.split())
    assert not (tmp_path / "c" / "images").exists()  # nothing was encoded


def test_unknown_ood_name_is_refused_before_any_data_set_is_generated(tmp_path):
    res = runner.invoke(app, ["run", "-m", "mcm", "--id", "toyworld", "--ood", "toyworld-nearr",
                              "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "Did you mean 'toyworld-near'" in " ".join(res.output.split())
    assert not (tmp_path / "c" / "data").exists()  # toyworld was not generated first


def test_report_answers_bad_files_and_a_folder_as_output(tmp_path):
    from oodbench.results import FORMAT

    good = {"format": FORMAT, "benchmark": "b", "backbone": {"slug": "m"}, "method": "mcm", "params": {},
            "provenance": {}, "rows": [{"ood": "o", "auroc": 0.5, "fpr95": 0.5}, {"ood": "average", "auroc": 0.5,
                                                                                   "fpr95": 0.5}]}
    cases = {"missing.json": {k: v for k, v in good.items() if k != "rows"},
             "text.json": {**good, "rows": [{"ood": "o", "auroc": "0.9", "fpr95": 0.5}, good["rows"][1]]},
             "noavg.json": {**good, "rows": good["rows"][:1]}}
    messages = {"missing.json": "lacks the field(s) rows", "text.json": "auroc = '0.9', not a number",
                "noavg.json": "no 'average' row"}
    for name, content in cases.items():
        (tmp_path / name).write_text(json.dumps(content))
        res = invoke("report", str(tmp_path / name))  # before: KeyError / TypeError tracebacks
        assert res.exit_code == 2, (name, res.output)
        text = " ".join(res.output.split())
        assert name in text and messages[name] in text, text
    (tmp_path / "ok.json").write_text(json.dumps(good))
    (tmp_path / "board").mkdir()
    res = invoke("report", str(tmp_path / "ok.json"), "-o", str(tmp_path / "board"))
    assert res.exit_code == 2 and "is a folder" in res.output


def test_every_missing_data_set_is_named_in_one_error(folder_benchmark, tmp_path, monkeypatch):
    # Before: the first missing set only; a user missing iNaturalist and SUN found out in two runs.
    import oodbench.backbone

    monkeypatch.setattr(oodbench.backbone.Backbone, "load", lambda *a, **k: pytest.fail("loaded a model"))
    res = runner.invoke(app, ["run", "-m", "mcm", "--id", f"folder:{folder_benchmark['id']}",
                              "--ood", f"inaturalist,folder:{folder_benchmark['ood_a']},sun",
                              "--data-root", str(tmp_path / "empty"), "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    text = " ".join(res.output.split())
    assert "2 of the run's data sets cannot be opened: inaturalist, sun." in text
    assert "Data set 'inaturalist': no folder found" in text and "Data set 'sun': no folder found" in text
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").rglob("*.json"))


def test_resize_option_reaches_the_preprocessing(folder_benchmark, tmp_path):
    res = runner.invoke(app, custom_run_args(folder_benchmark, tmp_path / "r", "--resize", "40",
                                             "--interpolation", "bicubic"))
    assert res.exit_code == 0, res.output
    data = json.loads(next((tmp_path / "r").rglob("mcm.json")).read_text())
    assert "Resize(size=40, interpolation=bicubic" in data["backbone"]["preprocess"]
    bad = runner.invoke(app, custom_run_args(folder_benchmark, tmp_path / "r2", "--resize", "3"))
    assert bad.exit_code == 2 and "at least" in bad.output and not (tmp_path / "r2").exists()
