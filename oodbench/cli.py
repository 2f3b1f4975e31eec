"""The ``oodbench`` command line: run, report, list, cache, train.

User errors (:class:`~oodbench.errors.OodbenchError`) print one paragraph on stderr and exit with
code 2, without a traceback; anything else is a bug and keeps its traceback.

Importing this module imports neither torch nor open_clip nor any method: each command imports what it
needs when it runs, so ``oodbench --help``, ``--version``, ``list benchmarks`` and ``report`` stay fast.
Trainers (``oodbench train NAME``) are entry points of ``oodbench.trainers``, loaded only when run.
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from oodbench import __version__
from oodbench.errors import OodbenchError
from oodbench.progress import console, setup_logging

EXIT_USER_ERROR = 2
#: Tables and listings go to stdout (pipe them); messages, progress and errors to stderr (``console``).
stdout = Console()


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
                               "registered method. See `oodbench list methods`.")],
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
             "NegLabel's code resized). Part of the feature cache key.")] = None,
    quick_gelu: Annotated[Optional[bool], typer.Option(
        "--quick-gelu/--no-quick-gelu", help="Force QuickGELU on/off (default: what the weights were trained "
                                             "with: QuickGELU for openai and other tags that ask for it, "
                                             "and for OpenAI-style weight files).")] = None,
    verify_content: Annotated[bool, typer.Option(
        help="Make each image folder's cache identity cover the images' bytes (sha256 of every file), not "
             "only their paths, sizes and modification times. Reads every image once more per run.")] = False,
) -> None:
    """Score methods on a benchmark: one encoding pass per data set, cached, shared by all methods."""
    from oodbench.backbone import BackboneSpec
    from oodbench.benchmarks import custom_benchmark, resolve_benchmark, with_ood
    from oodbench.data.base import DataContext
    from oodbench.features import FeatureStore
    from oodbench.runner import RunConfig, resolve_methods
    from oodbench.runner import run as run_benchmark

    method = resolve_methods(method)  # unknown names fail first, before anything is loaded
    ood_list = [o.strip() for o in ood.split(",") if o.strip()] if ood else None
    if id.startswith("folder:"):
        if not ood_list:
            raise OodbenchError("A custom ID set (--id folder:PATH) needs --ood with at least one OOD set, "
                                "e.g. --ood folder:/data/my_ood.")
        bench = custom_benchmark(id, ood_list)
    else:
        bench = resolve_benchmark(id)
        if ood_list:
            bench = with_ood(bench, ood_list)
    method_params = _parse_params(param or [])
    if clipn_checkpoint:
        users = [name for name in ("clipn-ctw", "clipn-atd") if name in method]
        if not users:
            raise OodbenchError("--clipn-checkpoint is only read by clipn-ctw and clipn-atd, and neither is run "
                                f"({', '.join(method)}). Add -m clipn-ctw / -m clipn-atd, or drop the option.")
        for name in users:
            method_params.setdefault(name, {})["checkpoint"] = clipn_checkpoint
    store = FeatureStore(cache_dir)
    cfg = RunConfig(
        methods=method,
        benchmark=bench,
        backbone=BackboneSpec(
            model=model or bench.model or "ViT-B-16",
            pretrained=pretrained or (bench.pretrained if model in (None, bench.model) else None) or "openai",
            precision=precision.value, device=device, quick_gelu=quick_gelu, seed=seed,
            interpolation=interpolation),
        data=DataContext(data_root=data_root, download=download, cache_dir=store.root),
        store=store, out_dir=out, batch_size=batch_size, workers=workers, seed=seed,
        skip_existing=skip_existing, fpr_convention=fpr_convention.value,
        templates=_read_templates(templates), method_params=method_params, words_file=words,
        verify_content=verify_content,
    )
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


def _read_templates(arg: str | None) -> list[str] | None:
    from oodbench.prompts import check_template

    if not arg:
        return None
    path = Path(arg).expanduser()
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise OodbenchError(f"The templates file {path} is not UTF-8 text ({exc.reason} at byte "
                                f"{exc.start}). Save it as UTF-8, one template per line.") from None
        lines = [ln.strip() for ln in text.splitlines()]
        templates = [ln for ln in lines if ln and not ln.startswith("#")]
        source = str(path)
    elif "{" in arg:
        templates, source = [arg], "the --templates argument"
    else:
        raise OodbenchError(f"--templates {arg!r} is neither a file nor a template containing '{{}}' "
                            "(e.g. --templates 'a photo of a {}.').")
    if not templates:
        raise OodbenchError(f"{source} holds no template (only blank lines or # comments). Put one template "
                            "per line, with '{}' where the class name goes.")
    for t in templates:
        check_template(t, source)
    return templates


def _print_results(results: list) -> None:  # type: ignore[type-arg]
    oods = [r["ood"] for r in results[0].rows if r["ood"] != "average"]
    table = Table(title=f"{results[0].benchmark} — {results[0].backbone['slug']}  (FPR95 ↓ / AUROC ↑, %)")
    table.add_column("method", style="bold")
    for o in oods + ["average"]:
        table.add_column(o, justify="right")
    table.add_column("ID acc", justify="right")
    for r in sorted(results, key=lambda r: r.rows[-1]["fpr95"]):
        cells = [f"{row['fpr95'] * 100:.2f} / {row['auroc'] * 100:.2f}" for row in r.rows]
        acc = r.rows[-1].get("id_accuracy")
        table.add_row(r.method, *cells, "—" if acc is None else f"{acc * 100:.2f}")
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
) -> None:
    """Build leaderboards from result files (FPR95 / AUROC per OOD set, average, ID accuracy)."""
    from oodbench.report import render, write
    from oodbench.results import ResultSet, find_result_files

    if output is not None and output.is_dir():
        raise OodbenchError(f"--output {output} is a folder; name the file to write, e.g. {output / 'board.md'}.")
    files = find_result_files(paths or [Path("results")])
    text = render([ResultSet.load(f) for f in files], format.value, long=long, digits=digits,
                  references=reference or [])
    write(text, output)
    if output:
        console.print(f"Wrote {output} ({len(files)} result files).")


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
