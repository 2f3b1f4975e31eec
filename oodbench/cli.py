"""The ``oodbench`` command line: run, report, plot, list, cache, train.

User errors (:class:`~oodbench.errors.OodbenchError`) print one paragraph on stderr and exit with
code 2, without a traceback; anything else is a bug and keeps its traceback.

Importing this module imports neither torch nor open_clip nor any method: each command imports what it
needs when it runs, so ``oodbench --help``, ``--version``, ``list benchmarks`` and ``report`` stay fast.
Trainers (``oodbench train NAME``) are entry points of ``oodbench.trainers``, loaded only when run.
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table
from typer.core import TyperGroup

from oodbench.errors import OodbenchError
from oodbench.progress import console, setup_logging
from oodbench.version import __version__

EXIT_USER_ERROR = 2
#: Width of tables written to a pipe or a file, which have no width of their own: rich would assume 80
#: columns and cut every cell to a few letters; a reader of a log or a file can scroll.
PIPE_WIDTH = 200


#: The same for `--help` piped into a pager or a file: typer's help reads its width from TERMINAL_WIDTH
#: when it first formats help, else assumes 80 columns, which wraps every option's text to a few words.
HELP_PIPE_WIDTH = 120


def _stdout_console() -> Console:
    if sys.stdout.isatty() or os.environ.get("COLUMNS"):
        return Console()
    os.environ.setdefault("TERMINAL_WIDTH", str(HELP_PIPE_WIDTH))
    return Console(width=PIPE_WIDTH)


#: Tables and listings go to stdout (pipe them); messages, progress and errors to stderr (``console``).
stdout = _stdout_console()


class _Group(TyperGroup):
    """Turns user errors anywhere below into a short message and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OodbenchError as exc:
            console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            ctx.exit(EXIT_USER_ERROR)


