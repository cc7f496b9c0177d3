"""Measure a served export with a given perf_analyzer command; print the CSV it wrote.

  python -m sim.triton_sdk_standin.measure --perf-analyzer CMD --export DIR/<model> --workdir DIR

Starts the TF-Serving stand-in on a free port serving DIR/<model>, waits until it answers, runs CMD
(for `image` mode the wrapper that runs the container) from WORKDIR with a small concurrency sweep and
`-f perf.csv`, stops the server, and prints the CSV. Exits non-zero with perf_analyzer's output if it
fails or writes no rows.
"""

from __future__ import annotations

import argparse
import csv
import signal
import subprocess
import sys
from pathlib import Path

from sim.ports import free_port
from sim.tfserving_standin.process import start, wait_ready


def measure(perf_analyzer: str, export_dir: Path, workdir: Path) -> str:
    model = export_dir.name
    port = free_port()
    server = start(f"--port={port}", f"--model_name={model}", f"--model_base_path={export_dir}")
    try:
        wait_ready(port, model, seconds=120)
        workdir.mkdir(parents=True, exist_ok=True)
        command = [perf_analyzer, "-m", model, "--service-kind", "tfserving", "-i", "grpc", "-u", f"localhost:{port}"]
        command += ["-b", "8", "--concurrency-range", "1:2", "-p", "1000", "-s", "100", "--max-trials", "10"]
        command += ["-f", "perf.csv", "--verbose-csv"]
        proc = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=300, check=False)
        written = workdir / "perf.csv"
        if proc.returncode != 0 or not written.is_file():
            raise SystemExit(f"perf_analyzer exit {proc.returncode}:\n{proc.stdout}{proc.stderr}")
        text = written.read_text()
        if not list(csv.DictReader(text.splitlines())):
            raise SystemExit(f"perf_analyzer wrote no rows:\n{proc.stdout}")
        return text
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.triton_sdk_standin.measure", description=__doc__)
    parser.add_argument("--perf-analyzer", required=True, help="the perf_analyzer command to run")
    parser.add_argument("--export", type=Path, required=True, help="a model zoo export: DIR/<model>/<version>/")
    parser.add_argument("--workdir", type=Path, required=True, help="where perf_analyzer runs and writes its CSV")
    args = parser.parse_args(argv)
    sys.stdout.write(measure(args.perf_analyzer, args.export, args.workdir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
