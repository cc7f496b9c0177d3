"""Capacity under a latency budget: per host and model, the highest throughput whose p99 is within the
budget, with the knobs and the level that reach it, and whether that number can be trusted.

Only like is compared with like: a capacity belongs to a class (model, mode, batch size), and hosts are
ranked within a class, never across batch sizes or modes.

A point is valid when
- it was measured: perf_analyzer recorded it (perf_analyzer records only levels that met its
  stability rule; levels it could not stabilise are the instance's failed levels);
- its p99 means something: at least MIN_REQUESTS requests were measured at that level, the least with
  which MLPerf LoadGen's early-stopping criterion can bound a 99th percentile at 99 % confidence
  (n >= ln(1 - 0.99) / ln(0.99), no request allowed over the bound). perf_analyzer reports the average
  of its last WINDOWS stable windows, so the requests are (throughput / batch size) x WINDOWS x the
  window's length, counted with the first attempt's window (retries only lengthen it: a lower bound);
- the budget is met by every instance of the machine (in `entire` mode the capacity is the sum of its
  NUMA instances' capacities).
An invalid capacity is kept and shown with its reason, never as a plain number.

A capacity search (`search: capacity`, bench.capacity) answers for the budget it searched under, with
its own validity (the same request rule, counted exactly from perf_analyzer's request count); capacities
are ranked only against others under the same budget.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.records import MIN_REQUESTS, enough_requests, search_path
from bench.records import machine_capacity as machine_sum
from collect import names
from collect.checks import load_yaml, mapping, positive
from collect.errors import InputError
from collect.store import Store

WINDOWS = 3
DEFAULT_WINDOW_MS = 5000  # perf_analyzer's own default, for results that do not say
DEFAULT_BUDGETS = Path(__file__).with_name("budgets.yml")
# A capacity is ranked only against capacities of its class measured alike: under the same budget, with
# the load arriving the same way (a closed loop hides the queueing an open loop shows) from the same client.
CLASS = ["model", "mode", "batch_size"]
RANKED_WITHIN = [*CLASS, "load", "client", "budget_ms"]


class BudgetError(InputError):
    """A budgets file or a budget option is wrong; the message names the file and the key."""


BUDGET_KEYS = ("default_p99_ms", "models")
# A p99 budget beyond an hour is a typo, not a service level.
MAX_BUDGET_MS = 3_600_000.0


def load_budgets(path: Path = DEFAULT_BUDGETS) -> tuple[dict[str, float], float]:
    """(budget per model, default budget) in milliseconds, from a budgets file: finite and above 0,
    every key known."""
    data = mapping(load_yaml(path, BudgetError), f"{path}", BudgetError, BUDGET_KEYS)
    if "default_p99_ms" not in data:
        raise BudgetError(f"{path}: needs default_p99_ms (milliseconds)")
    default = positive(data["default_p99_ms"], f"{path}: default_p99_ms", BudgetError, at_most=MAX_BUDGET_MS)
    models = {}
    for model, value in mapping(data.get("models"), f"{path}: models", BudgetError).items():
        names.check("model", model, f"{path}: models")
        models[model] = positive(value, f"{path}: models.{model}", BudgetError, at_most=MAX_BUDGET_MS)
    return models, default


# What each instance row of a run says, for the rules below: its knobs, the host's cores, and its capacity
# search as recorded (JSON paths checked against bench.records.CapacitySearch). A metadata text the
# engine's JSON functions reject (a store filled before the contract) is read around, as no search.
_META = "CASE WHEN json_valid(metadata) THEN metadata END"
# The evidence a capacity shows (collect.store: a point's columns; an instance's best_<name> of its answer).
EVIDENCE = ["server_cores", "server_share", "client_share", "frequency_mhz", "watts", "limited_by", "throttled"]
_BEST_OF = {f: f"best_{f}" for f in EVIDENCE if f not in ("limited_by", "throttled")}


def _struct(fields: dict[str, str]) -> str:
    """A DuckDB struct of these fields (name -> expression)."""
    return "{" + ", ".join(f"'{name}': {expression}" for name, expression in fields.items()) + "}"


_INSTANCES_SQL = f"""
    WITH inst AS (
        SELECT host, model, config_id, instance, status, mode, batch_size, concurrency_range,
               intra, inter, xla, onednn, coalesce(load, 'closed') AS load, coalesce(client, 'perf_analyzer') AS client,
               coalesce(TRY_CAST(json_extract_string({_META}, '$.config.measurement_interval_ms') AS DOUBLE),
                        {DEFAULT_WINDOW_MS}) AS window_ms,
               TRY_CAST(json_extract_string({_META}, '$.host_facts.cores') AS INTEGER) AS cores,
               TRY_CAST(json_extract_string({_META}, '$.host_facts.numa_node_count') AS INTEGER) AS numa_nodes,
               json_extract_string({_META}, '$.host_facts.arch') AS arch,
               best_concurrency, limit_why AS best_why,
               {_struct({f: _BEST_OF.get(f, f) for f in EVIDENCE})} AS answer,
               coalesce(json_extract_string({_META}, '{search_path("kind")}') = 'capacity', false) AS searched,
               TRY_CAST(json_extract_string({_META}, '{search_path("p99_budget_ms")}') AS DOUBLE)
                   AS searched_budget,
               json_extract_string({_META}, '{search_path("reason")}') AS searched_reason,
               json_extract_string({_META}, '{search_path("valid")}') = 'true' AS searched_valid,
               TRY_CAST(json_extract_string({_META}, '{search_path("level", "requests")}') AS BIGINT)
                   AS searched_reqs,
               TRY_CAST(json_extract_string({_META}, '{search_path("capacity")}') AS DOUBLE) AS searched_capacity,
               TRY_CAST(json_extract_string({_META}, '{search_path("level", "level")}') AS INTEGER) AS searched_level,
               TRY_CAST(json_extract_string({_META}, '{search_path("level", "rate")}') AS DOUBLE) AS searched_rate,
               TRY_CAST(json_extract_string({_META}, '{search_path("level", "p50_us")}') AS DOUBLE) AS searched_p50,
               TRY_CAST(json_extract_string({_META}, '{search_path("level", "p99_us")}') AS DOUBLE) AS searched_p99,
               json_array_length(json_extract({_META}, '{search_path("curve")}')) AS searched_levels,
               TRY_CAST(json_extract_string({_META}, '{search_path("seconds")}') AS DOUBLE) AS searched_seconds
        FROM instances WHERE run_id = ?
    ),
    budgeted AS (
        SELECT i.*, coalesce(i.searched_budget, b.budget_ms) AS budget_ms FROM inst i JOIN budgets b USING (model)
    ),
    within AS (
        SELECT p.host, p.model, p.config_id, p.instance,
               max(p.throughput) AS capacity,
               arg_max(p.concurrency, p.throughput) AS level,
               arg_max(p.p50_us, p.throughput) AS p50_us,
               arg_max(p.p99_us, p.throughput) AS p99_us,
               -- one struct: arg_max skips a NULL argument, and would take another level's figures
               arg_max({_struct({f: f"p.{f}" for f in EVIDENCE})}, p.throughput) AS seen
        FROM points p JOIN budgeted b USING (host, model, config_id, instance)
        WHERE p.run_id = ? AND p.p99_us <= b.budget_ms * 1000
        GROUP BY ALL
    )
    -- a search's capacity is its own answer (an open loop's late levels are not capacities); a grid's
    -- the best of its points within the budget
    SELECT i.* EXCLUDE (answer),
           CASE WHEN i.searched THEN i.searched_capacity ELSE w.capacity END AS capacity,
           CASE WHEN i.searched THEN i.searched_level ELSE w.level END AS level,
           CASE WHEN i.searched THEN i.searched_rate END AS rate,
           CASE WHEN i.searched THEN i.searched_p50 ELSE w.p50_us END AS p50_us,
           CASE WHEN i.searched THEN i.searched_p99 ELSE w.p99_us END AS p99_us,
           -- what the host did at that level, and what limited it; a grid's why is its best point's
           {", ".join(f"(CASE WHEN i.searched THEN i.answer ELSE w.seen END).{f} AS {f}" for f in EVIDENCE)},
           CASE WHEN i.searched OR w.level = i.best_concurrency THEN i.best_why END AS limit_why
    FROM budgeted i LEFT JOIN within w USING (host, model, config_id, instance)
    ORDER BY model, host, config_id, instance
