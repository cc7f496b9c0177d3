"""The results contract: one typed record per result file, and the rules every reader applies to them.

Every writer (the sweep and capacity runners, the train stage, the model zoo) builds these records and
writes `to_json()`; every reader (ingest, the store, the capacity queries, the sweep role's filters)
reads with `from_json()`, which checks each field's type and range at the boundary and names the field
that fails (`RecordError`), so one bad file is skipped, never a crash. PerfKitBenchmarker's `Sample`
is the model: typed fields for what recbench reads, and the rest of what a host wrote kept as it was
(`extra`), so a newer writer's additions survive an older reader.

    metadata.json              InstanceRecord  (its `config` a ConfigRecord, its `search` a CapacitySearch)
    knob-search-<mode>.json    KnobSearchRecord
    train/<mode>.json          TrainRecord     (its `trainer`: the record the model zoo's trainer writes)
    train/export.json          ExportRecord    (its `model_card`: the exported version's model card)

The rules, written once: `best_point` (the point that stands for an instance), `machine_capacity` (a
machine is the sum of its instances), `enough_requests` (when a p99 means something). `python -m
bench.records schema` prints the JSON Schema of these files (docs/results-format.schema.json).
Standard library only: it runs on the hosts.
"""

# ruff: noqa: RUF009 - spec() returns a dataclasses.field with its checks attached, not a shared value

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

from bench import facts
from bench.messages import clipped, shown

# Version of every record file; a reader refuses what it does not know. Fields are only ever added
# (optional, with a default), which keeps the version: a record written before a field existed reads.
SCHEMA = 1
STATUSES = ("complete", "partial", "failed")
MODES = ("single", "entire")
SEARCH_KINDS = ("grid", "capacity")
DISTRIBUTIONS = ("constant", "poisson")
INPUT_DATA = ("random", "real")
# How the load arrives: a closed loop of clients that each wait for their answer (perf_analyzer's
# concurrency mode), or Poisson arrivals that never wait (its request-rate mode; MLPerf's Server
# scenario). Who sends it: perf_analyzer, or MLPerf LoadGen through recbench's gRPC SUT.
LOADS = ("closed", "poisson")
CLIENTS = ("perf_analyzer", "mlperf")
# A name that becomes a path component (model, config id, instance): bench.facts' rule; a host is an
# inventory name (a DNS name's length); a run id bench.facts' run id rule.
NAME_PATTERN = facts.NAME_PATTERN
HOST_PATTERN = facts.HOST_PATTERN
RUN_ID_PATTERN = facts.RUN_ID_PATTERN
# Upper bounds of what a sweep may ask and a result may say (perf_analyzer runs one thread a
# concurrent request; no serving batch of these models reaches 64 Ki).
MAX_BATCH_SIZE = 65_536
MAX_CONCURRENCY = 1_024
MAX_LEVELS = 256  # levels of one concurrency range
MAX_THREADS = 4_096  # intra / inter op threads
MAX_RATE = 1_000_000.0  # requests per second an open-loop search may ask
MAX_CLIENT_THREADS = 4_096  # perf_analyzer's --max-threads in an open loop
# An open-loop level is sent on schedule when at most this share of its requests left late, and the
# rate it achieved is within this share of the rate it asked (or within the Poisson sampling noise of
# its request count, when that is wider: bench.records.rate_tolerance).
MAX_DELAYED_PERCENT = 1.0
RATE_TOLERANCE = 0.02
# The largest metadata.json a reader opens (a real one is a few KiB; attempts' commands dominate).
MAX_RECORD_BYTES = 4 * 1024 * 1024
# MLPerf LoadGen's early-stopping bound: with fewer requests than this at a level, no request allowed
# over it, a 99th percentile is not bounded at 99 % confidence (n >= ln(1 - 0.99) / ln(0.99)).
CONFIDENCE, PERCENTILE = 0.99, 0.99
MIN_REQUESTS = math.ceil(math.log(1 - CONFIDENCE) / math.log(PERCENTILE))  # 459
_RANGE = re.compile(r"([0-9]{1,7}):([0-9]{1,7})(?::([0-9]{1,7}))?")


class RecordError(ValueError):
    """A record fails the contract; the message names the field (`config.batch_size: ...`)."""


def spec(
    default: Any = dataclasses.MISSING,
    *,
    lo: float | None = None,
    hi: float | None = None,
    pattern: str | None = None,
    choices: Sequence[Any] | None = None,
    doc: str = "",
    compare: bool = True,
) -> Any:
    """A field of a record with its checks: LO..HI for numbers (and each number of a list), PATTERN for
    text, CHOICES for either. DOC goes into the JSON Schema. COMPARE: False leaves the field out of
    equality and hashing (a measurement's evidence is not what makes two levels the same)."""
    meta = {"lo": lo, "hi": hi, "pattern": pattern, "choices": tuple(choices) if choices else None, "doc": doc}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=meta, compare=compare)
    return field(default=default, metadata=meta, compare=compare)


def parse_range(text: str) -> tuple[int, int, int]:
    """`start:end[:step]` of perf_analyzer's --concurrency-range, checked: ASCII digits only, at most
    MAX_CONCURRENCY and MAX_LEVELS levels."""
    match = _RANGE.fullmatch(text) if isinstance(text, str) and text.isascii() else None
    if not match:
        raise ValueError(f"concurrency range {shown(text)} is not start:end[:step]")
    start, end, step = int(match.group(1)), int(match.group(2)), int(match.group(3) or 1)
    if start < 1 or end < start or step < 1:
        raise ValueError(f"concurrency range {shown(text)} needs 1 <= start <= end and step >= 1")
    if end > MAX_CONCURRENCY:
        raise ValueError(f"concurrency range {shown(text)} goes past {MAX_CONCURRENCY}, the most recbench measures")
    if (end - start) // step + 1 > MAX_LEVELS:
        raise ValueError(f"concurrency range {shown(text)} has more than {MAX_LEVELS} levels")
    return start, end, step


