"""Progress on long work: a live bar on a terminal (rich), a line per tenth in a log or under CI."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


@contextmanager
def progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """Yields `update(done, total)`."""
    if sys.stderr.isatty():
        bar = Progress(
            TextColumn(label),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=False,
            console=Console(stderr=True),
        )
        task = bar.add_task(label, total=None)
        with bar:
            yield lambda done, total: bar.update(task, completed=done, total=total)
        return
    shown = {"tenth": -1}

    def line(done: int, total: int) -> None:
        tenth = done * 10 // total if total else 10
        if tenth != shown["tenth"]:
            shown["tenth"] = tenth
            print(f"{label}: {done:,}/{total:,}", file=sys.stderr, flush=True)

    yield line
