"""A host's sweep queue (what bench.queue walks on the host): every config of the run in order, each
with its job (what bench.sweep reads) and its servers (each filled-in tfserving instance with its
environment file, bench.serving), the grid's configs first, then each knob search with its whole
space (the runner picks its next config from the capacities it measured).

The sweep role builds it once per host from the expanded configs and the host's facts (filter
sweep_queue) and copies it in one task: no Ansible work per config.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench import facts
from bench.controller.placement import sweep_instances, sweep_server_instances
from bench.serving import environment, server_instances

# Seconds a config's clients may take beyond their own attempts' timeouts (start, recording).
CONFIG_SLACK_S = 120


def config_limit_s(config: Mapping, timeout_s: float, retries: int) -> float:
    """How long one config's clients may run: a grid config is one perf_analyzer run, a capacity search
    up to one per level it may measure, each retried RETRIES times under a TIMEOUT_S hard timeout."""
    runs = int(config.get("perf_analyzer_runs", 1))
    return float(timeout_s) * (int(retries) + 1) * runs + CONFIG_SLACK_S


def host_queue(configs: Sequence[Mapping], host: Mapping[str, Any]) -> dict:
    """The queue of one host. HOST: run_id, host (inventory name), numa_nodes, base_port, port_range,
    models_dir, results_dir, job_dir, metadata, served_versions, perf_input, perf_analyzer, timeout_s,
    retries, power_source, host_fact, tfserving (the host's tfserving fact: bin, onednn), user,
    ready_timeout_s. What the runner executes (the model zoo's launcher, the readiness probe) and where
    it writes the servers' files are facts (bench.facts), never the queue's."""
    nodes = {int(node["id"]): node["cpus"] for node in host["numa_nodes"]}
    host_results = f"{host['results_dir']}/{host['run_id']}/{host['host']}"

    def env(server: dict) -> str:
        cpus, tfserving = nodes[server["numa_node"]], host["tfserving"]
        return environment(server, cpus, tfserving["bin"], facts.TFSERVING_CONF_DIR, bool(tfserving.get("onednn")))

    def step(config: Mapping) -> dict:
        instances = sweep_instances(dict(config), host["numa_nodes"], int(host["base_port"]))
        servers = server_instances(
            sweep_server_instances(instances, dict(config), host["models_dir"]),
            int(host["base_port"]),
            host["models_dir"],
            host["port_range"],
        )
        model = config["model"]
        job = {
            "run_id": host["run_id"],
            "host": host["host"],
            "model": model,
            "config": dict(config),
            "results_dir": f"{host_results}/{model}/{config['config_id']}",
            "instances": instances,
            "input_data_file": host["perf_input"].get(model) if config.get("input_data") == "real" else None,
            "perf_analyzer": host["perf_analyzer"],
            "timeout_s": int(host["timeout_s"]),
            "retries": int(host["retries"]),
            "power_source": host["power_source"],
            "host_fact": host["host_fact"],
            "metadata": {**host["metadata"], "served_version": host["served_versions"][model]},
        }
        return {
            "kind": "config",
            "config_id": config["config_id"],
            "job": job,
            "servers": [{"instance": server, "environment": env(server)} for server in servers],
            "limit_s": config_limit_s(config, host["timeout_s"], host["retries"]),
        }

    steps: list[dict] = [step(config) for config in configs if "knob_group" not in config]
    groups: dict[str, list[Mapping]] = {}
    for config in configs:
        if "knob_group" in config:
            groups.setdefault(str(config["knob_group"]), []).append(config)
    for group, members in groups.items():
        steps.append(
            {
                "kind": "knob_search",
                "group": group,
                "model": members[0]["model"],
                "mode": members[0]["mode"],
                "budget": int(members[0]["knob_budget"]),
                "configs": [step(config) for config in members],
            }
        )
    return {
        "run_id": host["run_id"],
        "host": host["host"],
        "user": host["user"],
        "host_results": host_results,
        "ready_timeout_s": int(host["ready_timeout_s"]),
        "steps": steps,
        "limit_s": queue_limit_s(steps, int(host["ready_timeout_s"])),
    }


def queue_limit_s(steps: Sequence[Mapping], ready_timeout_s: int) -> float:
    """The longest a queue may take: each config its clients' limit, a readiness wait and a stop; a knob
    search its budget of its longest config."""
    per_config = 2 * ready_timeout_s + 60

    def longest(step: Mapping) -> float:
        if step["kind"] == "config":
            return float(step["limit_s"]) + per_config
        return int(step["budget"]) * max(float(c["limit_s"]) + per_config for c in step["configs"])

    return sum(longest(step) for step in steps)
