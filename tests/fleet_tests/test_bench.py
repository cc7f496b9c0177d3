"""The whole pipeline on 2 simulated hosts: bench.yml with the ci profile (site, train, sweep, fetch).

The controller is SIGKILLed once both hosts' sweep queues run: the hosts go on measuring, and
`RECBENCH_RUN_ID=<id> ./scripts/bench.sh` re-attaches to their runners (never a second launch), waits
and fetches. One host's server is stopped in the middle of a sweep: that point is recorded as failed
and every other point completes. That host then goes silent near the end of its queue (frozen, as on
a lost network) and, once declared failed, loses power; the run goes on without it and the same run
id, run again, finds its runner dead and measures only what it missed. For
the other host that third run is a repeat of every stage: it does no work and changes nothing on the
controller.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench import facts
from bench.controller.sweeps import configs_for
from bench.layout import META_NAME, knob_search_record_path
from bench.records import LIMITS
from sim.fleet.fleet import Fleet
from sim.fleet.podman import podman
from tests.browser import html_attribute, rendered_dom
from tests.conftest import REPO, ansible_env, run

pytestmark = pytest.mark.fleet

STORE = Path(os.environ.get("RECBENCH_ARTIFACTS", "/var/tmp/recbench-artifacts"))
RUN_ID = "fleet-bench"
MODELS = facts.MODELS
# The point whose server is stopped while perf_analyzer measures it: the first dlrm config (single).
VICTIM_HOST, VICTIM_MODEL = "kunpeng-02", "dlrm"
# The model and host tonight's nightly run benches (their history was faked 5x faster).
NIGHTLY_MODEL, NIGHTLY_HOST = "dssm", "kunpeng-01"
# Stops the server from inside the host the moment a dlrm client runs ([d] keeps pgrep off this shell);
# its mark goes to /var/tmp, which outlives the host's restart (/tmp does not).
KILLER = (
    "until pgrep -f 'perf_analyzer -m [d]lrm' >/dev/null; do sleep 0.05; done; "
    "systemctl stop tfserving@dlrm-0.service; touch /var/tmp/recbench-killed"
)


# The host that goes silent near the end of its sweep: the last configs it has not measured yet.
LOST_HOST, LOST_WHEN_LEFT = "kunpeng-02", 3
# The host that finished: for it the resume is a second run of every stage with the same run id.
OTHER_HOST = "kunpeng-01"
HOST_RESULTS = f"{facts.RESULTS_ROOT}/{RUN_ID}"


def recorded_on(container: str) -> dict[str, str]:
    """The points a host has recorded in this run: metadata path -> its finished_at."""
    listing = podman(
        "exec", container, "sh", "-c", f"find {HOST_RESULTS} -name metadata.json -printf '%p %T@\\n'", check=False
    )
    return dict(line.split(" ", 1) for line in listing.splitlines() if line.strip())


def progress_on(container: str) -> dict:
    """The host's sweep queue progress (bench.queue), {} before its runner wrote one."""
    text = podman("exec", container, "cat", f"{facts.SWEEP_STATE_DIR}/{RUN_ID}/progress.json", check=False)
    try:
        return json.loads(text)
    except ValueError:
        return {}


def freeze_near_the_end(container: str, expected: int, seen: dict) -> None:
    """Freeze CONTAINER (a host gone silent: no answer, no refusal) once it has recorded all but
    LOST_WHEN_LEFT points."""
    deadline = time.monotonic() + 2400
    while time.monotonic() < deadline:
        recorded = recorded_on(container)
        if len(recorded) >= expected - LOST_WHEN_LEFT:
            seen["recorded"] = recorded
            podman("pause", container)
            seen["silent_at"] = datetime.now(UTC)
            return
        time.sleep(1)


