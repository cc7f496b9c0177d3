"""Benchmark: one model through the whole pipeline on a virtual machine with two NUMA nodes.

Brings up one fleet host that is a QEMU virtual machine (`sim.fleet up 1 --vm --numa 2`: its own
kernel, one CPU and half the memory per node; TCG on these machines), runs site.yml, then train,
sweep (the ci profile: `single` and `entire`) and fetch for one model, timing each stage; prints,
per config and instance, its NUMA node, whether the server's memory was bound and the ports closed
(the host's facts the results carry), its best throughput, and for `entire` the machine's figure
(the sum of its instances). With --aarch64, the same on an aarch64 VM (`qemu-system-aarch64 -M virt`)
afterwards. Asserts nothing about speed: every figure is emulation's, not a server's.

Run from the repository root inside .venv:  python benchmarks/numa_pipeline.py [--model dlrm] [--aarch64]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import records
from benchmarks.fleet_scale import playbook
from sim.fleet.fleet import Fleet
from sim.fleet.vm import VmShape

# A stand-in server (TensorFlow) and a perf_analyzer on each node.
SHAPE = VmShape(numa=2, memory_mb=4096)


def best_throughput(csv: Path) -> float:
    rows = csv.read_text().splitlines()[1:] if csv.exists() else []
    return max((float(line.split(",")[1]) for line in rows), default=0.0)


def run_on(arch: str, model: str, work: Path) -> tuple[dict[str, float], list[dict]]:
    fleet = Fleet(work / f"fleet-{arch}", name=f"numabench-{arch}")
    fleet.down(log=lambda _: None)
    began = time.perf_counter()
    native = arch == platform.machine()
    fleet.up(1 if native else 0, aarch64=0 if native else 1, vm=SHAPE, log=print)
    stages = {"up": time.perf_counter() - began}
    (host,) = fleet.hosts()
    results = work / f"results-{arch}"
    try:
        for stage in ("site", "train", "sweep", "fetch"):
            extra = [] if stage == "site" else ["-e", json.dumps({"recbench_models": [model]})]
            stages[stage], _, _ = playbook(fleet, stage, results, "numa", *extra)
            print(f"{arch} {stage}: {stages[stage]:.0f} s", flush=True)
    finally:
        fleet.down(log=lambda _: None)
    rows = []
    for meta in sorted((results / "numa" / host.name / model).glob("*/*/metadata.json")):
        record = records.load(records.InstanceRecord, meta.read_text())
        machine = record.extra.get("machine", {})
        instance = record.instance if isinstance(record.instance, records.InstanceSpec) else None
        rows.append(
            {
                "host": host.name,
                "accel": host.accel,
                "config": record.config_id,
                "mode": record.config.mode,
                "instance": record.instance_name,
                "node": instance.numa_node if instance else None,
                "server_cpus": instance.extra.get("server_cpus") if instance else None,
                "client_cpus": instance.extra.get("client_cpus") if instance else None,
                "status": record.status,
                "best": best_throughput(meta.parent / "perf.csv"),
                "memory_bound": (machine.get("numa_binding") or {}).get("memory_bound"),
                "firewall": (machine.get("firewall") or {}).get("enforced"),
            }
        )
    return stages, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="dlrm")
    parser.add_argument("--aarch64", action="store_true", help="also on an aarch64 VM (long: TCG of another ISA)")
    args = parser.parse_args()
    arches = [platform.machine(), *(["aarch64"] if args.aarch64 else [])]
    with tempfile.TemporaryDirectory() as tmp:
        measured = {arch: run_on(arch, args.model, Path(tmp)) for arch in arches}
    for arch, (stages, rows) in measured.items():
        print(f"\n{arch} VM ({SHAPE.numa} NUMA nodes, {SHAPE.memory_mb} MiB), model {args.model}\n")
        print("| stage | " + " | ".join(stages) + " |")
        print("|---" * (len(stages) + 1) + "|")
        print("| wall (s) | " + " | ".join(f"{v:.0f}" for v in stages.values()) + " |")
        print()
        columns = ["config", "instance", "node", "server_cpus", "client_cpus", "status", "best", "memory_bound"]
        columns.append("firewall")
        print("| " + " | ".join(columns) + " |")
        print("|---" * len(columns) + "|")
        for r in rows:
            print("| " + " | ".join(f"{r[c]:,.1f}" if c == "best" else str(r[c]) for c in columns) + " |")
        for config in sorted({r["config"] for r in rows if r["mode"] == "entire"}):
            parts = [r["best"] for r in rows if r["config"] == config]
            print(f"{config}: machine = {' + '.join(f'{p:,.1f}' for p in parts)} = {sum(parts):,.1f} infer/s")


if __name__ == "__main__":
    main()
