"""The TF-Serving stand-in as a local process: start it on a free port, wait until it answers."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sim.ports import free_port

SERVER = Path(__file__).resolve().parent / "server.py"


def start(*flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(SERVER), *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def metadata(port: int, model: str) -> object:
    """GetModelMetadata for MODEL (a GetModelMetadataResponse); raises grpc.RpcError while not serving."""
    import grpc
    from tensorflow_serving.apis import get_model_metadata_pb2, prediction_service_pb2_grpc

    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = model
    request.metadata_field.append("signature_def")
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        return prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(request, timeout=5)


def wait_ready(port: int, model: str, seconds: float = 60) -> None:
    import grpc

    deadline = time.monotonic() + seconds
    while True:
        try:
            metadata(port, model)
            return
        except grpc.RpcError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@contextmanager
def serving_a_fresh_export(
    work: Path, model: str = "dlrm", rows: int = 4000, pids: list[int] | None = None
) -> Iterator[int]:
    """The stand-in serving a freshly trained model zoo export of MODEL (ROWS generated rows, 5 steps),
    one intra and one inter op thread; yields its port (its process id appended to PIDS), stops it after."""
    from modelzoo.export import export
    from modelzoo.generate import generate
    from modelzoo.train import train

    data = work / "criteo.csv"
    generate("criteo", data, rows, 1)
    train(model, data, work / "models", batch_size=64, steps=5, log=lambda _: None)
    export(model, work / "models")
    port = free_port()
    server = start(
        f"--port={port}",
        f"--model_name={model}",
        f"--model_base_path={work / 'models' / model}",
        "--tensorflow_intra_op_parallelism=1",
        "--tensorflow_inter_op_parallelism=1",
    )
    if pids is not None:
        pids.append(server.pid)
    try:
        wait_ready(port, model, 120)
        yield port
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)
