"""TF-Serving instances: what each one is (checked, every default filled in), the environment file its
`tfserving@<name>` unit reads, and, on the host, starting them, waiting until they serve and stopping
them. Role tfserving writes the same files through its filters (one home for the flags); the sweep
queue's runner (bench.queue) starts and stops the instances of each config with these functions.

A name or model becomes a unit name and file names, so a name that is not a name (bench.facts
NAME_PATTERN: a newline, a '/', '..'), a port outside 1-65535 or the port range, or a value with a
control character is refused with one line naming the instance and the field, before anything is
written. Standard library only: it runs on the benchmark hosts.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from bench.facts import SERVER_UNIT, check_name, check_port, port_of
from bench.layout import write_atomically

CPULIST = re.compile(r"[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A failed start says what the unit or the probe said, at most this long.
REASON_LIMIT = 2000


def _count(instance: dict, key: str, label: str) -> int:
    value = instance.get(key, 0)
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"tfserving: instance {label}: {key} {value!r} is not a whole number >= 0")
    return value


def _line(value: Any, key: str, label: str) -> str:
    """A value that becomes (part of) one line of the instance's environment file."""
    if not isinstance(value, str) or CONTROL.search(value):
        raise ValueError(f"tfserving: instance {label}: {key} {str(value)[:80]!r} must be text on one line")
    return value


def server_instances(
    instances: list[dict], base_port: int, models_dir: str, port_range: str | None = None
) -> list[dict]:
    """Each instance with every default filled in. The server on NUMA node N listens on the port
    rule's port (bench.facts.port_of) unless the instance names its port; models come from
    <models_dir>/<model> unless it names a base_path; its unit is tfserving@<model>-<node> unless it
    names itself (several servers on one node). Ports must lie within PORT_RANGE when it is given."""
    if not isinstance(instances, list):
        raise ValueError(f"tfserving: tfserving_instances must be a list of instances, not {type(instances).__name__}")
    filled = []
    for index, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise ValueError(f"tfserving: instance {index} is not a mapping: {str(instance)[:80]!r}")
        if "model" not in instance:
            raise ValueError(f"tfserving: an instance names no model: {str(instance)[:200]}")
        model = check_name(instance["model"], f"tfserving: instance {index}: model")
        node = _count(instance, "numa_node", str(index))
        name = check_name(instance.get("name") or f"{model}-{node}", f"tfserving: instance {index}: name")
        port = check_port(instance.get("port", port_of(node, int(base_port))), f"tfserving: instance {name}: port")
        if port_range is not None:
            check_port(port, f"tfserving: instance {name}: port", port_range)
        cpus = _line(instance.get("cpus", ""), "cpus", name)
        if cpus and not CPULIST.fullmatch(cpus):
            raise ValueError(f"tfserving: instance {name}: cpus {cpus[:80]!r} is not a cpulist such as 0-3,8")
        base_path = _line(instance.get("base_path", f"{models_dir}/{model}"), "base_path", name)
        if not base_path.startswith("/") or "/../" in f"{base_path}/":
            raise ValueError(f"tfserving: instance {name}: base_path {base_path[:80]!r} must be absolute, without '..'")
        extra_flags = instance.get("extra_flags", [])
        if not isinstance(extra_flags, list):
            raise ValueError(f"tfserving: instance {name}: extra_flags must be a list of flags")
        filled.append(
            {
                "name": name,
                "model": model,
                "numa_node": node,
                "cpus": cpus,
                "port": port,
                "base_path": base_path,
                "intra": _count(instance, "intra", name),
                "inter": _count(instance, "inter", name),
                "xla": bool(instance.get("xla", False)),
                "onednn": instance.get("onednn"),
                "batching_parameters": instance.get("batching_parameters", ""),
                "extra_flags": [_line(flag, "extra_flags", name) for flag in extra_flags],
            }
        )
    names = [instance["name"] for instance in filled]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"tfserving: instance names must differ: {', '.join(twice)} named twice")
    return filled


def batching_path(instance: dict, conf_dir: str) -> str:
    return f"{conf_dir}/{instance['name']}.batching"


