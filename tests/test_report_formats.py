"""Reports that work where they are pasted: LaTeX that compiles, a standalone HTML page, markdown as before,
group averages, intervals."""

from __future__ import annotations

import base64
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from oodbench.html import read_plot_index
from oodbench.latex import best_rows, latex_escape, latex_label
from oodbench.report import render
from oodbench.results import ResultSet

# a 1x1 PNG
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGBgAAAABQABpfZFQAAAAABJRU5ErkJggg==")


def fake(method: str, values: dict[str, tuple[float, float]], bench: str = "bench_1", acc: float = 0.5,
         groups: dict[str, str] | None = None, ci: bool = False, std: float | None = None) -> ResultSet:
    """A result with (fpr95, auroc) per OOD set, optional groups with their average rows; ``std``: a stream
    method's spread over stream orders on every row."""
    rows = []
    for ood, (fpr, auroc) in values.items():
        row = {"ood": ood, "auroc": auroc, "fpr95": fpr, "aupr_in": 0.5, "aupr_out": 0.5, "id_accuracy": acc,
               "n_id": 10, "n_ood": 10}
        if groups:
            row["group"] = groups[ood]
        if ci:
            row["ci95"] = {"auroc": [auroc - 0.01, auroc + 0.02], "fpr95": [fpr - 0.03, fpr + 0.04]}
        rows.append(row)
    for g in dict.fromkeys((groups or {}).values()):
        members = [r for r in rows if r.get("group") == g]
        avg = ResultSet.average_row(members)
        avg.update({"ood": f"average-{g}", "group": g})
        rows.append(avg)
    plain = [r for r in rows if not r["ood"].startswith("average")]
    rows.append(ResultSet.average_row([{k: v for k, v in r.items() if k not in ("group", "ci95")} for r in plain]))
    if std is not None:
        for row in rows:
            row["std"] = {"auroc": std, "fpr95": std}
    return ResultSet(bench, {"slug": "ViT-B-16_openai"}, method, {}, rows)


def board_results():
    return [fake("mcm", {"inat_1": (0.30, 0.90), "50% & #": (0.40, 0.85)}),
            fake("neg_label", {"inat_1": (0.20, 0.95), "50% & #": (0.45, 0.80)}, acc=0.6),
            fake("msp", {"inat_1": (0.20, 0.70), "50% & #": (0.90, 0.60)})]


def test_markdown_is_unchanged():
    md = render([fake("mcm", {"a": (0.4, 0.9), "b": (0.2, 0.8)})], "md")
    assert md == (
        "### bench_1 — ViT-B-16_openai (FPR95 ↓, AUROC ↑, %)\n\n"
        "| method   |   a FPR95 |   a AUROC |   b FPR95 |   b AUROC |   avg FPR95 |   avg AUROC |   ID acc |\n"
        "|:---------|----------:|----------:|----------:|----------:|------------:|------------:|---------:|\n"
        "| mcm      |     40.00 |     90.00 |     20.00 |     80.00 |       30.00 |       85.00 |    50.00 |\n")


def test_id_accuracy_is_the_average_rows():
    # A test-time method classifies each stream a little differently (AdaNeg on toyworld: 98.10 on the
    # near stream, 98.11 on the far one): report showed the first row's, `run` the average's.
    r = fake("adaneg", {"a": (0.4, 0.9), "b": (0.2, 0.8)})
    r.rows[0]["id_accuracy"], r.rows[1]["id_accuracy"] = 0.9810, 0.9812
    r.rows[-1]["id_accuracy"] = 0.9811
    assert render([r], "md").splitlines()[-1].endswith("|    98.11 |")


def test_latex_escaping():
    assert latex_escape("neg_label 50% & #1 {x} $y ~z ^w \\ <a|b>") == (
        r"neg\_label 50\% \& \#1 \{x\} \$y \textasciitilde{}z \textasciicircum{}w \textbackslash{} "
        r"\textless{}a\textbar{}b\textgreater{}")
    assert latex_escape("near — far ↓") == r"near --- far $\downarrow$"
    assert latex_label("oodbench", "ImageNet_1k", "ViT-B/16") == "tab:oodbench-imagenet-1k-vit-b-16"


def test_best_values_are_compared_as_printed():
    assert best_rows([0.1234, 0.1231, 0.5], 2, lower_is_better=True) == {0, 1}  # both print 0.12
    assert best_rows([0.9, float("nan"), 0.95], 2, lower_is_better=False) == {2}


