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
import stat
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import facts
from bench.facts import check_name
from bench.knobsearch import plan, record, recorded_capacity
from bench.layout import META_NAME, knob_search_record_path, now, write_atomically
from bench.serving import start_servers, stop_servers

PROGRESS_NAME = "progress.json"
PROGRESS_DIR = "measuring"  # one file per instance of the config being measured (bench.instance)
# A queue is none (no progress yet: waited for, its runner starts), running, or ended: done, stopped or
# dead. What a look prints is one JSON object under facts.SWEEP_PROGRESS_KEY (the sweep role reads its
# `ended`, the recbench_hosts callback shows it).
ENDED = ("done", "stopped", "dead")


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
    deadline: float = 0.0  # when the config being measured is past every bound it has (0: none)
    errors: list[str] = field(default_factory=list)  # steps that broke, each with why (the walk went on)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def process_start(pid: int) -> int:
    """A process's start time in clock ticks since boot, or 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(fields.rsplit(")", 1)[1].split()[19])


def _write_json(path: Path, value: dict) -> None:
    write_atomically(path, json.dumps(value, sort_keys=True) + "\n", 0o644)


def read_progress(path: Path) -> Progress | None:
    try:
        return Progress(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def read_limited(path: Path, limit: int = 200) -> str | None:
    """At most LIMIT characters of a file the sweep's account wrote, never through a symlink nor from a
    FIFO (the runner is root); None when it is not a plain file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, limit).decode(errors="replace")
    finally:
        os.close(fd)


# Writes a file as the sweep's account (argv: path; stdin: text), atomically, its directories made as
# that account: root never writes into a directory the account owns (a planted symlink would redirect it).
WRITE_AS_ACCOUNT = (
    "import sys\n"
    "from pathlib import Path\n"
    "from bench.layout import write_atomically\n"
    "path = Path(sys.argv[1])\n"
    "path.parent.mkdir(parents=True, exist_ok=True)\n"
    "write_atomically(path, sys.stdin.read())\n"
)
# where bench is, for that child (it runs with the account's environment, not the runner's)
BENCH_ROOT = str(Path(__file__).resolve().parents[1])


