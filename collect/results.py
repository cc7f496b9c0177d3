"""Reading the results tree the pipeline brings home (its layout: bench.layout)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.layout import CSV_NAME, META_NAME, METADATA_KEYS, SCHEMA, STATUSES, is_staging
from collect.perfcsv import PerfCsvError, PerfPoint, parse_perf_csv


class ResultError(ValueError):
    """An instance directory cannot be used; the message starts with the path."""


@dataclass(frozen=True)
class InstanceResult:
    run_id: str
    host: str
    model: str
    config_id: str
    instance: str
    status: str
    metadata: dict
    points: list[PerfPoint]
    source: Path
    sha256: str
    metadata_text: str = ""  # metadata.json as the runner wrote it: what the store keeps

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.run_id, self.host, self.model, self.config_id, self.instance)


def instance_dirs(root: Path) -> Iterator[Path]:
    """Every finished instance directory (the runner renames staging directories when done)."""
    for meta in sorted(root.glob(f"*/*/*/*/*/{META_NAME}")):
        if not is_staging(meta.parent):
            yield meta.parent


def load_instance(directory: Path) -> InstanceResult:
    meta_path = directory / META_NAME
    try:
        raw = meta_path.read_bytes()
        meta = json.loads(raw)
    except OSError as err:
        raise ResultError(f"{meta_path}: unreadable: {err.strerror}") from None
    except ValueError as err:
        raise ResultError(f"{meta_path}: corrupt JSON: {err}") from None
    if not isinstance(meta, dict):
        raise ResultError(f"{meta_path}: not a JSON object")
    if meta.get("schema", SCHEMA) != SCHEMA:
        raise ResultError(f"{meta_path}: schema {meta['schema']!r}, this collector reads schema {SCHEMA}")
    missing = [key for key in METADATA_KEYS if key not in meta]
    if missing:
        raise ResultError(f"{meta_path}: missing {', '.join(missing)}")
    run_id, host, model, config_id, instance = directory.parts[-5:]
    instance_name = meta["instance"].get("name") if isinstance(meta["instance"], dict) else meta["instance"]
    said = (meta["run_id"], meta["host"], meta["model"], meta["config_id"], instance_name)
    if said != (run_id, host, model, config_id, instance):
        raise ResultError(f"{meta_path}: says {'/'.join(map(str, said))}, but lies at {'/'.join(directory.parts[-5:])}")
    if meta["status"] not in STATUSES:
        raise ResultError(f"{meta_path}: status {meta['status']!r} is not one of {', '.join(STATUSES)}")
    digest = hashlib.sha256(raw)
    points: list[PerfPoint] = []
    csv_path = directory / CSV_NAME
    if csv_path.is_file():
        csv_bytes = csv_path.read_bytes()
        try:
            points = parse_perf_csv(csv_path, csv_bytes.decode(errors="replace"))
        except PerfCsvError as err:
            raise ResultError(str(err)) from None
        digest.update(csv_bytes)
    elif meta["status"] != "failed":
        raise ResultError(f"{csv_path}: missing, but {meta_path.name} says {meta['status']}")
    reached = [p.concurrency for p in points]
    if reached != sorted(meta["levels_reached"]):
        raise ResultError(f"{csv_path}: holds concurrency {reached}, metadata says {meta['levels_reached']}")
    return InstanceResult(
        run_id,
        host,
        model,
        config_id,
        instance,
        meta["status"],
        meta,
        points,
        directory,
        digest.hexdigest(),
        raw.decode(errors="replace"),
    )
