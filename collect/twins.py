"""Twins: hosts that should serve alike (same fingerprint), and the ones that stray, with why.

The fingerprint is what should make two hosts equal: CPU model, sockets, cores, threads, the NUMA
layout (CPUs and memory per node), kernel, OS, and the TensorFlow, TF-Serving (build key) and
perf_analyzer versions. What may explain a difference between twins is everything else the host fact
records: kernel command line, CPU frequency governor and limits, THP, selected sysctls, CPU
vulnerability mitigations, BIOS and board. A stray twin is reported with the explaining fields on
which it differs from the majority of its group, or "no configuration difference found"; a host
whose fact changed during the run (start against end) is reported too. Where the levels' evidence was
recorded (bench.evidence), the explanation starts with what the host did differently while it was
measured: its server CPUs' clock and the share of its CPUs the server used, against its twins' medians.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import numpy as np
import pandas as pd

from collect import queries
from collect.changes import MAD_TO_SIGMA, Thresholds
from collect.store import Store

NO_DIFFERENCE = "no configuration difference found"
EXPLAINING = ("cmdline", "cpufreq", "governor", "thp", "sysctl", "mitigations", "firmware")
# The server's share of its CPUs explains a stray when it lies this far (absolute) from its twins'
# median; the clock when it lies further (relative) than the twins' floor (a stray's own margin).
SHARE_APART = 0.10
EVIDENCE = ("frequency_mhz", "server_share")


def _flat(value: object, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for key, inner in value.items():
            out |= _flat(inner, f"{prefix}.{key}" if prefix else str(key))
        return out
    return {prefix: value}


def _mapping(value: object) -> dict:
    """VALUE if it is a mapping, else an empty one: a row stored before bench.records checked its
    metadata may hold any JSON where a mapping belongs, and is read around, never a crash."""
    return value if isinstance(value, dict) else {}


def _megabytes(value: object) -> float:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else 0


def fingerprint(metadata: dict) -> dict[str, object]:
    """The fields that should make two hosts equal, from one instance's metadata.json."""
    metadata = _mapping(metadata)
    facts = _mapping(metadata.get("host_facts"))
    versions = _mapping(metadata.get("versions"))
    tfserving = versions.get("tfserving")
    tensorflow = versions.get("tensorflow")
    return {
        "cpu_model": facts.get("cpu_model"),
        "sockets": facts.get("sockets"),
        "cores": facts.get("cores"),
        "threads": facts.get("threads"),
        "numa_layout": [
            (node.get("cpu_count"), round(_megabytes(node.get("memory_mb")) / 1024))
            for node in (facts.get("numa_nodes") if isinstance(facts.get("numa_nodes"), list) else [])
            if isinstance(node, dict)
        ],
        "kernel": facts.get("kernel"),
        "os": facts.get("os"),
        "tensorflow": tensorflow.get("version") if isinstance(tensorflow, dict) else tensorflow,
        "tfserving": (tfserving.get("build_key") or tfserving.get("version"))
        if isinstance(tfserving, dict)
        else tfserving,
        "perf_analyzer": versions.get("perf_analyzer"),
    }


def explaining(facts: dict) -> dict[str, object]:
    facts = _mapping(facts)
    return _flat({key: facts.get(key) for key in EXPLAINING if key in facts})


def fingerprint_id(fields: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:10]


def host_facts_of_run(store: Store, run_id: str) -> pd.DataFrame:
    """Per host of the run: the metadata of its first-started instance (with the fact read at its
    start) and the host fact of its last-finished instance (read at its end)."""
    return store.query(
        # metadata the engine's JSON functions reject (stored before bench.records checked it) is skipped
        """SELECT host,
                  arg_min(metadata, json_extract_string(metadata, '$.started_at')) AS first,
                  arg_max(json_extract(metadata, '$.host_facts'),
                          json_extract_string(metadata, '$.finished_at'))::VARCHAR AS last_facts
           FROM instances WHERE run_id = ? AND json_valid(metadata) GROUP BY host ORDER BY host""",
        [run_id],
    )


def changed_during_run(first: dict, last_facts: dict) -> list[str]:
    """Explaining fields whose value at the start of the run differs from the end."""
    start = explaining(_mapping(first).get("host_facts_start") or {})
    end = explaining(last_facts or {})
    if not start:
        return []
    return [f"{k}: {start.get(k)} -> {end.get(k)}" for k in sorted(set(start) | set(end)) if start.get(k) != end.get(k)]