def levels_of(concurrency_range: str) -> list[int]:
    start, end, step = parse_range(concurrency_range)
    return list(range(start, end + 1, step))


R = TypeVar("R", bound="Record")


class Record:
    """Base of the records: typed dataclass fields, checked in `from_json`, written by `to_json`.
    Open records (OpenRecord) keep the keys they do not type in `extra` and write them back as they were."""

    # Fields written even when None (the rest are left out when None: a key a writer never had).
    ALWAYS: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def _typed(cls) -> list[tuple[dataclasses.Field, Any]]:
        hints = typing.get_type_hints(cls)
        return [(f, hints[f.name]) for f in dataclasses.fields(cls) if f.name != "extra"]  # type: ignore[arg-type]

    @classmethod
    def from_json(cls: type[R], data: object, where: str = "") -> R:
        """The record DATA holds, checked; RecordError names the first field that fails."""
        if not isinstance(data, dict):
            raise RecordError(f"{where or cls.__name__}: must be a JSON object, not {type(data).__name__}")
        values: dict[str, Any] = {}
        # the version first: a record of another schema is named as such, not by its first odd field
        for f, hint in sorted(cls._typed(), key=lambda typed: typed[0].name != "schema"):
            name = f"{where}.{f.name}" if where else f.name
            if f.name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise RecordError(f"{name}: missing")
                continue
            values[f.name] = _check(data[f.name], hint, name, f.metadata)
        if issubclass(cls, OpenRecord):
            typed = {f.name for f, _ in cls._typed()}
            # untyped, but still JSON the store can read: finite numbers, valid Unicode
            values["extra"] = {
                _key(k, where or cls.__name__): _json_value(v, f"{where}.{_label(k)}" if where else _label(k))
                for k, v in data.items()
                if k not in typed
            }
        record = cls(**values)
        record.check(where)
        return record

    def check(self, where: str) -> None:
        """Rules across fields (a record type adds its own); raise RecordError."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f, _ in self._typed():
            value = getattr(self, f.name)
            if value is None and f.name not in self.ALWAYS:
                continue
            out[f.name] = _plain(value)
        if isinstance(self, OpenRecord):
            out = {**self.extra, **out}
        return out

    def to_text(self) -> str:
        """The record as its file holds it: sorted keys, strict JSON (no NaN or infinity)."""
        return json.dumps(self.to_json(), indent=2, sort_keys=True, allow_nan=False) + "\n"


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _union_args(hint: Any) -> tuple[Any, ...] | None:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return None


def _check(value: Any, hint: Any, name: str, meta: Mapping[str, Any]) -> Any:
    """VALUE as HINT says, range-checked; RecordError otherwise."""
    union = _union_args(hint)
    if union is not None:
        if value is None and type(None) in union:
            return None
        options = [a for a in union if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _check(value, option, name, meta)
            except RecordError as err:
                errors.append(str(err))
        raise RecordError(errors[0])
    origin = typing.get_origin(hint)
    if origin is list:
        if not isinstance(value, list):
            raise RecordError(f"{name}: must be a list, not {shown(value)}")
        (item,) = typing.get_args(hint)
        return [_check(v, item, f"{name}[{i}]", meta) for i, v in enumerate(value)]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise RecordError(f"{name}: must be a JSON object, not {shown(value)}")
        item = typing.get_args(hint)[1] if typing.get_args(hint) else Any
        return {_key(k, name): _check(v, item, f"{name}.{_label(k)}", {}) for k, v in value.items()}
    if isinstance(hint, type) and issubclass(hint, Record):
        return hint.from_json(value, name)
    if hint is Any or hint is object:
        return _json_value(value, name)
    if hint is bool:
        if not isinstance(value, bool):
            raise RecordError(f"{name}: must be true or false, not {shown(value)}")
    elif hint is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise RecordError(f"{name}: must be an integer, not {shown(value)}")
    elif hint is float:
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            raise RecordError(f"{name}: must be a finite number, not {shown(value)}")
        value = float(value)
    elif hint is str:
        if not isinstance(value, str):
            raise RecordError(f"{name}: must be text, not {shown(value)}")
        _encodable(value, name)
    else:  # pragma: no cover - a record declared a type this module does not know
        raise TypeError(f"{name}: unsupported field type {hint!r}")
    lo, hi = meta.get("lo"), meta.get("hi")
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and ((lo is not None and value < lo) or (hi is not None and value > hi)):
        low, high = _plain_number(lo), _plain_number(hi)
        bounds = f"{low}..{high}" if lo is not None and hi is not None else f">= {low}" if lo is not None else ""
        raise RecordError(f"{name}: must be in {bounds or f'<= {high}'}, not {shown(value)}")
    if meta.get("pattern") and isinstance(value, str) and not re.fullmatch(meta["pattern"], value):
        raise RecordError(f"{name}: {shown(value)} does not match {meta['pattern']}")
    if meta.get("choices") and value not in meta["choices"]:
        raise RecordError(f"{name}: must be one of {', '.join(map(str, meta['choices']))}, not {shown(value)}")
    return value


def _plain_number(value: float | None) -> str:
    return "" if value is None else str(int(value)) if float(value).is_integer() else f"{value:g}"


def _label(key: object) -> str:
    """A key as a field name in a message, bounded."""
    return clipped(str(key), 40)


def _key(key: object, name: str) -> str:
    """A mapping's key: text the store can read, like every value."""
    _encodable(str(key), f"{name} (a key)")
    return str(key)


