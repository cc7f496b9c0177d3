"""Callback `recbench_hosts`: at the end of a run, list the hosts that failed or were unreachable,
with the task and message that took them out (and how far a lost host's sweep queue had got), so a
fleet run's casualties are not lost in its log; and which hosts were busy longest (first task started
to last task ended), the work that sets the stage's pace when hosts do not wait for each other.

While the sweep stage waits for the hosts' queues, each look at a host (a result whose stdout is
bench.queue's progress) prints one line for it: with a progress bar on a terminal, plain in a log."""

from __future__ import annotations

import json
import re
import statistics
import sys
import time
from datetime import UTC, datetime

from ansible.plugins.callback import CallbackBase

from bench import facts  # the controller's virtualenv has recbench installed (scripts/bootstrap.sh)

DOCUMENTATION = """
name: recbench_hosts
type: aggregate
short_description: List failed and unreachable hosts, and the busiest ones, at the end of the run
description:
  - Remembers the last failure of each host (ignored and rescued failures do not count) and
    every unreachable host, and prints them after the play recap.
  - Prints the hosts busy longest, from their first task's start to their last task's end.
requirements:
  - enabled in callbacks_enabled (ansible.cfg)
"""


# ssh's own words for a refused host key. Its first line is the @@@@ banner of a changed key, which
# says nothing; one of these lines says what was refused.
HOST_KEY_LINE = re.compile(
    r"Offending|has changed|key is known|Host key verification failed|REMOTE HOST IDENTIFICATION"
)


PROGRESS_KEY = facts.SWEEP_PROGRESS_KEY  # what a look at a host's sweep queue prints (bench.queue)
BAR_WIDTH = 20


def progress_of(result: dict) -> dict | None:
    """The queue's progress a task's RESULT carries, or None."""
    stdout = result.get("stdout")
    if not isinstance(stdout, str) or f'"{PROGRESS_KEY}"' not in stdout[:40]:
        return None
    try:
        found = json.loads(stdout).get(PROGRESS_KEY)
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, dict) else None


def progress_line(host: str, progress: dict, bar: bool = False) -> str:
    """One line: how far HOST's queue is, what it measures now, and its heartbeat's age."""
    done, total = int(progress.get("done") or 0), int(progress.get("total") or 0)
    counts = (
        f"{progress.get('measured', 0)} measured, {progress.get('skipped', 0)} recorded before, "
        f"{progress.get('failed', 0)} with failed points"
    )
    line = f"{host}: {progress.get('state', '?')}, {done} of {total} configs done ({counts})"
    if progress.get("config_id"):
        measuring = "; ".join(f"{name} {what}" for name, what in sorted((progress.get("measuring") or {}).items()))
        line += f", now {progress['config_id']}" + (f" ({measuring})" if measuring else "")
    if progress.get("heartbeat_age_s") is not None and progress.get("state") == "running":
        line += f", heartbeat {float(progress['heartbeat_age_s']):.0f} s ago"
    if bar and total:
        filled = round(BAR_WIDTH * min(done, total) / total)
        line = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {line}"
    return f"recbench: {line}"


def reason(message: str) -> str:
    """MESSAGE in one line of at most 300 characters: its first line, or, when ssh refused a host key,
    its first line about the key (without the banner's @ signs)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for line in lines:
        if HOST_KEY_LINE.search(line):
            return line.strip("@ \t")[:300]
    return lines[0][:300] if lines else ""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "recbench_hosts"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._lost: dict[str, tuple[str, str, str, str]] = {}
        self._busy: dict[str, list[float]] = {}  # host: [first task started, last task ended]
        self._progress: dict[str, dict] = {}  # host: the last progress seen of its sweep queue

    def _ended(self, result) -> None:  # noqa: ANN001 - Ansible's TaskResult
        span = self._busy.setdefault(result._host.get_name(), [time.monotonic(), 0.0])
        span[1] = time.monotonic()

    def v2_runner_on_start(self, host, task) -> None:  # noqa: ANN001
        self._busy.setdefault(host.get_name(), [time.monotonic(), 0.0])

    def _saw(self, result) -> dict | None:  # noqa: ANN001 - Ansible's TaskResult
        progress = progress_of(result._result)
        if progress is not None:
            self._progress[result._host.get_name()] = progress
        return progress

    def v2_runner_on_ok(self, result) -> None:  # noqa: ANN001
        self._ended(result)
        self._saw(result)

    def v2_runner_retry(self, result) -> None:  # noqa: ANN001
        progress = self._saw(result)
        if progress is not None:
            self._display.display(progress_line(result._host.get_name(), progress, bar=sys.stdout.isatty()))

    def v2_runner_on_skipped(self, result) -> None:  # noqa: ANN001
        self._ended(result)

    def _remember(self, result, kind: str) -> None:  # noqa: ANN001 - Ansible's TaskResult
        host = result._host.get_name()
        message = str(result._result.get("msg") or result._result.get("stderr") or "")
        # When it was lost, in UTC: how long a silent host held the run is read from the log.
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._lost[host] = (kind, result._task.get_name(), reason(message), stamp)

    def v2_runner_on_failed(self, result, ignore_errors: bool = False) -> None:  # noqa: ANN001
        self._ended(result)
        if not ignore_errors:
            self._remember(result, "failed")

    def v2_runner_on_unreachable(self, result) -> None:  # noqa: ANN001
        self._ended(result)
        self._remember(result, "unreachable")

    def _show_busiest(self) -> None:
        seconds = {host: max(0.0, end - start) for host, (start, end) in self._busy.items() if end}
        if not seconds:
            return
        busiest = sorted(seconds, key=lambda host: -seconds[host])[:3]
        listed = ", ".join(f"{host} {seconds[host]:.0f} s" for host in busiest)
        median = statistics.median(seconds.values())
        self._display.display(
            f"recbench: busiest hosts (first task to last): {listed}; median {median:.0f} s over {len(seconds)} host(s)"
        )

    def v2_playbook_on_stats(self, stats) -> None:  # noqa: ANN001
        self._show_busiest()
        # A failure inside a block that was rescued is not fatal: the recap counts it as rescued.
        lost = {
            host: entry
            for host, entry in self._lost.items()
            if entry[0] == "unreachable" or stats.summarize(host).get("failures", 0) > 0
        }
        if not lost:
            self._display.display("recbench: every host finished")
            return
        self._display.display(f"recbench: {len(lost)} host(s) did not finish:", stderr=True)
        for host, (kind, task, message, stamp) in sorted(lost.items()):
            got = self._progress.get(host)
            far = ""
            if got:
                far = f" (its sweep queue, last seen: {got.get('done', 0)} of {got.get('total', 0)} configs done)"
            self._display.display(f"  {host}: {kind} at '{task}' ({stamp}): {message}{far}", stderr=True)
