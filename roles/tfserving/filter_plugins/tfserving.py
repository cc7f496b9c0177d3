"""Filters of the tfserving role: server instances with every default filled in."""

from __future__ import annotations

from bench.facts import port_of


def tfserving_instances(instances: list[dict], base_port: int, models_dir: str) -> list[dict]:
    """Each instance as the role's templates read it. The server on NUMA node N listens on
    the port rule's port (bench.facts.port_of) unless the instance names its port; models come from
    <models_dir>/<model> unless it names a base_path; its unit is tfserving@<model>-<node> unless it
    names itself (several servers on one node)."""
    filled = []
    for instance in instances:
        if "model" not in instance:
            raise ValueError(f"tfserving: an instance names no model: {instance}")
        node = int(instance.get("numa_node", 0))
        filled.append(
            {
                "name": instance.get("name") or f"{instance['model']}-{node}",
                "model": instance["model"],
                "numa_node": node,
                "cpus": instance.get("cpus", ""),
                "port": int(instance.get("port", port_of(node, int(base_port)))),
                "base_path": instance.get("base_path", f"{models_dir}/{instance['model']}"),
                "intra": int(instance.get("intra", 0)),
                "inter": int(instance.get("inter", 0)),
                "xla": bool(instance.get("xla", False)),
                "onednn": instance.get("onednn"),
                "batching_parameters": instance.get("batching_parameters", ""),
                "extra_flags": list(instance.get("extra_flags", [])),
            }
        )
    return filled


class FilterModule:
    def filters(self) -> dict:
        return {"tfserving_instances": tfserving_instances}