def test_latex_table_structure_and_bold():
    tex = render(board_results(), "latex")
    assert tex.startswith("% oodbench report: needs \\usepackage{booktabs}")
    assert tex.count(r"\begin{table}") == 1 and r"\caption{bench\_1 with ViT-B-16\_openai" in tex
    assert r"\label{tab:oodbench-bench-1-vit-b-16-openai}" in tex
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"\multicolumn{2}{c}{50\% \& \#}" in tex and r"\multicolumn{2}{c}{Average}" in tex
    rows = {line.split(" & ")[0]: line.split(" & ")[1:] for line in tex.splitlines()
            if line.startswith(("mcm", "neg", "msp"))}
    assert set(rows) == {"mcm", r"neg\_label", "msp"}
    # columns: inat FPR, inat AUROC, 50% FPR, 50% AUROC, avg FPR, avg AUROC, ID acc
    assert rows["msp"][0] == r"\textbf{20.00}" and rows[r"neg\_label"][0] == r"\textbf{20.00}"  # tie: both
    assert rows[r"neg\_label"][1] == r"\textbf{95.00}" and rows["msp"][1] == "70.00"
    assert rows["mcm"][2] == r"\textbf{40.00}"  # lower is better for FPR95
    assert rows[r"neg\_label"][6].startswith(r"\textbf{60.00}")
    for cells in rows.values():
        assert len(cells) == 7 and cells[-1].endswith(r"\\")


def test_latex_with_intervals_is_scaled_and_bracketed():
    tex = render([fake("mcm", {"a": (0.4, 0.9)}, ci=True)], "latex", ci=True)
    assert r"\usepackage{graphicx}" in tex.splitlines()[0] and r"\resizebox{\linewidth}{!}{%" in tex
    assert r"\textbf{90.00}\,{\scriptsize[89.00, 92.00]}" in tex


def test_latex_and_html_show_a_stream_methods_spread():
    # markdown printed AdaNeg's "29.22 ± 0.91"; LaTeX and HTML dropped the ± std
    results = [fake("adaneg", {"a": (0.4, 0.9)}, std=0.0091), fake("mcm", {"a": (0.3, 0.8)})]
    tex = render(results, "latex")
    assert r"40.00\,{\scriptsize$\pm$0.91}" in tex and "mean $\\pm$ std over seeded stream orders" in tex
    assert tex.count(r"$\pm$") == 5  # adaneg's four cells and the caption; none for mcm
    page = Page()
    page.feed(render(results, "html"))
    texts = [c["text"] for c in page.cells]
    assert "40.00 ± 0.91" in texts and "30.00" in texts and "mean ± std over seeded stream orders" in "".join(
        page.text["caption"])


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
@pytest.mark.parametrize("ci", [False, True])
def test_latex_compiles_with_pdflatex(tmp_path, ci):
    results = [*board_results(), fake("x_y", {"inat_1": (0.1, 0.9)}, bench="other~bench^2", ci=ci),
               fake("tta", {"inat_1": (0.2, 0.8)}, bench="other~bench^2", ci=ci, std=0.01)]
    (tmp_path / "tables.tex").write_text(render(results, "latex", ci=ci))
    (tmp_path / "long.tex").write_text(render(results, "latex", long=True))
    (tmp_path / "doc.tex").write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{graphicx}\n"
                                      "\\begin{document}\n\\input{tables.tex}\n\\input{long.tex}\n\\end{document}\n")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000


