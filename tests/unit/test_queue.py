"""The host's sweep queue (bench.queue) and how the controller builds it (bench.controller.queues): the
runner walks a real queue in a process of its own, with a systemctl and a readiness probe that stand
in for systemd and TF-Serving (they log what they were asked and answer as told), so what it starts,
stops, skips, records and says in its progress file is seen from outside, as the controller sees it."""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import facts, queue
from bench.controller.queues import host_queue
from bench.controller.sweeps import configs_for
from tests.conftest import REPO

pytestmark = pytest.mark.unit

TWO_NODES = [{"id": 0, "cpus": "0"}, {"id": 1, "cpus": "1"}]


def search_record(capacity: float, valid: bool = True) -> dict:
    level = {"level": 4, "throughput": capacity, "p50_us": 1000.0, "p99_us": 2000.0, "requests": 5000}
    return {"kind": "capacity", "valid": valid, "capacity": capacity, "level": level, "p99_budget_ms": 10.0}


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A host of stand-ins: systemctl and the probe log their arguments to calls.log; the probe fails
    with PROBE_SAYS when that file exists, and sleeps PROBE_SLEEPS seconds when that one does."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.log"
    (bin_dir / "systemctl").write_text(f'#!/bin/sh\necho "systemctl $*" >> {calls}\n')
    probe = bin_dir / "probe"
    probe.write_text(
        "#!/bin/sh\n"
        f'echo "probe $*" >> {calls}\n'
        f"[ -f {tmp_path}/PROBE_SLEEPS ] && sleep $(cat {tmp_path}/PROBE_SLEEPS)\n"
        f"[ -f {tmp_path}/PROBE_SAYS ] && {{ cat {tmp_path}/PROBE_SAYS >&2; exit 1; }}\n"
        "exit 0\n"
    )
    python = bin_dir / "python"
    python.write_text(f'#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} "$@"\n')
    for tool in (bin_dir / "systemctl", probe, python):
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return {
        "run_id": "run-1",
        "host": "kunpeng-01",
        "user": pwd.getpwuid(os.getuid()).pw_name,
        "numa_nodes": TWO_NODES,
        "base_port": facts.BASE_PORT,
        "port_range": facts.PORT_RANGE,
        "models_dir": "/opt/recbench/models",
        "results_dir": str(tmp_path / "results"),
        "metadata": {"sweep_profile": "ci"},
        "served_versions": {model: 1 for model in facts.MODELS},
        "perf_input": {},
        "perf_analyzer": "/nonexistent/perf_analyzer",
        "timeout_s": 30,
        "retries": 0,
        "power_source": "none",
        "host_fact": "",
        "tfserving": {"bin": "/opt/recbench/tfserving/x/bin/tensorflow_model_server", "onednn": False},
        "python": str(python),
        "ready_timeout_s": 5,
        "tmp": tmp_path,
        "probe": str(probe),
        "calls": calls,
    }


def written(host: dict, configs: list[dict]) -> Path:
    """The queue of CONFIGS on HOST, written where the sweep role writes it, pointed at the stand-ins."""
    built = host_queue(configs, host)
    built |= {"conf_dir": str(host["tmp"] / "conf"), "probe": host["probe"]}
    path = host["tmp"] / "work" / host["run_id"] / "queue.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(built))
    return path


def runner_command(host: dict, path: Path) -> list[str]:
    """The runner of PATH with the stand-ins (the unit gives no options: the facts' paths)."""
    return [sys.executable, "-m", "bench.queue", "run", str(path), "--python", host["python"],
            "--probe", host["probe"], "--conf-dir", str(host["tmp"] / "conf")]  # fmt: skip


