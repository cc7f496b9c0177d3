"""Molecule's platform: one simulated fleet host per platform, reached over SSH.

    python -m sim.fleet.molecule create --platforms JSON
    python -m sim.fleet.molecule destroy

Molecule's podman connection costs several podman processes per task (1.5-2 s of CPU each); SSH
with pipelining through a persistent master costs a fraction of that, and is how the roles reach
real hosts. Host keys stay checked: each host's key is pinned in the fleet's known_hosts, which
molecule/config.yml hands to ssh. Run from Molecule's create and destroy playbooks
(molecule/shared/), which export the MOLECULE_* variables read here. A platform with
`arch: aarch64` is an emulated aarch64 host; one with `vm: K` is a virtual machine with K NUMA nodes
(sim/fleet/vm.py), and RECBENCH_MOLECULE_VM=K makes every platform one:

    RECBENCH_MOLECULE_VM=2 molecule test -s tfserving
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import yaml

from sim.fleet.fleet import LOGIN_USER, LOOPBACK, Fleet, FleetError
from sim.fleet.podman import PodmanError
from sim.fleet.vm import VmShape

VM_VARIABLE = "RECBENCH_MOLECULE_VM"


def scenario_fleet() -> Fleet:
    ephemeral = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
    return Fleet(ephemeral / "fleet", name=f"mol-{os.environ['MOLECULE_SCENARIO_NAME']}")


def emulated(entry: dict) -> bool:
    return entry.get("arch", platform.machine()) != platform.machine()


def vm_nodes(entry: dict) -> int:
    """The platform's NUMA nodes if it is a virtual machine (`vm: K`, or RECBENCH_MOLECULE_VM=K), else 0."""
    value = entry.get("vm", os.environ.get(VM_VARIABLE) or 0)
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{entry.get('name')}: vm must be a number of NUMA nodes, not {value!r}") from None


def instance_config(platforms: list[dict], fleet: Fleet) -> list[dict]:
    """Molecule's instance config: each platform paired with a fleet host of its architecture and kind."""
    pools: dict[tuple[bool, bool], list] = {}
    for host in sorted(fleet.hosts(), key=lambda h: h.name):
        pools.setdefault((host.emulated, host.vm), []).append(host)
    config = []
    for entry in platforms:
        host = pools[(emulated(entry), vm_nodes(entry) > 0)].pop(0)
        config.append(
            {
                "instance": entry["name"],
                "address": LOOPBACK,
                "port": host.port,
                "user": LOGIN_USER,
                "identity_file": str(fleet.client_key),
                "become_method": "sudo",
                "fleet_host": host.name,
            }
        )
    return config


def create(platforms: list[dict]) -> None:
    fleet = scenario_fleet()
    containers = [p for p in platforms if not vm_nodes(p)]
    vms = [p for p in platforms if vm_nodes(p)]
    shapes = {vm_nodes(p) for p in vms}
    if len(shapes) > 1:
        raise ValueError(f"one VM shape per scenario: its platforms ask for {sorted(shapes)} NUMA nodes")
    for group, shape in [(containers, None), (vms, VmShape(numa=shapes.pop()) if shapes else None)]:
        if group:
            arm = sum(1 for p in group if emulated(p))
            fleet.up(len(group) - arm, group="molecule", aarch64=arm, vm=shape, log=_say)
    write_instance_config(instance_config(platforms, fleet))


def _say(line: str) -> None:
    print(line, flush=True)


def destroy() -> None:
    scenario_fleet().down(log=_say)
    write_instance_config([])


def write_instance_config(config: list[dict]) -> None:
    path = Path(os.environ["MOLECULE_INSTANCE_CONFIG"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.fleet.molecule", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    made = sub.add_parser("create", help="bring up one host per platform and write Molecule's instance config")
    made.add_argument("--platforms", required=True, help="the scenario's platforms as JSON")
    sub.add_parser("destroy", help="remove the scenario's hosts")
    args = parser.parse_args(argv)
    missing = [
        v
        for v in ("MOLECULE_EPHEMERAL_DIRECTORY", "MOLECULE_SCENARIO_NAME", "MOLECULE_INSTANCE_CONFIG")
        if v not in os.environ
    ]
    if missing:
        print(f"molecule platform: run from Molecule ({', '.join(missing)} not set)", file=sys.stderr)
        return 2
    try:
        if args.command == "create":
            create(json.loads(args.platforms))
        else:
            destroy()
    except (FleetError, PodmanError, ValueError, KeyError) as err:
        print(f"molecule platform: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