class Runner:
    """One queue's walk, its progress written as it goes. Its directory (queue, progress, job files) is
    root's; the clients run as the queue's account, which owns only `measuring/` and the results."""

    def __init__(
        self,
        queue_path: Path,
        python: str = facts.MODELZOO_PYTHON,
        probe: str = facts.TFSERVING_PROBE,
        conf_dir: str = facts.TFSERVING_CONF_DIR,
    ) -> None:
        # what it runs and where it writes the servers' files are facts, never the queue's (it is data)
        self.python, self.probe, self.conf_dir = python, probe, conf_dir
        self.queue_path = queue_path
        text = queue_path.read_bytes()  # read once: the hash is of what is walked
        self.queue = json.loads(text)
        self.work = queue_path.parent
        self.progress_path = self.work / PROGRESS_NAME
        self.measuring = self.work / PROGRESS_DIR
        self.account = pwd.getpwnam(self.queue["user"])
        total = sum(1 if step["kind"] == "config" else int(step["budget"]) for step in self.queue["steps"])
        self.progress = Progress(
            run_id=self.queue["run_id"],
            queue_sha256=hashlib.sha256(text).hexdigest(),
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
                names = sorted(p.name for p in self.measuring.glob("[!.]*")) if self.measuring.is_dir() else []
                seen = {name: read_limited(self.measuring / name) for name in names}
                self.progress.measuring = {name: what for name, what in seen.items() if what is not None}
            _write_json(self.progress_path, asdict(self.progress))

    def heartbeat(self) -> None:
        while not self.beating.wait(facts.HEARTBEAT_S):
            with contextlib.suppress(OSError):  # a full disk must not end the walk; the next beat tries again
                self.publish()

    def _as_account(self) -> dict:
        """Popen's arguments that run a child as the queue's account (with its supplementary groups, as
        a login would: a meter's group, say); none when the runner is that account."""
        if os.getuid() == self.account.pw_uid:
            return {}
        groups = os.getgrouplist(self.account.pw_name, self.account.pw_gid)
        return {"user": self.account.pw_uid, "group": self.account.pw_gid, "extra_groups": groups}

    def _env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": self.account.pw_dir,
            "USER": self.account.pw_name,
            "LOGNAME": self.account.pw_name,
            "LANG": "C.UTF-8",
        }

    def write_as_account(self, path: Path, text: str) -> None:
        done = subprocess.run(
            [sys.executable, "-c", WRITE_AS_ACCOUNT, str(path)],
            input=text, text=True, capture_output=True, timeout=60, cwd="/", **self._as_account(),
            env={**self._env(), "PYTHONPATH": BENCH_ROOT, "PYTHONDONTWRITEBYTECODE": "1"},
        )  # fmt: skip
        if done.returncode != 0:
            raise OSError(f"{path}: {done.stderr.strip().splitlines()[-1:] or done.returncode}")

    def clients(self, job: dict, job_file: Path, limit_s: float) -> str | None:
        """The pinned clients of one config (bench.sweep, as the queue's account); None, or why they did
        not finish. However this ends (a timeout, a signal), none of them outlives it."""
        _write_json(job_file, job)  # in root's directory, readable by the clients
        cmd = [self.python, "-m", "bench.sweep", str(job_file)]
        try:
            proc = subprocess.Popen(
                cmd,
                env=self._env(),
                cwd=self.work,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,  # a group of their own, killed as one
                **self._as_account(),
            )
        except OSError as err:
            return f"the clients did not start: {err}"
        try:
            out, err = proc.communicate(timeout=limit_s)
        except subprocess.TimeoutExpired:
            return f"the clients did not finish within {limit_s:g} s"
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
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
        ready_s = float(self.queue["ready_timeout_s"])
        with self.lock:
            # a walk past this is stuck (every wait below is bounded): a look calls its runner dead
            self.progress.deadline = time.time() + float(step["limit_s"]) + 2 * ready_s + 600
        shutil.rmtree(self.measuring, ignore_errors=True)
        self.measuring.mkdir(exist_ok=True)
        os.chown(self.measuring, self.account.pw_uid, self.account.pw_gid, follow_symlinks=False)
        job["progress_dir"] = str(self.measuring)
        job_file = self.work / f"sweep-{check_name(step['config_id'], 'queue: config_id')}.json"
        try:
            error = start_servers(step["servers"], self.conf_dir, self.probe, ready_s)
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
                statuses.append(str(json.loads((results / name / META_NAME).read_text()).get("status")))
            except (OSError, ValueError, AttributeError):
                statuses.append("missing")
        with self.lock:
            self.progress.done += 1
            self.progress.busy_s = round(self.progress.busy_s + time.monotonic() - began, 3)
            self.progress.measuring, self.progress.deadline = {}, 0.0
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
            self.run_step(config)
            names = [instance["name"] for instance in config["job"]["instances"]]
            capacities[chosen["config_id"]] = recorded_capacity(Path(config["job"]["results_dir"]), names)
        with self.lock:
            self.progress.done += budget - len(capacities)  # the budget not spent is not waited for
        path = knob_search_record_path(Path(self.queue["host_results"]), step["model"], step["mode"])
        found = record(configs, capacities, budget, step["group"])
        self.write_as_account(path, type(found).from_json(found.to_json()).to_text())  # checked as a reader will

    def run_step(self, step: dict) -> None:
        """One config or knob search. What goes wrong in it costs it, not the rest of the queue."""
        try:
            if step["kind"] == "config":
                self.run_config(step)
            else:
                self.run_knob_search(step)
        except Exception as err:  # said in the progress file, and the walk goes on
            what = step.get("config_id") or step.get("group")
            with self.lock:
                self.progress.failed += 1
                self.progress.errors.append(f"{what}: {type(err).__name__}: {err}"[:500])

    def run(self) -> int:
        self.publish()
        beat = threading.Thread(target=self.heartbeat, daemon=True)
        beat.start()
        state, reason = "done", ""
        try:
            stop_servers()  # one left over from an interrupted run would hold a port and a node's CPUs
            for step in self.queue["steps"]:
                self.run_step(step)
        except KeyboardInterrupt:
            state, reason = "stopped", "stopped by a signal"
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second stop must not cut the cleanup short
            if state != "done":
                stop_servers()
            self.beating.set()
            with self.lock:
                self.progress.state, self.progress.reason = state, reason
                self.progress.ended_at, self.progress.config_id = now(), ""
            self.publish()
        if reason:
            print(f"queue: {reason}", file=sys.stderr)
        return 0 if state == "done" else 1