def _encodable(text: str, name: str) -> None:
    """Text the store's JSON functions can read: UTF-8 encodable (no lone surrogate escapes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise RecordError(f"{name}: holds text that is not valid Unicode (a lone surrogate)") from None


def _json_value(value: Any, name: str, depth: int = 0) -> Any:
    """An untyped value (host facts, versions, hyperparameters): any JSON, but finite numbers and
    valid Unicode only, and not nested without end."""
    if depth > 32:
        raise RecordError(f"{name}: nested deeper than 32 levels")
    if isinstance(value, float) and not math.isfinite(value):
        raise RecordError(f"{name}: must be a finite number, not {shown(value)}")
    if isinstance(value, str):
        _encodable(value, name)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _json_value(item, f"{name}[{i}]", depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            _json_value(item, f"{name}.{_label(_key(key, name))}", depth + 1)
    return value


# ------------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class OpenRecord(Record):
    """A record that keeps the keys it does not type (`extra`: versions, host facts, a newer writer's
    additions) and writes them back as they were, still strict JSON."""

    extra: dict[str, Any] = field(default_factory=dict, compare=False, kw_only=True)


@dataclass(frozen=True)
class RunRecord(OpenRecord):
    """A record of one model on one host in one run: the names its path is made of."""

    run_id: str = spec(pattern=RUN_ID_PATTERN)
    host: str = spec(pattern=HOST_PATTERN)
    model: str = spec(pattern=NAME_PATTERN)


# A level's verdict (bench.records.limit_of): the server or the client is CPU-bound when it used at least
# this share of the CPUs it is bound to; under CONTENTION_SHARE the server had CPU to spare when the
# latency broke (queueing, waiting, or contention elsewhere); a level whose bound CPUs' clock fell by
# more than FREQUENCY_DROP_PERCENT while it ran is flagged.
SATURATED_SHARE = 0.9
CONTENTION_SHARE = 0.7
FREQUENCY_DROP_PERCENT = 10.0
LIMITS = ("latency", "server", "client", "unknown")


@dataclass(frozen=True)
class Evidence(Record):
    """What the host did while one level was measured (bench.evidence): CPU time of the server and the
    client, the host per NUMA node, the clock, memory, context switches and energy, over the level's
    span (its first perf_analyzer line to its result). What could not be measured is in `unavailable`,
    with why: never a guess."""

    level: int | None = spec(None, lo=1, hi=MAX_CONCURRENCY, doc="grid: the concurrency the evidence is of")
    rate: float | None = spec(None, lo=0, hi=MAX_RATE, doc="grid: the request rate the evidence is of")
    seconds: float = spec(0.0, lo=0, doc="span of the level's measurement")
    samples: int = spec(0, lo=0, doc="readings taken over the span")
    server_cores: float | None = spec(None, lo=0, doc="server CPU time / span: cores it used")
    server_cpus: int | None = spec(None, lo=1, doc="CPUs the server is bound to")
    server_share: float | None = spec(None, lo=0, doc="server cores used / its CPUs")
    server_source: str = spec("", doc="where the server's CPU time was read (its unit's cgroup, or its processes)")
    client_cores: float | None = spec(None, lo=0, doc="perf_analyzer's CPU time / span (its process tree)")
    client_cpus: int | None = spec(None, lo=1, doc="CPUs the client is bound to")
    client_share: float | None = spec(None, lo=0, doc="client cores used / its CPUs")
    host_cores: float | None = spec(None, lo=0, doc="busy cores of the whole host (/proc/stat)")
    host_cpus: int | None = spec(None, lo=1, doc="CPUs of the host")
    nodes: dict[str, float] = spec({}, doc="NUMA node -> busy share of its CPUs (/proc/stat)")
    frequency_mhz: float | None = spec(None, lo=0, doc="mean clock of the server's CPUs (cpufreq)")
    frequency_min_mhz: float | None = spec(None, lo=0, doc="lowest reading of that mean during the level")
    frequency_max_mhz: float | None = spec(None, lo=0, doc="highest reading of that mean during the level")
    frequency_drop_percent: float | None = spec(
        None, lo=0, hi=100, doc="largest fall of that mean from a reading before"
    )
    server_rss_mb: float | None = spec(None, lo=0, doc="largest resident memory of the server's processes")
    server_switches_per_s: float | None = spec(None, lo=0, doc="context switches of the server's threads")
    server_busiest_thread: float | None = spec(None, lo=0, doc="share of one core its busiest thread used")
    client_switches_per_s: float | None = spec(None, lo=0, doc="context switches of the client's threads")
    host_switches_per_s: float | None = spec(None, lo=0, doc="context switches of the whole host")
    watts: float | None = spec(None, lo=0, doc="average power over the level")
    meter_shared_by: int | None = spec(None, lo=1, doc="instances measured at once under the one meter")
    joules: float | None = spec(None, lo=0, doc="energy over the level")
    energy_source: str = spec("", doc="rapl or ipmi, with the domains read")
    energy_scope: str = spec("", doc="what the meter covers (sockets and DRAM, or the whole system)")
    sampler_cpu_s: float | None = spec(None, lo=0, doc="CPU time the sampling took over its perf_analyzer run")
    unavailable: dict[str, str] = spec({}, doc="figure -> why it could not be measured")


@dataclass(frozen=True)
class Verdict(Record):
    """What limited a capacity or a best point (bench.records.limit_of)."""

    limit: str = spec(choices=LIMITS, doc="latency (the budget broke, no CPU saturated), server, client, unknown")
    why: str = spec("", doc="the figures the verdict rests on")
    throttled: bool = spec(False, doc="the server's CPUs' clock fell more than 10 % during the level")


@dataclass(frozen=True)
class Level(Record):
    """One measured level of a capacity search: what perf_analyzer reported for it. A closed loop's
    level is its concurrency; an open loop's its request rate (`rate`), with how well it was sent."""

    ALWAYS: ClassVar[tuple[str, ...]] = ("level",)

    level: int | None = spec(lo=1, hi=MAX_CONCURRENCY, doc="concurrent requests (null: an open-loop level)")
    throughput: float = spec(lo=0, doc="inferences per second")
    p50_us: float = spec(lo=0, doc="median latency, microseconds")
    p99_us: float = spec(lo=0, doc="99th percentile latency, microseconds")
    requests: int = spec(lo=0, doc="requests in the stable windows the numbers come from")
    windows: int = spec(0, lo=0, doc="measurement windows perf_analyzer took")
    rate: float | None = spec(None, lo=0, hi=MAX_RATE, doc="open loop: requests per second asked")
    sent_rate: float | None = spec(None, lo=0, doc="open loop: requests per second achieved")
    delayed_percent: float | None = spec(None, lo=0, hi=100, doc="open loop: share of requests sent late")
    threads: int | None = spec(None, lo=1, hi=MAX_CLIENT_THREADS, doc="open loop: client threads sending")
    late: str | None = spec(None, doc="open loop: why the level was not sent on schedule (client-bound)")
    evidence: Evidence | None = spec(None, doc="what the host did while the level was measured", compare=False)

    @property
    def order(self) -> float:
        """Where the level sits on its axis (concurrency or request rate)."""
        return float(self.rate if self.level is None else self.level)

    def check(self, where: str) -> None:
        if (self.level is None) == (self.rate is None):
            raise RecordError(f"{where or 'level'}: has a concurrency or a request rate, exactly one")


