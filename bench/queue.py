"""Host side of a sweep: walk a host's whole queue of configs, with no controller in the loop.

    python -m bench.queue run QUEUE.json            the recbench-sweep@<run id> unit's command
    python -m bench.queue launch QUEUE.json         start its runner unless it runs or is done
    python -m bench.queue wait QUEUE.json [--seconds S]
                                                    the controller's bounded look at the queue

The sweep stage writes the host's queue once (bench.controller.queues: every config of the run in
order, each with its job file's content and its servers' environment files) and starts the runner as
a systemd unit of its own, so it outlives the SSH session and the controller. For each config the
runner starts the servers through their tfserving@ units, waits until each serves its model, runs the
pinned clients (`python -m bench.sweep JOB.json`, as the sweep's account), and stops the servers,
whatever happened. A knob search picks its next config here, from the capacities measured before it
(bench.knobsearch). Points already recorded are skipped, so a queue run again measures only what is
missing; a server that never becomes ready fails only its config (its points are recorded failed,
with the reason).

progress.json beside the queue says where the runner is (config n of N, what each client measures)
and carries a heartbeat every HEARTBEAT_S seconds: a runner whose heartbeat is older than STALE_S, or
whose process is gone, is dead (its host restarted, or it was killed), and its queue can be started
again. `wait` returns when the queue has ended or after S seconds, whichever comes first, printing
the progress as one JSON line. Standard library only: it runs on the benchmark hosts.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import facts
from bench.knobsearch import plan, record, recorded_capacity
from bench.layout import META_NAME, knob_search_record_path, now, write_record
from bench.serving import start_servers, stop_servers

PROGRESS_NAME = "progress.json"
PROGRESS_DIR = "measuring"  # one file per instance of the config being measured (bench.instance)
STATES = ("none", "running", "done", "stopped", "dead")
ENDED = ("done", "stopped", "dead")  # a queue with no progress yet is waited for: its runner starts
# What a look prints: one JSON object under this key (the recbench_hosts callback shows it).
PROGRESS_KEY = "recbench_progress"


@dataclass
class Progress:
    """progress.json: where a queue's runner is. `total` counts the grid's configs and each knob search's
    budget (the most it may measure); `done` the configs finished or found recorded."""

    run_id: str
    queue_sha256: str
    state: str = "running"
    pid: int = 0
    pid_started: int = 0  # /proc/<pid>/stat's start time: a pid reused after a restart is not this one
    launched_at: str = ""
    heartbeat: float = 0.0
    total: int = 0
    done: int = 0
    config_id: str = ""
    measuring: dict[str, str] = field(default_factory=dict)
    measured: int = 0
    skipped: int = 0
    failed: int = 0
    ended_at: str = ""
    reason: str = ""
    # seconds spent on configs measured (servers started, ready, measured, stopped): the host's own
    # measurement time, against which a stage's wall time is read (benchmarks/fleet_scale.py)
    busy_s: float = 0.0


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def process_start(pid: int) -> int:
    """A process's start time in clock ticks since boot, or 0 when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[19])


def _write_json(path: Path, value: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, sort_keys=True) + "\n")
    tmp.chmod(0o644)
    os.replace(tmp, path)


