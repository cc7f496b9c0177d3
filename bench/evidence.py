"""The evidence behind a level: what the host's CPUs, clock, memory and power meter did while
perf_analyzer measured it. Standard library only: it runs on the hosts.

A `Watch` is made once per perf_analyzer run (bench.instance.run_perf): it finds the server's CPU time
(its systemd unit's cgroup: v2 `cpu.stat`, v1 `cpuacct.usage`; else the unit's processes, else the
server's process and its children), the client's (perf_analyzer's process and its children), the
host's CPUs per NUMA node (`/proc/stat`), the server CPUs' clock (cpufreq), and a meter when the host
has one (RAPL's package and dram domains; or the BMC through `ipmitool dcmi power reading` when the
job asks). It reads them every SAMPLE_S seconds from a thread, and at each level's first output line
and its result, so a level's figures are the difference between the readings that bound it. A
figure that cannot be read is named in `unavailable` with why; nothing is estimated.

Every path is read under ROOT ("/" on a host), so the unit tests read fixture trees.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import facts
from bench.records import Evidence

SAMPLE_S = 1.0  # between readings; a RAPL counter wraps after minutes, a BMC answers about once a second
IPMI_TIMEOUT_S = 5.0
POWER_SOURCES = ("auto", "rapl", "ipmi", "none")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
RAPL_DOMAINS = ("package", "dram")  # core and uncore lie inside the package: summing them would count twice
IPMI_POWER = re.compile(r"Instantaneous power reading\s*:\s*([0-9.]+)\s*Watts", re.IGNORECASE)


# ------------------------------------------------------------------------------------ parsing
def cpulist(text: str) -> list[int]:
    """A kernel CPU list (`0-3,8,10-11`) as CPUs."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        cpus.extend(range(int(first), int(last or first) + 1))
    return sorted(set(cpus))


def proc_stat(text: str) -> tuple[dict[int, tuple[int, int]], int | None]:
    """/proc/stat: each CPU's (busy, total) jiffies, and the host's context switches."""
    cpus: dict[int, tuple[int, int]] = {}
    switches = None
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if name.startswith("cpu") and name[3:].isdigit():
            # user nice system idle iowait irq softirq steal (guest is inside user already)
            values = [int(v) for v in rest.split()[:8]]
            values += [0] * (8 - len(values))
            idle = values[3] + values[4]
            cpus[int(name[3:])] = (sum(values) - idle, sum(values))
        elif name == "ctxt":
            switches = int(rest)
    return cpus, switches


def pid_cpu_ticks(text: str) -> int:
    """utime + stime of /proc/<pid>/stat (after the command, which may hold spaces and parentheses)."""
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def status_value(text: str, key: str) -> int | None:
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def cgroup_v2_usage_s(text: str) -> float:
    """cgroup v2 cpu.stat's usage_usec, in seconds."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            return int(value) / 1e6
    raise ValueError("cpu.stat has no usage_usec")


def ipmi_watts(text: str) -> float | None:
    """The instantaneous reading of `ipmitool dcmi power reading`."""
    match = IPMI_POWER.search(text)
    return float(match.group(1)) if match else None


def energy_joules(readings: list[int], max_range: int) -> float:
    """Joules between successive RAPL readings (µJ) of one domain; a counter that wrapped between two
    readings (read more often than it wraps) went on from zero."""
    total = 0
    for before, after in itertools.pairwise(readings):
        total += after - before if after >= before else after + max_range - before
    return total / 1e6


# ------------------------------------------------------------------------------------ sources
@dataclass(frozen=True)
class RaplDomain:
    name: str  # package-0, dram-0
    path: Path  # its energy_uj
    max_range: int


def rapl_domains(root: Path) -> tuple[list[RaplDomain], str]:
    """The host's readable RAPL package and dram domains, or none and why."""
    base = root / "sys/class/powercap"
    if not base.is_dir():
        return [], "no RAPL: /sys/class/powercap is absent (no powercap driver, a VM or a container)"
    domains, refused = [], False
    for zone in sorted(base.glob("intel-rapl:*")):
        try:
            name = (zone / "name").read_text().strip()
            kind = name.split("-")[0]
            if kind not in RAPL_DOMAINS:
                continue
            if kind == "dram":  # a package's subzone: name it after its package
                name = f"dram-{zone.name.split(':')[1]}"
            max_range = int((zone / "max_energy_range_uj").read_text())
            int((zone / "energy_uj").read_text())
        except PermissionError:
            refused = True
            continue
        except (OSError, ValueError):
            continue
        domains.append(RaplDomain(name, zone / "energy_uj", max_range))
    if not domains and refused:
        # root only since CVE-2020-8694 (a power side channel): README says how to let the runner read it
        return [], "RAPL's energy_uj is not readable by this user (root only since CVE-2020-8694)"
    if not domains:
        return [], "no RAPL: no readable package or dram domain under /sys/class/powercap"
    return domains, ""


