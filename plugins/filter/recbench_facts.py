"""`recbench_fact`: the benchmark's facts (bench/facts.py) in Ansible, so no role or playbook lists
the models, the paths, the port rule or the timeouts itself:

    train_models: "{{ recbench_models | default('models' | recbench_fact) }}"
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

from bench import facts  # the controller's virtualenv has recbench installed (scripts/bootstrap.sh)


def recbench_fact(name: str) -> Any:
    try:
        return facts.fact(name)
    except KeyError as err:
        raise AnsibleFilterError(err.args[0]) from None


def recbench_port(numa_node: int, base_port: int = facts.BASE_PORT) -> int:
    """The gRPC port of the server on NUMA node N."""
    return facts.port_of(int(numa_node), int(base_port))


class FilterModule:
    def filters(self) -> dict:
        return {"recbench_fact": recbench_fact, "recbench_port": recbench_port}
