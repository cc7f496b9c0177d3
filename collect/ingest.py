"""Ingest a results tree into the store: validate each instance, report the broken ones with their
path and skip them, store everything else; nothing already stored changes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from collect.results import InstanceResult, ResultError, instance_dirs, load_instance
from collect.store import Store

BATCH = 500


@dataclass
class IngestReport:
    added: int = 0
    already_stored: int = 0
    problems: list[str] = field(default_factory=list)


def ingest(root: Path, store: Store, progress: Callable[[int, int], None] | None = None) -> IngestReport:
    report = IngestReport()
    directories = list(instance_dirs(root))
    pending: list[InstanceResult] = []

    def flush() -> None:
        added = store.add(pending)
        report.added += added
        report.already_stored += len(pending) - added
        pending.clear()

    for number, directory in enumerate(directories, start=1):
        try:
            pending.append(load_instance(directory))
        except ResultError as err:
            report.problems.append(str(err))
        if len(pending) >= BATCH:
            flush()
        if progress:
            progress(number, len(directories))
    flush()
    return report
