"""Reading the results tree the pipeline brings home (its layout: bench.layout; what the files hold:
bench.records). Every file is checked before it is read: a regular file (a FIFO would hang the
reader), inside the tree (a link may not lead out of it), of a bounded size, UTF-8, and a record the
contract accepts. A file that fails is a ResultError naming its path and field: the ingest skips it.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.layout import CSV_NAME, META_NAME, is_staging
from bench.records import MAX_RECORD_BYTES, SCHEMA, InstanceRecord, RecordError, load, same_rate
from collect.errors import EXIT_SKIPPED, CollectError
from collect.perfcsv import PerfCsvError, PerfPoint, parse_perf_csv

# perf.csv holds a row per level (at most bench.records.MAX_LEVELS): a few KiB; this is far past that.
MAX_CSV_BYTES = 16 * 1024 * 1024


class ResultError(CollectError, ValueError):
    """An instance directory cannot be used; the message starts with the path."""

    exit_code = EXIT_SKIPPED


@dataclass(frozen=True)
class InstanceResult:
    run_id: str
    host: str
    model: str
    config_id: str
    instance: str
    status: str
    record: InstanceRecord  # metadata.json, checked and typed
    points: list[PerfPoint]
    source: Path
    sha256: str
    metadata_text: str  # metadata.json as the runner wrote it: what the store keeps

    @property
    def metadata(self) -> dict:
        return self.record.to_json()

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.run_id, self.host, self.model, self.config_id, self.instance)


def instance_dirs(root: Path) -> Iterator[Path]:
    """Every finished instance directory (the runner renames staging directories when done)."""
    for meta in sorted(root.glob(f"*/*/*/*/*/{META_NAME}")):
        if not is_staging(meta.parent):
            yield meta.parent


def _levels(levels: list[int], most: int = 12) -> str:
    """A list of levels in a message, bounded."""
    shown = ", ".join(map(str, levels[:most]))
    return f"[{shown}{', ...' if len(levels) > most else ''}] ({len(levels)})"


def read_checked(path: Path, root: Path | None, limit: int) -> bytes:
    """PATH's bytes, if it is a regular file of at most LIMIT bytes whose real path lies under ROOT."""
    try:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            target = path.resolve()
            if root is not None and not target.is_relative_to(root.resolve()):
                raise ResultError(f"{path}: a link leading out of the results tree (to {target})")
            info = target.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ResultError(f"{path}: not a regular file")
        if info.st_size > limit:
            raise ResultError(f"{path}: {info.st_size:,} bytes, more than a result file may hold ({limit:,})")
        # O_NONBLOCK: should the path have become a FIFO since the check, opening it does not wait
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as err:
        raise ResultError(f"{path}: unreadable: {err.strerror}") from None
    if len(data) > limit:
        raise ResultError(f"{path}: more than a result file may hold ({limit:,} bytes)")
    return data


def load_instance(directory: Path, root: Path | None = None) -> InstanceResult:
    """The instance in DIRECTORY (under the tree ROOT, when given), checked; ResultError otherwise."""
    meta_path = directory / META_NAME
    if root is not None and not directory.resolve().is_relative_to(root.resolve()):
        raise ResultError(f"{directory}: leads out of the results tree (to {directory.resolve()})")
    raw = read_checked(meta_path, root, MAX_RECORD_BYTES)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ResultError(f"{meta_path}: not UTF-8 text (byte {err.start})") from None
    try:
        record = load(InstanceRecord, text)
    except RecordError as err:
        detail = str(err)
        if detail.startswith("schema:"):
            detail = f"this collector reads schema {SCHEMA} ({detail})"
        raise ResultError(f"{meta_path}: {detail}") from None
    run_id, host, model, config_id, instance = directory.parts[-5:]
    if record.key != (run_id, host, model, config_id, instance):
        said = "/".join(record.key)
        raise ResultError(f"{meta_path}: says {said}, but lies at {'/'.join(directory.parts[-5:])}")
    digest = hashlib.sha256(raw)
    points: list[PerfPoint] = []
    csv_path = directory / CSV_NAME
    if csv_path.is_file() or csv_path.is_symlink():
        csv_bytes = read_checked(csv_path, root, MAX_CSV_BYTES)
        try:
            points = parse_perf_csv(csv_path, csv_bytes.decode(errors="replace"))
        except PerfCsvError as err:
            raise ResultError(str(err)) from None
        digest.update(csv_bytes)
    elif record.status != "failed":
        raise ResultError(f"{csv_path}: missing, but {meta_path.name} says {record.status}")
    if record.rates_reached is not None:  # an open loop: its levels are request rates
        rates = [p.request_rate for p in points]
        if len(rates) != len(record.rates_reached) or not all(
            same_rate(a, b) for a, b in zip(rates, sorted(record.rates_reached), strict=False)
        ):
            shown = ", ".join(f"{r:g}" for r in record.rates_reached[:8])
            raise ResultError(f"{csv_path}: holds other request rates than metadata says ({shown})")
        reached = []
    else:
        reached = [p.concurrency for p in points]
    if reached != sorted(record.levels_reached):
        raise ResultError(
            f"{csv_path}: holds concurrency {_levels(reached)}, metadata says {_levels(record.levels_reached)}"
        )
    return InstanceResult(
        run_id,
        host,
        model,
        config_id,
        instance,
        record.status,
        record,
        points,
        directory,
        digest.hexdigest(),
        text,
    )
