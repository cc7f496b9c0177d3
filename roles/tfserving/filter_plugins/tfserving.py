"""Filters of the tfserving role: server instances with every default filled in, and checked.

Each instance becomes a unit name (tfserving@<name>), files named after it and lines of an
EnvironmentFile, so a name or model that is not a name (bench.facts.NAME_PATTERN: a newline, a '/',
'..'), a port outside 1-65535 or the role's port range, or a value with a control character is refused
here, with one line naming the instance and the field, before anything is written."""

from __future__ import annotations

import re
from typing import Any

from bench.facts import check_name, check_port, port_of

CPULIST = re.compile(r"[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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


def tfserving_instances(
    instances: list[dict], base_port: int, models_dir: str, port_range: str | None = None
) -> list[dict]:
    """Each instance as the role's templates read it. The server on NUMA node N listens on
    the port rule's port (bench.facts.port_of) unless the instance names its port; models come from
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


class FilterModule:
    def filters(self) -> dict:
        return {"tfserving_instances": tfserving_instances}
