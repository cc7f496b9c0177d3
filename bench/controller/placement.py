"""Where each server and client of a configuration runs, the server instances the tfserving role
starts for it, and the version of each model TF-Serving serves (the sweep role's filters and the
queue of each host, bench.controller.queues, read them).

`entire`: one server per NUMA node, bound to that node, and one client per node pinned to the same
node (the seed's layout; the machine's throughput is the sum of the instances'). `single`: one server
on NUMA node 0 and its client on NUMA node 1; a one-node host has no node 1, so its CPUs are split
between server and client, and the instance says so in its note. `instances_per_node` K > 1 puts K
servers where there was one, on contiguous parts of its CPUs, each with its own client.
"""

from __future__ import annotations

from bench.facts import PORT_STEP, port_of


def parse_cpulist(text: str) -> list[int]:
    cpus: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            first, last = part.split("-", 1)
            cpus.extend(range(int(first), int(last) + 1))
        else:
            cpus.append(int(part))
    return sorted(set(cpus))


def format_cpulist(cpus: list[int]) -> str:
    """The kernel's compact form: 0-3,8,10-11."""
    ranges: list[str] = []
    for cpu in sorted(cpus):
        if ranges and cpu == int(ranges[-1].split("-")[-1]) + 1:
            ranges[-1] = f"{ranges[-1].split('-')[0]}-{cpu}"
        else:
            ranges.append(str(cpu))
    return ",".join(ranges)


def _instance(model: str, node: dict, port: int, server: str, client: str, note: str) -> dict:
    return {
        "name": f"numa{node['id']}",
        "unit": f"{model}-{node['id']}",
        "numa_node": int(node["id"]),
        "port": port,
        "server_cpus": server,
        "client_cpus": client,
        "note": note,
    }


def _per_node(instance: dict, count: int) -> list[dict]:
    """COUNT servers where INSTANCE has one: the node's server CPUs split into COUNT contiguous parts,
    ports the port rule's port + 0, 1, ... (PORT_STEP apart per node leaves room for them), each with
    its own client on the instance's client CPUs."""
    if count == 1:
        return [instance]
    cpus = parse_cpulist(instance["server_cpus"])
    size, shared = len(cpus), len(cpus) < count
    parts = [cpus] * count if shared else [cpus[i * size // count : (i + 1) * size // count] for i in range(count)]
    how = f"sharing its {size} CPU(s)" if shared else "its CPUs split between them"
    note = f"{count} servers on NUMA node {instance['numa_node']}, {how}"
    return [
        instance
        | {
            "name": f"{instance['name']}-{j}",
            "unit": f"{instance['unit']}-{j}",
            "port": instance["port"] + j,
            "server_cpus": format_cpulist(part),
            "note": "; ".join(n for n in (instance["note"], note) if n),
        }
        for j, part in enumerate(parts)
    ]


def sweep_instances(config: dict, numa_nodes: list[dict], base_port: int) -> list[dict]:
    """The instances of CONFIG; the server on NUMA node N listens on the port rule's port (bench.facts),
    and with instances_per_node K > 1 the node's K servers on that port and the K - 1 above it."""
    count = int(config.get("instances_per_node", 1))
    if not 1 <= count <= PORT_STEP:
        raise ValueError(f"sweep: instances_per_node must be 1 to {PORT_STEP} (the ports of a node), not {count}")
    return [one for instance in _one_per_node(config, numa_nodes, base_port) for one in _per_node(instance, count)]


def _one_per_node(config: dict, numa_nodes: list[dict], base_port: int) -> list[dict]:
    base_port = int(base_port)
    if not numa_nodes:
        raise ValueError("sweep: the host fact lists no NUMA node (run host_prep first)")
    model, mode = config["model"], config["mode"]
    nodes = sorted(numa_nodes, key=lambda n: int(n["id"]))
    if mode == "entire":
        return [_instance(model, n, port_of(int(n["id"]), base_port), n["cpus"], n["cpus"], "") for n in nodes]
    if mode != "single":
        raise ValueError(f"sweep: mode {mode!r} is not single or entire")
    first = nodes[0]
    port = port_of(int(first["id"]), base_port)
    if len(nodes) > 1:
        note = f"server on NUMA node {first['id']}, client on NUMA node {nodes[1]['id']}"
        return [_instance(model, first, port, first["cpus"], nodes[1]["cpus"], note)]
    cpus = parse_cpulist(first["cpus"])
    if len(cpus) < 2:
        note = "one NUMA node with one CPU: server and client share it"
        return [_instance(model, first, port, first["cpus"], first["cpus"], note)]
    half = (len(cpus) + 1) // 2
    server, client = format_cpulist(cpus[:half]), format_cpulist(cpus[half:])
    note = f"one NUMA node: its CPUs are split, server on {server}, client on {client}"
    return [_instance(model, first, port, server, client, note)]


def sweep_server_instances(instances: list[dict], config: dict, models_dir: str) -> list[dict]:
    """What role tfserving needs to start the servers of CONFIG's instances."""
    return [
        {
            "model": config["model"],
            "name": instance["unit"],
            "numa_node": instance["numa_node"],
            "cpus": instance["server_cpus"],
            "port": instance["port"],
            "base_path": f"{models_dir}/{config['model']}",
            "intra": config["intra"],
            "inter": config["inter"],
            "xla": config["xla"],
            "onednn": config["onednn"],
        }
        for instance in instances
    ]


def sweep_served_versions(find_results: list[dict]) -> dict:
    """Per model (the loop item of a find for saved_model.pb two levels down), the highest numeric
    version directory (the one TF-Serving serves), or None when it has none."""
    served: dict = {}
    for result in find_results:
        versions = [
            int(name)
            for name in (str(found["path"]).rstrip("/").split("/")[-2] for found in result.get("files", []))
            if name.isdigit()
        ]
        served[result["item"]] = max(versions) if versions else None
    return served