@dataclass(frozen=True)
class CapacitySearch(OpenRecord):
    """`search` of a capacity search's metadata.json: the curve it measured and its capacity."""

    ALWAYS: ClassVar[tuple[str, ...]] = ("capacity", "level")

    kind: str = spec(choices=("capacity",))
    valid: bool = spec(doc="the capacity can be trusted (reason says why not)")
    reason: str = spec("", doc="why the capacity is invalid; empty when valid")
    p99_budget_ms: float | None = spec(None, lo=0, doc="the budget searched under (absent: a never-ready server, old)")
    capacity: float | None = spec(None, lo=0, doc="best throughput within the budget, inferences per second")
    level: Level | None = spec(None, doc="the level of the capacity")
    curve: list[Level] = spec([], doc="every level measured, by level")
    unmeasured: list[int] = spec([], lo=1, hi=MAX_CONCURRENCY, doc="levels perf_analyzer could not stabilise")
    unmeasured_rates: list[float] | None = spec(None, lo=0, hi=MAX_RATE, doc="open loop: rates not stabilised")
    windows: int = spec(0, lo=0, doc="measurement windows of the whole search")
    stopped: str = spec("", doc="why the search stopped growing")
    min_requests: int = spec(MIN_REQUESTS, lo=0, doc="requests a level needs for its p99 to be valid")
    seconds: float | None = spec(None, lo=0, doc="time the search took")
    load: str | None = spec(None, choices=LOADS, doc="how the load arrived (absent: closed)")
    client: str | None = spec(None, choices=CLIENTS, doc="what sent it (absent: perf_analyzer)")
    loadgen: dict[str, Any] | None = spec(None, doc="client mlperf: LoadGen's phases, settings, verdicts, logs")
    verdict: Verdict | None = spec(None, doc="what limited the capacity (absent: written before evidence)")

    def check(self, where: str) -> None:
        if self.valid and (self.capacity is None or self.level is None):
            raise RecordError(f"{where or 'search'}: valid without a capacity and its level")


