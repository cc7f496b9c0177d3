"""A stand-in for tensorflow_model_server on machines where the real one cannot be built.

It speaks TF-Serving's gRPC API (PredictionService.Predict and GetModelMetadata, ModelService.
GetModelStatus) over the same model directory layout (<model_base_path>/<version>/, highest
version served), and takes the real server's command line: `--name=value` flags parsed the way
TensorFlow's flag parser does. As in the real main.cc, a flag with a bad value or a missing
--model_base_path prints the usage and exits 255, and an unknown argument prints
"unknown argument: ..." and the usage. It stops cleanly on SIGTERM and SIGINT.

Runs with the host's TensorFlow (tf.compat.v1 sessions), so serving numbers are TensorFlow's own.
--version reports the TF-Serving version it stands in for: the one its package's build-info.json
records (package.py), or bench/versions.py's when it runs from the repository.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
import threading
import time
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def standin_version() -> str:
    """`<version>-standin`. The server travels alone (<package>/lib/standin/server.py), without bench/:
    its package's build-info.json says the version; run from the repository, bench/versions.py does."""
    try:
        root = Path(__file__).resolve().parents[2]  # the package, or the repository
        info = root / "build-info.json"
        if info.is_file():
            return f"{json.loads(info.read_text())['version']}-standin"
        spec = importlib.util.spec_from_file_location("recbench_versions", root / "bench" / "versions.py")
        versions = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(versions)
        return f"{versions.VERSIONS['tfserving']}-standin"
    except (OSError, IndexError, ValueError, KeyError, TypeError, AttributeError):
        return "unknown-standin"


# (name, type, default, help) of the real server's flags (tensorflow_serving/model_servers/main.cc).
FLAGS: list[tuple[str, type, object, str]] = [
    ("port", int, 8500, "Port to listen on for gRPC API"),
    ("grpc_socket_path", str, "", "If non-empty, listen to a UNIX socket for gRPC API on the given path"),
    ("rest_api_port", int, 0, "Port to listen on for HTTP/REST API (0: not exported)"),
    ("rest_api_num_threads", int, 0, "Number of threads for HTTP/REST API processing"),
    ("rest_api_timeout_in_ms", int, 30000, "Timeout for HTTP/REST API calls"),
    ("rest_api_enable_cors_support", bool, False, "Enable CORS headers in response"),
    ("enable_batching", bool, False, "enable batching"),
    ("allow_version_labels_for_unavailable_models", bool, False, "version labels for unavailable models"),
    ("batching_parameters_file", str, "", "ascii BatchingParameters protobuf file"),
    ("enable_per_model_batching_parameters", bool, False, "batching_params.pbtxt per model"),
    ("model_config_file", str, "", "ascii ModelServerConfig protobuf file"),
    ("model_config_file_poll_wait_seconds", int, 0, "interval between polls of the model config file"),
    ("model_name", str, "default", "name of model (ignored if --model_config_file flag is set)"),
    ("model_base_path", str, "", "path to export (ignored if --model_config_file flag is set)"),
    ("num_load_threads", int, 0, "number of threads to load models"),
    ("num_unload_threads", int, 0, "number of threads to unload models"),
    ("max_num_load_retries", int, 5, "maximum number of times it retries loading a model"),
    ("load_retry_interval_micros", int, 60000000, "interval between load retries"),
    ("file_system_poll_wait_seconds", int, 1, "interval between polls of the file system for new versions"),
    ("flush_filesystem_caches", bool, True, "flush filesystem caches after loading"),
    ("tensorflow_session_parallelism", int, 0, "threads for a TensorFlow session (0: auto)"),
    ("tensorflow_session_config_file", str, "", "ascii ConfigProto protobuf file"),
    ("tensorflow_intra_op_parallelism", int, 0, "intra-op threads (0: auto)"),
    ("tensorflow_inter_op_parallelism", int, 0, "inter-op threads (0: auto)"),
    ("use_alts_credentials", bool, False, "use Google ALTS credentials"),
    ("ssl_config_file", str, "", "SSLConfig protobuf file"),
    ("platform_config_file", str, "", "ascii PlatformConfigMap protobuf file"),
    ("per_process_gpu_memory_fraction", float, 0.0, "fraction of GPU memory per process"),
    ("saved_model_tags", str, "serve", "comma-separated tags of the meta graph to load"),
    ("grpc_channel_arguments", str, "", "comma separated gRPC channel arguments"),
    ("grpc_max_threads", int, 0, "max gRPC server threads (0: auto)"),
    ("enable_model_warmup", bool, True, "enable model warmup"),
    ("num_request_iterations_for_warmup", int, 1, "warmup iterations per request"),
    ("version", bool, False, "Display version"),
    ("monitoring_config_file", str, "", "ascii MonitoringConfig protobuf file"),
    ("remove_unused_fields_from_bundle_metagraph", bool, True, "drop unused MetaGraphDef fields"),
    ("prefer_tflite_model", bool, False, "prefer TFLite models"),
    ("num_tflite_pools", int, 1, "TFLite interpreter pools"),
    ("num_tflite_interpreters_per_pool", int, 1, "TFLite interpreters per pool"),
    ("enable_signature_method_name_check", bool, False, "check signature method names"),
    ("xla_cpu_compilation_enabled", bool, False, "EXPERIMENTAL; enable XLA:CPU JIT"),
    ("enable_profiler", bool, True, "enable the profiler service"),
    ("mixed_precision", str, "", "mixed precision mode (bfloat16)"),
    ("skip_initialize_tpu", bool, False, "skip TPU initialisation"),
    ("enable_grpc_healthcheck_service", bool, False, "enable the standard gRPC health service"),
]


