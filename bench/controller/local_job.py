"""A sweep job for one server on this machine (the controller), made from a profile's first config with
some knobs replaced: how the model-stage tests and the benchmarks drive the host-side runner
(bench.sweep.run_job) against the known-curve server or the TF-Serving stand-in."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bench.controller.sweeps import configs_for

RUN_ID, HOST = "test-run", "controller"


def local_job(
    profile: str,
    port: int,
    results_root: Path,
    perf_analyzer: str,
    *,
    model: str = "dlrm",
    timeout_s: float = 60,
    server_pid: int | None = None,
    **knobs: object,
) -> dict:
    """The job of PROFILE's first config of MODEL with KNOBS, against localhost:PORT, its results under
    RESULTS_ROOT/<run>/<host>/<model>/<config id>/ (a results tree the collector ingests). SERVER_PID:
    the server's process, whose CPU time the evidence of each level reads (bench.evidence)."""
    config = dataclasses.replace(configs_for([model], profile=profile)[0], **knobs)
    return {
        "run_id": RUN_ID,
        "host": HOST,
        "model": model,
        "config": config.as_record(),
        "results_dir": str(results_root / RUN_ID / HOST / model / config.config_id),
        "instances": [{"name": "numa0", "port": port, **({"server_pid": server_pid} if server_pid else {})}],
        "perf_analyzer": perf_analyzer,
        "timeout_s": timeout_s,
        "retries": 1,
    }
