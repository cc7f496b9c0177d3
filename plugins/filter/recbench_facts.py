"""`recbench_fact`: the benchmark's facts (bench/facts.py) in Ansible, so no role or playbook lists
the models, the paths, the versions, the port rule or the timeouts itself:

    train_models: "{{ recbench_models | default('models' | recbench_fact) }}"

`recbench_check_name`, `recbench_check_port` and `recbench_check_port_range` check what a role is about
to put in a path, a unit name or a file (a model, an instance, a port) against the facts' rules, for an
early assert:

    that: "sweep_base_port | recbench_check_port('sweep: sweep_base_port', 'port_range' | recbench_fact)"

(Quoted: the ': ' of the message would otherwise make the YAML item a mapping.)

Each is true when every value passes and otherwise fails the task with one line naming the value.
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


def _each(values: Any) -> list:
    return list(values) if isinstance(values, list | tuple) else [values]


def recbench_check_name(values: Any, what: str = "name") -> bool:
    """True if VALUES (one value or a list) are names (bench.facts.NAME_PATTERN); else a one-line error."""
    try:
        for value in _each(values):
            facts.check_name(value, what)
    except ValueError as err:
        raise AnsibleFilterError(str(err)) from None
    return True


def recbench_check_port(values: Any, what: str = "port", port_range: str | None = None) -> bool:
    """True if VALUES (one value or a list) are TCP ports, within PORT_RANGE ('first-last') when given."""
    try:
        for value in _each(values):
            facts.check_port(value, what, port_range)
    except ValueError as err:
        raise AnsibleFilterError(str(err)) from None
    return True


def recbench_check_port_range(value: Any, what: str = "port range") -> bool:
    """True if VALUE is a port range 'first-last' (1 <= first <= last <= 65535)."""
    try:
        facts.parse_port_range(value, what)
    except ValueError as err:
        raise AnsibleFilterError(str(err)) from None
    return True


class FilterModule:
    def filters(self) -> dict:
        return {
            "recbench_fact": recbench_fact,
            "recbench_port": recbench_port,
            "recbench_check_name": recbench_check_name,
            "recbench_check_port": recbench_check_port,
            "recbench_check_port_range": recbench_check_port_range,
        }
