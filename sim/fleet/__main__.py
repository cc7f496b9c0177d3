"""CLI of the simulated fleet: `python -m sim.fleet up N | down | status`."""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
from pathlib import Path

from sim.fleet.fleet import DEFAULT_STATE_DIR, SLOW_CPUS, Fleet
from sim.fleet.image import ensure_image
from sim.fleet.vm import DEFAULT_MEMORY_MB, VmShape
from sim.fleet.vm_image import ensure_vm_image


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sim.fleet", description=__doc__)
    parser.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help="state directory: keys, known_hosts, inventory (default: %(default)s)",
    )
    parser.add_argument("--name", help="fleet name, so several fleets can coexist (default: 'default')")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start N hosts (idempotent: running hosts are kept)")
    up.add_argument("count", type=int, help="number of native hosts")
    up.add_argument("--group", default="kunpeng", help="inventory group of the hosts (default: kunpeng)")
    up.add_argument(
        "--aarch64", type=int, default=0, metavar="M", help="also start M emulated aarch64 hosts (qemu-user-static)"
    )
    up.add_argument("--slow", type=int, default=0, metavar="K", help="make the last K native hosts slower (CPU quota)")
    up.add_argument(
        "--slow-cpus", type=float, default=SLOW_CPUS, help="CPU quota of a slow host, in cores (default: %(default)s)"
    )
    up.add_argument(
        "--vm",
        action="store_true",
        help="hosts are QEMU virtual machines with their own kernels (KVM where it runs a guest, TCG otherwise)",
    )
    up.add_argument("--numa", type=int, default=2, metavar="K", help="NUMA nodes of each VM (default: %(default)s)")
    up.add_argument(
        "--vm-memory",
        type=int,
        default=DEFAULT_MEMORY_MB,
        metavar="MIB",
        help="memory of each VM in MiB, split evenly over its nodes (default: %(default)s)",
    )
    image = sub.add_parser("image", help="build the host image(s) if missing or stale (Molecule uses them)")
    image.add_argument("--aarch64", action="store_true", help="also build the emulated aarch64 image")
    image.add_argument("--vm", action="store_true", help="the VM disk images rather than the container images")
    sub.add_parser("down", help="remove the fleet's containers and its state directory")
    sub.add_parser("status", help="list hosts, their container state and whether SSH answers")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    fleet = Fleet(args.dir, args.name)
    try:
        if args.command == "up":
            shape = VmShape(numa=args.numa, memory_mb=args.vm_memory) if args.vm else None
            fleet.up(
                args.count, group=args.group, aarch64=args.aarch64, slow=args.slow, slow_cpus=args.slow_cpus, vm=shape
            )
            print(f"try: ansible -i {fleet.inventory} {args.group} -m ansible.builtin.ping")
        elif args.command == "image":
            for arch in [platform.machine(), *(["aarch64"] if args.aarch64 else [])]:
                print(ensure_vm_image(arch).root.parent if args.vm else ensure_image(arch))
        elif args.command == "down":
            fleet.down()
        else:
            rows = fleet.status()
            if not rows:
                print(f"no fleet in {fleet.state_dir}")
                return 0
            for row in rows:
                print("  ".join(f"{k}={v}" for k, v in row.items()))
            return 0 if all(r["ssh"] == "ok" for r in rows) else 1
    # FleetError, PodmanError, EmulationUnavailable, VmError and a failed image build are RuntimeErrors.
    except (RuntimeError, subprocess.CalledProcessError) as err:
        print(f"fleet: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