"""
MACHINE = ["host", "model", "config_id"]
# What a machine's row repeats of its first instance, after its class and how it was found (in this order).
CONFIG_COLUMNS = ["load", "client", "concurrency_range", "intra", "inter", "xla", "onednn", "budget_ms"]


def _requests(row: pd.Series) -> float | None:
    """Requests behind an instance's p99: counted by a search; estimated for a grid (module docstring)."""
    if row["searched"]:
        return None if pd.isna(row["searched_reqs"]) else float(row["searched_reqs"])
    if pd.isna(row["capacity"]):
        return None
    return float(row["capacity"]) / max(int(row["batch_size"] or 1), 1) * WINDOWS * float(row["window_ms"]) / 1000


def _reason(row: pd.Series) -> str | None:
    """Why an instance's capacity cannot be trusted (bench.records' rules); None when it can."""
    if row["searched"]:  # the search's own verdict (bench.records.CapacitySearch.valid)
        return None if row["searched_valid"] is True else (row["searched_reason"] or "the search is not valid")
    if row["status"] == "failed":
        return "no level measured"
    if pd.isna(row["capacity"]):
        return "no level within the budget"
    if not enough_requests(row["requests"]):
        return f"too few requests for a p99 (under {MIN_REQUESTS})"
    return None


def _none(value: object) -> object:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value


