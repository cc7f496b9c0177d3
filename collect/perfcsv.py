"""perf_analyzer's `-f` CSV: plain or `--verbose-csv`, rows sorted by throughput, latencies in µs. Its
first column is the level: `Concurrency` (a closed loop) or `Request Rate` (an open loop)."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

REQUIRED = ["Concurrency", "Inferences/Second", "p50 latency", "p90 latency", "p95 latency", "p99 latency"]
RATE = "Request Rate"
OPTIONAL = {"Client Send": "client_send_us", "Client Recv": "client_recv_us", "Avg latency": "avg_latency_us"}


class PerfCsvError(ValueError):
    """A CSV cannot be used; the message starts with its path."""


@dataclass(frozen=True)
class PerfPoint:
    concurrency: int | None  # None: an open-loop point, whose level is its request rate
    throughput: float  # inferences per second
    p50_us: float
    p90_us: float
    p95_us: float
    p99_us: float
    client_send_us: float | None = None
    client_recv_us: float | None = None
    avg_latency_us: float | None = None
    request_rate: float | None = None  # requests per second asked (open loop)


def _number(path: Path, line: int, column: str, text: str) -> float:
    shown = repr(text) if len(text) <= 40 else repr(text[:37]) + "..."  # a message never grows with a cell
    try:
        if not text.isascii():  # float() would read other scripts' digits
            raise ValueError(text)
        value = float(text)
    except (TypeError, ValueError):
        raise PerfCsvError(f"{path}:{line}: {column} is not a number: {shown}") from None
    if not math.isfinite(value) or value < 0:
        raise PerfCsvError(f"{path}:{line}: {column} must be a finite non-negative number, not {shown}")
    return value


def parse_perf_csv(path: Path, text: str | None = None) -> list[PerfPoint]:
    """The points of PATH, sorted by concurrency. Raises PerfCsvError on anything malformed."""
    if text is None:
        if not path.is_file():
            raise PerfCsvError(f"{path}: missing")
        text = path.read_text(errors="replace")
    if not text.strip():
        raise PerfCsvError(f"{path}: empty")
    if not text.endswith("\n"):
        raise PerfCsvError(f"{path}: truncated (the last line has no end)")
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    level_column = RATE if RATE in header and "Concurrency" not in header else "Concurrency"
    missing = [column for column in [level_column, *REQUIRED[1:]] if column not in header]
    if missing:
        raise PerfCsvError(f"{path}:1: not a perf_analyzer CSV (no {', '.join(missing)} column)")
    index = {name: i for i, name in enumerate(header)}
    columns = [level_column, *REQUIRED[1:], *(c for c in OPTIONAL if c in index)]
    positions = [index[column] for column in columns]
    optional_fields = [OPTIONAL[c] for c in columns[len(REQUIRED) :]]
    points: dict[float, PerfPoint] = {}
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise PerfCsvError(f"{path}:{line}: {len(row)} fields, the header has {len(header)}")
        try:  # the common case in one pass; anything odd goes through the checks that name it
            values = [float(row[i]) for i in positions]
            sane = all(0 <= value < math.inf for value in values) and "".join(row).isascii()
        except ValueError:
            sane = False
        if not sane:
            values = [_number(path, line, column, row[i]) for column, i in zip(columns, positions, strict=True)]
        level = values[0]
        if level_column == RATE:
            if level <= 0:
                raise PerfCsvError(f"{path}:{line}: Request Rate must be positive")
            concurrency, rate = None, level
        elif level != int(level) or level < 1:
            raise PerfCsvError(f"{path}:{line}: Concurrency must be a positive integer")
        else:
            concurrency, rate = int(level), None
        point = PerfPoint(
            concurrency,
            *values[1 : len(REQUIRED)],
            **dict(zip(optional_fields, values[len(REQUIRED) :], strict=True)),
            request_rate=rate,
        )
        if level in points:
            raise PerfCsvError(f"{path}:{line}: {level_column.lower()} {level:g} appears twice")
        points[level] = point
    if not points:
        raise PerfCsvError(f"{path}: no measurements")
    return [points[c] for c in sorted(points)]
