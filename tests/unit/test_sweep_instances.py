"""Where the sweep queue (bench.controller.placement) puts each server and client: the seed's NUMA
layout, and a one-node host."""

from __future__ import annotations

import pytest

from bench.controller import placement as plugin
from bench.controller.placement import format_cpulist, parse_cpulist
from bench.facts import BASE_PORT

pytestmark = pytest.mark.unit

KUNPENG = [{"id": n, "cpus": f"{32 * n}-{32 * n + 31}"} for n in range(4)]


def test_cpulists_round_trip() -> None:
    assert parse_cpulist("0-3,8,10-11") == [0, 1, 2, 3, 8, 10, 11]
    assert format_cpulist([11, 0, 1, 2, 3, 8, 10]) == "0-3,8,10-11"
    assert format_cpulist([5]) == "5"


def test_entire_runs_one_server_and_one_client_per_node_on_that_node() -> None:
    instances = plugin.sweep_instances({"model": "dlrm", "mode": "entire"}, KUNPENG, BASE_PORT)
    assert [(i["name"], i["unit"], i["port"]) for i in instances] == [
        ("numa0", "dlrm-0", 8500),
        ("numa1", "dlrm-1", 8510),
        ("numa2", "dlrm-2", 8520),
        ("numa3", "dlrm-3", 8530),
    ]
    assert all(
        i["server_cpus"] == i["client_cpus"] == f"{32 * i['numa_node']}-{32 * i['numa_node'] + 31}" for i in instances
    )


def test_single_serves_on_node_0_and_measures_from_node_1() -> None:
    (instance,) = plugin.sweep_instances({"model": "dssm", "mode": "single"}, list(reversed(KUNPENG)), BASE_PORT)
    assert (instance["numa_node"], instance["server_cpus"], instance["client_cpus"]) == (0, "0-31", "32-63")
    assert "NUMA node 1" in instance["note"]


def test_single_on_a_one_node_host_splits_its_cpus_and_says_so() -> None:
    (instance,) = plugin.sweep_instances({"model": "dlrm", "mode": "single"}, [{"id": 0, "cpus": "0-2"}], BASE_PORT)
    assert (instance["server_cpus"], instance["client_cpus"]) == ("0-1", "2")
    assert "split" in instance["note"]
    (shared,) = plugin.sweep_instances({"model": "dlrm", "mode": "single"}, [{"id": 0, "cpus": "0"}], BASE_PORT)
    assert shared["server_cpus"] == shared["client_cpus"] == "0" and "share" in shared["note"]


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no NUMA node"):
        plugin.sweep_instances({"model": "dlrm", "mode": "entire"}, [], BASE_PORT)
    with pytest.raises(ValueError, match="not single or entire"):
        plugin.sweep_instances({"model": "dlrm", "mode": "both"}, KUNPENG, BASE_PORT)


def test_several_servers_per_node_split_its_cpus_and_take_the_ports_above_its_own() -> None:
    config = {"model": "dlrm", "mode": "entire", "instances_per_node": 2}
    instances = plugin.sweep_instances(config, KUNPENG[:2], BASE_PORT)
    assert [(i["name"], i["unit"], i["port"], i["server_cpus"], i["client_cpus"]) for i in instances] == [
        ("numa0-0", "dlrm-0-0", 8500, "0-15", "0-31"),
        ("numa0-1", "dlrm-0-1", 8501, "16-31", "0-31"),
        ("numa1-0", "dlrm-1-0", 8510, "32-47", "32-63"),
        ("numa1-1", "dlrm-1-1", 8511, "48-63", "32-63"),
    ]
    servers = plugin.sweep_server_instances(
        instances, config | {"intra": 0, "inter": 0, "xla": False, "onednn": None}, "/m"
    )
    assert [s["name"] for s in servers] == ["dlrm-0-0", "dlrm-0-1", "dlrm-1-0", "dlrm-1-1"]
    # More servers than CPUs: they share the node's, and the note says so.
    (one, two, three) = plugin.sweep_instances(
        config | {"instances_per_node": 3}, [{"id": 0, "cpus": "0-1"}], BASE_PORT
    )
    assert one["server_cpus"] == three["server_cpus"] == "0-1" and "sharing its 2 CPU(s)" in two["note"]
    with pytest.raises(ValueError, match="instances_per_node must be 1 to 10"):
        plugin.sweep_instances(config | {"instances_per_node": 11}, KUNPENG, BASE_PORT)
