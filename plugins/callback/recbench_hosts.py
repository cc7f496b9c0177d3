"""Callback `recbench_hosts`: at the end of a run, list the hosts that failed or were unreachable,
with the task and message that took them out, so a fleet run's casualties are not lost in its log;
and which hosts were busy longest (first task started to last task ended), the work that sets the
stage's pace when hosts do not wait for each other."""

from __future__ import annotations

import re
import statistics
import time
from datetime import UTC, datetime

from ansible.plugins.callback import CallbackBase

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

    def _ended(self, result) -> None:  # noqa: ANN001 - Ansible's TaskResult
        span = self._busy.setdefault(result._host.get_name(), [time.monotonic(), 0.0])
        span[1] = time.monotonic()

    def v2_runner_on_start(self, host, task) -> None:  # noqa: ANN001
        self._busy.setdefault(host.get_name(), [time.monotonic(), 0.0])

    def v2_runner_on_ok(self, result) -> None:  # noqa: ANN001
        self._ended(result)

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
            self._display.display(f"  {host}: {kind} at '{task}' ({stamp}): {message}", stderr=True)
