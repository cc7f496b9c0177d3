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

from bench.capacity import MIN_REQUESTS
from collect import names
from collect.checks import load_yaml, mapping, positive
from collect.errors import InputError
from collect.store import Store

WINDOWS = 3
DEFAULT_WINDOW_MS = 5000  # perf_analyzer's own default, for results that do not say
DEFAULT_BUDGETS = Path(__file__).with_name("budgets.yml")
CLASS = ["model", "mode", "batch_size"]
RANKED_WITHIN = [*CLASS, "budget_ms"]


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


def machine_capacity(store: Store, run_id: str, budgets: dict[str, float], default_ms: float) -> pd.DataFrame:
    """Every machine (host, model, config) of the run with its capacity under its model's budget."""
    models = store.query("SELECT DISTINCT model FROM instances WHERE run_id = ?", [run_id])["model"]
    table = pd.DataFrame({"model": models, "budget_ms": [budgets.get(m, default_ms) for m in models]})
    store.db.register("budgets", table)
    try:
        return store.query(
            f"""
            WITH inst AS (
                SELECT host, model, config_id, instance, status, mode, batch_size, concurrency_range,
                       intra, inter, xla, onednn, levels_failed,
                       coalesce(TRY_CAST(json_extract_string(metadata, '$.config.measurement_interval_ms') AS DOUBLE),
                                {DEFAULT_WINDOW_MS}) AS window_ms,
                       TRY_CAST(json_extract_string(metadata, '$.host_facts.cores') AS INTEGER) AS cores,
                       TRY_CAST(json_extract_string(metadata, '$.host_facts.numa_node_count') AS INTEGER)
                           AS numa_nodes,
                       json_extract_string(metadata, '$.search.kind') = 'capacity' AS searched,
                       TRY_CAST(json_extract_string(metadata, '$.search.p99_budget_ms') AS DOUBLE) AS searched_budget,
                       json_extract_string(metadata, '$.search.reason') AS searched_reason,
                       TRY_CAST(json_extract_string(metadata, '$.search.level.requests') AS BIGINT) AS searched_reqs,
                       json_array_length(json_extract(metadata, '$.search.curve')) AS searched_levels,
                       TRY_CAST(json_extract_string(metadata, '$.search.seconds') AS DOUBLE) AS searched_seconds
                FROM instances WHERE run_id = ?
            ),
            budgeted AS (
                SELECT i.*, coalesce(i.searched_budget, b.budget_ms) AS budget_ms
                FROM inst i JOIN budgets b USING (model)
            ),
            within AS (
                SELECT p.host, p.model, p.config_id, p.instance,
                       max(p.throughput) AS capacity,
                       arg_max(p.concurrency, p.throughput) AS level,
                       arg_max(p.p50_us, p.throughput) AS p50_us,
                       arg_max(p.p99_us, p.throughput) AS p99_us
                FROM points p JOIN budgeted b USING (host, model, config_id, instance)
                WHERE p.run_id = ? AND p.p99_us <= b.budget_ms * 1000
                GROUP BY ALL
            ),
            per_instance AS (
                SELECT i.*, w.capacity, w.level, w.p50_us, w.p99_us,
                       CASE WHEN i.searched THEN i.searched_reqs
                            ELSE w.capacity / greatest(i.batch_size, 1) * {WINDOWS} * i.window_ms / 1000
                       END AS requests,
                       CASE
                           WHEN i.searched THEN nullif(i.searched_reason, '')
                           WHEN i.status = 'failed' THEN 'no level measured'
                           WHEN w.capacity IS NULL THEN 'no level within the budget'
                           WHEN w.capacity / greatest(i.batch_size, 1) * {WINDOWS} * i.window_ms / 1000
                                < {MIN_REQUESTS}
                               THEN 'too few requests for a p99 (under {MIN_REQUESTS})'
                       END AS reason
                FROM budgeted i
                LEFT JOIN within w USING (host, model, config_id, instance)
            )
            SELECT host, model, config_id, any_value(mode) AS mode, any_value(batch_size) AS batch_size,
                   CASE WHEN bool_or(searched)
                        THEN 'searched: ' || sum(searched_levels) || ' levels, '
                             || CAST(round(max(searched_seconds)) AS BIGINT) || ' s'
                        ELSE 'grid' END AS found_by,
                   any_value(concurrency_range) AS concurrency_range, any_value(intra) AS intra,
                   any_value(inter) AS inter, any_value(xla) AS xla, any_value(onednn) AS onednn,
                   any_value(budget_ms) AS budget_ms,
                   CASE WHEN bool_and(reason IS NULL) THEN sum(capacity) END AS capacity,
                   sum(capacity) AS capacity_measured,
                   count(*) AS instances, string_agg(instance || '@' || level, ' ' ORDER BY instance) AS levels,
                   max(p50_us) AS p50_us, max(p99_us) AS p99_us, min(requests) AS min_requests,
                   bool_and(reason IS NULL) AS valid,
                   string_agg(DISTINCT reason, '; ') AS reason,
                   any_value(cores) AS cores, any_value(numa_nodes) AS numa_nodes
            FROM per_instance GROUP BY host, model, config_id
            ORDER BY model, host, config_id
            """,
            [run_id, run_id],
        )
    finally:
        store.db.unregister("budgets")


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
    )
    order = [*RANKED_WITHIN, "capacity_measured"]
    return best.sort_values(order, ascending=[True] * len(RANKED_WITHIN) + [False]).reset_index(drop=True)