@dataclass(frozen=True)
class ConfigRecord(OpenRecord):
    """`config` of metadata.json: the knobs of one config (bench.controller.sweeps makes them)."""

    config_id: str = spec(pattern=NAME_PATTERN)
    model: str = spec(pattern=NAME_PATTERN)
    mode: str = spec(choices=MODES)
    concurrency_range: str = spec(doc="perf_analyzer's start:end[:step]")
    batch_size: int = spec(lo=1, hi=MAX_BATCH_SIZE)
    intra: int = spec(lo=0, hi=MAX_THREADS, doc="0: TensorFlow decides")
    inter: int = spec(lo=0, hi=MAX_THREADS, doc="0: TensorFlow decides")
    xla: bool = spec()
    onednn: bool = spec()
    measurement_interval_ms: int = spec(lo=1, hi=3_600_000)
    stability_percentage: int = spec(lo=1, hi=100)
    max_trials: int = spec(lo=1, hi=1_000)
    latency_threshold_ms: int = spec(lo=1, hi=3_600_000)
    percentile: int = spec(lo=1, hi=99)
    request_distribution: str = spec(choices=DISTRIBUTIONS)
    input_data: str = spec(choices=INPUT_DATA)
    search: str | None = spec(None, choices=SEARCH_KINDS, doc="absent: grid")
    p99_budget_ms: float | None = spec(None, lo=0)
    min_gain_percent: float | None = spec(None, lo=0, hi=1_000)
    max_concurrency: int | None = spec(None, lo=1, hi=MAX_CONCURRENCY)
    perf_analyzer_runs: int | None = spec(None, lo=1)
    knob_group: str | None = spec(None, pattern=r"^$|" + NAME_PATTERN)
    knob_budget: int | None = spec(None, lo=1, hi=10_000)
    instances_per_node: int | None = spec(None, lo=1, hi=10, doc="absent: 1")
    load: str | None = spec(None, choices=LOADS, doc="absent: closed")
    client: str | None = spec(None, choices=CLIENTS, doc="absent: perf_analyzer")
    start_rate: float | None = spec(None, lo=0, hi=MAX_RATE, doc="open loop: the first rate searched, requests/s")
    max_rate: float | None = spec(None, lo=0, hi=MAX_RATE, doc="open loop: the highest rate searched, requests/s")
    max_threads: int | None = spec(None, lo=1, hi=MAX_CLIENT_THREADS, doc="open loop: most client threads")
    window_requests: int | None = spec(None, lo=1, hi=10_000_000, doc="open loop: requests a window holds at least")
    loadgen_min_duration_ms: int | None = spec(None, lo=1, hi=86_400_000, doc="client mlperf: LoadGen's run")
    loadgen_min_queries: int | None = spec(None, lo=1, hi=100_000_000, doc="client mlperf: least queries a run")

    def check(self, where: str) -> None:
        try:
            parse_range(self.concurrency_range)
        except ValueError as err:
            raise RecordError(f"{where or 'config'}.concurrency_range: {err}") from None
        if self.search == "capacity" and not self.p99_budget_ms:
            raise RecordError(f"{where or 'config'}.p99_budget_ms: a capacity search needs a positive budget")
        if self.open_loop and not (self.is_capacity and self.start_rate and self.max_rate):
            raise RecordError(f"{where or 'config'}.load: an open loop is a capacity search with start and max rates")
        if self.client == "mlperf" and not self.open_loop:
            raise RecordError(f"{where or 'config'}.client: MLPerf LoadGen sends Poisson arrivals (load: poisson)")

    @property
    def is_capacity(self) -> bool:
        return self.search == "capacity"

    @property
    def open_loop(self) -> bool:
        return self.load == "poisson"


@dataclass(frozen=True)
class InstanceSpec(OpenRecord):
    """`instance` of metadata.json: one server instance and where its client ran."""

    name: str = spec(pattern=NAME_PATTERN)
    port: int | None = spec(None, lo=1, hi=65_535)
    numa_node: int | None = spec(None, lo=0, hi=1_023)


@dataclass(frozen=True)
class Attempt(OpenRecord):
    """One perf_analyzer run of an instance."""

    attempt: int = spec(lo=1)
    exit_code: int | None = spec(None)
    timed_out: bool = spec(False)
    seconds: float = spec(0.0, lo=0)
    measurement_interval_ms: int | None = spec(None, lo=1)
    levels_asked: list[int] = spec([], lo=1, hi=MAX_CONCURRENCY)
    levels_reached: list[int] = spec([], lo=1, hi=MAX_CONCURRENCY)
    last_output_line: str = spec("")
    rate_asked: float | None = spec(None, lo=0, hi=MAX_RATE, doc="open loop: requests per second asked")
    max_threads: int | None = spec(None, lo=1, hi=MAX_CLIENT_THREADS, doc="open loop: client threads")


@dataclass(frozen=True)
class InstanceRecord(RunRecord):
    """metadata.json: one instance's result (its CSV beside it holds the points)."""

    config_id: str = spec(pattern=NAME_PATTERN)
    config: ConfigRecord = spec()
    instance: InstanceSpec | str = spec(doc="the instance (older records: its name)")
    status: str = spec(choices=STATUSES)
    levels_expected: list[int] = spec(lo=1, hi=MAX_CONCURRENCY)
    levels_reached: list[int] = spec(lo=1, hi=MAX_CONCURRENCY)
    levels_failed: list[int] = spec(lo=1, hi=MAX_CONCURRENCY)
    rates_reached: list[float] | None = spec(None, lo=0, hi=MAX_RATE, doc="open loop: rates in perf.csv")
    schema: int = spec(SCHEMA, choices=(SCHEMA,))
    attempts: list[Attempt] = spec([])
    started_at: str | None = spec(None)
    finished_at: str | None = spec(None)
    search: CapacitySearch | None = spec(None, doc="what a capacity search found")
    server_error: str | None = spec(None, doc="why the servers never became ready")
    host_facts: dict[str, Any] | None = spec(None, doc="the host's fact when the instance was recorded")
    host_facts_start: dict[str, Any] | None = spec(None, doc="the host's fact when the measurement began")
    versions: dict[str, Any] | None = spec(None, doc="TensorFlow, TF-Serving and perf_analyzer versions")
    evidence: list[Evidence] | None = spec(None, doc="grid: what the host did at each level measured")

    @property
    def instance_name(self) -> str:
        return self.instance if isinstance(self.instance, str) else self.instance.name

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.run_id, self.host, self.model, self.config_id, self.instance_name)

    def check(self, where: str) -> None:
        if isinstance(self.instance, str) and not re.fullmatch(NAME_PATTERN, self.instance):
            raise RecordError(f"instance: {shown(self.instance)} does not match {NAME_PATTERN}")
        if self.config.config_id != self.config_id or self.config.model != self.model:
            raise RecordError("config: names another config or model than the record")
        for name in ("levels_expected", "levels_reached", "levels_failed", "attempts", "rates_reached", "evidence"):
            if len(getattr(self, name) or []) > MAX_LEVELS:
                raise RecordError(f"{name}: more than {MAX_LEVELS} entries")


