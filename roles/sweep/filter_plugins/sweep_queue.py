"""Filter of the sweep role: a host's whole sweep queue, the one file its runner walks
(bench/controller/queues.py builds it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bench.controller.queues import host_queue


def sweep_queue(configs: Sequence[Mapping], host: Mapping) -> dict:
    """The queue of the host HOST describes (bench.controller.queues.host_queue)."""
    return host_queue(configs, host)


class FilterModule:
    def filters(self) -> dict:
        return {"sweep_queue": sweep_queue}
