"""Result metadata as the sweep runner writes it, for trees made without a fleet (the collector's tests
and its benchmark): the runner's own writer, bench.layout.instance_metadata, fed a minimal job."""

from __future__ import annotations

from bench import facts
from bench.layout import instance_metadata


def simulated_metadata(
    run: str,
    host: str,
    model: str,
    config: str,
    instance: str,
    reached: list[int],
    failed: list[int],
    concurrency_range: str = "1:4:1",
    batch_size: int = 16,
) -> dict:
    """metadata.json of an `entire` instance on NUMA node 0 with these levels reached and failed."""
    job = {
        "run_id": run,
        "host": host,
        "model": model,
        "config": {
            "config_id": config,
            "model": model,
            "mode": "entire",
            "batch_size": batch_size,
            "concurrency_range": concurrency_range,
            "intra": 0,
            "inter": 0,
            "xla": False,
            "onednn": False,
            "measurement_interval_ms": 1000,
            "stability_percentage": 10,
            "max_trials": 10,
            "latency_threshold_ms": 300,
            "percentile": 99,
            "request_distribution": "constant",
            "input_data": "random",
        },
    }
    expected = sorted(reached + failed)
    return instance_metadata(job, {"name": instance, "port": facts.BASE_PORT}, expected, reached, [], "")