class FlagError(ValueError):
    pass


def usage(program: str) -> str:
    lines = [f"usage: {program}", "Flags:"]
    for name, kind, default, text in FLAGS:
        shown = str(default).lower() if kind is bool else repr(default) if kind is str else default
        lines.append(f"\t--{name}={shown}\t{kind.__name__}\t{text}")
    return "\n".join(lines) + "\n"


def _value(kind: type, text: str) -> object:
    if kind is bool:
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise FlagError(text)
    try:
        return kind(text)
    except ValueError:
        raise FlagError(text) from None


def parse_flags(argv: list[str]) -> tuple[dict[str, object], list[str]]:
    """TensorFlow's Flags::Parse: `--name=value` (`--name` alone for booleans); unknown arguments are
    returned, not fatal; a known flag with a bad value is a FlagError."""
    values = {name: default for name, _, default, _ in FLAGS}
    kinds = {name: kind for name, kind, _, _ in FLAGS}
    unknown = []
    for arg in argv:
        name, has_value, text = arg.lstrip("-").partition("=")
        if not arg.startswith("--") or name not in kinds:
            unknown.append(arg)
            continue
        if not has_value:
            if kinds[name] is not bool:
                raise FlagError(arg)
            values[name] = True
            continue
        values[name] = _value(kinds[name], text)
    return values, unknown


@dataclass
class LoadedModel:
    version: int
    session: object
    signatures: dict[str, object]  # name -> SignatureDef


class ModelHolder:
    """Loads the highest version under the base path, polling until one appears, like the real server."""

    def __init__(self, name: str, base_path: Path, tags: list[str], config: object, poll_seconds: int) -> None:
        self.name = name
        self.base_path = base_path
        self.tags = tags
        self.config = config
        self.poll_seconds = max(1, poll_seconds)
        self.loaded: LoadedModel | None = None
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _versions(self) -> list[int]:
        if not self.base_path.is_dir():
            return []
        return sorted(
            int(p.name) for p in self.base_path.iterdir() if p.name.isdigit() and (p / "saved_model.pb").is_file()
        )

    def _poll(self) -> None:
        from tensorflow.compat import v1 as tf

        warned = False
        while not self._stop.is_set():
            versions = self._versions()
            newest = versions[-1] if versions else None
            if newest is None and not warned:
                log(f"No versions of servable {self.name} found under base path {self.base_path}")
                warned = True
            if newest is not None and (self.loaded is None or self.loaded.version != newest):
                try:
                    graph = tf.Graph()
                    session = tf.Session(graph=graph, config=self.config)
                    with graph.as_default():
                        meta = tf.saved_model.loader.load(session, self.tags, str(self.base_path / str(newest)))
                    self.loaded = LoadedModel(newest, session, dict(meta.signature_def))
                    self.error = None
                    log(f"Successfully loaded servable version {{name: {self.name} version: {newest}}}")
                except Exception as err:
                    self.error = f"{type(err).__name__}: {err}"
                    log(f"Loading servable {self.name} version {newest} failed: {self.error}")
            self._stop.wait(self.poll_seconds)


def log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"{stamp}: I tensorflow_serving/standin] {message}", file=sys.stderr, flush=True)