def look(queue_path: Path) -> dict:
    """The queue's state as the controller sees it: its progress, and `state` (dead: the runner's
    heartbeat is older than STALE_S, its process is gone or its walk is stuck), `ended` whether that
    state is one of ENDED, `current` whether it ran the queue file as it is now, and the heartbeat's age."""
    progress = read_progress(queue_path.parent / PROGRESS_NAME)
    if progress is None:
        return {"state": "none", "current": False, "ended": False}
    shown = asdict(progress)
    age = max(0.0, time.time() - progress.heartbeat)
    shown["heartbeat_age_s"] = round(age, 1)
    try:
        shown["current"] = queue_path.is_file() and sha256_of(queue_path) == progress.queue_sha256
    except OSError:
        shown["current"] = False
    if progress.state == "running":
        alive = progress.pid == 0 or process_start(progress.pid) == progress.pid_started != 0
        stuck = progress.deadline and time.time() > progress.deadline
        if not alive or age > facts.STALE_S or stuck:
            shown["state"] = "dead"
            how = "its process is gone" if not alive else f"its heartbeat is {age:.0f} s old"
            if progress.pid == 0:
                how = f"it never started ({age:.0f} s after its launch)"
            elif alive and stuck:
                how = f"{progress.config_id} is past its every bound: the walk is stuck"
            shown["reason"] = f"the runner died at config {progress.done + 1} of {progress.total}: {how}"
    shown["ended"] = shown["state"] in ENDED
    return shown


def _systemctl(*args: str) -> str:
    done = subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise OSError(f"systemctl {' '.join(args)}: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def launch(queue_path: Path, unit: str) -> str:
    """Start UNIT (the runner of QUEUE_PATH) unless a runner of this very queue is alive or walked it to
    its end: 'attached' (it runs: never a second launch of the same queue), 'done', 'launched', or
    'replaced' (a runner of an earlier version of the queue was stopped: the latest queue is the one
    walked, and it skips what was recorded). Raises OSError when systemd refuses."""
    seen = look(queue_path)
    if seen["state"] in ("running", "done") and seen["current"]:
        return "attached" if seen["state"] == "running" else "done"
    replaced = seen["state"] == "running"
    # Whatever still runs (a stuck runner, an earlier queue's) stops before the stand-in below is
    # written, so its last words cannot overwrite it.
    _systemctl("stop", unit)
    if _systemctl("show", "--property=NeedDaemonReload", "--value", unit).strip() == "yes":
        _systemctl("daemon-reload")  # its unit file changed since systemd read it
    # A stand-in until the runner writes its own: a look right after the launch must not read the
    # dead runner's progress; pid 0 counts as alive until its heartbeat is STALE_S old.
    text = queue_path.read_bytes()
    stub = Progress(run_id=str(json.loads(text)["run_id"]), queue_sha256=hashlib.sha256(text).hexdigest())
    stub.heartbeat, stub.launched_at = time.time(), now()
    _write_json(queue_path.parent / PROGRESS_NAME, asdict(stub))
    try:
        _systemctl("start", unit)
    except OSError as err:
        stub.state, stub.reason, stub.ended_at = "stopped", str(err), now()
        _write_json(queue_path.parent / PROGRESS_NAME, asdict(stub))
        raise
    return "replaced" if replaced else "launched"


def wait(queue_path: Path, seconds: float) -> dict:
    """LOOK once the queue has ended or SECONDS have passed, whichever is first."""
    deadline = time.monotonic() + seconds
    while True:
        seen = look(queue_path)
        if seen["ended"] or time.monotonic() >= deadline:
            return seen
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


def _stopped(_signum: int, _frame: object) -> None:
    # systemctl stop: end the walk through its `finally`, which stops the servers and says so; a second
    # signal is ignored from here on, so it cannot cut that cleanup short
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.queue", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="walk the queue (the runner unit's command)")
    run_parser.add_argument("queue", type=Path)
    # for a runner outside the hosts' layout (tests); the unit passes none of them
    run_parser.add_argument("--python", default=facts.MODELZOO_PYTHON, help="runs the clients (%(default)s)")
    run_parser.add_argument("--probe", default=facts.TFSERVING_PROBE, help="the readiness probe (%(default)s)")
    run_parser.add_argument("--conf-dir", default=facts.TFSERVING_CONF_DIR, help="servers' files (%(default)s)")
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
        print(json.dumps({facts.SWEEP_PROGRESS_KEY: wait(args.queue, max(0.0, args.seconds))}, sort_keys=True))
        return 0
    try:
        runner = Runner(args.queue, args.python, args.probe, args.conf_dir)
    except (OSError, ValueError, KeyError) as err:
        print(f"queue: {args.queue}: {err}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _stopped)
    return runner.run()


if __name__ == "__main__":
    sys.exit(main())