def _best_machines(store: Store, run_id: str) -> pd.DataFrame:
    """Per host, model, mode and batch size, its best machine throughput in the run (as `value`) with that
    machine's evidence."""
    machines = queries.machines(store, [run_id])
    best = machines.sort_values("throughput", ascending=False, kind="stable").drop_duplicates(
        ["host", "model", "mode", "batch_size"]
    )
    shown = best[["host", "model", "mode", "batch_size", "throughput", *EVIDENCE]]
    return shown.rename(columns={"throughput": "value"})


def _median(values: pd.Series) -> float | None:
    known = values.dropna()
    return float(known.median()) if len(known) else None


def evidence_differences(mine: pd.Series, others: pd.DataFrame, floor: float) -> list[str]:
    """What the host did differently from its twins while measured (MINE, a row with EVIDENCE; OTHERS,
    its twins' rows): a clock off by more than FLOOR (relative), a server share off by SHARE_APART."""
    found = []
    clock, theirs = mine.get("frequency_mhz"), _median(others["frequency_mhz"]) if len(others) else None
    if clock is not None and clock == clock and theirs and abs(clock - theirs) > floor * theirs:
        found.append(f"ran at {clock:,.0f} MHz vs twins' {theirs:,.0f}")
    share, shares = mine.get("server_share"), _median(others["server_share"]) if len(others) else None
    if share is not None and share == share and shares is not None and abs(share - shares) > SHARE_APART:
        found.append(f"server at {100 * share:.0f} % of its CPUs vs twins' {100 * shares:.0f} %")
    return found


def twins(store: Store, run_id: str, limits: Thresholds, values: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per host, model, mode and batch size: the host's value (VALUES: host, model, mode, batch_size, value,
    and optionally EVIDENCE; default its best machine throughput in the run), its group's median and
    noise, and the verdict."""
    hosts = host_facts_of_run(store, run_id)
    described = {}
    for row in hosts.itertuples():
        first = json.loads(row.first) if row.first else {}
        last = json.loads(row.last_facts) if row.last_facts else {}
        fields = fingerprint(first)
        described[row.host] = {
            "group": fingerprint_id(fields),
            "fingerprint": fields,
            "explaining": explaining(last or _mapping(first).get("host_facts") or {}),
            "changed": changed_during_run(first, last),
        }
    if values is None:
        values = _best_machines(store, run_id)
    values = values.reset_index(drop=True)
    values = values.assign(
        group=values["host"].map(lambda h: described.get(h, {}).get("group")),
        **{name: values[name].astype("float64") if name in values else np.nan for name in EVIDENCE},
    )
    verdicts = []
    for _, group in values.groupby(["group", "model", "mode", "batch_size"], dropna=False):
        median = float(group["value"].median())
        noise = MAD_TO_SIGMA * float((group["value"] - median).abs().median())
        allowed = max(limits.twins_floor * median, limits.twins_mads * noise)
        members = group["host"].tolist()
        for row in group.itertuples():
            me = described.get(row.host, {})
            verdict, why = "ok", ""
            if len(members) < limits.twins_min_group:
                verdict = f"no verdict: {len(members)} host(s) share this fingerprint"
            elif abs(row.value - median) > allowed:
                verdict = "strays"
                seen = evidence_differences(group.loc[row.Index], group.drop(index=row.Index), limits.twins_floor)
                why = "; ".join(seen + _differences(row.host, members, described)) or NO_DIFFERENCE
            verdicts.append(
                {
                    "host": row.host,
                    "model": row.model,
                    "mode": row.mode,
                    "batch_size": row.batch_size,
                    "value": row.value,
                    "group": row.group,
                    "twins": len(members),
                    "group_median": median,
                    "allowed": allowed,
                    "ratio_to_twins": row.value / median if median else np.nan,
                    "verdict": verdict,
                    "why": why,
                    "frequency_mhz": row.frequency_mhz,
                    "server_share": row.server_share,
                    "changed_during_run": "; ".join(me.get("changed", [])),
                }
            )
    return pd.DataFrame(verdicts)


def _differences(host: str, members: list[str], described: dict) -> list[str]:
    """The explaining fields on which HOST differs from the majority of its other twins."""
    mine = described[host]["explaining"]
    others = [described[m]["explaining"] for m in members if m != host and m in described]
    found = []
    for key in sorted(set(mine) | {k for o in others for k in o}):
        common, _ = Counter(json.dumps(o.get(key), default=str) for o in others).most_common(1)[0]
        if json.dumps(mine.get(key), default=str) != common:
            found.append(f"{key}: {mine.get(key)} (twins: {json.loads(common)})")
    return found