def walk(host: dict, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        runner_command(host, path),
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def calls(host: dict) -> list[str]:
    return host["calls"].read_text().splitlines() if host["calls"].exists() else []


def meta_of(host: dict, config: dict, instance: str = "numa0") -> dict:
    path = Path(host["results_dir"]) / host["run_id"] / host["host"] / config["model"] / config["config_id"]
    return json.loads((path / instance / "metadata.json").read_text())


def single_config(model: str = "dlrm") -> dict:
    return next(c.as_record() for c in configs_for([model], profile="ci") if c.mode == "single")


def test_the_queue_holds_every_config_with_its_job_and_its_servers_environments(host: dict) -> None:
    configs = [c.as_record() for c in configs_for(facts.MODELS, profile="ci")]
    built = host_queue(configs, host)
    assert [s["config_id"] for s in built["steps"]] == [c["config_id"] for c in configs]
    entire = next(s for s in built["steps"] if s["job"]["config"]["mode"] == "entire")
    envs = [server["environment"] for server in entire["servers"]]
    model = entire["job"]["model"]
    assert [s["instance"]["name"] for s in entire["servers"]] == [f"{model}-0", f"{model}-1"]
    assert "PORT=8500\n" in envs[0] and "CPUS=0\n" in envs[0] and "PORT=8510\n" in envs[1] and "CPUS=1\n" in envs[1]
    assert all(f"SERVER_BIN={host['tfserving']['bin']}\n" in env for env in envs)
    assert entire["job"]["results_dir"].endswith(f"/run-1/kunpeng-01/{entire['job']['model']}/{entire['config_id']}")
    assert built["limit_s"] >= sum(s["limit_s"] for s in built["steps"])
    # a knob search travels whole: the runner picks its configs
    knob = host_queue([c.as_record() for c in configs_for(["dlrm"], profile="ci-capacity")], host)
    (search,) = [s for s in knob["steps"] if s["kind"] == "knob_search"]
    assert search["group"] == "dlrm-single" and search["budget"] == 2 and len(search["configs"]) == 2


def test_a_server_that_never_becomes_ready_fails_its_config_and_the_servers_stop(host: dict) -> None:
    config = single_config()
    (host["tmp"] / "PROBE_SAYS").write_text("stopped before serving dlrm (UNAVAILABLE)")
    path = written(host, [config])
    done = walk(host, path)
    assert done.returncode == 0, done.stderr
    meta = meta_of(host, config)
    assert meta["status"] == "failed"
    assert meta["server_error"].startswith("Wait until every instance serves its model: dlrm-0: stopped before")
    unit = facts.SERVER_UNIT.format("dlrm-0")
    assert calls(host)[0] == f"systemctl stop {facts.SERVER_UNIT.format('*')}"  # leftovers first
    assert f"systemctl restart {unit}" in calls(host) and calls(host)[-1] == f"systemctl stop {unit}"
    env = (host["tmp"] / "conf" / "dlrm-0.env").read_text()
    assert "MODEL_NAME=dlrm\n" in env and "PORT=8500\n" in env
    progress = queue.look(path)
    assert progress["state"] == "done" and progress["current"] is True
    assert (progress["done"], progress["total"], progress["failed"], progress["measured"]) == (1, 1, 1, 0)
    # the same queue again measures nothing and starts no server
    host["calls"].unlink()
    assert walk(host, path).returncode == 0
    assert not any("restart" in call for call in calls(host))
    assert queue.look(path)["skipped"] == 1


def test_a_knob_search_chooses_its_next_config_on_the_host_and_records_why_it_stopped(host: dict) -> None:
    configs = [c.as_record() for c in configs_for(["dlrm"], profile="ci-capacity")]
    start = configs[0]
    # the start was measured by an earlier walk: its capacity is read back, the next config measured
    recorded = Path(host["results_dir"]) / "run-1" / "kunpeng-01" / "dlrm" / start["config_id"] / "numa0"
    recorded.mkdir(parents=True)
    (recorded / "metadata.json").write_text(json.dumps({"search": search_record(120.0)}))
    (host["tmp"] / "PROBE_SAYS").write_text("no model")
    path = written(host, configs)
    assert walk(host, path).returncode == 0
    record = json.loads((Path(host["results_dir"]) / "run-1/kunpeng-01/dlrm/knob-search-single.json").read_text())
    assert record["measured"][0]["config_id"] == start["config_id"] and len(record["measured"]) == 2
    assert record["best"] == {"config_id": start["config_id"], "capacity": 120.0}
    assert record["stopped"] == "the budget of 2 configs is spent"
    second = Path(host["results_dir"]) / "run-1/kunpeng-01/dlrm" / record["measured"][1]["config_id"]
    metas = [json.loads(p.read_text()) for p in second.glob("*/metadata.json")]
    assert metas and all(meta["status"] == "failed" for meta in metas)
    progress = queue.look(path)
    assert progress["state"] == "done" and progress["done"] == progress["total"] == 2


def test_a_runner_killed_mid_walk_is_dead_and_a_launch_starts_it_again(host: dict) -> None:
    (host["tmp"] / "PROBE_SLEEPS").write_text("30")
    path = written(host, [single_config()])
    runner = subprocess.Popen(runner_command(host, path), cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 30
    while queue.look(path).get("config_id") != single_config()["config_id"] and time.monotonic() < deadline:
        time.sleep(0.1)
    seen = queue.look(path)
    assert seen["state"] == "running" and seen["pid"] == runner.pid, seen
    assert queue.launch(path, "recbench-sweep@run-1.service") == "attached"  # never a second launch
    assert not any("recbench-sweep" in call for call in calls(host))
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    dead = queue.look(path)
    assert dead["state"] == "dead" and dead["reason"] == "the runner died at config 1 of 1: its process is gone"
    assert queue.launch(path, "recbench-sweep@run-1.service") == "launched"
    # whatever ran is stopped before the stand-in progress is written, then the runner starts
    launched = [call for call in calls(host) if "recbench-sweep" in call]
    assert launched[0] == "systemctl stop recbench-sweep@run-1.service"
    assert launched[-1] == "systemctl start recbench-sweep@run-1.service"
    # until the new runner writes its own, the launch's stand-in counts as alive ...
    assert queue.look(path)["state"] == "running"
    # ... for STALE_S: a runner that never starts is dead then
    stub = json.loads((path.parent / queue.PROGRESS_NAME).read_text())
    stub["heartbeat"] -= facts.STALE_S + 1
    (path.parent / queue.PROGRESS_NAME).write_text(json.dumps(stub))
    assert queue.look(path)["reason"].startswith("the runner died at config 1 of 0: it never started")


def test_a_stale_heartbeat_is_a_dead_runner_and_a_changed_queue_is_launched_again(host: dict) -> None:
    path = written(host, [single_config()])
    assert queue.look(path) == {"state": "none", "current": False, "ended": False}
    progress = queue.Progress(
        run_id="run-1",
        queue_sha256=queue.sha256_of(path),
        pid=os.getpid(),
        pid_started=queue.process_start(os.getpid()),
        heartbeat=time.time() - facts.STALE_S - 5,
        total=1,
    )
    (path.parent / queue.PROGRESS_NAME).write_text(json.dumps(progress.__dict__))
    stale = queue.look(path)
    assert stale["state"] == "dead" and "its heartbeat is" in stale["reason"], stale
    # a heart that beats over a walk past every bound of its config: stuck, as dead
    progress.heartbeat, progress.deadline, progress.config_id = time.time(), time.time() - 1, "c1"
    (path.parent / queue.PROGRESS_NAME).write_text(json.dumps(progress.__dict__))
    stuck = "the runner died at config 1 of 1: c1 is past its every bound: the walk is stuck"
    assert queue.look(path)["reason"] == stuck
    progress.deadline = 0.0
    progress.state, progress.heartbeat = "done", time.time()
    (path.parent / queue.PROGRESS_NAME).write_text(json.dumps(progress.__dict__))
    assert queue.launch(path, "u.service") == "done"
    started = time.monotonic()
    assert queue.wait(path, 20)["state"] == "done" and time.monotonic() - started < 5  # an ended queue: at once
    path.write_text(path.read_text().replace('"retries": 0', '"retries": 1'))  # the queue grew
    assert queue.look(path)["current"] is False
    assert queue.launch(path, "u.service") == "launched"


def test_a_look_at_a_running_queue_waits_at_most_its_seconds(host: dict) -> None:
    path = written(host, [single_config()])
    queue.launch(path, "u.service")  # the stand-in progress: running, for STALE_S
    started = time.monotonic()
    seen = queue.wait(path, 1.0)
    assert seen["state"] == "running" and 0.9 <= time.monotonic() - started < 5
    printed = subprocess.run(
        [sys.executable, "-m", "bench.queue", "wait", str(path), "--seconds", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(printed.stdout)[facts.SWEEP_PROGRESS_KEY]["state"] == "running"


def test_a_runner_walking_an_earlier_queue_is_replaced_by_the_launch_of_the_new_one(host: dict) -> None:
    path = written(host, [single_config()])
    queue.launch(path, "u.service")  # running (the stand-in), on this queue
    path.write_text(path.read_text().replace('"retries": 0', '"retries": 1'))  # the definitions changed
    assert queue.look(path)["current"] is False
    assert queue.launch(path, "u.service") == "replaced"
    assert queue.look(path)["current"] is True


def test_a_stopped_runner_stops_its_servers_and_says_so(host: dict) -> None:
    (host["tmp"] / "PROBE_SLEEPS").write_text("30")
    path = written(host, [single_config(), single_config("dssm")])
    runner = subprocess.Popen(runner_command(host, path), cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 30
    while not any(call.startswith("probe") for call in calls(host)) and time.monotonic() < deadline:
        time.sleep(0.1)
    runner.send_signal(signal.SIGTERM)  # systemctl stop
    assert runner.wait(timeout=60) == 1
    stopped = queue.look(path)
    assert stopped["state"] == "stopped" and stopped["reason"] == "stopped by a signal", stopped
    assert stopped["done"] == 0  # the config it was in is not counted: its points are not recorded
    assert calls(host)[-1] == f"systemctl stop {facts.SERVER_UNIT.format('*')}"


def test_clients_that_hang_are_killed_and_their_points_recorded_failed(host: dict) -> None:
    python = Path(host["python"])
    # a stand-in launcher whose bench.sweep hangs, unless the job says the servers failed
    hung = host["tmp"] / "hung.pid"
    python.write_text(
        "#!/bin/sh\n"
        f'grep -q server_error "$3" || {{ echo $$ > {hung}; exec sleep 300; }}\n'
        f'PYTHONPATH={REPO} exec {sys.executable} "$@"\n'
    )
    config = single_config()
    path = written(host, [config])
    built = json.loads(path.read_text())
    built["steps"][0]["limit_s"] = 2
    path.write_text(json.dumps(built))
    started = time.monotonic()
    assert walk(host, path).returncode == 0
    assert time.monotonic() - started < 60
    meta = meta_of(host, config)
    assert meta["status"] == "failed" and meta["server_error"] == "the clients did not finish within 2 s"
    assert not Path(f"/proc/{hung.read_text().strip()}").exists()  # the hung client is gone


def test_a_step_that_breaks_costs_only_itself(host: dict) -> None:
    first, second = single_config(), single_config("dssm")
    path = written(host, [first, second])
    built = json.loads(path.read_text())
    built["steps"][0]["job"]["instances"] = "not a list of instances"
    path.write_text(json.dumps(built))
    (host["tmp"] / "PROBE_SAYS").write_text("no model")
    assert walk(host, path).returncode == 0
    progress = queue.look(path)
    assert progress["state"] == "done" and progress["errors"][0].startswith(f"{first['config_id']}: TypeError")
    assert meta_of(host, second)["status"] == "failed"  # the next config was walked


def test_a_queue_file_that_is_not_a_queue_is_one_line_and_exit_2(host: dict, tmp_path: Path) -> None:
    bad = tmp_path / "queue.json"
    bad.write_text("{not json")
    done = walk(host, bad)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and done.stderr.startswith(f"queue: {bad}: ")
