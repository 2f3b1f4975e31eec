"""Progress bars and logging, both through rich."""

from __future__ import annotations

import logging
import os
import sys

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

#: Progress and logs go to stderr, so that stdout stays clean for tables and machine-readable output.
console = Console(stderr=True)


def progress_bar(disable: bool = False, *extra_columns) -> Progress:  # type: ignore[no-untyped-def]
    """A rich progress bar on stderr; hidden when ``disable`` or ``OODBENCH_NO_PROGRESS`` is set."""
    disable = disable or bool(os.environ.get("OODBENCH_NO_PROGRESS"))
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        *extra_columns,
        console=console,
        disable=disable,
        transient=not sys.stderr.isatty(),
    )


def setup_logging(verbose: int = 0) -> None:
    level = logging.WARNING - 10 * verbose if verbose else logging.INFO
    logging.basicConfig(
        level=max(level, logging.DEBUG),
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(console=console, show_path=False, rich_tracebacks=False)],
        force=True,
    )
    for noisy in ("PIL", "matplotlib", "urllib3", "filelock", "huggingface_hub", "timm"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
