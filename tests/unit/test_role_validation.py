"""Roles validate what they template (#21.6): a name or model that is not a name (a newline that would
add a line to instance.env, a '../' or absolute path that would move its file, an empty one) and a port
outside 1-65535 or the port range are refused with one line naming the value, before anything is
written; and the server unit requires the firewall unit where the firewall is enforced."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from bench import facts
from tests.conftest import REPO, load_plugin, run

pytestmark = pytest.mark.unit

tfserving = load_plugin("roles/tfserving/filter_plugins/tfserving.py")
recbench = load_plugin("plugins/filter/recbench_facts.py")

HOSTILE_NAMES = ["dlrm\nPORT=1", "../etc", "/etc/x", "", "..", ".hidden", "a/b", "x" * 129, "dlrm\n", None, 3]
HOSTILE_PORTS = [0, 70000, -1, "abc", "٣", True, None, 8500.5]


@pytest.mark.parametrize("value", HOSTILE_NAMES)
def test_a_name_that_would_change_a_path_or_a_file_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match=r"^instance name .* is not a name \(") as refused:
        facts.check_name(value, "instance name")
    assert "\n" not in str(refused.value) and len(str(refused.value)) < 200
    with pytest.raises(AnsibleFilterError, match="is not a name"):
        recbench.recbench_check_name(["dlrm", value], "sweep: sweep_models entry")


@pytest.mark.parametrize("value", HOSTILE_PORTS)
def test_a_port_outside_1_to_65535_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match=r"is not a TCP port \(1-65535\)$"):
        facts.check_port(value, "port")
    with pytest.raises(AnsibleFilterError, match="is not a TCP port"):
        recbench.recbench_check_port(value, "sweep: sweep_base_port")


def test_good_names_ports_and_ranges_pass() -> None:
    for name in [*facts.MODELS, "dlrm-0", "dlrm-1-2", "numa0", "v1.2_x"]:
        assert facts.check_name(name, "name") == name
    assert facts.check_port("8500", "port") == 8500 and facts.check_port(1, "p") == 1
    assert facts.check_port(65535, "p") == 65535
    assert facts.check_port(facts.BASE_PORT, "p", facts.PORT_RANGE) == facts.BASE_PORT
    with pytest.raises(ValueError, match="outside the port range 8500-8599"):
        facts.check_port(9000, "port", facts.PORT_RANGE)
    for bad in ["8599-8500", "0-10", "1-70000", "8500-8599\n", "8500", "a-b", None]:
        with pytest.raises(ValueError, match="is not first-last"):
            facts.parse_port_range(bad)
    assert recbench.recbench_check_port_range(facts.PORT_RANGE) is True


def test_a_run_id_with_a_trailing_newline_is_not_a_run_id() -> None:
    assert facts.valid_run_id("20240101T000000Z")
    assert not facts.valid_run_id("20240101T000000Z\n") and not facts.valid_run_id("../x")


@pytest.mark.parametrize(
    ("instance", "refused"),
    [
        ({"model": "dlrm", "name": "dlrm-0\nPORT=1"}, r"instance 0: name 'dlrm-0\\nPORT=1' is not a name"),
        ({"model": "dlrm\nSERVER_BIN=/bin/sh"}, r"instance 0: model 'dlrm\\nSERVER_BIN=/bin/sh' is not a name"),
        ({"model": "dlrm", "name": "../../etc/cron.d/x"}, r"name '../../etc/cron.d/x' is not a name"),
        ({"model": "/etc/passwd"}, r"model '/etc/passwd' is not a name"),
        ({"model": ""}, r"model '' is not a name"),
        ({"model": "dlrm", "port": 0}, r"instance dlrm-0: port 0 is not a TCP port \(1-65535\)"),
        ({"model": "dlrm", "port": 70000}, r"instance dlrm-0: port 70000 is not a TCP port \(1-65535\)"),
        ({"model": "dlrm", "port": 9000}, r"instance dlrm-0: port 9000 is outside the port range 8500-8599"),
        ({"model": "dlrm", "cpus": "0-3\nX=1"}, r"cpus '0-3\\nX=1' must be text on one line"),
        ({"model": "dlrm", "cpus": "all"}, r"cpus 'all' is not a cpulist"),
        ({"model": "dlrm", "base_path": "models/dlrm"}, r"base_path 'models/dlrm' must be absolute"),
        ({"model": "dlrm", "base_path": "/opt/x/../../etc"}, r"must be absolute, without '\.\.'"),
        ({"model": "dlrm", "extra_flags": ["--a\n--b"]}, r"extra_flags '--a\\n--b' must be text on one line"),
        ({"model": "dlrm", "numa_node": -1}, r"numa_node -1 is not a whole number >= 0"),
        ({"model": "dlrm", "intra": "many"}, r"intra 'many' is not a whole number >= 0"),
    ],
)
def test_tfserving_refuses_an_instance_that_would_change_its_files(instance: dict, refused: str) -> None:
    with pytest.raises(ValueError, match=refused):
        tfserving.tfserving_instances([instance], facts.BASE_PORT, facts.MODELS_DIR, facts.PORT_RANGE)


def test_tfserving_refuses_two_instances_of_one_name() -> None:
    with pytest.raises(ValueError, match="dlrm-0 named twice"):
        tfserving.tfserving_instances([{"model": "dlrm"}, {"model": "dlrm", "port": 8501}], 8500, "/m", "8500-8599")


# The roles' real tasks, on local hosts each given one hostile value: tfserving's check (the entry
# points main and serve start with it) and the sweep's first task; and the server unit template rendered
# for a host whose firewall is enforced, one where nft cannot reach netfilter, one whose ports are open.
HOST = {"numa_nodes": [{"id": 0, "cpus": "0"}]}
TFSERVING_CASES = {
    "newline_name": ([{"model": "dlrm", "name": "dlrm-0\nPORT=1"}], "name 'dlrm-0\\nPORT=1' is not a name"),
    "newline_model": ([{"model": "dlrm\nX=1"}], "model 'dlrm\\nX=1' is not a name"),
    "dotdot_name": ([{"model": "dlrm", "name": "../x"}], "name '../x' is not a name"),
    "absolute_name": ([{"model": "dlrm", "name": "/etc/x"}], "name '/etc/x' is not a name"),
    "empty_model": ([{"model": ""}], "model '' is not a name"),
    "port_0": ([{"model": "dlrm", "port": 0}], "port 0 is not a TCP port (1-65535)"),
    "port_70000": ([{"model": "dlrm", "port": 70000}], "port 70000 is not a TCP port (1-65535)"),
    "tfserving_good": ([{"model": "dlrm"}, {"model": "dssm", "name": "dssm.a_1", "port": 8501}], None),
}
SWEEP_CASES = {
    "sweep_dotdot_model": ({"sweep_models": ["dlrm", "../x"]}, "sweep: sweep_models entry '../x' is not a name"),
    "sweep_port_0": ({"sweep_base_port": 0}, "sweep: sweep_base_port 0 is not a TCP port (1-65535)"),
    "sweep_port_70000": ({"sweep_base_port": 70000}, "sweep: sweep_base_port 70000 is not a TCP port (1-65535)"),
}
UNIT_CASES = {
    "unit_enforced": {"tfserving_expose_ports": False, "__tfserving_netfilter": {"rc": 0, "stderr": ""}},
    "unit_unenforced": {
        "tfserving_expose_ports": False,
        "__tfserving_netfilter": {"rc": 1, "stderr": "Error: Protocol not supported"},
    },
    "unit_exposed": {"tfserving_expose_ports": True},
}
FIREWALL = "recbench-tfserving-firewall.service"


def _inventory(out: Path) -> dict:
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    return {
        "tfserving_cases": {
            "hosts": {
                name: local | {"tfserving_instances": instances, "ansible_local": {"recbench_host": HOST}}
                for name, (instances, _) in TFSERVING_CASES.items()
            }
        },
        "sweep_cases": {"hosts": {name: local | {"sweep_run_id": "r1"} | v for name, (v, _) in SWEEP_CASES.items()}},
        "units": {
            "hosts": {
                name: local
                | v
                | {"tfserving_user": "recbench", "tfserving_group": "recbench", "__tfserving_numa": {"rc": 0}}
                for name, v in UNIT_CASES.items()
            },
            "vars": {"unit_out": str(out)},
        },
    }


PLAYBOOK = f"""
- name: The tfserving role's checks
  hosts: tfserving_cases
  gather_facts: false
  tasks:
    - name: Check the instances
      ansible.builtin.include_role:
        name: tfserving
        tasks_from: check

