"""The host's own description (role host_prep's local fact), read when a result is recorded.

Job files name the fact's executable instead of carrying its output: values that move between
runs (memory the kernel reports, a governor changed by hand) would otherwise rewrite the job file
and make an unchanged stage look changed. The fact is read at measurement time, which is also the
state the number was measured in.
"""

from __future__ import annotations

import json
import subprocess

from bench import facts

# host_prep writes it; executable, prints JSON.
DEFAULT_FACT = f"{facts.FACTS_D_DIR}/recbench_host.fact"
TIMEOUT_S = 30


def read_host_fact(command: str = DEFAULT_FACT) -> dict:
    """The fact as a dict, or {"error": why} when it cannot be read: a result is never lost for it."""
    try:
        proc = subprocess.run([command], capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return {"error": f"{command}: {err}"}
    if proc.returncode != 0:
        return {"error": f"{command}: exit {proc.returncode}: {proc.stderr.strip()[-200:]}"}
    try:
        # strict: a NaN or a lone surrogate would make the result it is recorded in unwritable
        fact = json.loads(proc.stdout, parse_constant=_refuse)
        json.dumps(fact, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError) as err:
        return {"error": f"{command}: not JSON: {str(err)[:200]}"}
    return fact if isinstance(fact, dict) else {"error": f"{command}: not a JSON object"}


def _refuse(name: str) -> None:
    raise ValueError(f"{name} is not a number")