# A machine's limit is the most telling of its instances': a saturated client makes the measurement
# suspect, a saturated server explains the number, the latency budget is what is left.
LIMIT_ORDER = ("unknown", "latency", "server", "client")


def _every(values: pd.Series) -> list | None:
    """VALUES as a list if each is known, else None: a machine's figure is never made of some of its instances."""
    known = [_none(v) for v in values]
    return known if known and all(v is not None for v in known) else None


def machine_evidence(rows: pd.DataFrame) -> dict:
    """A machine's evidence from its instances' (at their capacity's level): the servers' cores add up;
    the shares and the clock are their mean; the watts are the largest instance's, each meter reading
    the whole host (RAPL's packages, the BMC), so a sum would count the host once per NUMA node."""
    cores, shares = _every(rows["server_cores"]), _every(rows["server_share"])
    clients, clocks, watts = _every(rows["client_share"]), _every(rows["frequency_mhz"]), _every(rows["watts"])
    limits = [(i, _none(limit)) for i, limit in zip(rows["instance"], rows["limited_by"], strict=True)]
    known = [limit for _, limit in limits if limit in LIMIT_ORDER]
    whys = [(i, _none(why)) for i, why in zip(rows["instance"], rows["limit_why"], strict=True) if _none(why)]
    return {
        "cores_used": sum(cores) if cores else None,
        "server_share": sum(shares) / len(shares) if shares else None,
        "client_share": max(clients) if clients else None,
        "frequency_mhz": sum(clocks) / len(clocks) if clocks else None,
        "watts": max(watts) if watts else None,
        "limited_by": max(known, key=LIMIT_ORDER.index) if known else None,
        "throttled": any(bool(_none(t)) for t in rows["throttled"]) if known else None,
        "limit_why": whys[0][1] if len(rows) == 1 and whys else "; ".join(f"{i}: {w}" for i, w in whys) or None,
    }


def _machine(rows: pd.DataFrame) -> dict:
    """One machine's row from its instances' rows: a machine is the sum of its instances, valid only
    when every instance is (bench.records.machine_capacity)."""
    first = rows.iloc[0]
    capacities = [_none(c) for c in rows["capacity"]]
    each_reason = [_none(r) for r in rows["reason"]]
    reasons = [r for r in each_reason if r is not None]
    measured = [c for c in capacities if c is not None]
    found_by = "grid"
    if rows["searched"].any():
        levels, seconds = rows["searched_levels"].dropna(), rows["searched_seconds"].dropna()
        found_by = (
            f"searched: {int(levels.sum())} levels, {round(seconds.max())} s" if len(levels) and len(seconds) else None
        )
    placed = [
        f"{i}@{int(level)}" if _none(level) is not None else f"{i}@{rate:g}/s"
        for i, level, rate in zip(rows["instance"], rows["level"], rows["rate"], strict=True)
        if _none(level) is not None or _none(rate) is not None
    ]
    return {
        **{k: first[k] for k in MACHINE},
        "mode": first["mode"],
        "batch_size": first["batch_size"],
        "found_by": found_by,
        **{k: first[k] for k in CONFIG_COLUMNS},
        "capacity": machine_sum((c, r is None) for c, r in zip(capacities, each_reason, strict=True)),
        "capacity_measured": sum(measured) if measured else None,
        "instances": len(rows),
        "levels": " ".join(sorted(placed)) or None,
        "p50_us": _none(rows["p50_us"].max()),
        "p99_us": _none(rows["p99_us"].max()),
        "min_requests": _none(rows["requests"].min()),
        "valid": not reasons,
        "reason": "; ".join(sorted(set(reasons))) or None,
        "cores": _none(first["cores"]),
        "numa_nodes": _none(first["numa_nodes"]),
        "arch": architecture(first["arch"]),
        **machine_evidence(rows),
    }


