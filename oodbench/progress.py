"""Progress bars and logging, both through rich."""

from __future__ import annotations

import logging
import os

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
    """A rich progress bar on stderr; hidden when ``disable``, ``OODBENCH_NO_PROGRESS`` or no terminal."""
    disable = disable or bool(os.environ.get("OODBENCH_NO_PROGRESS")) or not console.is_terminal
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        *extra_columns,
        console=console,
        disable=disable,
        transient=False,
    )


def setup_logging(verbose: int = 0) -> None:
    """oodbench's own messages at INFO; other libraries' (open_clip logs to the root) at WARNING.

    ``-v`` lets every library's INFO through, ``-vv`` DEBUG.
    """
    logging.basicConfig(
        level=logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(console=console, show_path=False, rich_tracebacks=False)],
        force=True,
    )
    for ours in ("oodbench", "methods"):
        logging.getLogger(ours).setLevel(logging.DEBUG if verbose >= 2 else logging.INFO)
    for noisy in ("PIL", "matplotlib", "urllib3", "filelock", "huggingface_hub", "timm"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
