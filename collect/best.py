"""Each instance's best point (bench.records.best_point, the one rule) for rows that reach the store
without it: a store built from rows (a migrated SQLite store, a generated one) rather than by
ingest, which computes it from the files. The store keeps it beside the instance."""

from __future__ import annotations

import itertools
import json
from typing import NamedTuple

import pandas as pd

from bench.records import CapacitySearch, RecordError, best_point

# What a best point keeps of its point: the store's best_<field> columns.
POINT_FIELDS = ["concurrency", "throughput", "p50_us", "p90_us", "p99_us", "request_rate"]


class _Point(NamedTuple):
    concurrency: int | None
    throughput: float
    p50_us: float
    p90_us: float
    p99_us: float
    request_rate: float | None


# What a search the contract refuses (stored before it was checked) stands for: no trusted capacity.
UNREADABLE = CapacitySearch(kind="capacity", valid=False, reason="the stored search is not a record recbench reads")


def search_of(metadata: str | None) -> CapacitySearch | None:
    """The capacity search a stored metadata.json holds; None for a grid; UNREADABLE for a search the
    contract refuses (an instance that searched has no best point unless its search says which)."""
    if not metadata or '"search"' not in metadata:
        return None
    try:
        search = json.loads(metadata).get("search")
        return CapacitySearch.from_json(search) if search is not None else None
    except (ValueError, AttributeError, RecordError):
        return UNREADABLE


def _present(value: object) -> object:
    """A point's value, None where the engine's NULL reached pandas as NaN (a closed loop's rate)."""
    return None if isinstance(value, float) and value != value else value


def best_rows(instances: pd.DataFrame, points: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """INSTANCES' KEY columns with their best point's `best_<field>` columns; INSTANCES has KEY and
    metadata columns, POINTS KEY and POINT_FIELDS."""
    width = len(key)
    by_key: dict[tuple, list[_Point]] = {}
    ordered = points.sort_values(key, kind="stable")[key + POINT_FIELDS].itertuples(index=False, name=None)
    for found, rows in itertools.groupby(ordered, key=lambda row: row[:width]):
        by_key[found] = [_Point(*map(_present, row[width:])) for row in rows]
    best = [
        best_point(search_of(metadata), by_key.get(tuple(row), []))
        for *row, metadata in instances[[*key, "metadata"]].itertuples(index=False, name=None)
    ]
    columns = {f"best_{name}": [getattr(p, name) if p else None for p in best] for name in POINT_FIELDS}
    return instances[key].assign(**columns).astype({"best_concurrency": "Int64", "best_request_rate": "float64"})
