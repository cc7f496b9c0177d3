"""MLPerf LoadGen's Server scenario against one TF-Serving instance (`client: mlperf`): the authoritative
open-loop capacity, with LoadGen's own verdict.

    python -m bench.loadgen_run --port 9000 --model dlrm --batch 256 --budget-ms 60 --out DIR ...

LoadGen schedules Poisson arrivals with no limit on outstanding queries and times each query from its
scheduled time, so neither a slow client nor a slow server hides queueing. The SUT here sends each
query as a TF-Serving Predict over gRPC without waiting (a gRPC future; the completion callback tells
LoadGen), so issuing never blocks on the server; how long each issue call took is measured and recorded
(the lag LoadGen's schedule could suffer from this SUT). Two phases, each LoadGen's own:

1. `FindPeakPerformance`: from --start-qps LoadGen doubles the rate, then bisects it, keeping the highest
   rate whose p99 meets the budget (latency only, as LoadGen's find-peak does);
2. `PerformanceOnly` at that peak: the run whose verdict counts — VALID only with the minimum duration,
   the minimum query count, the p99 within the bound and early stopping all satisfied.

Both phases' summary and detail logs stay in --out (find-peak/, performance/), and `result.json` there
holds what bench.capacity_run records: the settings, the peak, the verdict and its reasons, the
scheduled and completed rates, the p99, the issue lag and any failed requests. This program needs
grpcio and the mlcommons-loadgen wheel (imported in `main`, so that importing the module needs only
the standard library, as everything the hosts run); the messages come from bench.tfproto.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench.tfproto import GET_MODEL_METADATA, PREDICT, metadata_request, predict_request, signature_inputs, tensor

RESULT_NAME = "result.json"
SUMMARY_NAME = "mlperf_log_summary.txt"
# What LoadGen's summary says (mlperf_log_summary.txt), read line by line.
SUMMARY_FIELDS = {
    "result": re.compile(r"^Result is : (\w+)", re.MULTILINE),
    "scheduled_qps": re.compile(r"^Scheduled samples per second : ([0-9.]+)", re.MULTILINE),
    "completed_qps": re.compile(r"^Completed samples per second\s*: ([0-9.]+)", re.MULTILINE),
    "p99_ns": re.compile(r"^99\.00 percentile latency \(ns\)\s*: ([0-9]+)", re.MULTILINE),
    "p95_ns": re.compile(r"^95\.00 percentile latency \(ns\)\s*: ([0-9]+)", re.MULTILINE),
    "p90_ns": re.compile(r"^90\.00 percentile latency \(ns\)\s*: ([0-9]+)", re.MULTILINE),
    "p50_ns": re.compile(r"^50\.00 percentile latency \(ns\)\s*: ([0-9]+)", re.MULTILINE),
    "target_qps": re.compile(r"^target_qps : ([0-9.]+)", re.MULTILINE),
}
# "  Min duration satisfied : Yes", "  Early stopping satisfied: NO" (LoadGen spells them both ways)
CONSTRAINTS = re.compile(r"^\s*(\w[\w ]*? satisfied)\s*: (yes|no)\s*$", re.MULTILINE | re.IGNORECASE)
EARLY_STOPPING = re.compile(r"^ \* (.+)$", re.MULTILINE)


def read_summary(text: str) -> dict:
    """What bench.capacity_run keeps of a LoadGen summary: the verdict, why, and the figures."""
    found: dict = {}
    for name, pattern in SUMMARY_FIELDS.items():
        match = pattern.findall(text)
        if match:
            found[name] = match[-1] if name == "result" else float(match[-1])
    found["constraints"] = {name: said.lower() == "yes" for name, said in CONSTRAINTS.findall(text)}
    found["reasons"] = [
        f"{name.removesuffix(' satisfied')} not satisfied" for name, ok in found["constraints"].items() if not ok
    ]
    found["early_stopping"] = [line.strip() for line in EARLY_STOPPING.findall(text)]
    return found


def _inputs(channel: object, model: str, batch: int, data_file: Path | None) -> bytes:
    """The one request every query sends: the signature's inputs, from DATA_FILE (perf_analyzer's
    --input-data JSON: its first rows) or zeros."""
    ask = channel.unary_unary(GET_MODEL_METADATA)  # type: ignore[attr-defined]
    signature = signature_inputs(ask(metadata_request(model), timeout=30))
    rows = json.loads(data_file.read_text())["data"] if data_file else []
    inputs = {}
    for name, spec in signature.items():
        values = [v for row in rows[:batch] for v in row.get(name, [])] if rows else None
        inputs[name] = tensor(spec, batch, values or None)
    return predict_request(model, inputs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen_run", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--budget-ms", type=float, required=True, help="the p99 bound LoadGen checks")
    parser.add_argument("--start-qps", type=float, required=True, help="where the peak search starts")
    parser.add_argument("--min-duration-ms", type=int, required=True, help="MLPerf's production value: 600000")
    parser.add_argument("--min-queries", type=int, default=459, help="least queries a run needs")
    parser.add_argument("--input-data", type=Path, help="perf_analyzer --input-data JSON (default: zeros)")
    parser.add_argument("--seed", type=int, default=0, help="LoadGen's schedule seed (0: its default)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        import grpc
        import mlperf_loadgen as lg
    except ImportError as err:
        print(f"loadgen: needs grpcio and mlcommons-loadgen in {sys.executable}: {err}", file=sys.stderr)
        return 3

    channel = grpc.insecure_channel(f"localhost:{args.port}", options=[("grpc.max_receive_message_length", -1)])
    request = _inputs(channel, args.model, args.batch, args.input_data)
    predict = channel.unary_unary(PREDICT)
    lock = threading.Lock()
    issue_ns: list[int] = []
    failures: list[str] = []

    def done(query_id: int) -> Callable[[object], None]:
        def complete(future: object) -> None:
            if future.exception() is not None:  # type: ignore[attr-defined]
                with lock:
                    failures.append(str(future.exception()).splitlines()[0][:200])  # type: ignore[attr-defined]
            lg.QuerySamplesComplete([lg.QuerySampleResponse(query_id, 0, 0)])

        return complete

    def issue(samples: list) -> None:
        for sample in samples:
            began = time.perf_counter_ns()
            predict.future(request, timeout=max(60.0, args.budget_ms / 100)).add_done_callback(done(sample.id))
            with lock:
                issue_ns.append(time.perf_counter_ns() - began)

    sut = lg.ConstructSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(1024, 1024, lambda _: None, lambda _: None)
    phases: dict[str, dict] = {}
    qps = args.start_qps
    try:
        for phase, mode in (
            ("find-peak", lg.TestMode.FindPeakPerformance),
            ("performance", lg.TestMode.PerformanceOnly),
        ):
            settings = lg.TestSettings()
            settings.scenario = lg.TestScenario.Server
            settings.mode = mode
            settings.server_target_qps = qps
            settings.server_target_latency_ns = int(args.budget_ms * 1e6)
            settings.server_target_latency_percentile = 0.99
            settings.min_duration_ms = args.min_duration_ms
            settings.min_query_count = args.min_queries
            if args.seed:
                settings.schedule_rng_seed = args.seed
            out = args.out / phase
            out.mkdir(parents=True, exist_ok=True)
            log = lg.LogSettings()
            log.log_output.outdir = str(out)
            log.log_output.copy_summary_to_stdout = False
            issue_ns.clear()
            failures.clear()
            began = time.monotonic()
            if phase == "performance":  # its bounds, in perf_analyzer's words: bench.instance reads them
                print(f"Request Rate: {qps:g} inference requests per seconds", flush=True)
            lg.StartTestWithLogSettings(sut, qsl, settings, log)
            if phase == "performance":
                print("  Client: LoadGen's performance run is over", flush=True)
            summary = read_summary((out / SUMMARY_NAME).read_text()) if (out / SUMMARY_NAME).is_file() else {}
            lags = sorted(issue_ns)
            phases[phase] = {
                **summary,
                "settings": {
                    "scenario": "Server",
                    "mode": phase,
                    "server_target_qps": qps,
                    "server_target_latency_ns": settings.server_target_latency_ns,
                    "server_target_latency_percentile": 0.99,
                    "min_duration_ms": args.min_duration_ms,
                    "min_query_count": args.min_queries,
                },
                "seconds": round(time.monotonic() - began, 3),
                "queries": len(lags),
                "issue_lag_p99_us": round(lags[int(0.99 * (len(lags) - 1))] / 1000, 1) if lags else None,
                "issue_lag_max_us": round(lags[-1] / 1000, 1) if lags else None,
                "failed_requests": len(failures),
                "first_failure": failures[0] if failures else None,
            }
            # the peak LoadGen found is the rate its find-peak run settled on
            qps = float(summary.get("target_qps") or summary.get("scheduled_qps") or qps)
    finally:
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)
        channel.close()
    (args.out / RESULT_NAME).write_text(json.dumps({"phases": phases, "peak_qps": qps}, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
