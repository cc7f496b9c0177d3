"""The job file of a host-side stage (`python -m bench.<stage> JOB.json`): read, checked, or a
one-line error. Standard library only: it runs on the benchmark hosts."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path


def load_job(
    argv: list[str] | None, stage: str, required: Iterable[str], more: Callable[[dict], Iterable[str]] = lambda _: ()
) -> dict | None:
    """The job named on the command line, or None after printing usage or `stage: path: what is wrong`."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(f"usage: python -m bench.{stage} JOB.json", file=sys.stderr)
        return None
    try:
        job = json.loads(Path(args[0]).read_text())
        if not isinstance(job, dict):
            raise ValueError("a job is a JSON object")
        missing = [key for key in (*required, *more(job)) if key not in job]
        if missing:
            raise ValueError(f"job has no {', '.join(repr(key) for key in missing)}")
    except (OSError, ValueError) as err:
        print(f"{stage}: {args[0]}: {err}", file=sys.stderr)
        return None
    return job
