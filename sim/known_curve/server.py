"""A TF-Serving gRPC server whose load curve is known in advance: the yardstick of the capacity search.

    python -m sim.known_curve.server --port 9000 --model dlrm --workers 16 --base-ms 9 --contention-ms 2

It answers GetModelMetadata (one float input `x` of shape [-1, 4], one output `y`) and Predict like
TF-Serving, so the real perf_analyzer drives it. A request waits for one of `workers` workers, then is
served for

    base_ms + contention_ms x (requests in service - 1) + item_ms x batch size

(a constant time, or exponentially distributed around it with --distribution exponential): workers
that slow each other down as they fill, as CPU-bound servers do. With a constant time and a closed
loop of C clients the curve is therefore known (`expected_level`): for C <= workers every request is
served in L(C) = base + contention x (C - 1) + item x batch, so throughput is C / L(C); past the
workers, requests queue and latency grows while throughput stays flat. The capacity under a budget is
the best of those levels whose latency fits. SIGTERM stops it, SIGKILL kills it (a server dying).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import random
import signal
import subprocess
import sys
import threading
import time
import types
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

INPUT, OUTPUT, WIDTH = "x", "y", 4


@dataclass(frozen=True)
class Curve:
    workers: int = 16
    base_ms: float = 9.0
    contention_ms: float = 2.0
    item_ms: float = 0.0
    distribution: str = "constant"

    def service_ms(self, in_service: int, batch: int) -> float:
        return self.base_ms + self.contention_ms * (in_service - 1) + self.item_ms * batch

    def latency_ms(self, clients: int, batch: int) -> float:
        """Steady-state latency of a closed loop of `clients` with a constant service time."""
        busy = min(clients, self.workers)
        return self.service_ms(busy, batch) * math.ceil(clients / self.workers)

    def throughput(self, clients: int, batch: int) -> float:
        """Inferences per second (requests x batch) of a closed loop of `clients`."""
        busy = min(clients, self.workers)
        return busy / (self.service_ms(busy, batch) / 1000) * batch


def expected_level(curve: Curve, budget_ms: float, batch: int, max_clients: int) -> tuple[int, float] | None:
    """(level, inferences per second) of the best level whose latency is within the budget, or None."""
    fits = [
        (curve.throughput(c, batch), -c) for c in range(1, max_clients + 1) if curve.latency_ms(c, batch) <= budget_ms
    ]
    if not fits:
        return None
    best, level = max(fits)
    return -level, best


def protobuf_only_tensorflow() -> None:
    """Make `tensorflow.core...` importable without running TensorFlow's __init__ (10 s, 500 MB): the
    server needs TF-Serving's message types, which are plain protobuf modules, not the runtime."""
    if "tensorflow" in sys.modules:
        return
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("known-curve server: needs the tensorflow and tensorflow-serving-api packages")
    package = types.ModuleType("tensorflow")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["tensorflow"] = package


def make_servicer(model: str, curve: Curve, seed: int) -> tuple[object, object]:
    import grpc

    protobuf_only_tensorflow()
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow.core.protobuf import meta_graph_pb2
    from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

    slots = threading.Semaphore(curve.workers)
    lock = threading.Lock()
    state = {"in_service": 0}
    rng = random.Random(seed)

    def tensor_info(name: str) -> meta_graph_pb2.TensorInfo:
        shape = tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=-1), tensor_shape_pb2.TensorShapeProto.Dim(size=WIDTH)]
        )
        return meta_graph_pb2.TensorInfo(name=f"{name}:0", dtype=types_pb2.DT_FLOAT, tensor_shape=shape)

    signature = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    signature.inputs[INPUT].CopyFrom(tensor_info(INPUT))
    signature.outputs[OUTPUT].CopyFrom(tensor_info(OUTPUT))

    def check(spec: object, context: grpc.ServicerContext) -> None:
        if spec.name != model:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({spec.name})")

    class Prediction(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request: object, context: grpc.ServicerContext) -> object:
            check(request.model_spec, context)
            if INPUT not in request.inputs:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"input tensor alias not found in signature: {INPUT}")
            dims = request.inputs[INPUT].tensor_shape.dim
            batch = max(1, dims[0].size if dims else 1)
            with slots:
                with lock:
                    state["in_service"] += 1
                    mean = curve.service_ms(state["in_service"], batch)
                    seconds = (rng.expovariate(1 / mean) if curve.distribution == "exponential" else mean) / 1000
                try:
                    time.sleep(seconds)
                finally:
                    with lock:
                        state["in_service"] -= 1
            response = predict_pb2.PredictResponse()
            response.model_spec.name = model
            response.model_spec.version.value = 1
            out = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[0.5] * batch * WIDTH)
            out.tensor_shape.dim.add(size=batch)
            out.tensor_shape.dim.add(size=WIDTH)
            response.outputs[OUTPUT].CopyFrom(out)
            return response

        def GetModelMetadata(self, request: object, context: grpc.ServicerContext) -> object:
            check(request.model_spec, context)
            signatures = get_model_metadata_pb2.SignatureDefMap()
            signatures.signature_def["serving_default"].CopyFrom(signature)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = model
            response.model_spec.version.value = 1
            response.metadata["signature_def"].Pack(signatures)
            return response

    return Prediction(), prediction_service_pb2_grpc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.known_curve.server", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="dlrm", help="the model name it answers to")
    parser.add_argument("--workers", type=int, default=Curve.workers)
    parser.add_argument("--base-ms", type=float, default=Curve.base_ms)
    parser.add_argument("--contention-ms", type=float, default=Curve.contention_ms)
    parser.add_argument("--item-ms", type=float, default=Curve.item_ms, help="batching cost per item")
    parser.add_argument("--distribution", choices=("constant", "exponential"), default=Curve.distribution)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.workers < 1 or args.base_ms <= 0 or args.contention_ms < 0 or args.item_ms < 0:
        parser.error("workers >= 1, base-ms > 0, contention-ms and item-ms >= 0")
    import grpc

    curve = Curve(args.workers, args.base_ms, args.contention_ms, args.item_ms, args.distribution)
    prediction, prediction_grpc = make_servicer(args.model, curve, args.seed)
    # Far more gRPC threads than workers: requests must queue at the workers, not in gRPC.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=512), options=[("grpc.so_reuseport", 0)])
    prediction_grpc.add_PredictionServiceServicer_to_server(prediction, server)
    if not server.add_insecure_port(f"0.0.0.0:{args.port}"):
        print(f"known-curve server: port {args.port} is in use", file=sys.stderr)
        return 1
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    server.start()
    print(f"known-curve server for {args.model} on port {args.port}: {curve}", file=sys.stderr, flush=True)
    stopping.wait()
    server.stop(grace=1).wait()
    return 0


def launch(port: int, model: str, curve: Curve) -> subprocess.Popen[str]:
    """The server as a child process (wait for it with sim.tfserving_standin.process.wait_ready)."""
    flags = [f"--port={port}", f"--model={model}", f"--workers={curve.workers}", f"--base-ms={curve.base_ms}"]
    flags += [f"--contention-ms={curve.contention_ms}", f"--item-ms={curve.item_ms}"]
    flags += [f"--distribution={curve.distribution}"]
    return subprocess.Popen(
        [sys.executable, "-m", "sim.known_curve.server", *flags],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


if __name__ == "__main__":
    sys.exit(main())