class _TrainGroup(_Group):
    """``oodbench train``: one sub-command per trainer entry point, imported only when it is run."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from oodbench.trainers import trainer_names

        return trainer_names()

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        from oodbench.trainers import TRAINERS, trainer_names

        if cmd_name not in trainer_names():
            return None
        sub = typer.Typer(pretty_exceptions_enable=False, rich_markup_mode="rich")
        sub.command(cmd_name)(TRAINERS.get(cmd_name))
        return typer.main.get_command(sub)


app = typer.Typer(
    cls=_Group, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode="rich",
    help="Zero-shot OOD detection benchmarks for CLIP-like models: encode once, score many.\n\n"
         "Start with [bold]oodbench run --method all --id toyworld[/] (offline, bundled), then "
         "[bold]oodbench report[/].",
)
list_app = typer.Typer(cls=_Group, no_args_is_help=True, help="Show what is registered.")
cache_app = typer.Typer(cls=_Group, no_args_is_help=True, help="Inspect or clear the feature cache.")
train_app = typer.Typer(cls=_TrainGroup, no_args_is_help=True, help="Train method-specific models (CLIPN).")
app.add_typer(list_app, name="list")
app.add_typer(cache_app, name="cache")
app.add_typer(train_app, name="train")


class Precision(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class FprConvention(str, Enum):
    nearest = "nearest"
    interpolate = "interpolate"
    openood = "openood"


class ReportFormat(str, Enum):
    md = "md"
    csv = "csv"
    latex = "latex"
    html = "html"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"oodbench {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More log output (-vv: debug).")] = 0,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    setup_logging(verbose)


# --------------------------------------------------------------------------------------------- run
@app.command()
def run(
    method: Annotated[list[str], typer.Option(
        "--method", "-m", help="Method name(s): repeat the option or use commas; 'all' runs every "
                               "registered method that has what it needs (CLIPN a --clipn-checkpoint, EOE "
                               "a label file: left out with a warning otherwise). See `oodbench list "
                               "methods`.")],
    id: Annotated[str, typer.Option(
        "--id", help="Benchmark suite (imagenet, cifar10, cifar100, toyworld, ...; see `oodbench list "
                     "benchmarks`), a suite file path/to/suite.toml, or folder:PATH for a custom ID set "
                     "(one sub-folder per class).")] = "toyworld",
    ood: Annotated[Optional[str], typer.Option(
        help="Comma-separated OOD data sets, overriding the suite's list (names or folder:PATH).")] = None,
    model: Annotated[Optional[str], typer.Option(
        help="open_clip model name (default: the suite's, else ViT-B-16).")] = None,
    pretrained: Annotated[Optional[str], typer.Option(
        help="open_clip pretrained tag, a local checkpoint file, a bundled name, or 'none' for random "
             "weights (default: the suite's, else openai).")] = None,
    data_root: Annotated[Optional[Path], typer.Option(
        envvar="OODBENCH_DATA", help="Folder holding the data sets ($OODBENCH_DATA).")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option(
        envvar="OODBENCH_CACHE", help="Feature cache ($OODBENCH_CACHE, default ~/.cache/oodbench).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per encoding batch.")] = 128,
    workers: Annotated[int, typer.Option(min=0, help="Image-decoding worker processes.")] = min(
        4, os.cpu_count() or 1),
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    precision: Annotated[Precision, typer.Option(help="fp32, or bf16/fp16 autocast.")] = Precision.fp32,
    out: Annotated[Path, typer.Option(help="Where result JSON/CSV files go.")] = Path("results"),
    seed: Annotated[int, typer.Option(help="Seed for every random choice (grouping, init).")] = 0,
    skip_existing: Annotated[bool, typer.Option(help="Skip methods whose result file exists.")] = False,
    download: Annotated[bool, typer.Option(help="Allow downloading data sets that can be (CIFAR, SVHN).")] = False,
    param: Annotated[Optional[list[str]], typer.Option(
        "--param", "-p", help="Method parameter as METHOD.NAME=VALUE, e.g. -p neglabel.groups=10 "
                              "(repeatable; `oodbench list methods -v` shows the parameters).")] = None,
    templates: Annotated[Optional[str], typer.Option(
        help="Prompt templates for every method: a file (one template per line, '{}' for the class) "
             "or a single template string. Default: each method's published prompts.")] = None,
    words: Annotated[Optional[Path], typer.Option(
        help="Candidate-word file for NegLabel / ZOC-lite instead of the suite's lexicon "
             "(one word per line, optional tab-separated noun/adj column).")] = None,
    clipn_checkpoint: Annotated[Optional[str], typer.Option(
        help="CLIPN weights (a file from `oodbench train clipn`, an official release, or a bundled name) "
             "for clipn-ctw / clipn-atd.")] = None,
    fpr_convention: Annotated[FprConvention, typer.Option(
        help="FPR95 rule: 'nearest' (MCM/NegLabel/CSP/EOE/GL-MCM), 'interpolate' (CLIPN) or "
             "'openood' (OpenOOD v1.5, OOD positive: AdaNeg/TANL).")] = FprConvention.nearest,
    interpolation: Annotated[Optional[str], typer.Option(
        help="Image resize interpolation: bicubic (open_clip's default) or bilinear (as MCM's and "
             "NegLabel's code resized; the imagenet suite's default). Default: the suite's, else "
             "bicubic. Part of the feature cache key.")] = None,
    resize: Annotated[Optional[int], typer.Option(
        min=1, help="Resize the shorter side to this many pixels before the centre crop (default: the crop "
                    "size, as CLIP does; OpenOOD and OpenOOD-VLM, hence AdaNeg's and TANL's numbers, use "
                    "256). Part of the feature cache key.")] = None,
    quick_gelu: Annotated[Optional[bool], typer.Option(
        "--quick-gelu/--no-quick-gelu", help="Force QuickGELU on/off (default: what the weights were trained "
                                             "with: QuickGELU for openai and other tags that ask for it, "
                                             "and for OpenAI-style weight files).")] = None,
    verify_content: Annotated[bool, typer.Option(
        help="Make each image folder's cache identity cover the images' bytes (sha256 of every file), not "
             "only their paths, sizes and modification times. Reads every image once more per run.")] = False,
    save_scores: Annotated[bool, typer.Option(
        help="Also write every image's score beside each result (<method>.scores.csv.gz: dataset, path, "
             "label, score), for `oodbench plot` and `oodbench report --compare`.")] = False,
    bootstrap: Annotated[int, typer.Option(
        min=0, help="Bootstrap resamples for each row's 95% interval (ci95); 0 = none.")] = 1000,
    tag: Annotated[Optional[str], typer.Option(
        help="Name this run's variant: results go to <method>@TAG.json (default: a short hash of the "
             "non-default settings, none for a default run).")] = None,
    stream_repeats: Annotated[int, typer.Option(
        min=1, help="Test-time (stream) methods only: seeded stream orders per OOD set; rows give the mean "
                    "of every metric and its std over them.")] = 3,
) -> None:
    """Score methods on a benchmark: one encoding pass per data set, cached, shared by all methods."""
    from oodbench.api import build_config
    from oodbench.runner import run as run_benchmark

    cfg = build_config(
        method, id, ood=ood.split(",") if ood else None, model=model, pretrained=pretrained,
        data_root=data_root, cache_dir=cache_dir, device=device, precision=precision.value,
        params=_parse_params(param or []), templates=templates, words=words, clipn_checkpoint=clipn_checkpoint,
        fpr_convention=fpr_convention.value, interpolation=interpolation, resize=resize,
        quick_gelu=quick_gelu,
        batch_size=batch_size, workers=workers, seed=seed, download=download, out=out,
        skip_existing=skip_existing, save_scores=save_scores, bootstrap=bootstrap, tag=tag,
        verify_content=verify_content, stream_repeats=stream_repeats)
    results = run_benchmark(cfg)
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun only rank 0 reports
    if not results:
        console.print("Nothing to do: every result exists (--skip-existing).")
        return
    _print_results(results)
    console.print(f"Results written under [bold]{escape(str(out))}/{escape(results[0].benchmark)}/"
                  f"{escape(results[0].backbone['slug'])}/[/] "
                  "— `oodbench report` builds the leaderboard.", highlight=False)


def _parse_params(items: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for item in items:
        head, sep, value = item.partition("=")
        method, dot, key = head.partition(".")
        if not sep or not dot or not method or not key:
            raise OodbenchError(f"--param {item!r} is not METHOD.NAME=VALUE (e.g. -p neglabel.groups=10).")
        out.setdefault(method.strip(), {})[key.strip()] = value.strip()
    return out


def _cell(row: dict[str, Any]) -> str:
    """``FPR95 / AUROC`` in %; a stream method's as ``mean±std`` over its stream orders."""
    std = row.get("std") or {}
    parts = [f"{row[m] * 100:.2f}" + (f"±{std[m] * 100:.2f}" if m in std else "") for m in ("fpr95", "auroc")]
    return " / ".join(parts)


