"""Filters of the tfserving role: server instances with every default filled in, and checked, and the
environment file each instance's unit reads. Both live in bench/serving.py, where the sweep queue's
runner reads them too: one home for the instances' checks and the servers' flags."""

from __future__ import annotations

from bench.serving import environment, server_instances


def tfserving_instances(
    instances: list[dict], base_port: int, models_dir: str, port_range: str | None = None
) -> list[dict]:
    """Each instance as the role's templates read it (bench.serving.server_instances)."""
    return server_instances(instances, base_port, models_dir, port_range)


def tfserving_environment(instance: dict, node_cpus: str, server_bin: str, conf_dir: str, onednn_build: bool) -> str:
    """The lines of the instance's environment file (bench.serving.environment)."""
    return environment(instance, node_cpus, server_bin, conf_dir, bool(onednn_build))


class FilterModule:
    def filters(self) -> dict:
        return {"tfserving_instances": tfserving_instances, "tfserving_environment": tfserving_environment}
