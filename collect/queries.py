"""The store's answers, computed in the engine: pandas receives the rows a table or a plot shows.

Machine throughput (per run, host, model and config) is the seed's measure: in `entire` mode the sum of
its instances' best throughputs (one server and one client per NUMA node), in `single` mode its one
instance's best; its latencies are the worst instance's at that instance's best point.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.controller.sweeps import CAPACITY_ID_MARK
from collect.capacity import LIMIT_ORDER
from collect.store import KNOBS, Store

# A capacity search's config id says so (bench.controller.sweeps): `dlrm-entire-b256-cap300ms-a396733615`.
CAPACITY_ID_SQL = rf"regexp_matches(config_id, '-b[0-9]+-{CAPACITY_ID_MARK}[0-9.e+]+ms-[0-9a-f]+$')"


def runs_filter(runs: list[str] | None) -> tuple[str, list[str]]:
    """A WHERE clause on literal run ids (None: every run), which DuckDB prunes row groups with (zone maps)."""
    if runs is None:
        return "TRUE", []
    if not runs:
        return "FALSE", []
    return f"run_id IN ({', '.join('?' for _ in runs)})", list(runs)


def run_order(store: Store) -> list[str]:
    """Runs oldest first, by when they were first ingested."""
    rows = store.rows("SELECT run_id FROM instances GROUP BY run_id ORDER BY min(ingested_at), run_id")
    return [row[0] for row in rows]


def _every(expression: str, column: str) -> str:
    """EXPRESSION over the instances, NULL unless each knows COLUMN: a machine's figure is never made of
    some of its instances."""
    return f"CASE WHEN count({column}) = count(*) THEN {expression} END"


# A machine's evidence from its instances' best points, by collect.capacity.machine_evidence's rules: the
# servers' cores add up, shares and clocks are their mean (the client's the largest), the watts the
# largest instance's (each meter reads the whole host); the limit is the most telling of theirs.
_LIMITS = "[" + ", ".join(f"'{limit}'" for limit in LIMIT_ORDER) + "]"
EVIDENCE_SQL = ", ".join(
    [
        f"{_every('sum(best_server_cores)', 'best_server_cores')} AS cores_used",
        f"{_every('avg(best_server_share)', 'best_server_share')} AS server_share",
        f"{_every('max(best_client_share)', 'best_client_share')} AS client_share",
        f"{_every('avg(best_frequency_mhz)', 'best_frequency_mhz')} AS frequency_mhz",
        f"{_every('max(best_watts)', 'best_watts')} AS watts",
        f"list_extract({_LIMITS}, max(list_position({_LIMITS}, limited_by))) AS limited_by",
        "CASE WHEN count(limited_by) > 0 THEN bool_or(coalesce(throttled, false)) END AS throttled",
    ]
)


def machines_sql(runs: list[str] | None) -> tuple[str, list]:
    where, params = runs_filter(runs)
    knobs = ", ".join(f"any_value({knob}) AS {knob}" for knob in KNOBS)
    sql = f"""
        SELECT run_id, host, model, config_id,
               sum(best_throughput) AS throughput, count(*) AS instances, max(best_concurrency) AS concurrency,
               max(best_p50_us) AS p50_us, max(best_p90_us) AS p90_us, max(best_p99_us) AS p99_us, {knobs},
               any_value(coalesce(load, 'closed')) AS load, any_value(coalesce(client, 'perf_analyzer')) AS client,
               {EVIDENCE_SQL}
        FROM instances WHERE {where} AND best_throughput IS NOT NULL
        GROUP BY run_id, host, model, config_id
    """
    return sql, params


def machines(store: Store, runs: list[str] | None) -> pd.DataFrame:
    """Machine throughput of every (run, host, model, config) of RUNS (None: every run)."""
    sql, params = machines_sql(runs)
    return store.query(f"{sql} ORDER BY run_id, host, model, config_id", params)


def best_per_model(store: Store, run_id: str) -> pd.DataFrame:
    """Per model, mode and batch size, the grid machine with the highest throughput in the run (the
    seed's table, which never ranks a batch of 8 against one of 256 or one NUMA node against the machine)."""
    sql, params = machines_sql([run_id])
    # A capacity search's number is a capacity under its budget, not a best throughput: not ranked here.
    return store.query(
        f"SELECT * FROM ({sql}) WHERE NOT {CAPACITY_ID_SQL} QUALIFY row_number() OVER "
        "(PARTITION BY model, mode, batch_size ORDER BY throughput DESC, host) = 1 ORDER BY model, mode, batch_size",
        params,
    )


def points_of_run(store: Store, run_id: str, best_configs_only: bool = False) -> pd.DataFrame:
    """Every point of a run with its instance's knobs and status; with BEST_CONFIGS_ONLY, only each
    host's best config per model and load model (what a fleet-wide plot can show without drowning: a
    config measured closed and open loop shows both curves)."""
    chosen = ""
    params: list = [run_id, run_id]
    if best_configs_only:
        # per host, model and load model: the config of the highest best throughput; configs without
        # one (an invalid search) rank after by their fastest point, so an open loop's curve still shows
        chosen = (
            "SEMI JOIN (SELECT host, model, config_id FROM ("
            "SELECT i.host, i.model, i.config_id, coalesce(any_value(i.load), 'closed') AS load, "
            "coalesce(any_value(i.client), 'perf_analyzer') AS client, "
            "coalesce(sum(i.best_throughput), 0) AS best, max(f.fastest) AS fastest "
            "FROM instances i LEFT JOIN (SELECT host, model, config_id, instance, max(throughput) AS fastest "
            "FROM points WHERE run_id = ? GROUP BY ALL) f USING (host, model, config_id, instance) "
            "WHERE i.run_id = ? GROUP BY i.host, i.model, i.config_id) "
            "QUALIFY row_number() OVER (PARTITION BY host, model, load, client "
            "ORDER BY best DESC, fastest DESC NULLS LAST, config_id) = 1) c "
            "USING (host, model, config_id)"
        )
        params += [run_id, run_id]
    return store.query(
        "SELECT p.*, i.status, i.mode, i.batch_size, i.concurrency_range, i.intra, i.inter, i.xla, i.onednn, "
        "coalesce(i.load, 'closed') AS load, coalesce(i.client, 'perf_analyzer') AS client "
        "FROM (SELECT * FROM points WHERE run_id = ?) p "
        "JOIN (SELECT * FROM instances WHERE run_id = ?) i USING (run_id, host, model, config_id, instance) "
        f"{chosen} ORDER BY host, model, config_id, instance, concurrency, request_rate",
        params,
    )


def failures(store: Store, run_id: str) -> pd.DataFrame:
    return store.query(
        "SELECT host, model, config_id, instance, status, levels_failed FROM instances "
        "WHERE run_id = ? AND status != 'complete' ORDER BY host, model, config_id, instance",
        [run_id],
    )


def host_history(store: Store, runs: list[str]) -> pd.DataFrame:
    """Per run, host and model, the host's best machine throughput (over its configs): the history
    the report plots, one line per host."""
    sql, params = machines_sql(runs)
    return store.query(
        f"SELECT run_id, host, model, max(throughput) AS throughput FROM ({sql}) GROUP BY ALL "
        "ORDER BY model, host, run_id",
        params,
    )


def series_statistics(store: Store, current: str, past: list[str]) -> pd.DataFrame:
    """For every (host, model, config) of run CURRENT: its throughput, and the median, the median
    absolute deviation and the count of its throughputs over the runs PAST."""
    sql, params = machines_sql([current, *past])
    return store.query(
        f"""
        WITH m AS ({sql}),
        now AS (SELECT host, model, config_id, throughput FROM m WHERE run_id = ?),
        past AS (SELECT host, model, config_id, throughput FROM m WHERE run_id != ?),
        centre AS (SELECT host, model, config_id, median(throughput) AS history_median,
                          count(*) AS history_runs FROM past GROUP BY ALL),
        spread AS (SELECT host, model, config_id,
                          median(abs(past.throughput - centre.history_median)) AS history_mad
                   FROM past JOIN centre USING (host, model, config_id) GROUP BY ALL)
        SELECT now.host, now.model, now.config_id, now.throughput, history_median, history_mad, history_runs
        FROM now JOIN centre USING (host, model, config_id) JOIN spread USING (host, model, config_id)
        ORDER BY host, model, config_id
        """,
        [*params, current, current],
    )


def series_history(store: Store, runs: list[str]) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Machine throughput of every (host, model, config) over RUNS (in that order), for the change
    point detection: a small frame naming each series, and three flat arrays sorted by series then
    run (series number, run position, throughput). Numbers, not strings: a year of 100 hosts is 3.65 M
    values, and only the arrays leave the engine."""
    store.execute("CREATE OR REPLACE TEMP TABLE run_positions (run_id VARCHAR, position INTEGER)")
    store.execute_many("INSERT INTO run_positions VALUES (?, ?)", [[run, i] for i, run in enumerate(runs)])
    store.execute(
        """CREATE OR REPLACE TEMP TABLE series_names AS
           SELECT row_number() OVER (ORDER BY host, model, config_id) - 1 AS series, host, model, config_id
           FROM (SELECT DISTINCT host, model, config_id FROM instances SEMI JOIN run_positions USING (run_id))"""
    )
    try:
        names = store.query("SELECT * FROM series_names ORDER BY series")
        arrays = store.arrays(
            """SELECT s.series, r.position, sum(i.best_throughput) AS throughput
               FROM instances i JOIN run_positions r USING (run_id) JOIN series_names s USING (host, model, config_id)
               WHERE i.best_throughput IS NOT NULL
               GROUP BY s.series, r.position ORDER BY s.series, r.position"""
        )
    finally:
        store.execute("DROP TABLE IF EXISTS series_names")
        store.execute("DROP TABLE IF EXISTS run_positions")
    return names, arrays