@dataclass(frozen=True)
class ServerCpu:
    """How a server's CPU time is read: a cgroup file, or the processes of the unit (or of a PID)."""

    source: str
    read: Callable[[], float | None]  # seconds of CPU so far
    pids: Callable[[], list[int]]


def _read(path: Path) -> str:
    return path.read_text()


def descendants(root: Path, pid: int) -> list[int]:
    """PID and its descendants, through /proc/<pid>/task/<tid>/children."""
    found, todo = [], [pid]
    while todo and len(found) < 4096:
        current = todo.pop()
        found.append(current)
        for task in (root / f"proc/{current}/task").glob("*/children"):
            try:
                todo.extend(int(child) for child in task.read_text().split())
            except (OSError, ValueError):
                continue
    return found


def processes_cpu_s(root: Path, pids: list[int]) -> float | None:
    total, seen = 0, False
    for pid in pids:
        try:
            total += pid_cpu_ticks(_read(root / f"proc/{pid}/stat"))
            seen = True
        except (OSError, ValueError, IndexError):
            continue  # a process that ended between the listing and the reading
    return total / CLOCK_TICKS if seen else None


def _cgroup_lines(root: Path, pid: int) -> list[tuple[str, str]]:
    try:
        lines = _read(root / f"proc/{pid}/cgroup").splitlines()
    except OSError:
        return []
    return [(parts[1], parts[2]) for parts in (line.split(":", 2) for line in lines) if len(parts) == 3]


def server_cpu(root: Path, pid: int, unit: str | None) -> ServerCpu:
    """How to read the CPU time of the server whose main process is PID (in systemd UNIT, if any). Only
    a cgroup of the unit's own counts: a container's or a slice's would hold other work."""
    lines = _cgroup_lines(root, pid)
    own = [(controllers, path) for controllers, path in lines if unit and path.rstrip("/").endswith("/" + unit)]
    cgroup = root / "sys/fs/cgroup"
    for controllers, path in own:
        rel = path.lstrip("/")
        if controllers == "":
            for base in (cgroup, cgroup / "unified"):
                stat = base / rel / "cpu.stat"
                try:
                    cgroup_v2_usage_s(_read(stat))
                except (OSError, ValueError):
                    continue
                return ServerCpu(
                    f"cgroup v2 cpu.stat of {unit}",
                    lambda s=stat: cgroup_v2_usage_s(_read(s)),
                    lambda b=base / rel: _procs(b),
                )
        if "cpuacct" in controllers.split(","):
            for name in (controllers, "cpu,cpuacct", "cpuacct,cpu", "cpuacct"):
                usage = cgroup / name / rel / "cpuacct.usage"
                if usage.is_file():
                    return ServerCpu(
                        f"cgroup v1 cpuacct.usage of {unit}",
                        lambda u=usage: int(_read(u)) / 1e9,
                        lambda b=usage.parent: _procs(b),
                    )
    for _, path in own:  # no CPU accounting for the unit: its processes, listed by its cgroup
        for base in (cgroup / "systemd", cgroup, cgroup / "unified"):
            procs = base / path.lstrip("/")
            if (procs / "cgroup.procs").is_file():
                return ServerCpu(
                    f"processes of {unit} (its cgroup has no CPU accounting here)",
                    lambda p=procs: processes_cpu_s(root, _procs(p)),
                    lambda p=procs: _procs(p),
                )
    return ServerCpu(
        f"process {pid} and its children",
        lambda: processes_cpu_s(root, descendants(root, pid)),
        lambda: descendants(root, pid),
    )