@dataclass(frozen=True)
class KnobMeasured(Record):
    config_id: str = spec(pattern=NAME_PATTERN)
    capacity: float | None = spec(lo=0, doc="its valid capacity; null: invalid or failed")

    ALWAYS: ClassVar[tuple[str, ...]] = ("capacity",)


@dataclass(frozen=True)
class KnobSearchRecord(OpenRecord):
    """knob-search-<mode>.json: what a coordinate search over the knobs measured, in order."""

    ALWAYS: ClassVar[tuple[str, ...]] = ("best",)

    knob_search: str = spec(choices=("coordinate",))
    budget_configs: int = spec(lo=0)
    space: int = spec(lo=0, doc="configs in the full product")
    measured: list[KnobMeasured] = spec([])
    best: KnobMeasured | None = spec(None)
    stopped: str = spec("")
    group: str = spec("", pattern=r"^$|" + NAME_PATTERN)


@dataclass(frozen=True)
class TrainerRecord(OpenRecord):
    """The trainer's record (facts.TRAIN_RECORD_NAME): what the model zoo's trainer measured."""

    model: str | None = spec(None, pattern=NAME_PATTERN)
    steps: int | None = spec(None, lo=0)
    batch_size: int | None = spec(None, lo=1, hi=MAX_BATCH_SIZE)
    examples: int | None = spec(None, lo=0)
    seconds: float | None = spec(None, lo=0)
    throughput_examples_per_s: float | None = spec(None, lo=0)
    final_loss: float | None = spec(None, doc="null when training diverged (not a finite number)")
    seed: int | None = spec(None)
    dataset: str | None = spec(None)


@dataclass(frozen=True)
class ModelCard(OpenRecord):
    """The model card (facts.MODEL_CARD_NAME) of an exported SavedModel version (modelzoo.export)."""

    model: str = spec(pattern=NAME_PATTERN)
    version: int = spec(lo=1)
    signature: str | None = spec(None)


@dataclass(frozen=True)
class TrainRecord(RunRecord):
    """train/<mode>.json: one training of a model pinned as MODE says (bench.train_stage)."""

    ALWAYS: ClassVar[tuple[str, ...]] = ("exit_code",)

    mode: str = spec(choices=MODES)
    status: str = spec(choices=("complete", "failed"))
    schema: int = spec(SCHEMA, choices=(SCHEMA,))
    cpus: str = spec("all")
    cpu_note: str = spec("")
    command_args: list[str] = spec([])
    exit_code: int | None = spec(None)
    seconds: float = spec(0.0, lo=0)
    started_at: str | None = spec(None)
    finished_at: str | None = spec(None)
    host_facts: dict[str, Any] = spec({})
    trainer: TrainerRecord | None = spec(None)
    throughput_examples_per_s: float | None = spec(None, lo=0)
    output_tail: list[str] | None = spec(None)


@dataclass(frozen=True)
class ExportRecord(RunRecord):
    """train/export.json: which SavedModel version TF-Serving serves, and where it came from."""

    status: str = spec(choices=("complete", "failed"))
    schema: int = spec(SCHEMA, choices=(SCHEMA,))
    seconds: float | None = spec(None, lo=0)
    version: int | None = spec(None, lo=1)
    path: str | None = spec(None)
    model_card: ModelCard | None = spec(None)
    source: dict[str, Any] | None = spec(None)
    exit_code: int | None = spec(None)
    output_tail: list[str] | None = spec(None)


RECORDS: dict[str, type[Record]] = {
    "metadata.json": InstanceRecord,
    "knob-search-<mode>.json": KnobSearchRecord,
    "train/<mode>.json": TrainRecord,
    "train/export.json": ExportRecord,
    facts.TRAIN_RECORD_NAME: TrainerRecord,
    facts.MODEL_CARD_NAME: ModelCard,
}


def load(kind: type[R], text: str | bytes) -> R:
    """A record from a file's text: strict JSON (no NaN), then the record's checks."""
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as err:
        raise RecordError(f"not JSON: {clipped(str(err))}") from None
    return kind.from_json(data)


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON knows")


# --------------------------------------------------------------------------------------------- rules
class Point(Protocol):
    concurrency: int | None
    throughput: float
    request_rate: float | None


P = TypeVar("P", bound=Point)


def best_point(search: CapacitySearch | None, points: Sequence[P]) -> P | None:
    """The point that stands for an instance in machines, history and twins: its highest throughput
    (the lowest level among equals); for a capacity search, the point of its capacity's level, and none
    when the search is invalid (the levels over the budget are its curve, not its answer)."""
    if search is None:
        return max(points, key=lambda p: (p.throughput, -(p.concurrency or 0)), default=None)
    if not search.valid or search.level is None:
        return None
    level = search.level
    if level.level is None:  # an open loop's level is its rate
        return next((p for p in points if p.request_rate is not None and same_rate(p.request_rate, level.rate)), None)
    return next((p for p in points if p.concurrency == level.level), None)


def evidence_by_order(record: InstanceRecord) -> dict[float, Evidence]:
    """Each measured level's evidence, by its place on its axis (concurrency or request rate): a search's
    curve carries it, a grid lists it."""
    if record.search is not None:
        return {level.order: level.evidence for level in record.search.curve if level.evidence is not None}
    return {float(e.rate if e.level is None else e.level): e for e in record.evidence or [] if e.level or e.rate}


def _percent(share: float | None) -> str:
    return "?" if share is None else f"{100 * share:.0f} %"


