"""Benchmark: one model through the whole pipeline on the fleet's ARM member beside an x86 host.

Brings up a simulated fleet of one x86_64 host and one emulated aarch64 host (qemu-user, `sim.fleet up 1
--aarch64 1`), packages the TF-Serving stand-in for both architectures, then runs site.yml, and train,
sweep (the ci profile) and fetch for one model, timing each stage; prints per host its architecture,
its points and their status, its training throughput, and whether its serving ports were closed to
other hosts (an emulated host cannot: qemu-user has no netfilter netlink socket, and the host records
so), and whether its servers' memory was bound to their NUMA node (qemu-user has no set_mempolicy:
taskset binds their CPUs only, recorded). Asserts nothing about speed; the emulated host runs every
instruction through qemu.

Run from the repository root inside .venv:  python benchmarks/arm_pipeline.py [--model dlrm]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.fleet_scale import STORE, playbook
from sim.fleet.fleet import REPO_ROOT, Fleet


def why_failed(meta: dict) -> str:
    """A failed point's reason: the server's, or its last perf_analyzer attempt's last line."""
    if meta.get("server_error"):
        return f"server: {meta['server_error']}"
    attempts = meta.get("attempts") or [{}]
    return f"perf_analyzer: {attempts[-1].get('last_output_line') or attempts[-1].get('exit_code')}"


def best_throughput(root: Path) -> float:
    rates = [float(line.split(",")[1]) for p in root.glob("*/*/perf.csv") for line in p.read_text().splitlines()[1:]]
    return max(rates, default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="dlrm")
    args = parser.parse_args()
    for arch in ("x86_64", "aarch64"):
        subprocess.run(
            [sys.executable, "-m", "sim.tfserving_standin.package", "--store", str(STORE), "--arch", arch],
            cwd=REPO_ROOT,
            check=True,
        )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fleet = Fleet(work / "fleet", name="armbench")
        fleet.down(log=lambda _: None)
        began = time.perf_counter()
        fleet.up(1, aarch64=1, log=lambda _: None)
        stages = {"up": time.perf_counter() - began}
        results = work / "results"
        models = json.dumps({"recbench_models": [args.model]})
        try:
            for stage in ("site", "train", "sweep", "fetch"):
                extra = [] if stage == "site" else ["-e", models]
                stages[stage], _, _ = playbook(fleet, stage, results, "arm", *extra)
                print(f"{stage}: {stages[stage]:.0f} s", flush=True)
            rows = []
            for host in fleet.hosts():
                root = results / "arm" / host.name / args.model
                metas = [json.loads(p.read_text()) for p in sorted(root.glob("*/*/metadata.json"))]
                train = json.loads((root / "train" / "entire.json").read_text())
                rows.append(
                    {
                        "host": host.name,
                        "arch": metas[0]["machine"]["architecture"] if metas else "?",
                        "points": len(metas),
                        "statuses": sorted({m["status"] for m in metas}),
                        "best_infer_s": best_throughput(root),
                        "train_examples_s": train.get("throughput_examples_per_s"),
                        "firewall": metas[0]["machine"]["firewall"] if metas else None,
                        "numa": metas[0]["machine"].get("numa_binding") if metas else None,
                        "why": sorted({why_failed(m) for m in metas if m["status"] != "complete"}),
                    }
                )
        finally:
            fleet.down(log=lambda _: None)
    print()
    print("| stage | " + " | ".join(stages) + " |")
    print("|---" * (len(stages) + 1) + "|")
    print("| wall (s) | " + " | ".join(f"{v:.0f}" for v in stages.values()) + " |")
    print()
    print(
        "| host | arch | points | status | best (infer/s) | training (examples/s) | ports closed to other hosts"
        " | servers' memory bound to their node |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        firewall, numa = r["firewall"] or {}, r["numa"] or {}
        closed = "yes" if firewall.get("enforced") else f"no: {firewall.get('reason', '?')}"
        bound = "yes" if numa.get("memory_bound") else f"no: {numa.get('reason', '?')}"
        print(
            f"| {r['host']} | {r['arch']} | {r['points']} | {', '.join(r['statuses'])} | {r['best_infer_s']:,.0f}"
            f" | {r['train_examples_s'] or 0:,.0f} | {closed} | {bound} |"
        )
    for r in rows:
        for why in r["why"]:
            print(f"{r['host']}: a point failed: {why}")


if __name__ == "__main__":
    main()