def bench(fleet: Fleet, extra_vars: Path, *args: str, playbook: str = "playbooks/bench.yml") -> tuple[int, str]:
    sizes = ["-e", "@scripts/simulated-fleet.yml"]  # what scripts/bench.sh passes for a simulated fleet
    proc = run(
        ["ansible-playbook", "-i", str(fleet.inventory), playbook, *sizes, "-e", f"@{extra_vars}", *args], timeout=3000
    )
    return proc.returncode, proc.stdout + proc.stderr


def bench_killed_mid_sweep(fleet: Fleet, extra_vars: Path, containers: list[str], seen: dict) -> str:
    """bench.yml, SIGKILLed with everything it started (the controller lost) once every host's queue
    has finished a config; SEEN gets each host's progress at that moment. Returns its output."""
    sizes = ["-e", "@scripts/simulated-fleet.yml"]
    cmd = ["ansible-playbook", "-i", str(fleet.inventory), "playbooks/bench.yml", *sizes, "-e", f"@{extra_vars}"]
    with subprocess.Popen(
        cmd, cwd=REPO, env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    ) as controller:  # fmt: skip
        reader = threading.Thread(target=lambda: seen.setdefault("output", controller.stdout.read()), daemon=True)
        reader.start()
        deadline = time.monotonic() + 2400
        while time.monotonic() < deadline and controller.poll() is None:
            progress = {c: progress_on(c) for c in containers}
            if all(p.get("state") in ("running", "done") and p.get("done", 0) >= 1 for p in progress.values()):
                seen["at_kill"] = progress
                break
            time.sleep(1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(controller.pid, signal.SIGKILL)  # at the moment above, or at the deadline: never left running
        controller.wait()
        reader.join(timeout=30)
    return seen.get("output", "")


def recap(output: str) -> dict[str, str]:
    lines = [line for line in output.splitlines() if " ok=" in line and "changed=" in line]
    return {line.split()[0]: line for line in lines}


def snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def benched(
    bench_fleet: Fleet, sited: set[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Fleet, Path, Path, str, dict]]:
    assert (STORE / "manifest.json").is_file(), "scripts/test.sh fills the test artifact store first"
    work = tmp_path_factory.mktemp("bench")
    results = work / "results"
    extra_vars = work / "vars.json"
    extra_vars.write_text(
        json.dumps(
            {
                "recbench_run_id": RUN_ID,
                "recbench_results_dir": str(results),
                "recbench_artifact_dir": str(STORE),
            }
        )
    )
    fleet = bench_fleet
    containers = {h.name: h.container for h in fleet.hosts()}
    podman("exec", "-d", containers[VICTIM_HOST], "bash", "-c", KILLER)
    # The controller dies once both hosts' queues run; they go on without it.
    lost: dict = {"expected": len(configs_for(MODELS, profile="ci"))}
    killed: dict = {}
    output = bench_killed_mid_sweep(fleet, extra_vars, list(containers.values()), killed)
    (work / "killed-run.log").write_text(output)
    assert "at_kill" in killed, "the controller was never killed: " + output[-3000:]
    lost["controller_killed"] = killed
    # Meanwhile the other host goes silent near the end of its queue.
    killer = threading.Thread(target=freeze_near_the_end, args=(containers[LOST_HOST], lost["expected"], lost))
    killer.start()
    # The operator comes back: the same run id re-attaches to the hosts' runners, as the README says
    # (the stages already done skipped, so the queues still run when it looks).
    reattach = subprocess.run(
        ["./scripts/bench.sh", "--tags", "sweep,fetch", "-e", "@scripts/simulated-fleet.yml", "-e", f"@{extra_vars}"],
        cwd=REPO,
        env=ansible_env(
            RECBENCH_INVENTORY=str(fleet.inventory),
            RECBENCH_RUN_ID=RUN_ID,
            RECBENCH_RESULTS=str(results),
            RECBENCH_ARTIFACTS=str(STORE),
        ),
        capture_output=True,
        text=True,
        timeout=3000,
        check=False,
    )
    rc, output = reattach.returncode, reattach.stdout + reattach.stderr
    killer.join()
    (work / "first-run.log").write_text(output)
    assert "silent_at" in lost, "the host never went silent: " + output[-3000:]
    assert rc != 0, output[-6000:]  # an unreachable host fails the run, after the others finished
    lost["first_output"] = output
    lost["first_results"] = snapshot(results)
    lost["other_progress"] = progress_on(containers[OTHER_HOST])
    sited.add(fleet.name)
    # Declared failed, the silent host loses power (its runner dies with it) and comes back; the same
    # run id measures only what it missed, and fetches everything.
    podman("unpause", containers[LOST_HOST])
    podman("kill", containers[LOST_HOST])
    fleet.up(2, log=lambda _: None)
    lost["kept_before_resume"] = recorded_on(containers[LOST_HOST])
    lost["lost_progress_before_resume"] = progress_on(containers[LOST_HOST])
    lost["other_before_resume"] = recorded_on(containers[OTHER_HOST])
    lost["other_fetched_before_resume"] = snapshot(results / RUN_ID / OTHER_HOST)
    rc, output = bench(fleet, extra_vars)
    (work / "resume.log").write_text(output)
    assert rc == 0, output[-6000:]
    lost["other_after_resume"] = recorded_on(containers[OTHER_HOST])
    lost["other_fetched_after_resume"] = snapshot(results / RUN_ID / OTHER_HOST)
    lost["lost_progress_after_resume"] = progress_on(containers[LOST_HOST])
    lost["resume_output"] = output
    yield fleet, results, extra_vars, output, lost


def metadata(results: Path) -> dict[tuple[str, str, str, str], dict]:
    found = {}
    for path in results.glob(f"{RUN_ID}/*/*/*/*/metadata.json"):
        instance, config_id, model, host = path.parts[-2], path.parts[-3], path.parts[-4], path.parts[-5]
        found[(host, model, config_id, instance)] = json.loads(path.read_text())
    return found


def test_every_model_and_mode_has_results_on_the_controller(benched) -> None:
    fleet, results, _, _, _ = benched
    found = metadata(results)
    configs = configs_for(MODELS, profile="ci")
    assert {c.mode for c in configs} == {"single", "entire"}
    expected = {(h.name, c.model, c.config_id) for h in fleet.hosts() for c in configs}
    assert {(host, model, config) for host, model, config, _ in found} == expected
    for (host, model, config_id, instance), meta in found.items():
        assert (meta["run_id"], meta["host"], meta["model"], meta["config_id"]) == (RUN_ID, host, model, config_id)
        assert meta["instance"]["name"] == instance
        assert meta["versions"]["perf_analyzer"]["version"] == "2.46.0"
        assert meta["versions"]["tfserving"]["version"].startswith("2.15")
        assert meta["host_facts"]["numa_nodes"], meta["host_facts"]
        assert meta["served_version"] >= 1
        # Native hosts: the serving ports were closed and the servers' memory bound to their node.
        assert meta["machine"]["firewall"]["enforced"] is True, meta["machine"]
        assert meta["machine"]["numa_binding"]["memory_bound"] is True, meta["machine"]
    # No half-written point came home.
    assert not list(results.rglob(".*.partial"))


# Two readings a level apart may straddle a tick of the kernel's CPU accounting on a shared machine.
CPU_TOLERANCE = 0.15


def test_every_level_records_plausible_cpu_evidence_of_its_real_servers(benched) -> None:
    """Each grid level's evidence on a simulated host: the server's CPU time read from its systemd unit's
    processes (the container gives the unit no CPU accounting of its own), within the CPUs it is pinned
    to; server and client together within the host's CPUs; no RAPL and no cpufreq in a container: said,
    not faked."""
    _, results, _, _, _ = benched
    checked = 0
    for (_, _, _, _), meta in metadata(results).items():
        if meta["status"] != "complete" or not meta.get("evidence"):
            continue
        assert [e["level"] for e in meta["evidence"]] == meta["levels_reached"], meta["evidence"]
        for evidence in meta["evidence"]:
            unit = facts.SERVER_UNIT.format(meta["instance"]["unit"])
            assert evidence["server_source"].startswith(f"processes of {unit}"), evidence
            assert 0 < evidence["server_cores"] <= evidence["server_cpus"] + CPU_TOLERANCE, evidence
            assert evidence["client_cores"] <= evidence["client_cpus"] + CPU_TOLERANCE, evidence
            assert evidence["server_cores"] + evidence["client_cores"] <= evidence["host_cpus"] + CPU_TOLERANCE
            assert set(evidence["nodes"]) == {str(n["id"]) for n in meta["host_facts"]["numa_nodes"]}
            assert "no RAPL" in evidence["unavailable"]["energy"] and evidence.get("watts") is None
            assert "cpufreq" in evidence["unavailable"]["frequency"] and evidence.get("frequency_mhz") is None
            checked += 1
    assert checked >= 10, checked


def test_the_stopped_server_is_a_recorded_failure_and_everything_else_completes(benched) -> None:
    fleet, results, _, output, _ = benched
    victim = {h.name: h for h in fleet.hosts()}[VICTIM_HOST].container
    assert podman("exec", victim, "ls", "/var/tmp/recbench-killed", check=False).strip() == "/var/tmp/recbench-killed"
    (first_dlrm,) = [c for c in configs_for([VICTIM_MODEL], profile="ci") if c.mode == "single"]
    statuses = {key: meta["status"] for key, meta in metadata(results).items()}
    victims = {k: s for k, s in statuses.items() if k[0] == VICTIM_HOST and k[2] == first_dlrm.config_id}
    assert victims and all(s in ("failed", "partial") for s in victims.values()), victims
    for key in victims:
        meta = metadata(results)[key]
        assert meta["levels_failed"], meta
        assert meta["attempts"] and meta["attempts"][0]["exit_code"] != 0, meta["attempts"]
    others = {k: s for k, s in statuses.items() if k not in victims}
    assert others and all(s == "complete" for s in others.values()), {
        k: s for k, s in others.items() if s != "complete"
    }
    for key, meta in metadata(results).items():
        if key not in victims:
            csv = results / RUN_ID / key[0] / key[1] / key[2] / key[3] / "perf.csv"
            rows = csv.read_text().splitlines()[1:]
            assert len(rows) == len(meta["levels_expected"]) and all(float(r.split(",")[1]) > 0 for r in rows)
    assert "recbench: every host finished" in output


def test_a_host_gone_silent_mid_sweep_is_declared_failed_in_90_s_and_the_resume_measures_only_what_it_missed(
    benched,
) -> None:
    _, _, _, _, lost = benched
    # Declared failed (the run's own record of it, recbench_hosts) within 90 s of its last answer.
    line = next(line for line in lost["first_output"].splitlines() if f"{LOST_HOST}: unreachable at" in line)
    stamp = re.search(r"\((\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\)", line)
    assert stamp, line
    declared = datetime.strptime(stamp.group(1), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert (declared - lost["silent_at"]).total_seconds() <= 90, (line, lost["silent_at"])
    # The other host did not wait: its whole sweep finished and came home in that same run.
    came_home = [
        p for p in lost["first_results"] if p.startswith(f"{RUN_ID}/{OTHER_HOST}/") and p.endswith("/metadata.json")
    ]
    assert len(came_home) == lost["expected"], sorted(came_home)
    # The lost host's points recorded before it died are kept as they were ...
    assert {p: lost["kept_before_resume"][p] for p in lost["recorded"]} == lost["recorded"]
    assert len(lost["recorded"]) >= lost["expected"] - LOST_WHEN_LEFT
    # ... and the resume measured only what was missing: nothing on the other host.
    assert lost["other_after_resume"] == lost["other_before_resume"]
    assert "recbench: every host finished" in lost["resume_output"]


def test_the_hosts_measure_on_when_the_controller_dies_and_the_same_run_id_re_attaches(benched) -> None:
    """SIGKILL of the controller mid-sweep: each host's runner walks on (a unit of its own); the re-attach
    (RECBENCH_RUN_ID=<id> ./scripts/bench.sh) launches no second runner, waits for the queue and fetches
    every point, each measured once."""
    _, results, _, _, lost = benched
    at_kill = lost["controller_killed"]["at_kill"]
    other = lost["other_progress"]
    # the re-attach waited for a queue still running, which it did not launch: the runner that finished
    # is the one that ran when the controller died
    assert f"recbench: {OTHER_HOST}: running, " in lost["first_output"]
    (before,) = [p for c, p in at_kill.items() if c.endswith(OTHER_HOST)]
    assert (other["pid"], other["launched_at"]) == (before["pid"], before["launched_at"]), (before, other)
    assert other["state"] == "done" and other["done"] == other["total"] == lost["expected"], other
    # one walk measured every config (none found recorded by a second walk), and all of it came home
    assert other["skipped"] == 0 and other["measured"] + other["failed"] == lost["expected"], other
    came_home = [p for p in lost["first_results"] if p.startswith(f"{RUN_ID}/{OTHER_HOST}/") and p.endswith(META_NAME)]
    assert len(came_home) == lost["expected"]
    assert "PLAY RECAP" not in lost["controller_killed"]["output"]  # it was killed, not finished
    # the re-attach ran through scripts/bench.sh to its end: the store and the best throughputs
    assert f"results of run {RUN_ID}: {results}/{RUN_ID}" in lost["first_output"]
    # and no run warns that its failure threshold does nothing (max_fail_percentage under free)
    for output in (lost["controller_killed"]["output"], lost["first_output"], lost["resume_output"]):
        assert "max_fail_percentage with the free strategy" not in output


def test_a_dead_runner_is_told_by_its_progress_file_and_launched_again_by_the_next_run(benched) -> None:
    """The lost host's container restarted mid-queue: its progress file still says running, but its
    runner's process is gone (a stale heartbeat and a stuck walk are the unit tests'); the next run with
    the run id launches it again, and it skips every point already recorded."""
    _, _, _, _, lost = benched
    before, after = lost["lost_progress_before_resume"], lost["lost_progress_after_resume"]
    assert before["state"] == "running" and before["done"] < before["total"], before
    assert after["state"] == "done" and after["launched_at"] != before["launched_at"], after
    assert after["skipped"] >= len(lost["recorded"]) and after["done"] == after["total"], after
    assert after["measured"] + after["failed"] <= LOST_WHEN_LEFT + 1, after


def test_a_second_run_with_the_same_run_id_repeats_no_work(benched) -> None:
    """For the host that finished, the resume is bench.yml again with the same run id: every stage
    (site, train, sweep, fetch) must change nothing on it and leave its files on the controller as
    they were."""
    _, _, _, _, lost = benched
    other = recap(lost["resume_output"])[OTHER_HOST]
    assert "changed=0" in other and "failed=0" in other and "unreachable=0" in other, other
    plays = re.findall(r"^PLAY \[(.+?)\]", lost["resume_output"], flags=re.MULTILINE)
    stages = {"Prepare benchmark hosts", "Train and export the models", "Sweep the models", "Fetch the results"}
    assert stages <= set(plays), plays
    assert lost["other_fetched_after_resume"] == lost["other_fetched_before_resume"]
    assert lost["other_fetched_before_resume"]


def test_training_was_recorded_on_every_host(benched) -> None:
    fleet, results, _, _, _ = benched
    for host in fleet.hosts():
        for model in MODELS:
            for mode in ("single", "entire"):
                record = json.loads((results / RUN_ID / host.name / model / "train" / f"{mode}.json").read_text())
                assert record["status"] == "complete", record
                assert record["throughput_examples_per_s"] > 0


def test_the_collector_ingests_the_fetched_tree_without_complaint(benched, tmp_path: Path) -> None:
    _, results, _, _, _ = benched
    proc = run(["python", "-m", "collect", "ingest", str(results), "--db", str(tmp_path / "store.db")])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " 0 skipped" in proc.stdout and " 0 already stored" in proc.stdout, proc.stdout


def test_train_sweep_and_fetch_run_alone_and_repeat_no_work(benched) -> None:
    """Each stage playbook on its own, with the same run id, on the host that finished: nothing changes
    on it or on the controller (site.yml's plays are bench.yml's first, checked in the resume)."""
    fleet, results, extra_vars, _, _ = benched
    before = snapshot(results)
    for stage in ("train", "sweep", "fetch"):
        rc, output = bench(fleet, extra_vars, "--limit", OTHER_HOST, playbook=f"playbooks/{stage}.yml")
        assert rc == 0, f"{stage}: {output[-4000:]}"
        hosts = recap(output)
        assert sorted(hosts) == [OTHER_HOST], (stage, hosts)
        assert "changed=0" in hosts[OTHER_HOST] and "failed=0" in hosts[OTHER_HOST], (stage, hosts)
    assert snapshot(results) == before


def test_a_knob_search_of_capacities_sweeps_fetches_and_is_reported_as_capacities(benched, tmp_path: Path) -> None:
    """One model in capacity mode with a knob search (the ci-capacity profile: one then two servers on the
    node, a budget of two configs) on one host, from the sweep to `collect best`."""
    fleet, results, extra_vars, _, _ = benched
    run_id = "fleet-capacity"
    chosen = ["--limit", OTHER_HOST, "-e", f"recbench_run_id={run_id}", "-e", '{"recbench_models": ["dlrm"]}']
    chosen += ["-e", "recbench_sweep_profile=ci-capacity"]
    for stage in ("sweep", "fetch"):
        rc, output = bench(fleet, extra_vars, *chosen, playbook=f"playbooks/{stage}.yml")
        assert rc == 0, f"{stage}: {output[-4000:]}"
    model_dir = results / run_id / OTHER_HOST / "dlrm"
    configs = configs_for(["dlrm"], profile="ci-capacity")
    assert [c.instances_per_node for c in configs] == [1, 2]
    machines: dict[str, float | None] = {}
    for config in configs:
        metas = [json.loads(p.read_text()) for p in sorted((model_dir / config.config_id).glob(f"*/{META_NAME}"))]
        assert len(metas) == config.instances_per_node, config.config_id  # one search per server
        for meta in metas:
            search = meta["search"]
            assert search["kind"] == "capacity" and search["p99_budget_ms"] == config.p99_budget_ms
            assert search["curve"] and search["curve"][0]["level"] == 1 and search["windows"] >= 3, search
            assert meta["status"] == "complete" and search["stopped"], search
        valid = all(m["search"]["valid"] for m in metas)
        machines[config.config_id] = sum(m["search"]["capacity"] for m in metas) if valid else None
    assert len({m["instance"]["port"] for m in metas}) == 2  # the two servers of the node, on two ports
    knobs = json.loads(knob_search_record_path(results / run_id / OTHER_HOST, "dlrm", "single").read_text())
    assert [m["config_id"] for m in knobs["measured"]] == [c.config_id for c in configs]  # one server, then two
    assert knobs["stopped"] == "the budget of 2 configs is spent", knobs
    db = str(tmp_path / "store.duckdb")
    assert run(["python", "-m", "collect", "ingest", str(results), "--db", db]).returncode == 0
    shown = run(["python", "-m", "collect", "best", "--run", run_id, "--db", db])
    assert shown.returncode == 0, shown.stderr
    assert "capacity searches of run fleet-capacity" in shown.stdout and "searched: " in shown.stdout, shown.stdout
    found = [v for v in machines.values() if v is not None]
    assert (f"{max(found):,.0f}" if found else "INVALID: ") in shown.stdout, shown.stdout
    # The same run again walks the same path and finds every config recorded: no work, nothing changed.
    rc, output = bench(fleet, extra_vars, *chosen, playbook="playbooks/sweep.yml")
    assert rc == 0 and "changed=0" in recap(output)[OTHER_HOST], output[-3000:]


def test_open_loop_and_loadgen_capacities_sweep_fetch_and_are_reported_apart_from_the_closed_loop(
    benched, tmp_path: Path
) -> None:
    """One model on one host measured three ways in one run: the closed-loop grid (ci), the open-loop
    search (ci-open-loop: perf_analyzer's Poisson request rates) and MLPerf LoadGen's Server scenario
    (ci-mlperf, 2 s runs), from the sweep to `collect best` and the report."""
    fleet, results, extra_vars, _, _ = benched
    run_id = "fleet-open-loop"
    chosen = ["--limit", OTHER_HOST, "-e", f"recbench_run_id={run_id}", "-e", '{"recbench_models": ["dlrm"]}']
    for profile in ("ci", "ci-open-loop", "ci-mlperf"):
        rc, output = bench(
            fleet, extra_vars, *chosen, "-e", f"recbench_sweep_profile={profile}", playbook="playbooks/sweep.yml"
        )
        assert rc == 0, f"{profile}: {output[-4000:]}"
    rc, output = bench(fleet, extra_vars, *chosen, playbook="playbooks/fetch.yml")
    assert rc == 0, output[-4000:]
    model_dir = results / run_id / OTHER_HOST / "dlrm"
    (opened,) = configs_for(["dlrm"], profile="ci-open-loop")
    (mlperf,) = configs_for(["dlrm"], profile="ci-mlperf")
    meta = json.loads((model_dir / opened.config_id / "numa0" / META_NAME).read_text())
    search = meta["search"]
    assert search["load"] == "poisson" and search["curve"][0]["rate"] == opened.start_rate, search
    assert all(m["level"] is None and m["threads"] >= 4 for m in search["curve"]), search["curve"]
    assert all("--request-rate-range" in a["command"] for a in meta["attempts"])
    assert meta["rates_reached"] == [m["rate"] for m in search["curve"]]
    assert search["valid"] or search["reason"], search  # a number, or why it is not one
    assert all(m["evidence"]["server_cores"] > 0 for m in search["curve"]), search["curve"]
    # a capacity at ci-open-loop's max_rate has nothing above it: unknown, and the why says the range stopped it
    assert search.get("level") is None or search["verdict"]["limit"] in LIMITS, search
    if search.get("verdict", {}).get("limit") == "unknown":
        assert "no level above it was measured" in search["verdict"]["why"], search["verdict"]
    meta = json.loads((model_dir / mlperf.config_id / "numa0" / META_NAME).read_text())
    loadgen = meta["search"]
    assert loadgen["client"] == "mlperf" and meta["status"] == "complete", loadgen.get("reason")
    assert loadgen["loadgen"]["phases"]["performance"]["result"] in ("VALID", "INVALID"), loadgen["loadgen"]
    assert (model_dir / mlperf.config_id / "numa0" / "loadgen" / "performance" / "mlperf_log_summary.txt").is_file()
    if loadgen.get("level"):  # the performance run's evidence, bounded by the lines bench.loadgen_run prints
        assert loadgen["level"]["evidence"]["server_cores"] > 0 and loadgen["verdict"], loadgen["level"]
    db = str(tmp_path / "store.duckdb")
    assert run(["python", "-m", "collect", "ingest", str(results), "--db", db]).returncode == 0
    shown = run(["python", "-m", "collect", "best", "--run", run_id, "--db", db])
    assert shown.returncode == 0, shown.stderr
    searches = shown.stdout.split("capacity searches of run")[1]
    assert "| poisson " in searches and "| poisson (mlperf) " in searches, shown.stdout
    reported = run(["python", "-m", "collect", "report", "--run", run_id, "--db", db, "--out", str(tmp_path / "r")])
    assert reported.returncode == 0, reported.stderr
    page = (tmp_path / "r" / run_id / "report.html").read_text()
    assert f"{opened.config_id} (poisson)" in page and " (closed)" in page  # both curves of the model


def fake_history(results: Path, runs: list[str], factor: float) -> Path:
    """Earlier nights of the same hosts, models and configs, FACTOR times faster than tonight will be:
    copies of the benched run with run ids and throughputs rewritten."""
    import csv
    import io

    history = results.parent / "history"
    for run_id in runs:
        for meta_path in results.glob(f"{RUN_ID}/*/*/*/*/metadata.json"):
            meta = json.loads(meta_path.read_text())
            if meta["status"] != "complete":
                continue
            target = history / run_id / meta_path.parent.relative_to(results / RUN_ID)
            target.mkdir(parents=True)
            (target / "metadata.json").write_text(json.dumps(meta | {"run_id": run_id}))
            rows = list(csv.DictReader(io.StringIO((meta_path.parent / "perf.csv").read_text())))
            for row in rows:
                row["Inferences/Second"] = str(float(row["Inferences/Second"]) * factor)
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            (target / "perf.csv").write_text(buffer.getvalue())
    return history


def test_nightly_runs_the_pipeline_reports_and_names_a_regression(benched, tmp_path: Path) -> None:
    fleet, results, _, _, _ = benched
    nightly_results, db = tmp_path / "results", tmp_path / "results" / "recbench.duckdb"
    nightly_results.mkdir()
    # Three earlier nights, each five times faster than the fleet really is: tonight must be a regression.
    history = fake_history(results, ["night-1", "night-2", "night-3"], 5.0)
    proc = run(["python", "-m", "collect", "ingest", str(history), "--db", str(db)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # One model is enough here: the bench run above already covered all five, and tonight's pipeline
    # re-trains and re-sweeps whatever it is given (about ten minutes for all five on this fleet).
    store_vars = tmp_path / "store.json"
    store_vars.write_text(json.dumps({"recbench_artifact_dir": str(STORE), "recbench_models": [NIGHTLY_MODEL]}))
    proc = run(
        [
            "python",
            "-m",
            "collect",
            "nightly",
            "-i",
            str(fleet.inventory),
            "--limit",
            NIGHTLY_HOST,
            "-e",
            "scripts/simulated-fleet.yml",
            "-e",
            str(store_vars),
            "--run",
            "tonight",
            "--results",
            str(nightly_results),
            "--db",
            str(db),
            "--reports",
            str(tmp_path / "reports"),
            "--logs",
            str(tmp_path / "logs"),
            "--lock",
            str(tmp_path / "nightly.lock"),
            "--export",
            str(tmp_path / "share"),
        ],
        timeout=3000,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-4000:]
    assert "nightly tonight: regression" in proc.stdout
    flagged = [line for line in proc.stderr.splitlines() if "REGRESSION" in line]
    assert flagged and all("in the newest run" in line and "median of 3 runs" in line for line in flagged), output[
        -3000:
    ]
    # The run's results came home, were stored and reported; its logs are kept.
    assert any(f" {NIGHTLY_MODEL} " in line for line in flagged), flagged
    # A simulated host has one NUMA node: one instance per point; only the host in the limit ran.
    configs = len(configs_for([NIGHTLY_MODEL], profile="ci"))
    tonight = list((nightly_results / "tonight").glob("*/*/*/*/metadata.json"))
    assert len(tonight) == configs and all(p.parts[-5] == NIGHTLY_HOST for p in tonight), tonight
    page = tmp_path / "reports" / "tonight" / "report.html"
    dom = rendered_dom(page)  # the real fleet's report, opened in a real headless browser
    assert html_attribute(dom, "data-script-errors") is None, dom[:2000]
    assert int(html_attribute(dom, "data-plots") or 0) == 3  # overview, curves and history of the one model
    assert NIGHTLY_HOST in dom and NIGHTLY_MODEL in dom
    assert (tmp_path / "logs" / "tonight" / "nightly.log").read_text().count("REGRESSION") == len(flagged)
    assert list((tmp_path / "logs" / "tonight" / "runner" / "artifacts").glob("*/stdout"))
    # This controller's shard of the fleet, exported for the others to import.
    assert list((tmp_path / "share" / "points" / "run_id=tonight").glob("*.parquet"))