def limit_of(
    at: Evidence | None, after: Evidence | None, late: str | None = None, bounded: bool | None = None
) -> Verdict:
    """What limited a capacity (or a grid's best point) AT its level, AFTER being the next level, the one
    that broke the budget (or stopped the growth): the client when it was sent late or its CPUs were
    saturated at either (such a measurement is invalid); the server when its CPUs were, or one of its
    threads used a whole core (a serial stage); else the latency, the server having CPU to spare
    (queueing, waiting, or contention elsewhere below CONTENTION_SHARE) when a level above broke the
    budget (BOUNDED: default, a level AFTER was measured; LoadGen's peak is bounded by its own search).
    Unknown without the server's CPU figures, or when nothing above it was measured and no CPU was
    saturated (the search's range stopped it, not the budget)."""
    seen = [e for e in (at, after) if e is not None]
    throttled = any((e.frequency_drop_percent or 0) > FREQUENCY_DROP_PERCENT for e in seen)
    if late:
        return Verdict("client", f"sent late: {late}", throttled)
    client = max((e.client_share for e in seen if e.client_share is not None), default=None)
    server = max((e.server_share for e in seen if e.server_share is not None), default=None)
    if client is not None and client >= SATURATED_SHARE:
        cpus = next(e.client_cpus for e in seen if e.client_share == client)
        return Verdict("client", f"client at {_percent(client)} of its {cpus} CPU(s)", throttled)
    if server is None:
        why = next((e.unavailable.get("server_cpu", "") for e in seen), "no evidence recorded")
        return Verdict("unknown", f"no server CPU figures: {why}", throttled)
    cpus = next(e.server_cpus for e in seen if e.server_share == server)
    if server >= SATURATED_SHARE:
        return Verdict("server", f"server at {_percent(server)} of its {cpus} CPU(s)", throttled)
    thread = max((e.server_busiest_thread for e in seen if e.server_busiest_thread is not None), default=None)
    if thread is not None and thread >= SATURATED_SHARE:
        # one thread doing all it can while the other CPUs idle: a serial stage (intra/inter op threads,
        # a lock, the gRPC front end) is the limit, not the CPUs
        why = f"a server thread at {_percent(thread)} of a core, the server at {_percent(server)} of its {cpus} CPU(s)"
        return Verdict("server", f"{why}: serial", throttled)
    if not (after is not None if bounded is None else bounded):
        why = (
            f"no level above it was measured (the range stopped it): server at {_percent(server)} of its {cpus} CPU(s)"
        )
        return Verdict("unknown", why, throttled)
    spare = (
        "neither CPU-bound (queueing, waiting or contention elsewhere)"
        if server < CONTENTION_SHARE
        else "the server near saturation"
    )
    why = f"server at {_percent(server)} of its {cpus} CPU(s), client at {_percent(client)}: {spare}"
    return Verdict("latency", why, throttled)


def curve_verdict(curve: Sequence[Level], order: float, bounded: bool | None = None) -> Verdict | None:
    """The verdict of a search's level at ORDER on its CURVE: its evidence and the next level's, and the
    lateness of either (a late level above stopped the growth: the client is to blame). BOUNDED as in
    limit_of (default: a level above was measured). None when no level carries evidence."""
    if not any(m.evidence is not None for m in curve):
        return None
    ranked = sorted(curve, key=lambda m: m.order)
    at = next((m for m in ranked if same_rate(m.order, order)), None)
    after = next((m for m in ranked if m.order > order and not same_rate(m.order, order)), None)
    late = (at.late if at else None) or (after.late if after else None)
    return limit_of(
        at.evidence if at else None,
        after.evidence if after else None,
        late,
        bounded=after is not None if bounded is None else bounded,
    )


def verdict_of(record: InstanceRecord, best_order: float | None) -> Verdict | None:
    """The verdict of RECORD's best point (at BEST_ORDER on its axis): its evidence and the next level's.
    None when the record has no best point or no evidence (written before evidence existed)."""
    if best_order is None:
        return None
    if record.search is not None:  # LoadGen's one level is bounded by its own peak search
        return curve_verdict(
            record.search.curve, best_order, bounded=True if record.search.client == "mlperf" else None
        )
    evidence = evidence_by_order(record)
    if not evidence:
        return None
    at = next((e for order, e in evidence.items() if same_rate(order, best_order)), None)
    after = next((evidence[o] for o in sorted(evidence) if o > best_order and not same_rate(o, best_order)), None)
    return limit_of(at, after)


def same_rate(a: float | None, b: float | None) -> bool:
    """Two request rates name the same level (perf_analyzer's CSV prints them rounded)."""
    return a is not None and b is not None and abs(a - b) <= 1e-6 * max(abs(a), abs(b), 1.0) + 5e-3


def rate_tolerance(requests: int) -> float:
    """How far an open-loop level's achieved rate may stray from the asked one and still be on
    schedule: RATE_TOLERANCE, or three standard deviations of a Poisson count of REQUESTS (a schedule
    of Poisson arrivals holds that many by chance: 9 % at 1,000 requests, 2 % needs 22,500)."""
    return max(RATE_TOLERANCE, 3 / math.sqrt(requests)) if requests > 0 else 1.0


def machine_capacity(instances: Iterable[tuple[float | None, bool]]) -> float | None:
    """A machine's capacity from its instances' (capacity, valid): their sum, and none unless every
    instance has a valid capacity (one NUMA node over its budget makes the machine's sum a lie)."""
    total, seen = 0.0, False
    for capacity, valid in instances:
        if not valid or capacity is None:
            return None
        total, seen = total + capacity, True
    return total if seen else None


