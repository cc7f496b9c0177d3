"""The host-side sweep runner with the real perf_analyzer (tritonclient wheel) against the TF-Serving
stand-in serving a real export: complete points, skipped reruns, unreachable and dying servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.controller.sweeps import configs_for
from bench.sweep import main as sweep_main
from bench.sweep import run_job
from modelzoo.config import dataset_of, load_config
from modelzoo.export import export
from modelzoo.perf_input import write_perf_input
from modelzoo.train import train
from sim.ports import free_port
from sim.tfserving_standin.process import start, wait_ready
from tests.criteo_layouts import SAMPLE

pytestmark = pytest.mark.models

VENV = Path(sys.executable).parent.parent


@pytest.fixture(scope="module", autouse=True)
def perf_analyzer_libraries() -> None:
    """The wheel's perf_analyzer needs libcudart.so.12 from the CUDA runtime wheel."""
    libs = sorted(VENV.glob("lib/python3*/site-packages/nvidia/cuda_runtime/lib"))
    assert libs, "nvidia-cuda-runtime-cu12 is not installed in the venv (scripts/bootstrap.sh)"
    os.environ["LD_LIBRARY_PATH"] = f"{libs[0]}:{os.environ.get('LD_LIBRARY_PATH', '')}"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sweepmodel")
    train("dlrm", SAMPLE, out, batch_size=64, steps=3, log=lambda _: None)
    export("dlrm", out)
    return out / "dlrm"


@pytest.fixture
def server(model_dir: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    process = start(f"--port={port}", "--model_name=dlrm", f"--model_base_path={model_dir}")
    wait_ready(port, "dlrm")
    yield process, port
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


def job(tmp_path: Path, port: int, concurrency: str = "1:2:1", **extra: object) -> dict:
    (config,) = [c for c in configs_for(["dlrm"], profile="ci") if c.mode == "entire"]
    record = config.as_record() | {"concurrency_range": concurrency}
    return {
        "run_id": "test-run",
        "host": "controller",
        "model": "dlrm",
        "config": record,
        "results_dir": str(tmp_path / "results" / "test-run" / "controller" / "dlrm" / config.config_id),
        "instances": [{"name": "numa0", "port": port, "client_cpus": "0-1", "server_node": 0}],
        "perf_analyzer": str(VENV / "bin" / "perf_analyzer"),
        "timeout_s": 120,
        "retries": 1,
        "metadata": {"versions": {"perf_analyzer": "2.46.0"}},
    } | extra


def test_a_complete_point_keeps_csv_logs_and_metadata(server, tmp_path: Path) -> None:
    _, port = server
    spec = job(tmp_path, port)
    summary = run_job(spec)
    assert summary["numa0"]["status"] == "complete", summary
    out = Path(spec["results_dir"]) / "numa0"
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["levels_reached"] == [1, 2] and meta["levels_failed"] == []
    assert meta["run_id"] == "test-run" and meta["config_id"] == spec["config"]["config_id"]
    assert meta["versions"] == {"perf_analyzer": "2.46.0"}
    lines = (out / "perf.csv").read_text().splitlines()
    assert lines[0].startswith("Concurrency,Inferences/Second")
    assert [int(line.split(",")[0]) for line in lines[1:]] == [1, 2]  # sorted by concurrency
    assert all(float(line.split(",")[1]) > 0 for line in lines[1:])
    assert (out / "attempt-1.log").read_text().startswith("taskset -c 0-1 ")
    assert not list(Path(spec["results_dir"]).glob(".*partial"))

    # The same job again repeats no work and touches nothing.
    stamp = (out / "perf.csv").stat().st_mtime_ns
    assert run_job(spec)["numa0"]["skipped"] is True
    assert (out / "perf.csv").stat().st_mtime_ns == stamp


def test_real_rows_from_perf_input(server, tmp_path: Path) -> None:
    _, port = server
    data = tmp_path / "rows.json"
    write_perf_input(SAMPLE, dataset_of(load_config("dlrm")), data, rows=32)
    summary = run_job(job(tmp_path, port, concurrency="1:1:1", input_data_file=str(data)))
    assert summary["numa0"]["status"] == "complete", summary


def test_an_unreachable_server_is_a_recorded_failure(tmp_path: Path) -> None:
    spec = job(tmp_path, free_port())
    summary = run_job(spec)
    assert summary["numa0"]["status"] == "failed"
    meta = json.loads((Path(spec["results_dir"]) / "numa0" / "metadata.json").read_text())
    assert meta["levels_failed"] == [1, 2]
    assert len(meta["attempts"]) == 2  # the first try and one retry
    assert meta["attempts"][1]["measurement_interval_ms"] == 2 * meta["attempts"][0]["measurement_interval_ms"]
    assert all(a["exit_code"] != 0 for a in meta["attempts"])


def test_a_server_dying_mid_sweep_leaves_a_partial_result_and_the_sweep_ends(server, tmp_path: Path) -> None:
    process, port = server
    spec = job(tmp_path, port, concurrency="1:40:1")
    killer = threading.Timer(4.0, process.send_signal, args=(signal.SIGKILL,))
    killer.start()
    started = time.monotonic()
    summary = run_job(spec)
    killer.cancel()
    assert time.monotonic() - started < 240
    meta = json.loads((Path(spec["results_dir"]) / "numa0" / "metadata.json").read_text())
    assert meta["status"] in ("partial", "failed"), summary
    assert meta["levels_failed"], meta
    assert set(meta["levels_reached"]) | set(meta["levels_failed"]) == set(range(1, 41))


def test_a_bad_job_file_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "job.json"
    path.write_text('{"run_id": "x"}')
    assert sweep_main([str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"sweep: {path}: job has no 'host', 'model', 'config', 'results_dir', 'instances'"


def test_a_server_that_never_became_ready_is_recorded_as_failed_without_running(tmp_path: Path) -> None:
    spec = job(tmp_path, free_port(), server_error="tfserving@dlrm-0: not ready after 60 s")
    spec["instances"].append({"name": "numa1", "port": free_port(), "client_cpus": "1"})
    summary = run_job(spec)
    assert {name: s["status"] for name, s in summary.items()} == {"numa0": "failed", "numa1": "failed"}
    for name in ("numa0", "numa1"):
        out = Path(spec["results_dir"]) / name
        meta = json.loads((out / "metadata.json").read_text())
        assert meta["server_error"] == "tfserving@dlrm-0: not ready after 60 s"
        assert meta["attempts"] == [] and meta["levels_failed"] == [1, 2]
        assert not (out / "perf.csv").exists()
