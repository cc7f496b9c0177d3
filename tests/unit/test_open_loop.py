"""Open-loop capacity (`load: poisson`): the rate search's decisions on a queue whose p99 queueing theory
gives, when a level counts as sent on schedule, the sweep keys, and the collector's side (perf.csv of
request rates, the store's schema 2, ranking only like with like). The real perf_analyzer runs the
search against the known-curve server in tests/models/test_open_loop_runner.py."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import duckdb
import pytest

from bench.capacity import Outcome, schedule_problem, search_rate
from bench.capacity_run import loadgen_search
from bench.controller.sweeps import SweepError, configs_for, load_definition
from bench.loadgen_run import read_summary
from bench.records import MIN_REQUESTS, CapacitySearch, ConfigRecord, Level, RecordError, rate_tolerance
from collect.capacity import capacity_per_host, machine_capacity
from collect.ingest import ingest
from collect.perfcsv import PerfCsvError, parse_perf_csv
from collect.results import ResultError, load_instance
from collect.store import MIGRATIONS, Store
from sim.known_curve.queueing import erlang_c, mdc_p99, mmc_p99, open_loop_capacity, simulated_p99
from tests.conftest import REPO

pytestmark = pytest.mark.unit

TREE = REPO / "tests" / "fixtures" / "tree_open_loop"
SERVERS, MEAN_S = 4, 0.020


def test_erlang_c_and_the_mmc_p99_agree_with_their_definitions() -> None:
    assert erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: the wait probability is the utilisation
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)  # a textbook value: c = 2, a = 1
    # M/M/1: the response time is exponential of rate mu - lambda, so its p99 is ln(100) / (mu - lambda)
    assert mmc_p99(30, 1, MEAN_S) == pytest.approx(4.60517 / 20, rel=1e-4)
    assert mmc_p99(200, SERVERS, MEAN_S) == float("inf")  # saturated


@pytest.mark.parametrize("rate", [60.0, 150.0])
def test_the_closed_form_and_the_fcfs_recursion_agree(rate: float) -> None:
    """The recursion that gives M/D/c its p99 gives M/M/c's closed form: it is right."""
    simulated = simulated_p99(rate, SERVERS, lambda rng: rng.expovariate(1 / MEAN_S), requests=200_000)
    assert simulated == pytest.approx(mmc_p99(rate, SERVERS, MEAN_S), rel=0.03)


def test_constant_service_queues_less_than_exponential() -> None:
    assert mdc_p99(150, SERVERS, MEAN_S, requests=100_000) < mmc_p99(150, SERVERS, MEAN_S)
    assert open_loop_capacity(SERVERS, MEAN_S, 0.1, "exponential") == pytest.approx(121, rel=0.01)
    assert open_loop_capacity(SERVERS, MEAN_S, 0.010, "exponential") == 0.0  # an idle server misses 10 ms


def queue(budget_s: float, late_from: float | None = None, seed: int = 1):
    """MEASURE for search_rate: an M/M/4 whose p99 is the closed form, 3 % of noise; past LATE_FROM the
    client cannot keep up (as perf_analyzer with too few threads says)."""
    rng = random.Random(seed)
    asked: list[float] = []

    def measure(rate: float) -> Level:
        asked.append(rate)
        p99 = mmc_p99(rate, SERVERS, MEAN_S) * (1 + rng.uniform(-0.03, 0.03))
        late = late_from is not None and rate >= late_from
        return Level(
            None,
            rate * (0.9 if late else 1.0),
            MEAN_S * 1e6,
            min(p99, 3600.0) * 1e6,
            int(rate * 10),
            3,
            rate=rate,
            sent_rate=rate * (0.9 if late else 1.0),
            delayed_percent=40.0 if late else 0.0,
            threads=64,
            late="40 % of requests delayed with 64 threads" if late else None,
        )

    return measure, asked


def test_the_rate_search_finds_queueing_theorys_capacity_in_few_levels() -> None:
    measure, asked = queue(0.1)
    outcome = search_rate(measure, 100, min_gain_percent=5, start_rate=8, max_rate=4096)
    truth = open_loop_capacity(SERVERS, MEAN_S, 0.1, "exponential")
    record = outcome.record()
    assert record.valid and record.load == "poisson", record.reason
    assert record.capacity == pytest.approx(truth, rel=0.08)
    assert asked[:5] == [8, 16, 32, 64, 128] and len(asked) <= 10, asked
    assert record.unmeasured_rates == [] and record.unmeasured == []
    assert [m.rate for m in record.curve] == sorted(asked)
    assert CapacitySearch.from_json(record.to_json()) == record  # the record round-trips