def make_services(holder: ModelHolder) -> tuple[object, object, ModuleType, ModuleType]:
    import grpc
    import tensorflow as tf_root
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        get_model_status_pb2,
        model_service_pb2_grpc,
        predict_pb2,
        prediction_service_pb2_grpc,
    )

    def model_or_abort(spec: object, context: grpc.ServicerContext) -> LoadedModel:
        if spec.name != holder.name:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({spec.name})")
        loaded = holder.loaded
        if loaded is None or (spec.HasField("version") and spec.version.value != loaded.version):
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({spec.name})")
        return loaded

    class Prediction(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request: object, context: grpc.ServicerContext) -> object:
            loaded = model_or_abort(request.model_spec, context)
            name = request.model_spec.signature_name or "serving_default"
            signature = loaded.signatures.get(name)
            if signature is None:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{name}" not found.')
            missing = set(signature.inputs) - set(request.inputs)
            if missing:
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"input tensor alias not found in signature: {sorted(missing)[0]}"
                )
            feed = {
                signature.inputs[k].name: tf_root.make_ndarray(v)
                for k, v in request.inputs.items()
                if k in signature.inputs
            }
            wanted = list(request.output_filter) or list(signature.outputs)
            fetches = [signature.outputs[k].name for k in wanted]
            try:
                results = loaded.session.run(fetches, feed)
            except Exception as err:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err).splitlines()[0])
            response = predict_pb2.PredictResponse()
            response.model_spec.name = holder.name
            response.model_spec.version.value = loaded.version
            response.model_spec.signature_name = name
            for key, value in zip(wanted, results, strict=True):
                response.outputs[key].CopyFrom(tf_root.make_tensor_proto(value))
            return response

        def GetModelMetadata(self, request: object, context: grpc.ServicerContext) -> object:
            if list(request.metadata_field) != ["signature_def"]:
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, "Metadata field signature_def is the only one supported"
                )
            loaded = model_or_abort(request.model_spec, context)
            signatures = get_model_metadata_pb2.SignatureDefMap()
            for key, value in loaded.signatures.items():
                signatures.signature_def[key].CopyFrom(value)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = holder.name
            response.model_spec.version.value = loaded.version
            response.metadata["signature_def"].Pack(signatures)
            return response

    class Models(model_service_pb2_grpc.ModelServiceServicer):
        def GetModelStatus(self, request: object, context: grpc.ServicerContext) -> object:
            if request.model_spec.name != holder.name:
                context.abort(
                    grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {request.model_spec.name}"
                )
            states = get_model_status_pb2.ModelVersionStatus
            response = get_model_status_pb2.GetModelStatusResponse()
            loaded = holder.loaded
            if loaded is None and holder.error is None and not holder._versions():
                context.abort(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {holder.name}")
            status = response.model_version_status.add()
            if loaded is not None:
                status.version = loaded.version
                status.state = states.AVAILABLE
            elif holder.error is not None:
                status.version = holder._versions()[-1]
                status.state = states.END
                status.status.error_code = 3  # INVALID_ARGUMENT
                status.status.error_message = holder.error
            else:
                status.version = holder._versions()[-1]
                status.state = states.LOADING
            return response

    return Prediction(), Models(), prediction_service_pb2_grpc, model_service_pb2_grpc


def main(argv: list[str]) -> int:
    program = argv[0]
    try:
        flags, unknown = parse_flags(argv[1:])
    except FlagError:
        sys.stdout.write(usage(program))
        return 255
    if flags["version"]:
        import tensorflow as tf_root

        print(f"TensorFlow ModelServer: {standin_version()}\nTensorFlow Library: {tf_root.__version__}")
        return 0
    if not flags["model_base_path"] and not flags["model_config_file"]:
        sys.stdout.write(usage(program))
        return 255
    if unknown:
        sys.stdout.write(f"unknown argument: {unknown[0]}\n" + usage(program))
    if flags["model_config_file"]:
        log("--model_config_file is not supported by the stand-in; serve one model with --model_base_path")
        return 255
    if flags["batching_parameters_file"] and not flags["enable_batching"]:
        log("You supplied --batching_parameters_file without --enable_batching")
        return 134  # LOG(FATAL) aborts

    import grpc
    from tensorflow.compat import v1 as tf

    intra = flags["tensorflow_intra_op_parallelism"] or flags["tensorflow_session_parallelism"]
    inter = flags["tensorflow_inter_op_parallelism"] or flags["tensorflow_session_parallelism"]
    config = tf.ConfigProto(intra_op_parallelism_threads=intra, inter_op_parallelism_threads=inter)
    if flags["xla_cpu_compilation_enabled"]:
        config.graph_options.optimizer_options.global_jit_level = tf.OptimizerOptions.ON_1
    holder = ModelHolder(
        flags["model_name"],
        Path(flags["model_base_path"]),
        flags["saved_model_tags"].split(","),
        config,
        flags["file_system_poll_wait_seconds"],
    )
    prediction, models, prediction_grpc, model_grpc = make_services(holder)
    workers = flags["grpc_max_threads"] or max(4, 4 * (os.cpu_count() or 1))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        options=[
            ("grpc.max_receive_message_length", 2**31 - 1),
            ("grpc.max_send_message_length", 2**31 - 1),
            # gRPC would share a taken port (SO_REUSEPORT) and split connections between the two servers;
            # a second server on a port must fail to start instead, loudly.
            ("grpc.so_reuseport", 0),
        ],
    )
    prediction_grpc.add_PredictionServiceServicer_to_server(prediction, server)
    model_grpc.add_ModelServiceServicer_to_server(models, server)
    if flags["grpc_socket_path"]:
        server.add_insecure_port(f"unix:{flags['grpc_socket_path']}")
    address = f"0.0.0.0:{flags['port']}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if not bound:
        log(f"Failed to bind {address}: the port is in use")
        return 1
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log(f"Received signal {signum}, shutting down")
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    holder.start()
    server.start()
    log(f"Running gRPC ModelServer at {address} ...")
    stopping.wait()
    holder.stop()
    server.stop(grace=2).wait()
    log("Server stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
