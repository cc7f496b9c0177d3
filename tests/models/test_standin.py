"""The TF-Serving stand-in as a process: flags, gRPC API over a real export, clean stop."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from modelzoo.config import dataset_of, load_config
from modelzoo.export import export
from modelzoo.readers import read_all
from modelzoo.tfcompat import tf
from modelzoo.train import train
from sim.ports import free_port
from sim.tfserving_standin.process import SERVER, metadata, start, wait_ready
from tests.criteo_layouts import SAMPLE

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, dict]:
    out = tmp_path_factory.mktemp("standin")
    result = train("deepfm", SAMPLE, out, SAMPLE, batch_size=64, steps=3, log=lambda _: None)
    export("deepfm", out)
    dataset = dataset_of(load_config("deepfm"))
    return out / "deepfm", result.eval_predictions, read_all(SAMPLE, dataset).feed(dataset)


def test_serves_predict_metadata_and_status_then_stops_on_sigterm(exported) -> None:
    base, expected, rows = exported
    port = free_port()
    server = start(
        f"--port={port}",
        "--model_name=deepfm",
        f"--model_base_path={base}",
        "--tensorflow_intra_op_parallelism=1",
        "--tensorflow_inter_op_parallelism=1",
    )
    try:
        wait_ready(port, "deepfm")
        signature = get_model_metadata_pb2.SignatureDefMap()
        answer = metadata(port, "deepfm")
        answer.metadata["signature_def"].Unpack(signature)
        assert set(signature.signature_def["serving_default"].inputs) == set(rows)
        assert answer.model_spec.version.value == 1

        request = predict_pb2.PredictRequest()
        request.model_spec.name = "deepfm"
        for name, values in rows.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(values[:50].reshape(-1, 1)))
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
            status_request = get_model_status_pb2.GetModelStatusRequest()
            status_request.model_spec.name = "deepfm"
            status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(status_request, timeout=5)
        served = tf.make_ndarray(response.outputs["probabilities"])
        np.testing.assert_allclose(served, expected[:50], atol=1e-6, rtol=0)
        assert status.model_version_status[0].state == get_model_status_pb2.ModelVersionStatus.AVAILABLE

        with pytest.raises(grpc.RpcError) as wrong:
            metadata(port, "dlrm")
        assert wrong.value.code() == grpc.StatusCode.NOT_FOUND

        # A second server on the same port fails to start; it never shares the port's connections.
        second = start(f"--port={port}", "--model_name=deepfm", f"--model_base_path={base}")
        assert second.wait(timeout=120) == 1
        assert "the port is in use" in second.stderr.read()
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=20) == 0
    assert "Server stopped" in server.stderr.read()


def test_waits_for_a_version_to_appear(exported, tmp_path: Path) -> None:
    base, _, _ = exported
    empty = tmp_path / "later"
    empty.mkdir()
    port = free_port()
    server = start(f"--port={port}", "--model_name=deepfm", f"--model_base_path={empty}")
    try:
        deadline = time.monotonic() + 60
        code = None
        while code != grpc.StatusCode.NOT_FOUND and time.monotonic() < deadline:
            with pytest.raises(grpc.RpcError) as early:
                metadata(port, "deepfm")
            code = early.value.code()  # UNAVAILABLE until it listens, then NOT_FOUND: nothing to serve
            time.sleep(0.3)
        assert code == grpc.StatusCode.NOT_FOUND
        (empty / "1").symlink_to(base / "1")
        wait_ready(port, "deepfm", seconds=30)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)


def test_command_line_errors_behave_like_the_real_server(tmp_path: Path) -> None:
    bad = subprocess.run(
        [sys.executable, str(SERVER), "--port=http", f"--model_base_path={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 255
    assert "--model_base_path=" in bad.stdout  # the usage
    missing = subprocess.run(
        [sys.executable, str(SERVER), "--port=9"], capture_output=True, text=True, timeout=60, check=False
    )
    assert missing.returncode == 255
    version = subprocess.run(
        [sys.executable, str(SERVER), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert version.returncode == 0
    assert version.stdout.startswith("TensorFlow ModelServer: 2.15.1")
    port = free_port()
    server = start(f"--port={port}", f"--model_base_path={tmp_path}", "--no_such_flag=1")
    try:
        time.sleep(3)
        assert server.poll() is None  # like the real one, it warns and serves on
    finally:
        server.send_signal(signal.SIGTERM)
        out, _ = server.communicate(timeout=20)
    assert out.startswith("unknown argument: --no_such_flag=1")