def test_a_level_the_client_could_not_send_is_never_the_capacity() -> None:
    measure, _ = queue(0.1, late_from=64)
    outcome = search_rate(measure, 100, min_gain_percent=5, start_rate=8, max_rate=4096)
    record = outcome.record()
    assert all(m.rate < 64 for m in outcome.within())
    assert not record.valid and record.capacity == pytest.approx(outcome.best.throughput)
    assert record.reason.startswith("client-bound: rate 64/s: 40 % of requests delayed with 64 threads")
    assert "the capacity is at least" in record.reason
    assert "could not be sent on schedule" in record.stopped


def test_a_late_level_over_the_budget_is_over_the_budget_not_client_bound() -> None:
    """Late and over the budget from the first level (tried: a stand-in at 224/s under 12.5 ms): on
    schedule its p99 could only be worse, so the verdict is the budget's, not the client's."""
    late = Level(None, 1700.0, 9e3, 19e3, 2_000, 3, rate=224.0, sent_rate=220.0, delayed_percent=2.6, threads=6,
                 late="2.6 % of requests delayed with 6 threads")  # fmt: skip
    outcome = Outcome(12.5, load="poisson", levels=[late])
    assert outcome.reason == "no level within the budget: rate 224/s has p99 19.0 ms > 12.5 ms"
    within = Outcome(50.0, load="poisson", levels=[late])
    assert within.reason.startswith("client-bound from the first level: rate 224/s: 2.6 % of requests delayed")


def test_sent_on_schedule_means_few_delayed_and_the_rate_asked() -> None:
    level = Level(None, 100.0, 1.0, 1.0, 2_000, 3, rate=100.0, sent_rate=100.0, delayed_percent=0.5, threads=8)
    assert schedule_problem(level) == ""
    assert "2 % of its requests delayed" in schedule_problem(Level(**{**level.__dict__, "delayed_percent": 2.0}))
    # 2,000 Poisson arrivals stray from their rate by chance: 3 sigma is 6.7 %, not 2 %
    assert rate_tolerance(2_000) == pytest.approx(3 / 2_000**0.5) and rate_tolerance(10**6) == 0.02
    assert schedule_problem(Level(**{**level.__dict__, "sent_rate": 95.0})) == ""
    assert "achieved 90.0 requests/s of 100 asked" in schedule_problem(Level(**{**level.__dict__, "sent_rate": 90.0}))
    outcome = Outcome(100.0, load="poisson", levels=[Level(**{**level.__dict__, "sent_rate": 90.0})])
    assert not outcome.record().valid and outcome.reason.startswith("rate 100/s achieved 90.0 requests/s")
    few = Outcome(100.0, load="poisson", levels=[Level(**{**level.__dict__, "requests": 100})])
    assert few.reason == f"too few requests for a p99 at rate 100/s: 100 < {MIN_REQUESTS}"


def test_a_level_is_a_concurrency_or_a_rate_never_both() -> None:
    for level in ({"level": None}, {"level": 2, "rate": 5.0}):
        data = {"level": 1, "throughput": 1.0, "p50_us": 1.0, "p99_us": 1.0, "requests": 1, **level}
        with pytest.raises(RecordError, match="a concurrency or a request rate, exactly one"):
            Level.from_json(data)