# platform.machine()'s spellings of one architecture (host_prep's fact records it), as one name each.
ARCH_NAMES = {"arm64": "aarch64", "armv8": "aarch64", "amd64": "x86_64", "x64": "x86_64"}


def architecture(arch: object) -> str | None:
    """The host's architecture as its fact spells it, one name per architecture; None when unrecorded."""
    if not isinstance(arch, str) or not arch.strip():
        return None
    name = arch.strip().lower()
    return ARCH_NAMES.get(name, name)


def machine_capacity(store: Store, run_id: str, budgets: dict[str, float], default_ms: float) -> pd.DataFrame:
    """Every machine (host, model, config) of the run with its capacity under its model's budget. The
    engine reads and aggregates the points (instance by instance); the record's rules run on the rows."""
    models = store.query("SELECT DISTINCT model FROM instances WHERE run_id = ?", [run_id])["model"]
    table = pd.DataFrame({"model": models, "budget_ms": [budgets.get(m, default_ms) for m in models]})
    with store.registered("budgets", table):
        instances = store.query(_INSTANCES_SQL, [run_id, run_id])
    if instances.empty:
        return pd.DataFrame(
            columns=[*MACHINE, "mode", "batch_size", "load", "client", "found_by", "capacity", "valid", "reason"]
        )
    instances["requests"] = instances.apply(_requests, axis=1)
    instances["reason"] = instances.apply(_reason, axis=1)
    machines = [_machine(rows) for _, rows in instances.groupby(MACHINE, sort=False)]
    frame = pd.DataFrame(machines).sort_values(["model", "host", "config_id"], kind="stable").reset_index(drop=True)
    numbers = ["budget_ms", "capacity", "capacity_measured", "p50_us", "p99_us", "min_requests"]
    numbers += ["cores_used", "server_share", "client_share", "frequency_mhz", "watts"]
    return frame.astype({**dict.fromkeys(numbers, "float64"), "valid": "bool"})


def efficiency(capacity: pd.Series, cores_used: pd.Series, watts: pd.Series) -> dict[str, pd.Series]:
    """Infer/s per core the server used, and inferences per joule: NaN unless both figures are known and
    above 0 (a meter reading 0 W is no efficiency figure, and neither is an invalid capacity)."""
    used = cores_used.astype("float64")
    drawn = watts.astype("float64")
    return {
        "per_core_used": capacity / used.where(used > 0),
        "inferences_per_joule": capacity / drawn.where(drawn > 0),
    }


def capacity_per_host(machines: pd.DataFrame) -> pd.DataFrame:
    """Per class (model, mode, batch size), budget and host: the config with the highest valid capacity (or,
    with none valid, the highest measured one, marked invalid), with per-physical-core and
    per-NUMA-node figures (from the host's fact) beside the total."""
    if machines.empty:
        return machines
    ranked = machines.assign(_valid=machines["valid"].astype(int)).sort_values(
        ["_valid", "capacity_measured"], ascending=False
    )
    best = ranked.drop_duplicates([*RANKED_WITHIN, "host"]).drop(columns="_valid")
    best = best.assign(  # an invalid capacity has no per-core figure either
        per_core=best["capacity"] / best["cores"].astype("float64"),
        per_numa_node=best["capacity"] / best["numa_nodes"].astype("float64"),
        **efficiency(best["capacity"], best["cores_used"], best["watts"]),
    )
    order = [*RANKED_WITHIN, "capacity_measured"]
    return best.sort_values(order, ascending=[True] * len(RANKED_WITHIN) + [False]).reset_index(drop=True)