def enough_requests(requests: float | None) -> bool:
    """A p99 measured over REQUESTS means something (MIN_REQUESTS)."""
    return requests is not None and requests >= MIN_REQUESTS


def search_path(*names: str) -> str:
    """A DuckDB JSON path into metadata.json's `search`, checked against CapacitySearch's fields (and
    Level's below `level`), so the collector's SQL cannot name a field the record does not have."""
    kind: type[Record] = CapacitySearch
    for name in names:
        hints = typing.get_type_hints(kind)
        if name not in hints:
            raise KeyError(f"{kind.__name__} has no field {name!r}")
        inner = [a for a in (_union_args(hints[name]) or (hints[name],)) if isinstance(a, type)]
        kind = next((a for a in inner if issubclass(a, Record)), kind)
    return "$.search." + ".".join(names)


# ------------------------------------------------------------------------------------- JSON Schema
def _schema_of(hint: Any, meta: Mapping[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    union = _union_args(hint)
    if union is not None:
        options = [_schema_of(a, meta, defs) for a in union if a is not type(None)]
        nullable = type(None) in union
        schema = options[0] if len(options) == 1 else {"anyOf": options}
        return {"anyOf": [schema, {"type": "null"}]} if nullable else schema
    origin = typing.get_origin(hint)
    if origin is list:
        return {"type": "array", "items": _schema_of(typing.get_args(hint)[0], meta, defs)}
    if origin is dict or hint is dict:
        return {"type": "object"}
    if isinstance(hint, type) and issubclass(hint, Record):
        _define(hint, defs)
        return {"$ref": f"#/$defs/{hint.__name__}"}
    if hint is Any or hint is object:
        return {}
    schema: dict[str, Any] = {
        bool: {"type": "boolean"},
        int: {"type": "integer"},
        float: {"type": "number"},
        str: {"type": "string"},
    }[hint]
    if meta.get("lo") is not None:
        schema["minimum"] = meta["lo"]
    if meta.get("hi") is not None:
        schema["maximum"] = meta["hi"]
    if meta.get("pattern"):
        schema["pattern"] = meta["pattern"]
    if meta.get("choices"):
        schema["enum"] = list(meta["choices"])
    return schema


def _define(kind: type[Record], defs: dict[str, Any]) -> None:
    if kind.__name__ in defs:
        return
    defs[kind.__name__] = {}  # placeholder: records may refer to themselves
    properties, required = {}, []
    for f, hint in kind._typed():
        prop = _schema_of(hint, f.metadata, defs)
        if f.metadata.get("doc"):
            prop = {"description": f.metadata["doc"], **prop}
        properties[f.name] = prop
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(f.name)
    defs[kind.__name__] = {
        "type": "object",
        "description": (kind.__doc__ or "").strip().splitlines()[0],
        "properties": properties,
        "required": required,
        "additionalProperties": issubclass(kind, OpenRecord),
    }


def json_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of every result file, one definition per record."""
    defs: dict[str, Any] = {}
    files = {}
    for name, kind in RECORDS.items():
        _define(kind, defs)
        files[name] = {"$ref": f"#/$defs/{kind.__name__}"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://recbench.invalid/results-format.schema.json",
        "title": f"recbench result files, schema {SCHEMA}",
        "description": "Generated by `python -m bench.records schema` from bench/records.py; do not edit.",
        "x-files": files,
        "anyOf": list(files.values()),
        "$defs": dict(sorted(defs.items())),
    }


def fields_markdown() -> str:
    """Every record's fields as Markdown tables (docs/results-format.md holds them)."""
    schema = json_schema()
    out = []
    for name, definition in schema["$defs"].items():
        out += [f"### {name}", "", definition["description"], ""]
        out += ["| field | type | required | rule | meaning |", "|---|---|---|---|---|"]
        for key, prop in definition["properties"].items():
            out.append(
                f"| `{key}` | {_type_text(prop)} | {'yes' if key in definition['required'] else ''} "
                f"| {_rule_text(prop)} | {prop.get('description', '')} |"
            )
        if definition["additionalProperties"]:
            out.append("| *other keys* | any JSON | | finite numbers, valid Unicode | kept as written |")
        out.append("")
    return "\n".join(out)


def _inner(prop: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in prop.get("anyOf", [prop]) if o.get("type") != "null"]


def _type_text(prop: dict[str, Any]) -> str:
    kinds = []
    for option in _inner(prop):
        if "$ref" in option:
            kinds.append(option["$ref"].rsplit("/", 1)[-1])
        elif option.get("type") == "array":
            kinds.append(f"list of {_type_text(option['items'])}")
        else:
            kinds.append(option.get("type", "any JSON"))
    nullable = any(o.get("type") == "null" for o in prop.get("anyOf", []))
    return " or ".join(kinds) + (" or null" if nullable else "")


def _rule_text(prop: dict[str, Any]) -> str:
    rules = []
    for option in _inner(prop):
        option = option.get("items", option)
        if "minimum" in option or "maximum" in option:
            rules.append(f"{option.get('minimum', '')}..{option.get('maximum', '')}")
        if "enum" in option:
            rules.append(" / ".join(map(str, option["enum"])))
        if "pattern" in option:
            rules.append(f"`{option['pattern']}`".replace("|", "\\|"))
    return "; ".join(rules)


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.records schema` prints the JSON Schema; `fields` the Markdown tables."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["schema"]:
        print(json.dumps(json_schema(), indent=2, sort_keys=False))
    elif args == ["fields"]:
        print(fields_markdown())
    else:
        print("usage: python -m bench.records schema | fields", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