def read_progress(path: Path) -> Progress | None:
    try:
        return Progress(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


class Runner:
    """One queue's walk, its progress written as it goes."""

    def __init__(self, queue_path: Path) -> None:
        self.queue_path = queue_path
        self.queue = json.loads(queue_path.read_text())
        self.work = queue_path.parent
        self.progress_path = self.work / PROGRESS_NAME
        self.measuring = self.work / PROGRESS_DIR
        self.account = pwd.getpwnam(self.queue["user"])
        total = sum(1 if step["kind"] == "config" else int(step["budget"]) for step in self.queue["steps"])
        self.progress = Progress(
            run_id=self.queue["run_id"],
            queue_sha256=sha256_of(queue_path),
            pid=os.getpid(),
            pid_started=process_start(os.getpid()),
            launched_at=now(),
            total=total,
        )
        self.lock = threading.Lock()
        self.beating = threading.Event()

    def publish(self) -> None:
        with self.lock:
            self.progress.heartbeat = time.time()
            if self.progress.state == "running":
                self.progress.measuring = {
                    p.name: p.read_text(errors="replace")[:200]
                    for p in sorted(self.measuring.glob("[!.]*"))
                    if p.is_file()
                }
            _write_json(self.progress_path, asdict(self.progress))

    def heartbeat(self) -> None:
        while not self.beating.wait(facts.HEARTBEAT_S):
            with contextlib.suppress(OSError):  # a full disk must not end the walk; the next beat tries again
                self.publish()

    def as_account(self, path: Path) -> None:
        os.chown(path, self.account.pw_uid, self.account.pw_gid)

    def clients(self, job: dict, job_file: Path, limit_s: float) -> str | None:
        """The pinned clients of one config (bench.sweep, as the sweep's account); None, or why they did
        not finish."""
        _write_json(job_file, job)
        self.as_account(job_file)
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": self.account.pw_dir,
            "USER": self.account.pw_name,
            "LOGNAME": self.account.pw_name,
            "LANG": "C.UTF-8",
        }
        cmd = [self.queue["python"], "-m", "bench.sweep", str(job_file)]
        # as root (the unit), the clients drop to the sweep's account; a runner that is that account runs them as is
        account = (
            {"user": self.account.pw_uid, "group": self.account.pw_gid, "extra_groups": []}
            if os.getuid() != self.account.pw_uid
            else {}
        )
        try:
            proc = subprocess.Popen(
                cmd,
                **account,
                env=env,
                cwd=self.work,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,  # its clients are killed with it
            )
        except OSError as err:
            return f"the clients did not start: {err}"
        try:
            out, err = proc.communicate(timeout=limit_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return f"the clients did not finish within {limit_s:g} s"
        if proc.returncode != 0:
            return f"the clients exited with {proc.returncode}: {(err or out).strip()[-500:]}"
        return None

    def run_config(self, step: dict) -> None:
        job = dict(step["job"])
        results = Path(job["results_dir"])
        names = [instance["name"] for instance in job["instances"]]
        with self.lock:
            self.progress.config_id = step["config_id"]
        if all((results / name / META_NAME).is_file() for name in names):
            with self.lock:
                self.progress.skipped += 1
                self.progress.done += 1
            return
        began = time.monotonic()
        shutil.rmtree(self.measuring, ignore_errors=True)
        self.measuring.mkdir()
        self.as_account(self.measuring)
        job["progress_dir"] = str(self.measuring)
        job_file = self.work / f"sweep-{step['config_id']}.json"
        try:
            error = start_servers(
                step["servers"], self.queue["conf_dir"], self.queue["probe"], float(self.queue["ready_timeout_s"])
            )
            if error:
                job["server_error"] = error  # every point not recorded is recorded failed, with the reason
            why = self.clients(job, job_file, float(step["limit_s"]))
            if why and not error:
                # the clients died or hung: what they did not record is recorded failed, not lost
                job["server_error"] = why
                self.clients(job, job_file, 120)
        finally:
            stop_servers([server["instance"]["name"] for server in step["servers"]])
            shutil.rmtree(self.measuring, ignore_errors=True)
        statuses = []
        for name in names:
            try:
                statuses.append(json.loads((results / name / META_NAME).read_text()).get("status"))
            except (OSError, ValueError):
                statuses.append("missing")
        with self.lock:
            self.progress.done += 1
            self.progress.busy_s = round(self.progress.busy_s + time.monotonic() - began, 3)
            self.progress.measuring = {}
            if all(status == "complete" for status in statuses):
                self.progress.measured += 1
            else:
                self.progress.failed += 1

    def run_knob_search(self, step: dict) -> None:
        by_id = {config["config_id"]: config for config in step["configs"]}
        configs = [config["job"]["config"] for config in step["configs"]]
        budget = int(step["budget"])
        capacities: dict[str, float | None] = {}
        for _ in range(budget):
            chosen, _why = plan(configs, capacities, budget)
            if chosen is None:
                break
            config = by_id[chosen["config_id"]]
            self.run_config(config)
            names = [instance["name"] for instance in config["job"]["instances"]]
            capacities[chosen["config_id"]] = recorded_capacity(Path(config["job"]["results_dir"]), names)
        with self.lock:
            self.progress.done += budget - len(capacities)  # the budget not spent is not waited for
        path = knob_search_record_path(Path(self.queue["host_results"]), step["model"], step["mode"])
        write_record(path, record(configs, capacities, budget, step["group"]))
        self.as_account(path)

    def run(self) -> int:
        self.publish()
        beat = threading.Thread(target=self.heartbeat, daemon=True)
        beat.start()
        state, reason = "done", ""
        try:
            stop_servers()  # one left over from an interrupted run would hold a port and a node's CPUs
            for step in self.queue["steps"]:
                if step["kind"] == "config":
                    self.run_config(step)
                else:
                    self.run_knob_search(step)
        except KeyboardInterrupt:
            state, reason = "stopped", "stopped by a signal"
        except Exception as err:  # the progress file must say why the walk ended
            state, reason = "stopped", f"{type(err).__name__}: {err}"
        finally:
            self.beating.set()
            with self.lock:
                self.progress.state, self.progress.reason = state, reason
                self.progress.ended_at, self.progress.config_id = now(), ""
            self.publish()
        if reason:
            print(f"queue: {reason}", file=sys.stderr)
        return 0 if state == "done" else 1


def look(queue_path: Path) -> dict:
    """The queue's state as the controller sees it: its progress, and `state` one of STATES (dead: the
    runner's heartbeat is older than STALE_S or its process is gone), `current` whether it ran the queue
    file as it is now, and the heartbeat's age."""
    progress = read_progress(queue_path.parent / PROGRESS_NAME)
    if progress is None:
        return {"state": "none", "current": False}
    shown = asdict(progress)
    age = max(0.0, time.time() - progress.heartbeat)
    shown["heartbeat_age_s"] = round(age, 1)
    try:
        shown["current"] = queue_path.is_file() and sha256_of(queue_path) == progress.queue_sha256
    except OSError:
        shown["current"] = False
    if progress.state == "running":
        alive = progress.pid == 0 or process_start(progress.pid) == progress.pid_started != 0
        if not alive or age > facts.STALE_S:
            shown["state"] = "dead"
            how = "its process is gone" if not alive else f"its heartbeat is {age:.0f} s old"
            if progress.pid == 0:
                how = f"it never started ({age:.0f} s after its launch)"
            shown["reason"] = f"the runner died at config {progress.done + 1} of {progress.total}: {how}"
    return shown


def launch(queue_path: Path, unit: str) -> str:
    """Start UNIT (the runner of QUEUE_PATH) unless a runner of it is alive or has walked this very
    queue to its end: 'attached' (it runs: never a second launch of the same queue), 'done' or
    'launched'. Raises OSError when systemd refuses."""
    seen = look(queue_path)
    if seen["state"] == "running":
        return "attached"
    if seen["state"] == "done" and seen["current"]:
        return "done"
    # A stand-in until the runner writes its own: a look right after the launch must not read the
    # dead runner's progress; pid 0 counts as alive until its heartbeat is STALE_S old.
    stub = Progress(run_id=str(json.loads(queue_path.read_text())["run_id"]), queue_sha256=sha256_of(queue_path))
    stub.heartbeat, stub.launched_at = time.time(), now()
    _write_json(queue_path.parent / PROGRESS_NAME, asdict(stub))
    # restart: a runner that hangs (alive, its heartbeat stale) is replaced, an ended one started again
    started = subprocess.run(["systemctl", "restart", unit], capture_output=True, text=True, timeout=120)
    if started.returncode != 0:
        raise OSError(f"systemctl restart {unit}: {(started.stderr or started.stdout).strip()}")
    return "launched"


def wait(queue_path: Path, seconds: float) -> dict:
    """LOOK once the queue has ended or SECONDS have passed, whichever is first."""
    deadline = time.monotonic() + seconds
    while True:
        seen = look(queue_path)
        if seen["state"] in ENDED or time.monotonic() >= deadline:
            return seen
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


def _stopped(_signum: int, _frame: object) -> None:
    # systemctl stop: end the walk through its `finally`, which stops the servers and says so
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.queue", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="walk the queue (the runner unit's command)")
    run_parser.add_argument("queue", type=Path)
    launch_parser = sub.add_parser("launch", help="start the queue's runner unless it runs or is done")
    launch_parser.add_argument("queue", type=Path)
    wait_parser = sub.add_parser("wait", help="look at the queue, waiting at most SECONDS for it to end")
    wait_parser.add_argument("queue", type=Path)
    wait_parser.add_argument("--seconds", type=float, default=facts.SWEEP_POLL_S)
    args = parser.parse_args(argv)
    if args.command == "launch":
        unit = facts.SWEEP_UNIT.format(args.queue.parent.name)
        try:
            print(launch(args.queue, unit))
        except (OSError, ValueError, KeyError, subprocess.TimeoutExpired) as err:
            print(f"queue: {args.queue}: {err}", file=sys.stderr)
            return 1
        return 0
    if args.command == "wait":
        print(json.dumps({PROGRESS_KEY: wait(args.queue, max(0.0, args.seconds))}, sort_keys=True))
        return 0
    try:
        runner = Runner(args.queue)
    except (OSError, ValueError, KeyError) as err:
        print(f"queue: {args.queue}: {err}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _stopped)
    return runner.run()


if __name__ == "__main__":
    sys.exit(main())
