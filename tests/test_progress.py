"""Progress without a terminal: log lines every few percent with count, rate and time left."""

from __future__ import annotations

import io
import logging

from rich.console import Console
from rich.progress import Progress

from oodbench import progress
from oodbench.progress import LogProgress, progress_bar


def lines_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "oodbench.progress"]


def test_image_encoding_logs_its_progress_in_a_batch_job(tiny_backbone, folder_benchmark, monkeypatch, caplog):
    from oodbench.data.base import open_dataset
    from oodbench.data.spec import DataContext

    monkeypatch.delenv("OODBENCH_NO_PROGRESS", raising=False)
    monkeypatch.setattr(progress, "console", Console(file=io.StringIO()))
    monkeypatch.setattr(LogProgress, "__init__", lambda self, **kw: _init(self, min_interval=0.0))
    dataset = open_dataset(f"folder:{folder_benchmark['id']}", DataContext()).with_transform(tiny_backbone.preprocess)
    with caplog.at_level(logging.INFO, logger="oodbench.progress"):
        tiny_backbone.encode_images(dataset, batch_size=6, desc="encoding id")
    assert lines_of(caplog)[0].startswith("encoding id: 6/18 (33%), ")  # one line per batch of 6 here
    assert lines_of(caplog)[-1].startswith("encoding id: 18/18 (100%) in ")


_init = LogProgress.__init__


def test_a_line_every_five_percent_with_count_rate_and_time_left(caplog):
    clock = [0.0]
    with caplog.at_level(logging.INFO, logger="oodbench.progress"), LogProgress(clock=lambda: clock[0]) as bar:
        task = bar.add_task("encoding inaturalist", total=10_000)
        for _ in range(100):  # 100 images per second
            clock[0] += 1.0
            bar.advance(task, 100)
    lines = lines_of(caplog)
    assert len(lines) == 20
    assert lines[0] == "encoding inaturalist: 500/10,000 (5%), 100.0/s, 1m35s left"
    assert lines[9] == "encoding inaturalist: 5,000/10,000 (50%), 100.0/s, 50s left"
    assert lines[-1] == "encoding inaturalist: 10,000/10,000 (100%) in 1m40s, 100.0/s"


def test_lines_are_spaced_in_time_and_big_steps_log_once(caplog):
    clock = [0.0]
    with caplog.at_level(logging.INFO, logger="oodbench.progress"):
        bar = LogProgress(clock=lambda: clock[0], min_interval=10.0)
        task = bar.add_task("texts", total=100)
        for _ in range(50):  # fast: 2% every 0.5 s, but at most a line every 10 s
            clock[0] += 0.5
            bar.advance(task, 2)
        other = bar.add_task("resumed", total=100, completed=40)
        clock[0] += 1.0
        bar.update(other, completed=100, info="loss 0.1")  # from 40% to done in one call: one line
    lines = lines_of(caplog)
    assert [ln.split(":")[0] for ln in lines] == ["texts", "texts", "texts", "resumed"]
    assert "(100%)" in lines[2] and lines[3] == "resumed: 100/100 (100%) in 1s, 60.0/s, loss 0.1"


def test_progress_bar_logs_off_a_terminal(monkeypatch):
    monkeypatch.delenv("OODBENCH_NO_PROGRESS", raising=False)
    monkeypatch.setattr(progress, "console", Console(file=io.StringIO()))  # a pipe, not a terminal
    assert isinstance(progress_bar(), LogProgress)
    assert isinstance(progress_bar(disable=True), Progress)  # rank > 0, short prompt lists: nothing
    monkeypatch.setenv("OODBENCH_NO_PROGRESS", "1")
    assert isinstance(progress_bar(), Progress) and progress_bar().disable
