"""Why a config's servers or measurement failed, in the words of the failed task: the reason a failed
point records (server_error). A failed loop says only "One or more items failed"; the cause is in
its failed items (the readiness probe's stderr carries the unit's last journal lines)."""

from __future__ import annotations

LIMIT = 2000


def _says(result: dict) -> str:
    for key in ("stderr", "msg", "stdout"):
        text = str(result.get(key) or "").strip()
        if text:
            return text
    return f"exit code {result['rc']}" if "rc" in result else "failed"


def _label(result: dict) -> str:
    item = result.get("item")
    if isinstance(item, dict):
        return str(item.get("name") or item.get("unit") or item)
    return str(item)


def sweep_failure_reason(result: dict, task: str = "?") -> str:
    """'<task>: <what it said>', from each failed item of a loop; at most LIMIT characters."""
    items = [r for r in result.get("results") or [] if isinstance(r, dict) and r.get("failed")]
    said = "; ".join(f"{_label(r)}: {_says(r)}" for r in items) if items else _says(result)
    reason = f"{task}: {said}"
    return reason if len(reason) <= LIMIT else reason[: LIMIT - 3] + "..."


class FilterModule:
    def filters(self) -> dict:
        return {"sweep_failure_reason": sweep_failure_reason}