- name: The server unit
  hosts: units
  gather_facts: false
  vars_files:
    - {REPO}/roles/tfserving/vars/main.yml
  tasks:
    - name: Render the unit template
      ansible.builtin.template:
        src: {REPO}/roles/tfserving/templates/tfserving@.service.j2
        dest: "{{{{ unit_out }}}}/{{{{ inventory_hostname }}}}.service"
        mode: "0644"

# Last: every host of this play fails, which ends the playbook.
- name: The sweep role's first checks
  hosts: sweep_cases
  gather_facts: false
  roles:
    - role: sweep
"""


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str | None], Path]:
    """Per host: the message of its first failed task (None when every task passed); the units' directory."""
    tmp = tmp_path_factory.mktemp("roles")
    (tmp / "inventory.yml").write_text(yaml.safe_dump(_inventory(tmp)))
    (tmp / "play.yml").write_text(PLAYBOOK)
    proc = run(
        ["ansible-playbook", "-i", str(tmp / "inventory.yml"), str(tmp / "play.yml")],
        timeout=300,
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
        ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.json",  # only the JSON report on stdout
    )
    report = json.loads(proc.stdout)
    failed: dict[str, str | None] = {host: None for host in report["stats"]}
    for play in report["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                if result.get("failed") and failed[host] is None:
                    failed[host] = str(result.get("msg"))
    return failed, tmp


@pytest.mark.parametrize("host", [*TFSERVING_CASES, *SWEEP_CASES])
def test_the_roles_refuse_each_hostile_value_in_one_line(host: str, played: tuple[dict[str, str | None], Path]) -> None:
    failed, _ = played
    expected = {**TFSERVING_CASES, **SWEEP_CASES}[host][1]
    if expected is None:
        assert failed[host] is None, failed[host]
    else:
        assert failed[host] is not None and expected in failed[host], failed[host]
        assert "\n" not in failed[host]


def test_the_server_unit_requires_the_firewall_only_where_it_is_enforced(
    played: tuple[dict[str, str | None], Path],
) -> None:
    failed, out = played
    assert all(failed[host] is None for host in UNIT_CASES), failed
    units = {host: (out / f"{host}.service").read_text().splitlines() for host in UNIT_CASES}
    assert f"Requires={FIREWALL}" in units["unit_enforced"]
    assert f"After=network.target {FIREWALL}" in units["unit_enforced"]
    # nft cannot reach netfilter here (recorded in recbench_firewall.fact): ordered after it, as before.
    assert f"After=network.target {FIREWALL}" in units["unit_unenforced"]
    assert not any(line.startswith("Requires=") for line in units["unit_unenforced"])
    assert "After=network.target" in units["unit_exposed"]
    assert not any(FIREWALL in line for line in units["unit_exposed"] if not line.startswith("#"))