class Page(HTMLParser):
    """Collects the page's structure: tags in order, captions, cell classes, images."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: dict[str, list[str]] = {}
        self.cells: list[dict[str, str]] = []
        self.images: list[str] = []
        self.doctype = ""
        self._open: list[str] = []

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        self._open.append(tag)
        if tag == "td":
            self.cells.append({"class": a.get("class", ""), "text": ""})
        if tag == "img":
            self.images.append(a.get("src", ""))
            self._open.pop()

    def handle_endtag(self, tag):
        if self._open and self._open[-1] == tag:
            self._open.pop()

    def handle_data(self, data):
        if self._open:
            self.text.setdefault(self._open[-1], []).append(data)
            if "td" in self._open and self.cells:
                self.cells[-1]["text"] += data


def test_html_is_a_standalone_page_with_captioned_tables_and_figures(tmp_path):
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "roc_bench-1_x.png").write_bytes(PNG)
    (plots / "roc_other_x.png").write_bytes(PNG)
    (plots / "index.json").write_text(
        '[{"file": "roc_bench-1_x.png", "benchmark": "bench_1", "backbone": "ViT-B-16_openai", '
        '"caption": "ROC <curves> & more"}, {"file": "roc_other_x.png", "benchmark": "other", '
        '"backbone": "ViT-B-16_openai", "caption": "elsewhere"}, {"file": "missing.png", "benchmark": "bench_1", '
        '"backbone": "ViT-B-16_openai", "caption": "gone"}]')
    results = [*board_results(), fake("mcm", {"inat_1": (0.1, 0.9)}, bench="<b>other</b>")]
    html = render(results, "html", plots=plots)
    page = Page()
    page.feed(html)
    assert page.doctype.lower() == "doctype html" and page.tags[:3] == ["html", "head", "meta"]
    assert "".join(page.text["title"]) == "oodbench report" and "text-align: right" in html
    assert page.tags.count("table") == 2 and page.tags.count("caption") == 2
    assert sum("bench_1 with ViT-B-16_openai: FPR95" in c for c in page.text["caption"]) == 1
    assert "&lt;b&gt;other&lt;/b&gt;" in html and "<b>other</b>" not in html  # names are escaped
    numbers = [c for c in page.cells if "num" in c["class"]]
    assert len(numbers) == 3 * 7 + 5 and all(c["text"].strip()[0].isdigit() for c in numbers)
    best = [c["text"] for c in page.cells if "best" in c["class"]]
    assert "95.00" in best and "40.00" in best  # best AUROC (higher) and best FPR95 (lower) on 50% & #
    # the figure of bench_1 under its table, embedded; the other benchmark's figure is not in bench_1's
    assert page.images == [f"data:image/png;base64,{base64.b64encode(PNG).decode()}"]
    assert "ROC &lt;curves&gt; &amp; more" in html and "gone" not in html


def test_html_plots_folder_must_hold_an_index(tmp_path):
    from oodbench.errors import OodbenchError

    with pytest.raises(OodbenchError, match="oodbench plot"):
        read_plot_index(tmp_path)


def test_group_averages_sit_between_the_sets_and_the_average():
    r = fake("mcm", {"ssb": (0.5, 0.7), "ninco": (0.3, 0.8), "inat": (0.1, 0.95), "textures": (0.2, 0.9)},
             groups={"ssb": "near", "ninco": "near", "inat": "far", "textures": "far"})
    md = render([r], "md")
    header = md.splitlines()[2]
    names = [c.strip() for c in header.strip("|").split("|")]
    assert names == ["method", "ssb FPR95", "ssb AUROC", "ninco FPR95", "ninco AUROC", "inat FPR95", "inat AUROC",
                     "textures FPR95", "textures AUROC", "avg near FPR95", "avg near AUROC", "avg far FPR95",
                     "avg far AUROC", "avg FPR95", "avg AUROC", "ID acc"]
    cells = [c.strip() for c in md.splitlines()[4].strip("|").split("|")]
    assert cells[9:15] == ["40.00", "75.00", "15.00", "92.50", "27.50", "83.75"]
    tex = render([r], "latex")
    assert r"\multicolumn{2}{c}{avg near}" in tex and r"\cmidrule(lr){10-11}" in tex


def test_markdown_and_csv_with_intervals():
    r = fake("mcm", {"a": (0.4, 0.9)}, ci=True)
    md = render([r], "md", ci=True)
    assert "90.00 [89.00, 92.00]" in md and "40.00 [37.00, 44.00]" in md
    csv = render([r], "csv", ci=True)
    header = csv.splitlines()[0].split(",")
    assert "a AUROC low" in header and "a AUROC high" in header
    assert "| mcm" in render([fake("mcm", {"a": (0.4, 0.9)})], "md", ci=True)  # no intervals: plain numbers


def test_long_html_and_latex():
    html = render(board_results(), "html", long=True)
    assert html.startswith("<!DOCTYPE html>") and html.count("<tr>") == 1 + 9
    tex = render(board_results(), "latex", long=True)
    assert r"neg\_label" in tex and r"\begin{tabular}{llllrrrrrrr}" in tex
    # fractions with two more decimals than the percent tables: the same precision
    results = [fake("adaneg", {"a": (0.29216, 0.917891)})]
    for fmt in ("md", "latex", "html"):
        text = render(results, fmt, long=True)
        assert "0.9179" in text and "0.2922" in text, fmt


def test_cli_html_finds_the_figures_beside_its_output(tmp_path):
    from typer.testing import CliRunner

    from oodbench.cli import app

    r = board_results()[0]
    r.save(tmp_path / "res" / "mcm.json")
    out = tmp_path / "site"
    out.mkdir()
    (out / "roc_x.png").write_bytes(PNG)
    (out / "index.json").write_text('[{"file": "roc_x.png", "benchmark": "bench_1", "backbone": '
                                    '"ViT-B-16_openai", "caption": "c"}]')
    res = CliRunner().invoke(app, ["report", str(tmp_path / "res"), "-f", "html", "-o", str(out / "index.html")])
    assert res.exit_code == 0, res.output
    assert (out / "index.html").read_text().count("data:image/png;base64,") == 1
    assert Path(out / "index.html").read_text().startswith("<!DOCTYPE html>")