def environment(instance: dict, node_cpus: str, server_bin: str, conf_dir: str, onednn_build: bool) -> str:
    """The lines of INSTANCE's environment file (a filled-in instance of server_instances): what its
    tfserving@ unit's ExecStart expands. NODE_CPUS: its NUMA node's CPUs, bound when the instance
    names none."""
    flags = ["--xla_cpu_compilation_enabled=true"] if instance["xla"] else []
    if instance["batching_parameters"]:
        flags += ["--enable_batching=true", f"--batching_parameters_file={batching_path(instance, conf_dir)}"]
    flags += instance["extra_flags"]
    lines = [
        f"MODEL_NAME={instance['model']}",
        f"MODEL_BASE_PATH={instance['base_path']}",
        f"PORT={instance['port']}",
        f"NUMA_NODE={instance['numa_node']}",
        f"CPUS={instance['cpus'] or node_cpus}",
        f"INTRA={instance['intra']}",
        f"INTER={instance['inter']}",
        f"SERVER_BIN={server_bin}",
        f"EXTRA_FLAGS={' '.join(flags)}",
    ]
    if instance["onednn"] is not None:
        if onednn_build:
            lines.append("# oneDNN build: oneDNN is on unless TF_DISABLE_MKL=1.")
            if not instance["onednn"]:
                lines.append("TF_DISABLE_MKL=1")
        else:
            lines.append("# Plain build: TensorFlow's own oneDNN switch.")
            lines.append(f"TF_ENABLE_ONEDNN_OPTS={1 if instance['onednn'] else 0}")
    return "\n".join(lines) + "\n"


# On the host (as root: systemctl reaches systemd through its private socket, no D-Bus needed).


def _said(proc: subprocess.CompletedProcess) -> str:
    return (proc.stderr or proc.stdout or f"exit code {proc.returncode}").strip()


def start_servers(servers: list[dict], conf_dir: str, probe: str, ready_timeout_s: float) -> str | None:
    """Write each server's files (SERVERS: {'instance', 'environment'}), start its unit and wait until it
    serves its model. None when every one serves; else the reason, in the words of what failed (the
    probe's carry the unit's last journal lines). Never raises."""
    try:
        Path(conf_dir).mkdir(parents=True, exist_ok=True)
        for server in servers:
            instance = server["instance"]
            check_name(instance["name"], "tfserving: instance name")  # it becomes a file and a unit name
            if instance["batching_parameters"]:
                write_atomically(Path(batching_path(instance, conf_dir)), instance["batching_parameters"], 0o644)
            write_atomically(Path(conf_dir) / f"{instance['name']}.env", server["environment"], 0o644)
    except (OSError, ValueError) as err:
        return f"Write the instance environments: {err}"
    units = [SERVER_UNIT.format(s["instance"]["name"]) for s in servers]
    try:
        started = subprocess.run(["systemctl", "restart", *units], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"Start the instances: {err}"
    if started.returncode != 0:
        return f"Start the instances: {_said(started)}"[:REASON_LIMIT]
    failed = []
    for server, unit in zip(servers, units, strict=True):
        instance = server["instance"]
        cmd = [probe, f"--port={instance['port']}", f"--model={instance['model']}", f"--unit={unit}"]
        try:
            ready = subprocess.run(
                [*cmd, f"--timeout={ready_timeout_s:g}"], capture_output=True, text=True, timeout=ready_timeout_s + 60
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            failed.append(f"{instance['name']}: {err}")
            continue
        if ready.returncode != 0:
            failed.append(f"{instance['name']}: {_said(ready)}")
    if failed:
        return f"Wait until every instance serves its model: {'; '.join(failed)}"[:REASON_LIMIT]
    return None


def stop_servers(names: list[str] | None = None) -> str | None:
    """Stop the named instances (all tfserving@ units when NAMES is None) and wait until their processes
    are gone (systemctl stop returns then: SIGTERM, SIGKILL after the unit's TimeoutStopSec). None, or
    what systemctl said."""
    if names is None:
        units = [SERVER_UNIT.format("*")]
    else:
        try:
            units = [SERVER_UNIT.format(check_name(name, "tfserving: instance name")) for name in names]
        except ValueError as err:
            return str(err)
    if not units:
        return None
    try:
        stopped = subprocess.run(["systemctl", "stop", *units], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as err:
        return str(err)
    return None if stopped.returncode == 0 else _said(stopped)