def _print_results(results: list) -> None:  # type: ignore[type-arg]
    oods = [r["ood"] for r in results[0].rows if r["ood"] != "average"]
    table = Table(title=f"{results[0].benchmark} — {results[0].backbone['slug']}  (FPR95 ↓ / AUROC ↑, %)")
    table.add_column("method", style="bold")
    for o in oods + ["average"]:
        table.add_column(o, justify="right")
    table.add_column("ID acc", justify="right")
    for r in sorted(results, key=lambda r: r.rows[-1]["fpr95"]):
        cells = [_cell(row) for row in r.rows]
        acc = r.rows[-1].get("id_accuracy")
        table.add_row(escape(r.label), *cells, "—" if acc is None else f"{acc * 100:.2f}")
    stdout.print(table)


# --------------------------------------------------------------------------------------------- report
@app.command()
def report(
    paths: Annotated[Optional[list[Path]], typer.Argument(
        help="Result files or folders (searched recursively). Default: ./results")] = None,
    format: Annotated[ReportFormat, typer.Option("--format", "-f", help="md, csv, latex or html.")] = ReportFormat.md,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    long: Annotated[bool, typer.Option(help="One line per (method, OOD set) instead of a leaderboard.")] = False,
    digits: Annotated[int, typer.Option(min=0, max=6, help="Decimals.")] = 2,
    reference: Annotated[Optional[list[Path]], typer.Option(
        help="CSV of published numbers to show beside your runs, e.g. "
             "results/reference/imagenet_vit-b-16.csv (repeatable).")] = None,
    ci: Annotated[bool, typer.Option("--ci", help="Show each number's 95% bootstrap interval [low, high].")] = False,
    compare: Annotated[Optional[tuple[str, str]], typer.Option(
        metavar="A B", help="Paired difference B − A per OOD set with its 95% interval; A and B are run labels "
                            "(mcm, mcm@TAG) or result files. Needs runs made with --save-scores.")] = None,
    resamples: Annotated[int, typer.Option(min=1, help="Bootstrap resamples for --compare.")] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed for --compare.")] = 0,
    plots: Annotated[Optional[Path], typer.Option(
        help="Folder of `oodbench plot` figures to embed in the HTML report (default: the --output "
             "file's folder, when it holds them).")] = None,
) -> None:
    """Build leaderboards from result files (FPR95 / AUROC per OOD set, average, ID accuracy)."""
    from oodbench.html import PLOT_INDEX
    from oodbench.report import comparison_pairs, render, render_comparisons, write
    from oodbench.results import ResultSet, find_result_files

    if output is not None and output.is_dir():
        raise OodbenchError(f"--output {output} is a folder; name the file to write, e.g. {output / 'board.md'}.")
    files = find_result_files(paths or [Path("results")])
    results = [ResultSet.load(f) for f in files]
    if compare:
        text = render_comparisons(comparison_pairs(results, *compare), format.value, digits=digits,
                                  resamples=resamples, seed=seed)
    else:
        if plots is None and output is not None and (output.parent / PLOT_INDEX).is_file():
            plots = output.parent
        text = render(results, format.value, long=long, digits=digits, references=reference or [], ci=ci,
                      plots=plots if format == ReportFormat.html else None)
    write(text, output)
    if output:
        console.print(f"Wrote {output} ({len(files)} result files).")