def _procs(cgroup_dir: Path) -> list[int]:
    try:
        return [int(p) for p in _read(cgroup_dir / "cgroup.procs").split()]
    except (OSError, ValueError):
        return []


def unit_pid(root: Path, unit: str) -> int | None:
    """A process of systemd UNIT, found by its cgroup (no D-Bus needed: a minimal host or a container has
    none, and systemctl as a user then fails): under the unified or the named systemd hierarchy, at
    most two levels below it (a container's cgroup), in system.slice or a template's slice in it
    (system-tfserving.slice), else systemctl's MainPID."""
    cgroup = root / "sys/fs/cgroup"
    patterns = [f"{above}system.slice/{inner}{unit}" for above in ("", "*/", "*/*/") for inner in ("", "*/")]
    for base in (cgroup, cgroup / "unified", cgroup / "systemd"):
        for pattern in patterns:
            for found in base.glob(pattern):
                pids = _procs(found)
                if pids:
                    return pids[0]
    return main_pid(unit)


def main_pid(unit: str) -> int | None:
    """The main process of a systemd unit, or None."""
    try:
        out = subprocess.run(
            ["systemctl", "show", "-p", "MainPID", "--value", unit],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return int(out) if out.isdigit() and int(out) > 0 else None


def numa_nodes(root: Path) -> dict[str, list[int]]:
    nodes = {}
    for node in sorted((root / "sys/devices/system/node").glob("node[0-9]*")):
        try:
            nodes[node.name[4:]] = cpulist((node / "cpulist").read_text())
        except (OSError, ValueError):
            continue
    return nodes


def _command(root: Path, pid: int) -> str:
    try:
        return _read(root / f"proc/{pid}/comm").strip()
    except OSError:
        return ""


# A client run in a container (perf_analyzer's image mode: podman run) does its work under conmon,
# outside the process tree this runner started: its CPU time cannot be read from that tree.
CONTAINER_COMMANDS = frozenset({"podman", "docker", "conmon", "crun", "runc"})


def affinity(pid: int) -> list[int]:
    try:
        return sorted(os.sched_getaffinity(pid))
    except OSError:
        return []


# ------------------------------------------------------------------------------------ readings
@dataclass
class Reading:
    """One reading of everything watched, at monotonic time T."""

    t: float
    server_s: float | None = None
    client_s: float | None = None
    cpus: dict[int, tuple[int, int]] = field(default_factory=dict)
    switches: int | None = None
    frequency_mhz: float | None = None
    rss_kb: int | None = None
    energy_uj: dict[str, int] = field(default_factory=dict)
    watts: float | None = None
    server_switches: int | None = None  # at a level's bounds only
    client_switches: int | None = None
    server_threads: dict[int, int] = field(default_factory=dict)  # thread -> CPU ticks, at the bounds only


@dataclass
class Watch:
    """Readings of one perf_analyzer run (its client process is attached when it starts)."""

    root: Path
    server: ServerCpu | None
    server_cpus: list[int]
    client_cpus: list[int]
    nodes: dict[str, list[int]]
    rapl: list[RaplDomain]
    ipmi: list[str] | None  # the ipmitool command, when the BMC is the meter
    unavailable: dict[str, str]
    meter_shared_by: int = 1  # instances measured at once: each one's meter reads the whole host
    client_pid: int | None = None
    readings: list[Reading] = field(default_factory=list)
    sampler_s: float = 0.0
    client_commands: set[str] = field(default_factory=set)  # what the client's process tree runs
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _reading: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    # -- one reading
    def read(self, with_meter: bool = False, bounds: bool = False) -> Reading:
        """Read everything now (WITH_METER: ask the BMC too; BOUNDS: a level starts or ends here, so the
        threads' context switches are read too). Never raises: what cannot be read stays None (a server
        that died takes its cgroup with it), and a measurement never loses its result to its evidence.
        One reading at a time: their order in time is the order their counters were read in, so a RAPL
        counter read later never sorts first (and looks wrapped)."""
        began = time.thread_time()
        with self._reading:
            r = Reading(time.monotonic())
            with contextlib.suppress(Exception):
                self._fill(r, bounds)
        if with_meter and self.ipmi:  # outside the lock: the BMC may take a second to answer
            with contextlib.suppress(Exception):
                r.watts = self._ipmi()
        with self._lock:
            self.readings.append(r)
            self.sampler_s += time.thread_time() - began
        return r

    def _fill(self, r: Reading, bounds: bool) -> None:
        if self.server is not None:
            with contextlib.suppress(OSError, ValueError):
                r.server_s = self.server.read()
            r.rss_kb = self._rss_kb()
        if self.client_pid is not None:
            client = descendants(self.root, self.client_pid)
            r.client_s = processes_cpu_s(self.root, client)
            if bounds:
                self.client_commands |= {_command(self.root, pid) for pid in client}
        with contextlib.suppress(OSError):
            r.cpus, r.switches = proc_stat(_read(self.root / "proc/stat"))
        r.frequency_mhz = self._frequency_mhz()
        for domain in self.rapl:
            try:
                r.energy_uj[domain.name] = int(_read(domain.path))
            except (OSError, ValueError):
                continue
        if bounds:
            if self.server:
                r.server_switches, r.server_threads = self.threads_of(self.server.pids())
            if self.client_pid:
                r.client_switches, _ = self.threads_of(descendants(self.root, self.client_pid))

    def _rss_kb(self) -> int | None:
        total, seen = 0, False
        for pid in self.server.pids() if self.server else []:
            try:
                value = status_value(_read(self.root / f"proc/{pid}/status"), "VmRSS")
            except OSError:
                continue
            if value is not None:
                total, seen = total + value, True
        return total if seen else None

    def _frequency_mhz(self) -> float | None:
        values = []
        for cpu in self.server_cpus:
            try:
                values.append(int(_read(self.root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_cur_freq")))
            except (OSError, ValueError):
                continue
        return sum(values) / len(values) / 1000 if values else None

    def _ipmi(self) -> float | None:
        try:
            out = subprocess.run(
                self.ipmi or [], capture_output=True, text=True, timeout=IPMI_TIMEOUT_S, check=False
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            return None
        return ipmi_watts(out)

    def threads_of(self, pids: list[int]) -> tuple[int | None, dict[int, int]]:
        """Context switches so far of every thread of PIDS, and each thread's CPU ticks (read at a level's
        bounds only: a server has hundreds of threads)."""
        total, seen, ticks = 0, False, {}
        for pid in pids:
            try:
                tasks = list((self.root / f"proc/{pid}/task").iterdir())
            except OSError:
                continue  # the process ended
            for task in tasks:
                try:
                    text = _read(task / "status")
                except OSError:
                    continue
                with contextlib.suppress(OSError, ValueError, IndexError):
                    ticks[int(task.name)] = pid_cpu_ticks(_read(task / "stat"))
                for key in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
                    total += status_value(text, key) or 0
                seen = True
        return (total if seen else None), ticks

    # -- the sampling thread
    def start(self, client_pid: int | None) -> None:
        self.client_pid = client_pid
        if client_pid is not None and not self.client_cpus:
            self.client_cpus = affinity(client_pid)
        self._thread = threading.Thread(target=self._sample, name="evidence", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            with contextlib.suppress(Exception):  # a reading that fails is a gap, never a lost level
                self.read(with_meter=True)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=IPMI_TIMEOUT_S + SAMPLE_S)


def watch_for(job: dict, instance: dict) -> Watch | None:
    """The Watch of one perf_analyzer run of INSTANCE, unless the job says `evidence: false`."""
    return watch_of(job, instance) if job.get("evidence", True) else None


def watch_of(job: dict, instance: dict, root: Path = Path("/")) -> Watch:
    """The Watch of INSTANCE's perf_analyzer runs: the server found by its unit (or `server_pid`, a
    server this runner was given), the CPUs the server and the client are bound to, the meter the job's
    `power_source` names (auto: RAPL when readable)."""
    unavailable: dict[str, str] = {}
    unit = facts.SERVER_UNIT.format(instance["unit"]) if instance.get("unit") else None
    pid = instance.get("server_pid") or (unit_pid(root, unit) if unit else None)
    server = server_cpu(root, int(pid), unit) if pid else None
    if server is None:
        unavailable["server_cpu"] = f"no server process found ({unit or 'no unit, no server_pid'})"
    server_cpus = (
        cpulist(str(instance["server_cpus"])) if instance.get("server_cpus") else affinity(int(pid)) if pid else []
    )
    client_cpus = cpulist(str(instance["client_cpus"])) if instance.get("client_cpus") else []
    if not (root / f"sys/devices/system/cpu/cpu{(server_cpus or [0])[0]}/cpufreq/scaling_cur_freq").is_file():
        unavailable["frequency"] = "no cpufreq in /sys/devices/system/cpu (none exposed: a VM or a container)"
    source = job.get("power_source") or "auto"
    rapl: list[RaplDomain] = []
    ipmi = None
    if source in ("auto", "rapl"):
        rapl, why = rapl_domains(root)
        if why:
            unavailable["energy"] = why + ("" if source == "rapl" else "; no BMC asked (sweep_power_source: ipmi)")
    elif source == "ipmi":
        ipmi = [job.get("ipmitool") or "ipmitool", "dcmi", "power", "reading"]
    else:
        unavailable["energy"] = "no meter asked (sweep_power_source: none)"
    shared = max(1, len(job.get("instances") or []))
    return Watch(root, server, server_cpus, client_cpus, numa_nodes(root), rapl, ipmi, unavailable, shared)


# ------------------------------------------------------------------------------------ a level's figures
def _per_s(before: float | None, after: float | None, seconds: float) -> float | None:
    if before is None or after is None or seconds <= 0:
        return None
    return max(0.0, after - before) / seconds


def evidence(w: Watch, a: Reading, b: Reading, **key: float | int) -> Evidence:
    """The figures of the level between W's readings A and B (its bounds); KEY: its level or rate."""
    with w._lock:
        span = sorted((r for r in w.readings if a.t <= r.t <= b.t), key=lambda r: r.t)
        sampler_s = w.sampler_s
    seconds = b.t - a.t
    unavailable = dict(w.unavailable)
    server_cores = _per_s(a.server_s, b.server_s, seconds)
    client_cores = _per_s(a.client_s, b.client_s, seconds)
    if w.client_commands & CONTAINER_COMMANDS:
        client_cores = None
        unavailable["client_cpu"] = (
            "the client runs in a container (perf_analyzer's image mode): outside its process tree"
        )
    elif client_cores is None:
        unavailable["client_cpu"] = "perf_analyzer's process could not be read at both ends of the level"
    host_busy = host_total = 0
    nodes = {}
    for node, node_cpus in w.nodes.items():
        busy = sum(b.cpus[c][0] - a.cpus[c][0] for c in node_cpus if c in a.cpus and c in b.cpus)
        total = sum(b.cpus[c][1] - a.cpus[c][1] for c in node_cpus if c in a.cpus and c in b.cpus)
        if total > 0:
            nodes[node] = round(busy / total, 4)
    for cpu in b.cpus.keys() & a.cpus.keys():
        host_busy += b.cpus[cpu][0] - a.cpus[cpu][0]
        host_total += b.cpus[cpu][1] - a.cpus[cpu][1]
    frequencies = [r.frequency_mhz for r in span if r.frequency_mhz is not None]
    rss = [r.rss_kb for r in span if r.rss_kb is not None]
    watts, joules, energy_source, scope = _energy(w, span, seconds, unavailable)
    return Evidence(
        **key,
        seconds=round(seconds, 3),
        samples=len(span),
        server_cores=_round(server_cores),
        server_cpus=len(w.server_cpus) or None,
        server_share=_round(server_cores / len(w.server_cpus) if server_cores is not None and w.server_cpus else None),
        server_source=w.server.source if w.server else "",
        client_cores=_round(client_cores),
        client_cpus=len(w.client_cpus) or None,
        client_share=_round(client_cores / len(w.client_cpus) if client_cores is not None and w.client_cpus else None),
        host_cores=_round(host_busy / CLOCK_TICKS / seconds if seconds > 0 and host_total else None),
        host_cpus=len(b.cpus) or None,
        nodes=nodes,
        frequency_mhz=_round(sum(frequencies) / len(frequencies) if frequencies else None),
        frequency_min_mhz=_round(min(frequencies, default=None)),
        frequency_max_mhz=_round(max(frequencies, default=None)),
        frequency_drop_percent=_round(largest_fall_percent(frequencies)),
        server_rss_mb=_round(max(rss) / 1024 if rss else None),
        server_switches_per_s=_round(_per_s(a.server_switches, b.server_switches, seconds)),
        server_busiest_thread=_round(_busiest(a.server_threads, b.server_threads, seconds)),
        client_switches_per_s=_round(_per_s(a.client_switches, b.client_switches, seconds)),
        host_switches_per_s=_round(_per_s(a.switches, b.switches, seconds)),
        watts=_round(watts),
        meter_shared_by=w.meter_shared_by if watts is not None else None,
        joules=_round(joules),
        energy_source=energy_source,
        energy_scope=scope,
        sampler_cpu_s=round(sampler_s, 4),
        unavailable=unavailable,
    )


def _energy(w: Watch, span: list[Reading], seconds: float, unavailable: dict[str, str]) -> tuple:
    if w.rapl:
        joules = 0.0
        for domain in w.rapl:
            readings = [r.energy_uj[domain.name] for r in span if domain.name in r.energy_uj]
            joules += energy_joules(readings, domain.max_range)
        names = ", ".join(d.name for d in w.rapl)
        scope = "CPU packages and their DRAM (RAPL), not the whole system"
        return (joules / seconds if seconds > 0 else None), joules, f"rapl: {names}", scope
    if w.ipmi:
        readings = [r.watts for r in span if r.watts is not None]
        if not readings:
            unavailable["energy"] = "ipmitool dcmi power reading gave no reading during the level"
            return None, None, "ipmi", "whole system (BMC)"
        watts = sum(readings) / len(readings)
        return watts, watts * seconds, f"ipmi: dcmi power reading, {len(readings)} reading(s)", "whole system (BMC)"
    return None, None, "", ""


def largest_fall_percent(values: list[float]) -> float | None:
    """The largest fall of VALUES from a value before it, in percent of that value (a clock that rises
    from idle at a level's start has not fallen)."""
    if len(values) < 2:
        return None
    peak, fall = values[0], 0.0
    for value in values[1:]:
        peak = max(peak, value)
        fall = max(fall, (peak - value) / peak if peak > 0 else 0.0)
    return 100 * fall


def _busiest(before: dict[int, int], after: dict[int, int], seconds: float) -> float | None:
    """The share of one core the busiest thread used between two readings (threads seen at both)."""
    deltas = [after[t] - before[t] for t in after.keys() & before.keys()]
    return max(deltas) / CLOCK_TICKS / seconds if deltas and seconds > 0 else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