def test_the_open_loop_profile_makes_rate_searches_and_leaves_closed_ids_alone(tmp_path: Path) -> None:
    (config,) = configs_for(["dlrm"], profile="open-loop")
    record = config.as_record()
    assert config.config_id.startswith("dlrm-entire-b256-cap60ms-poisson-")
    assert (record["load"], record["start_rate"], record["max_rate"], record["window_requests"]) == (
        "poisson",
        1.0,
        65536.0,
        153,
    )
    assert "max_concurrency" not in record and record["concurrency_range"] == "1:1"
    assert ConfigRecord.from_json(record).open_loop
    # closed-loop ids are what they were before open loops existed (pinned by their results)
    assert configs_for(["dlrm"], profile="capacity")[0].config_id == "dlrm-entire-b256-cap300ms-a396733615"


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"load": "bursty"}, "load must be closed or poisson, not 'bursty'"),
        ({"load": "poisson"}, "load: poisson searches a request rate: it needs search: capacity"),
        ({"client": "mlperf"}, "client: mlperf sends Poisson arrivals: it needs load: poisson"),
        ({"start_rate": 4}, "start_rate only mean something with load: poisson"),
        (
            {"search": "capacity", "p99_budget_ms": 60, "load": "poisson", "request_distribution": "constant"},
            "load: poisson needs request_distribution: poisson",
        ),
        (
            {"search": "capacity", "p99_budget_ms": 60, "load": "poisson", "start_rate": 10, "max_rate": 5},
            "rates must be 0 < start_rate <= max_rate",
        ),
        (
            {"search": "capacity", "p99_budget_ms": 60, "load": "poisson", "max_threads": 0},
            "max_threads must be 1 to 4096",
        ),
        ({"search": "capacity", "p99_budget_ms": 60, "load": "poisson", "max_rate": "fast"}, "max_rate must be a"),
    ],
)
def test_a_wrong_open_loop_key_is_one_line_naming_it(tmp_path: Path, keys: dict, message: str) -> None:
    definition = (REPO / "playbooks" / "sweeps" / "dlrm.yml").read_text()
    (tmp_path / "dlrm.yml").write_text(definition + "".join(f"{k}: {json.dumps(v)}\n" for k, v in keys.items()))
    with pytest.raises(SweepError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        load_definition("dlrm", directory=tmp_path)
    assert "\n" not in str(err.value)


def open_loop_dir(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(TREE, tree, ignore=shutil.ignore_patterns("README.md"))
    (found,) = tree.glob("*/*/*/*/numa0")
    return found


def test_a_perf_csv_of_request_rates_reads_and_a_mismatch_is_named(tmp_path: Path) -> None:
    directory = open_loop_dir(tmp_path)
    points = parse_perf_csv(directory / "perf.csv")
    assert [p.request_rate for p in points] == [32, 64, 96, 112, 120, 124, 128]
    assert {p.concurrency for p in points} == {None}
    result = load_instance(directory, tmp_path / "tree")
    assert result.record.search.load == "poisson" and result.record.search.level.rate == 124
    text = (directory / "perf.csv").read_text()
    (directory / "perf.csv").write_text(text.replace("\n96,", "\n97,"))
    with pytest.raises(ResultError, match="holds other request rates than metadata says"):
        load_instance(directory, tmp_path / "tree")
    (directory / "perf.csv").write_text(text.replace("\n96,", "\n-96,"))
    with pytest.raises(PerfCsvError):
        parse_perf_csv(directory / "perf.csv")


def test_the_store_keeps_the_load_and_ranks_only_like_with_like(tmp_path: Path) -> None:
    """One host with the same class measured both ways: two capacities, never one ranked over the other."""
    directory = open_loop_dir(tmp_path)
    closed = directory.parents[1] / "dlrm-single-b1-cap100ms-closed"
    shutil.copytree(directory.parent, closed)
    meta = json.loads((closed / "numa0" / "metadata.json").read_text())
    curve = [
        {"level": n, "throughput": 47.6 * n, "p50_us": 15e3, "p99_us": 9e4, "requests": 1400, "windows": 3}
        for n in (1, 2, 4)
    ]
    meta["config"] = {k: v for k, v in meta["config"].items() if k not in ("load", "client", "start_rate")}
    meta["config"] |= {"config_id": closed.name, "concurrency_range": "1:64", "max_concurrency": 64}
    meta["config"].pop("max_rate"), meta["config"].pop("max_threads"), meta["config"].pop("window_requests")
    meta |= {"config_id": closed.name, "levels_expected": [1, 2, 4], "levels_reached": [1, 2, 4]}
    meta.pop("rates_reached")
    meta["search"] = {**meta["search"], "curve": curve, "level": curve[-1], "capacity": 190.4}
    meta["search"].pop("load"), meta["search"].pop("unmeasured_rates")
    (closed / "numa0" / "metadata.json").write_text(json.dumps(meta))
    rows = ["Concurrency,Inferences/Second,p50 latency,p90 latency,p95 latency,p99 latency"]
    rows += [f"{c['level']},{c['throughput']},15000,50000,60000,90000" for c in curve]
    (closed / "numa0" / "perf.csv").write_text("\n".join(rows) + "\n")
    with Store(tmp_path / "store.duckdb") as store:
        assert ingest(tmp_path / "tree", store).added == 2
        stored = store.rows("SELECT config_id, load, best_request_rate, best_concurrency FROM instances ORDER BY 1")
        assert stored == [(closed.name, None, None, 4), (directory.parent.name, "poisson", 124.0, None)]
        per_host = capacity_per_host(machine_capacity(store, "2026-12-01", {}, 100.0))
    assert sorted(zip(per_host["load"], per_host["capacity"], strict=True)) == [
        ("closed", pytest.approx(190.4)),
        ("poisson", pytest.approx(123.464)),
    ]
    assert set(per_host["levels"]) == {"numa0@4", "numa0@124/s"}


def test_a_store_of_schema_1_is_upgraded_by_a_write_and_keeps_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "store.duckdb"
    with duckdb.connect(str(db)) as conn:
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("CREATE TABLE recbench_schema (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO recbench_schema VALUES (1)")
        conn.execute(
            "INSERT INTO points VALUES ('r', 'h', 'dlrm', 'c', 'numa0', 1, 10.0, 1.0, 1.0, 1.0, 1.0, NULL, NULL, NULL)"
        )
    with pytest.raises(Exception, match=f"schema version 1, this collector reads {len(MIGRATIONS)}"):
        Store.existing(db)
    directory = open_loop_dir(tmp_path)
    with Store(db) as store:
        assert store.version == len(MIGRATIONS) >= 2
        assert ingest(directory.parents[4], store).added == 1
        kept = "SELECT run_id, concurrency, request_rate FROM points WHERE run_id = 'r' OR request_rate = 32"
        assert sorted(store.rows(kept)) == [("2026-12-01", None, 32.0), ("r", 1, None)]


LOADGEN = REPO / "tests" / "fixtures" / "loadgen"


def test_loadgens_summary_is_read_verdict_reasons_and_figures() -> None:
    summary = read_summary((LOADGEN / "performance_summary.txt").read_text())
    assert summary["result"] == "INVALID" and summary["reasons"] == ["Early stopping not satisfied"]
    assert (
        summary["constraints"]["Min duration satisfied"] and summary["constraints"]["Performance constraints satisfied"]
    )
    assert (summary["scheduled_qps"], summary["completed_qps"], summary["target_qps"]) == (166.73, 164.91, 167.25)
    assert summary["p99_ns"] == 59_670_581 and summary["p50_ns"] == 25_414_709
    assert "Would need to run at least 761 more queries," in summary["early_stopping"]
    assert read_summary("") == {"constraints": {}, "reasons": [], "early_stopping": []}


def loadgen_result(**performance: object) -> dict:
    run = read_summary((LOADGEN / "performance_summary.txt").read_text())
    run |= {"settings": {"server_target_qps": 167.25}, "queries": 835, "issue_lag_p99_us": 635.1, "failed_requests": 0}
    return {"peak_qps": 167.25, "phases": {"performance": run | performance}}


def test_a_loadgen_run_is_a_capacity_only_when_loadgen_says_valid() -> None:
    search, rows = loadgen_search(loadgen_result(), batch=8, budget_ms=60, seconds=70)
    assert (search.load, search.client, search.valid) == ("poisson", "mlperf", False)
    assert search.reason == "LoadGen: INVALID; Early stopping not satisfied"
    assert search.capacity == pytest.approx(164.91 * 8) and search.level.rate == 166.73
    assert search.level.p99_us == pytest.approx(59_670.581) and search.level.requests == 835
    assert rows[0]["Request Rate"] == "166.73" and rows[0]["p99 latency"] == "59670.6"
    assert search.loadgen["peak_qps"] == 167.25  # LoadGen's phases, settings and verdicts are kept
    valid, _ = loadgen_search(loadgen_result(result="VALID", reasons=[]), batch=8, budget_ms=60, seconds=70)
    assert valid.valid and valid.reason == ""
    lagging, _ = loadgen_search(loadgen_result(result="VALID", reasons=[], issue_lag_p99_us=9000.0), 8, 60, 70)
    assert not lagging.valid and lagging.reason == "issuing lagged: p99 9000 us"
    failing, _ = loadgen_search(
        loadgen_result(result="VALID", reasons=[], failed_requests=3, first_failure="x"), 8, 60, 70
    )
    assert failing.reason == "3 requests failed (x)"
    assert CapacitySearch.from_json(valid.to_json()) == valid
