"""Callback `recbench_hosts`: at the end of a run, list the hosts that failed or were unreachable,
with the task and message that took them out, so a fleet run's casualties are not lost in its log."""

from __future__ import annotations

from datetime import UTC, datetime

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: recbench_hosts
type: aggregate
short_description: List failed and unreachable hosts at the end of the run
description:
  - Remembers the last failure of each host (ignored and rescued failures do not count) and
    every unreachable host, and prints them after the play recap.
requirements:
  - enabled in callbacks_enabled (ansible.cfg)
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "recbench_hosts"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._lost: dict[str, tuple[str, str, str, str]] = {}

    def _remember(self, result, kind: str) -> None:  # noqa: ANN001 - Ansible's TaskResult
        host = result._host.get_name()
        message = str(result._result.get("msg") or result._result.get("stderr") or "").strip()
        first_line = message.splitlines()[0] if message else ""
        # When it was lost, in UTC: how long a silent host held the run is read from the log.
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._lost[host] = (kind, result._task.get_name(), first_line[:300], stamp)

    def v2_runner_on_failed(self, result, ignore_errors: bool = False) -> None:  # noqa: ANN001
        if not ignore_errors:
            self._remember(result, "failed")

    def v2_runner_on_unreachable(self, result) -> None:  # noqa: ANN001
        self._remember(result, "unreachable")

    def v2_playbook_on_stats(self, stats) -> None:  # noqa: ANN001
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