# --------------------------------------------------------------------------------------------- plot
class FigureFormat(str, Enum):
    png = "png"
    pdf = "pdf"
    svg = "svg"


@app.command()
def plot(
    paths: Annotated[Optional[list[Path]], typer.Argument(
        help="Result files or folders (searched recursively) whose runs saved scores (--save-scores). "
             "Default: ./results")] = None,
    out: Annotated[Path, typer.Option(help="Folder for the figures.")] = Path("plots"),
    format: Annotated[FigureFormat, typer.Option("--format", "-f", help="png, pdf or svg.")] = FigureFormat.png,
    bins: Annotated[int, typer.Option(min=5, help="Histogram bins.")] = 50,
) -> None:
    """Figures from saved per-image scores: ROC curves (one figure per benchmark × backbone × OOD set, a
    curve per method) and score histograms (ID vs each OOD set, one figure per method)."""
    from oodbench.plots import plot_results
    from oodbench.results import ResultSet, find_result_files

    files = find_result_files(paths or [Path("results")])
    written = plot_results([ResultSet.load(f) for f in files], out, fmt=format.value, bins=bins)
    console.print(f"Wrote {len(written)} figures to {escape(str(out))}/ (index.json lists them; "
                  "`oodbench report -f html --plots` embeds them).", highlight=False)


