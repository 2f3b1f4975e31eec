"""Progress bars and logging, both through rich; progress as log lines when stderr is no terminal."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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


log = logging.getLogger(__name__)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


@dataclass
class _Task:
    description: str
    total: float | None
    completed: float
    started: float
    start_count: float
    next_step: int  # the next multiple of the step (in steps) that logs a line
    last_line: float
    fields: dict[str, Any]
    finished: bool = False


class LogProgress:
    """Progress for batch jobs and pipes: a log line every ``step`` of a task (default 5%), with the
    count, the rate and the time left, instead of a bar nobody sees.

    It answers the part of rich's ``Progress`` interface that oodbench uses (``add_task``, ``advance``,
    ``update``, use as a context manager). Lines come at most every ``min_interval`` seconds, except the
    last one (100%); tasks without a total log nothing until they end.
    """

    def __init__(self, step: float = 0.05, min_interval: float = 1.0, logger: logging.Logger | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.step = step
        self.min_interval = min_interval
        self.log = logger or log
        self.clock = clock
        self.tasks: list[_Task] = []

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, completed: float = 0,
                 **fields: Any) -> int:
        now = self.clock()
        steps = int(completed / total / self.step) + 1 if total else 1
        self.tasks.append(_Task(description, total, completed, now, completed, steps, now, dict(fields)))
        return len(self.tasks) - 1

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def update(self, task_id: int, *, completed: float | None = None, advance: float | None = None,
               total: float | None = None, description: str | None = None, **fields: Any) -> None:
        task = self.tasks[task_id]
        if total is not None:
            task.total = total
        if description is not None:
            task.description = description
        task.fields.update(fields)
        if completed is not None:
            task.completed = completed
        if advance is not None:
            task.completed += advance
        self._maybe_log(task)

    def _maybe_log(self, task: _Task) -> None:
        if not task.total or task.finished:
            return
        done = task.completed >= task.total
        reached = int(task.completed / task.total / self.step + 1e-9)  # whole steps reached
        now = self.clock()
        if not done and (reached < task.next_step or now - task.last_line < self.min_interval):
            return
        task.finished, task.next_step, task.last_line = done, reached + 1, now
        elapsed = max(now - task.started, 1e-9)
        rate = (task.completed - task.start_count) / elapsed
        count = f"{task.completed:,.0f}/{task.total:,.0f} ({100 * task.completed / task.total:.0f}%)"
        extra = "".join(f", {v}" for v in task.fields.values() if isinstance(v, str) and v)
        if done:
            self.log.info("%s: %s in %s, %.1f/s%s", task.description, count, _duration(elapsed), rate, extra)
        else:
            left = _duration((task.total - task.completed) / rate) if rate > 0 else "?"
            self.log.info("%s: %s, %.1f/s, %s left%s", task.description, count, rate, left, extra)


def progress_bar(disable: bool = False, *extra_columns) -> Progress | LogProgress:  # type: ignore[no-untyped-def]
    """Progress on stderr: a rich bar on a terminal (or in Jupyter), log lines every few percent otherwise
    (:class:`LogProgress`); nothing when ``disable`` or ``OODBENCH_NO_PROGRESS`` is set."""
    disable = disable or bool(os.environ.get("OODBENCH_NO_PROGRESS"))
    if not disable and not (console.is_terminal or console.is_jupyter):
        return LogProgress()
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


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler writing to whatever ``sys.stderr`` is when a message comes (as rich's console
    does), not to the stream there was when logging was set up (a test runner may have closed it)."""

    @property  # type: ignore[override]
    def stream(self):  # type: ignore[no-untyped-def]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # type: ignore[no-untyped-def]
        pass


def setup_logging(verbose: int = 0) -> None:
    """oodbench's own messages at INFO; other libraries' (open_clip logs to the root) at WARNING.

    ``-v`` lets every library's INFO through, ``-vv`` DEBUG. On a terminal messages go through rich's
    handler; off one (a batch job's log, a pipe) each is one plain, unwrapped, time-stamped line.
    """
    if console.is_terminal:
        handler: logging.Handler = RichHandler(console=console, show_path=False, rich_tracebacks=False)
        fmt, datefmt = "%(message)s", "[%X]"
    else:
        handler = _StderrHandler()
        fmt, datefmt = "%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"
    logging.basicConfig(
        level=logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG,
        format=fmt,
        datefmt=datefmt,
        handlers=[handler],
        force=True,
    )
    for ours in ("oodbench", "methods"):
        logging.getLogger(ours).setLevel(logging.DEBUG if verbose >= 2 else logging.INFO)
    for noisy in ("PIL", "matplotlib", "urllib3", "filelock", "huggingface_hub", "timm"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