# --------------------------------------------------------------------------------------------- reproduce
@app.command()
def reproduce(
    name: Annotated[Optional[str], typer.Argument(
        help="Protocol name (see --list) or a protocol file path/to/name.toml.")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the bundled protocols and exit.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the exact settings; run nothing.")] = False,
    method: Annotated[Optional[list[str]], typer.Option(
        "--method", "-m", help="Only these of the protocol's methods (repeatable).")] = None,
    variant: Annotated[Optional[str], typer.Option(
        help="Which published rows to compare with when a paper reports several (e.g. 'repeat 2': one "
             "released checkpoint of several). Default: the protocol's.")] = None,
    clipn_checkpoint: Annotated[Optional[str], typer.Option(
        help="CLIPN weights for clipn-ctw / clipn-atd (e.g. a released epoch_10.pt).")] = None,
    param: Annotated[Optional[list[str]], typer.Option(
        "--param", "-p", help="Method parameter over the protocol's, METHOD.NAME=VALUE (e.g. "
                              "-p neglabel.negatives=selected_neg_labels_in1k_10k.txt).")] = None,
    data_root: Annotated[Optional[Path], typer.Option(
        envvar="OODBENCH_DATA", help="Folder holding the data sets ($OODBENCH_DATA).")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option(
        envvar="OODBENCH_CACHE", help="Feature cache ($OODBENCH_CACHE), shared with `oodbench run`.")] = None,
    out: Annotated[Path, typer.Option(help="Where result files go (<out>/<protocol>/...).")] = Path("results"),
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    batch_size: Annotated[int, typer.Option(min=1, help="Images per encoding batch.")] = 128,
    workers: Annotated[int, typer.Option(min=0, help="Image-decoding worker processes.")] = min(
        4, os.cpu_count() or 1),
    download: Annotated[bool, typer.Option(help="Allow downloading data sets that can be (CIFAR, SVHN).")] = False,
) -> None:
    """Run a paper's protocol (backbone, preprocessing, templates, parameters, OOD sets, FPR95 convention)
    and print ours beside the published numbers."""
    from oodbench.reproduce import bundled_protocols, comparison, load_protocol, run_protocol, settings

    if list_:
        table = Table("paper", "suite", "OOD sets", "methods", "backbone", "FPR95", "published")
        table.columns.insert(0, Column("protocol", no_wrap=True))
        for p in bundled_protocols():
            table.add_row(*map(escape, (p.name, p.cite, p.suite, ", ".join(p.ood), ", ".join(p.methods),
                                        f"{p.model} {p.pretrained}", p.fpr_convention,
                                        f"{len(p.published)} row{'s' if len(p.published) != 1 else ''}" if p.published else "none")))
        stdout.print(table)
        return
    if not name:
        raise OodbenchError("Name a protocol (`oodbench reproduce --list` shows them) or pass --list.")
    protocol = load_protocol(name)
    if variant is not None and variant not in protocol.variants:
        raise OodbenchError(f"Protocol {protocol.name} has no published variant {variant!r}; its variants: "
                            f"{', '.join(protocol.variants) or '(none)'}.")
    if dry_run:
        table = Table("setting", "value", title=f"oodbench reproduce {protocol.name} (dry run: nothing is run)",
                      show_lines=False)
        for key, value in settings(protocol, method):
            table.add_row(escape(key), escape(value))
        stdout.print(table)
        return
    params = _parse_params(param or [])
    if clipn_checkpoint:
        for m in ("clipn-ctw", "clipn-atd"):
            params.setdefault(m, {})["checkpoint"] = clipn_checkpoint
    results, notes = run_protocol(protocol, data_root=data_root, cache_dir=cache_dir, out_dir=out, device=device,
                                  batch_size=batch_size, workers=workers, download=download, methods=method,
                                  method_params=params)
    for note in notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    for result in results:
        pub = protocol.published_for(result.method, variant)
        table = Table("OOD set", "FPR95 ours", "published", "Δ", "AUROC ours", "published", "Δ",
                      title=f"{protocol.name}: {result.method}"
                            + (f" vs {pub.variant}" if pub and pub.variant else "")
                            + f" (%, FPR95 {protocol.fpr_convention})",
                      caption=escape(f"published: {pub.source}" if pub else "no published numbers known"))
        for row in comparison(protocol, result, variant):
            cells = []
            for metric in ("fpr95", "auroc"):
                ours, theirs, diff = row[metric]
                spread = f" ± {row['std'][metric]:.2f}" if metric in row["std"] else ""  # a stream method
                cells += [f"{ours:.2f}{spread}", "—" if theirs is None else f"{theirs:.2f}",
                          "—" if diff is None else f"{diff:+.2f}"]
            table.add_row(escape(row["ood"]), *cells)
        stdout.print(table)
    if results:
        console.print(f"Results written under [bold]{escape(str(out))}/{escape(protocol.name)}/[/]; "
                      f"what differs from the reference: `oodbench reproduce {escape(protocol.name)} --dry-run`.",
                      highlight=False)


# --------------------------------------------------------------------------------------------- words
@app.command()
def words(
    benchmark: Annotated[str, typer.Argument(help="Benchmark suite (or a suite file) whose lexicon to print.")],
    pos: Annotated[bool, typer.Option("--pos", help="Print word<TAB>pos (noun or adj).")] = False,
    cache_dir: Annotated[Optional[Path], typer.Option(
        envvar="OODBENCH_CACHE", help="Cache folder for lexicon loaders ($OODBENCH_CACHE).")] = None,
) -> None:
    """The suite's candidate pool for NegLabel / ZOC-lite, one word per line, in the order mining sees it."""
    from oodbench.benchmarks import resolve_benchmark
    from oodbench.lexicon import load_lexicon

    bench = resolve_benchmark(benchmark)
    if bench.lexicon is None:
        raise OodbenchError(f"Benchmark {bench.name!r} names no lexicon, so it has no candidate pool.")
    lex = load_lexicon(bench.lexicon, dict(bench.lexicon_options), cache_dir=cache_dir)
    lines = [f"{w}\t{p}" if pos else w for w, p in zip(lex.words, lex.pos)]
    typer.echo("\n".join(lines))
    console.print(f"{len(lex)} words ({lex.count('noun')} nouns, {lex.count('adj')} adjectives): {lex.source}",
                  highlight=False)


# --------------------------------------------------------------------------------------------- list
@list_app.command("methods")
def list_methods(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show parameters.")] = False) -> None:
    """Registered methods, their papers and (with -v) their parameters and defaults."""
    import dataclasses

    from oodbench.scorer import METHODS

    table = Table("method", "score", "paper")
    if verbose:
        table.add_column("parameters (defaults)")
    for name, cls in METHODS.items():
        cells = [name, cls.info.summary, cls.info.paper]
        if verbose:
            cells.append(", ".join(f"{f.name}={_default(f)}{_domain(f)}" for f in dataclasses.fields(cls)))
        table.add_row(*map(escape, cells))
    stdout.print(table)


def _domain(f: Any) -> str:
    domain = f.metadata.get("domain")
    text = domain.describe() if domain is not None else ""
    return f" ({text})" if text and text != "finite" else ""


def _default(f: Any) -> str:
    import dataclasses

    if f.default is not dataclasses.MISSING:
        return repr(f.default)
    if f.default_factory is not dataclasses.MISSING:
        return repr(f.default_factory())
    return "required"


@list_app.command("datasets")
def list_datasets() -> None:
    """Registered data sets with the folder layout each expects and where it comes from."""
    from oodbench.data.spec import DATASETS

    table = Table("dataset", "description", "expected layout (under --data-root)", "source")
    for name, spec in DATASETS.items():
        table.add_row(*map(escape, (name, spec.description, spec.layout, spec.source)))
    stdout.print(table)
    stdout.print("Any folder works too: folder:PATH (ID: PATH/<class>/<images>; OOD: images under PATH).")


@list_app.command("benchmarks")
def list_benchmarks(verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Whole sources, descriptions and default backbones, one block per suite.")
        ] = False,
) -> None:
    """Benchmark suites: the ID set, its OOD sets (by group) and the protocol's source."""
    import textwrap

    from oodbench.benchmarks import BENCHMARKS

    def ood_sets(b: Any) -> str:
        if not b.groups:
            return ", ".join(b.ood)
        return "; ".join(f"{g}: {', '.join(m)}" for g, m in b.groups.items())

    if verbose:
        for name, b in BENCHMARKS.items():
            stdout.print(f"[bold]{escape(name)}[/]", highlight=False)
            for label, text in (("ID vs OOD", f"{b.id} vs {ood_sets(b)}"), ("what", b.description),
                                ("source", b.source),
                                ("default backbone", f"{b.model or '-'} / {b.pretrained or '-'}")):
                stdout.print(f"  {label}: {escape(text)}", highlight=False)
        return
    table = Table(show_lines=True)
    table.add_column("benchmark", no_wrap=True)
    table.add_column("ID vs OOD sets (by group)", min_width=24)
    table.add_column("source (shortened; -v for all)")
    for name, b in BENCHMARKS.items():
        table.add_row(*map(escape, (name, f"{b.id} vs {ood_sets(b)}",
                                    textwrap.shorten(b.source, 80, placeholder=" …"))))
    stdout.print(table)


# --------------------------------------------------------------------------------------------- cache
CacheDir = Annotated[Optional[Path], typer.Option(envvar="OODBENCH_CACHE", help="Cache folder.")]


@cache_app.command("list")
def cache_list(cache_dir: CacheDir = None,
               kind: Annotated[Optional[str], typer.Option(help="images, text, ...")] = None) -> None:
    """Cached entries: kind, what they hold, size."""
    from oodbench.features import FeatureStore

    store = FeatureStore(cache_dir)
    entries = store.entries(kind)
    table = Table("kind", "key", "content", "MB", "created", title=str(store.root))
    for e in entries:
        what = e.meta.get("dataset") or e.meta.get("first_prompts") or e.meta.get("backbone", "")
        if isinstance(what, dict):
            what = what.get("name", "")
        table.add_row(e.kind, e.key, escape(str(what)[:60]), f"{e.size_bytes / 1e6:.1f}", e.created)
    stdout.print(table)
    stdout.print(f"{len(entries)} entries, {sum(e.size_bytes for e in entries) / 1e6:.1f} MB.")


@cache_app.command("clear")
def cache_clear(cache_dir: CacheDir = None,
                kind: Annotated[Optional[str], typer.Option(help="Only this kind (images, text, ...).")] = None,
                yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False) -> None:
    """Delete cached features (all, or one kind)."""
    from oodbench.features import FeatureStore

    store = FeatureStore(cache_dir)
    if not yes and not typer.confirm(f"Delete {'all' if not kind else kind} cache entries under {store.root}?"):
        raise typer.Exit(1)
    n = store.clear(kind)
    console.print(f"Deleted {n} entries from {store.root}.")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
