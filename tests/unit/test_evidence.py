"""The evidence of a level (bench.evidence) read from fixture trees: /proc/stat snapshots, cgroup v1
and v2 CPU accounting of the server's unit, a RAPL counter that wraps during a level, the BMC's
`ipmitool dcmi power reading` (a stand-in ipmitool printing the real output), cpufreq; and the verdict
drawn from it (bench.records.limit_of), with what an unavailable figure says."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bench import evidence as ev
from bench import facts
from bench.records import Evidence, Level, limit_of

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "evidence"
UNIT = facts.SERVER_UNIT.format("dlrm-0")
PID, CLIENT = 4242, 5151
TICK = ev.CLOCK_TICKS


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def proc_stat_text(busy: dict[int, int], idle: dict[int, int], ctxt: int) -> str:
    lines = ["cpu  0 0 0 0 0 0 0 0 0 0"]
    lines += [f"cpu{c} {busy[c]} 0 0 {idle[c]} 0 0 0 0 0 0" for c in busy]
    return "\n".join([*lines, f"ctxt {ctxt}", "btime 1700000000", ""])


def pid_stat_text(pid: int, ticks: int) -> str:
    # the command may hold spaces and parentheses: fields are counted after the last ')'
    fields = ["S"] + ["0"] * 10 + [str(ticks), "0"] + ["0"] * 30
    return f"{pid} (tensorflow (model) server) " + " ".join(fields) + "\n"


def host(root: Path, cpus: int = 4) -> None:
    """A two-node host: CPUs 0-1 on node 0, 2-3 on node 1; the server PID in UNIT, the client CLIENT."""
    write(root, "sys/devices/system/node/node0/cpulist", "0-1\n")
    write(root, "sys/devices/system/node/node1/cpulist", "2-3\n")
    write(root, f"proc/{PID}/status", "Name:\tserver\nVmRSS:\t  204800 kB\n")
    write(root, f"proc/{PID}/task/{PID}/status", "voluntary_ctxt_switches:\t100\nnonvoluntary_ctxt_switches:\t5\n")
    write(root, f"proc/{PID}/task/{PID}/children", "")
    write(root, f"proc/{CLIENT}/task/{CLIENT}/children", "")
    write(root, f"proc/{CLIENT}/task/{CLIENT}/status", "voluntary_ctxt_switches:\t10\nnonvoluntary_ctxt_switches:\t0\n")


def moment(root: Path, server_ticks: int, client_ticks: int, busy: dict[int, int], idle: dict[int, int]) -> None:
    write(root, f"proc/{PID}/stat", pid_stat_text(PID, server_ticks))
    write(root, f"proc/{CLIENT}/stat", pid_stat_text(CLIENT, client_ticks))
    write(root, "proc/stat", proc_stat_text(busy, idle, ctxt=sum(busy.values())))


def watched(root: Path, **job: object) -> ev.Watch:
    instance = {"name": "numa0", "unit": "dlrm-0", "server_pid": PID, "server_cpus": "0-1", "client_cpus": "2-3"}
    w = ev.watch_of(job, instance, root)
    w.client_pid = CLIENT
    return w


def at(w: ev.Watch, t: float, bounds: bool = True) -> ev.Reading:
    reading = w.read(bounds=bounds)
    reading.t = t  # the level's clock, not the test's
    return reading


# ----------------------------------------------------------------------------------- parsing
def test_proc_stat_counts_busy_and_total_jiffies_per_cpu_and_the_context_switches() -> None:
    text = "cpu  9 9 9 9\ncpu0 10 1 4 80 5 0 0 0 0 0\ncpu1 1 0 1 98 0 0 0 0\nintr 5\nctxt 12345\n"
    cpus, switches = ev.proc_stat(text)
    # busy: user nice system irq softirq steal; idle and iowait are not
    assert cpus == {0: (15, 100), 1: (2, 100)}
    assert switches == 12345


def test_a_process_stat_is_read_after_a_command_with_parentheses() -> None:
    assert ev.pid_cpu_ticks(pid_stat_text(7, 321)) == 321


def test_cgroup_v2_cpu_stat_gives_seconds_and_a_stat_without_usage_is_refused() -> None:
    assert ev.cgroup_v2_usage_s("usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n") == 2.5
    with pytest.raises(ValueError, match="usage_usec"):
        ev.cgroup_v2_usage_s("nr_periods 0\n")


@pytest.mark.parametrize(
    ("name", "watts"),
    [
        ("ipmitool-dcmi-power-reading.txt", 312.0),
        ("ipmitool-dcmi-power-reading-1.8.19.txt", 214.0),
        ("ipmitool-dcmi-unsupported.txt", None),
    ],
)
def test_ipmitool_power_readings_of_both_output_formats(name: str, watts: float | None) -> None:
    assert ev.ipmi_watts((FIXTURES / name).read_text()) == watts


def test_a_rapl_counter_that_wraps_goes_on_from_zero() -> None:
    max_range = 262_143_328_850
    # 10 J, then the counter passes max_energy_range_uj and wraps, then 20 J more
    readings = [max_range - 15_000_000, max_range - 5_000_000, 5_000_000, 25_000_000]
    assert ev.energy_joules(readings, max_range) == pytest.approx(10 + 10 + 20)


def test_a_clock_rising_from_idle_has_not_fallen() -> None:
    assert ev.largest_fall_percent([2000.0, 2600.0, 2600.0]) == 0
    assert ev.largest_fall_percent([2000.0, 2600.0, 2080.0]) == pytest.approx(20)
    assert ev.largest_fall_percent([2600.0]) is None


def test_cpulist() -> None:
    assert ev.cpulist("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11]


# ----------------------------------------------------------------------------------- sources
def test_the_server_is_read_from_its_units_cgroup_v2_cpu_stat(tmp_path: Path) -> None:
    host(tmp_path)
    write(tmp_path, f"proc/{PID}/cgroup", f"0::/system.slice/{UNIT}\n")
    write(tmp_path, f"sys/fs/cgroup/system.slice/{UNIT}/cpu.stat", "usage_usec 1000000\n")
    write(tmp_path, f"sys/fs/cgroup/system.slice/{UNIT}/cgroup.procs", f"{PID}\n")
    server = ev.server_cpu(tmp_path, PID, UNIT)
    assert server.source == f"cgroup v2 cpu.stat of {UNIT}"
    assert server.read() == 1.0
    assert server.pids() == [PID]


def test_a_server_whose_cgroup_vanished_leaves_a_gap_never_an_error(tmp_path: Path) -> None:
    """systemd removes a dead server's cgroup (Restart=no): the reading goes on without it."""
    host(tmp_path)
    write(tmp_path, f"proc/{PID}/cgroup", f"0::/system.slice/{UNIT}\n")
    write(tmp_path, f"sys/fs/cgroup/system.slice/{UNIT}/cpu.stat", "usage_usec 1000000\n")
    write(tmp_path, f"sys/fs/cgroup/system.slice/{UNIT}/cgroup.procs", f"{PID}\n")
    moment(tmp_path, 0, 0, {c: 0 for c in range(4)}, {c: 0 for c in range(4)})
    w = watched(tmp_path)
    assert w.read(bounds=True).server_s == 1.0
    (tmp_path / f"sys/fs/cgroup/system.slice/{UNIT}/cpu.stat").unlink()
    (tmp_path / f"proc/{PID}/task/{PID}/status").unlink()
    gone = w.read(bounds=True)
    assert gone.server_s is None and gone.cpus  # the rest is still read


def test_the_server_is_read_from_its_units_cgroup_v1_cpuacct(tmp_path: Path) -> None:
    host(tmp_path)
    write(tmp_path, f"proc/{PID}/cgroup", f"4:cpu,cpuacct:/system.slice/{UNIT}\n1:name=systemd:/system.slice/{UNIT}\n")
    write(tmp_path, f"sys/fs/cgroup/cpu,cpuacct/system.slice/{UNIT}/cpuacct.usage", "3000000000\n")
    server = ev.server_cpu(tmp_path, PID, UNIT)
    assert server.source == f"cgroup v1 cpuacct.usage of {UNIT}"
    assert server.read() == 3.0


def test_a_containers_cgroup_is_never_taken_for_the_units(tmp_path: Path) -> None:
    """In a container the unit has no CPU accounting of its own; the container's cgroup holds every
    process of the host, so the unit's processes are summed instead."""
    host(tmp_path)
    write(
        tmp_path,
        f"proc/{PID}/cgroup",
        f"2:cpuacct:/libpod_parent/libpod-1\n1:name=systemd:/libpod_parent/libpod-1/system.slice/{UNIT}\n",
    )
    write(tmp_path, "sys/fs/cgroup/cpuacct/cpuacct.usage", "999000000000\n")
    write(tmp_path, f"sys/fs/cgroup/systemd/libpod_parent/libpod-1/system.slice/{UNIT}/cgroup.procs", f"{PID}\n")
    write(tmp_path, f"proc/{PID}/stat", pid_stat_text(PID, 5 * TICK))
    server = ev.server_cpu(tmp_path, PID, UNIT)
    assert server.source.startswith(f"processes of {UNIT}")
    assert server.read() == 5.0


def test_a_units_process_is_found_by_its_cgroup_without_d_bus(tmp_path: Path) -> None:
    """In a container systemd's hierarchy sits below the container's own cgroup."""
    container = "sys/fs/cgroup/systemd/libpod_parent/libpod-1/system.slice"
    write(tmp_path, f"{container}/system-tfserving.slice/{UNIT}/cgroup.procs", f"{PID}\n77\n")
    assert ev.unit_pid(tmp_path, UNIT) == PID
    write(tmp_path, f"sys/fs/cgroup/system.slice/{UNIT}/cgroup.procs", "31\n")
    assert ev.unit_pid(tmp_path, UNIT) == 31  # the unified hierarchy first


def test_without_a_unit_the_server_is_its_process_and_children(tmp_path: Path) -> None:
    host(tmp_path)
    write(tmp_path, f"proc/{PID}/cgroup", "0::/user.slice\n")
    write(tmp_path, f"proc/{PID}/task/{PID}/children", "4243\n")
    write(tmp_path, f"proc/{PID}/stat", pid_stat_text(PID, 2 * TICK))
    write(tmp_path, "proc/4243/stat", pid_stat_text(4243, TICK))
    server = ev.server_cpu(tmp_path, PID, None)
    assert server.source == f"process {PID} and its children"
    assert server.read() == 3.0


# ----------------------------------------------------------------------------------- a level
def test_a_levels_figures_from_two_readings_of_a_two_node_host(tmp_path: Path) -> None:
    host(tmp_path)
    write(tmp_path, f"proc/{PID}/cgroup", "0::/user.slice\n")
    moment(tmp_path, 0, 0, {0: 0, 1: 0, 2: 0, 3: 0}, {0: 0, 1: 0, 2: 0, 3: 0})
    write(tmp_path, f"proc/{PID}/task/{PID}/stat", pid_stat_text(PID, 0))
    w = watched(tmp_path, power_source="none")
    first = at(w, 0.0)
    # over 2 s: the server used 3 core-seconds of its 2 CPUs, the client 0.4 of its 2
    moment(
        tmp_path,
        3 * TICK,
        int(0.4 * TICK),
        {0: 2 * TICK * 3 // 4, 1: 2 * TICK * 3 // 4, 2: TICK // 10, 3: TICK // 10},
        {0: 2 * TICK // 4, 1: 2 * TICK // 4, 2: 2 * TICK - TICK // 10, 3: 2 * TICK - TICK // 10},
    )
    write(tmp_path, f"proc/{PID}/task/{PID}/status", "voluntary_ctxt_switches:\t300\nnonvoluntary_ctxt_switches:\t5\n")
    write(tmp_path, f"proc/{PID}/task/{PID}/stat", pid_stat_text(PID, int(1.9 * TICK)))  # its busiest thread
    last = at(w, 2.0)
    e = ev.evidence(w, first, last, level=4)
    assert e.level == 4 and e.seconds == 2.0 and e.samples == 2
    assert e.server_cores == pytest.approx(1.5) and e.server_cpus == 2 and e.server_share == pytest.approx(0.75)
    assert e.client_cores == pytest.approx(0.2, abs=0.01) and e.client_share == pytest.approx(0.1, abs=0.01)
    assert e.nodes == {"0": pytest.approx(0.75), "1": pytest.approx(0.05)}
    assert e.host_cpus == 4 and e.host_cores == pytest.approx(1.6, abs=0.02)
    assert e.server_rss_mb == 200.0
    assert e.server_switches_per_s == 100.0
    assert e.server_busiest_thread == pytest.approx(0.95)  # 1.9 s of the 2 s on one core
    assert e.frequency_mhz is None and "cpufreq" in e.unavailable["frequency"]
    assert e.watts is None and "none" in e.unavailable["energy"]
    assert e.server_source == f"process {PID} and its children"


def test_rapl_energy_across_a_wrap_and_the_clock_of_the_servers_cpus(tmp_path: Path) -> None:
    host(tmp_path)
    write(tmp_path, f"proc/{PID}/cgroup", "0::/\n")
    max_range = 65_532_610_987
    for zone, name in (("intel-rapl:0", "package-0"), ("intel-rapl:0:0", "core"), ("intel-rapl:0:1", "dram")):
        write(tmp_path, f"sys/class/powercap/{zone}/name", name + "\n")
        write(tmp_path, f"sys/class/powercap/{zone}/max_energy_range_uj", f"{max_range}\n")
    counters = {"intel-rapl:0": max_range - 100_000_000, "intel-rapl:0:0": 0, "intel-rapl:0:1": 1_000_000}
    frequencies = [(2_600_000, 2_600_000), (2_000_000, 2_000_000), (2_600_000, 2_600_000)]
    moment(tmp_path, 0, 0, {c: 0 for c in range(4)}, {c: 0 for c in range(4)})
    w = None
    readings = []
    for i, (f0, f1) in enumerate(frequencies):
        for zone, value in counters.items():
            write(tmp_path, f"sys/class/powercap/{zone}/energy_uj", f"{value}\n")
        write(tmp_path, "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", f"{f0}\n")
        write(tmp_path, "sys/devices/system/cpu/cpu1/cpufreq/scaling_cur_freq", f"{f1}\n")
        w = w or watched(tmp_path)
        readings.append(at(w, float(i)))
        # each second: the package draws 150 J (wrapping after the first), the dram 10 J
        counters["intel-rapl:0"] = (counters["intel-rapl:0"] + 150_000_000) % max_range
        counters["intel-rapl:0:1"] += 10_000_000
    assert w is not None
    assert [d.name for d in w.rapl] == ["package-0", "dram-0"]  # core lies inside the package
    e = ev.evidence(w, readings[0], readings[-1], level=1)
    assert e.joules == pytest.approx(2 * 160)
    assert e.watts == pytest.approx(160)
    assert e.energy_source == "rapl: package-0, dram-0" and "not the whole system" in e.energy_scope
    assert e.frequency_max_mhz == 2600 and e.frequency_min_mhz == 2000
    assert e.frequency_drop_percent == pytest.approx(100 * 600 / 2600, abs=1e-3)
    assert "frequency" not in e.unavailable and "energy" not in e.unavailable
    verdict = limit_of(e, None)
    assert verdict.throttled


def test_the_bmc_is_sampled_during_the_level_when_the_job_asks(tmp_path: Path) -> None:
    host(tmp_path)
    write(tmp_path, f"proc/{PID}/cgroup", "0::/\n")
    moment(tmp_path, 0, 0, {c: 0 for c in range(4)}, {c: 0 for c in range(4)})
    tool = tmp_path / "ipmitool"
    tool.write_text(f"#!/bin/sh\ncat {FIXTURES / 'ipmitool-dcmi-power-reading.txt'}\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    w = watched(tmp_path, power_source="ipmi", ipmitool=str(tool))
    first = at(w, 0.0)
    middle = w.read(with_meter=True)
    middle.t = 1.0
    last = at(w, 2.0)
    e = ev.evidence(w, first, last, rate=50.0)
    assert e.watts == 312.0 and e.joules == 624.0
    assert e.energy_scope == "whole system (BMC)" and e.energy_source.startswith("ipmi")


def test_a_bmc_that_gives_no_reading_says_so(tmp_path: Path) -> None:
    host(tmp_path)
    write(tmp_path, f"proc/{PID}/cgroup", "0::/\n")
    moment(tmp_path, 0, 0, {c: 0 for c in range(4)}, {c: 0 for c in range(4)})
    w = watched(tmp_path, power_source="ipmi", ipmitool=str(tmp_path / "no-such-ipmitool"))
    first = at(w, 0.0, bounds=False)
    middle = w.read(with_meter=True)
    middle.t = 1.0
    e = ev.evidence(w, first, at(w, 2.0), level=1)
    assert e.watts is None and "no reading" in e.unavailable["energy"]


def test_a_client_in_a_container_has_no_cpu_figure_of_its_tree(tmp_path: Path) -> None:
    """perf_analyzer's image mode runs it under conmon, outside the tree the runner started."""
    host(tmp_path)
    write(tmp_path, f"proc/{PID}/cgroup", "0::/\n")
    write(tmp_path, f"proc/{CLIENT}/comm", "podman\n")
    moment(tmp_path, 0, 0, {c: 0 for c in range(4)}, {c: 0 for c in range(4)})
    w = watched(tmp_path)
    e = ev.evidence(w, at(w, 0.0), at(w, 2.0), level=1)
    assert e.client_cores is None and "container" in e.unavailable["client_cpu"]


def test_a_host_without_a_meter_says_energy_is_unavailable_and_why(tmp_path: Path) -> None:
    host(tmp_path)
    w = watched(tmp_path)
    assert "no RAPL" in w.unavailable["energy"] and "sweep_power_source: ipmi" in w.unavailable["energy"]


def test_a_server_that_cannot_be_found_leaves_its_figures_unavailable(tmp_path: Path) -> None:
    host(tmp_path)
    w = ev.watch_of({}, {"name": "numa0"}, tmp_path)
    assert w.server is None and "no server process" in w.unavailable["server_cpu"]
    verdict = limit_of(Evidence(unavailable=w.unavailable), None)
    assert verdict.limit == "unknown" and "no server process" in verdict.why


def test_the_runner_watches_its_own_process_as_a_server(tmp_path: Path) -> None:
    """The real /proc: a Watch over this process reads its CPU time rising while it works."""
    w = ev.watch_of({}, {"name": "numa0", "server_pid": os.getpid()})
    w.client_pid = os.getpid()
    first = w.read(bounds=True)
    sum(i * i for i in range(2_000_000))
    last = w.read(bounds=True)
    e = ev.evidence(w, first, last)
    assert e.server_cores is not None and e.server_cores > 0.2
    assert e.host_cpus == os.cpu_count()
    assert e.server_switches_per_s is not None


# ----------------------------------------------------------------------------------- verdicts
def figures(server: float, client: float, cpus: int = 2) -> Evidence:
    return Evidence(server_share=server, server_cpus=cpus, client_share=client, client_cpus=cpus)


@pytest.mark.parametrize(
    ("at_level", "after", "late", "limit", "said"),
    [
        (figures(0.95, 0.1), None, None, "server", "server at 95 % of its 2 CPU(s)"),
        (figures(0.5, 0.2), figures(0.93, 0.2), None, "server", "server at 93 %"),
        (figures(0.5, 0.95), None, None, "client", "client at 95 % of its 2 CPU(s)"),
        (figures(0.5, 0.1), None, "3 % of requests delayed with 4 threads", "client", "sent late"),
        (figures(0.03, 0.01), figures(0.04, 0.01), None, "latency", "neither CPU-bound"),
        (figures(0.5, 0.05), figures(0.5, 0.05), "2 % of requests delayed", "client", "sent late"),
        (figures(0.8, 0.1), figures(0.85, 0.1), None, "latency", "near saturation"),
        (figures(0.5, 0.1), None, None, "unknown", "no level above it was measured"),
        (Evidence(server_share=0.55, server_cpus=2, server_busiest_thread=0.97), None, None, "server", "serial"),
        (None, None, None, "unknown", "no evidence"),
    ],
)
def test_the_verdict_names_what_limited_the_level(
    at_level: Evidence | None, after: Evidence | None, late: str | None, limit: str, said: str
) -> None:
    verdict = limit_of(at_level, after, late)
    assert verdict.limit == limit
    assert said in verdict.why


def test_a_level_above_sent_late_makes_the_verdict_the_clients() -> None:
    from bench.capacity import search_rate

    def measure(rate: float) -> Level:
        late = "5 % of requests delayed with 4 threads" if rate > 16 else None
        return Level(None, rate, 5_000, 10_000, 1000, 3, rate=rate, sent_rate=rate, delayed_percent=0.0, late=late,
                     evidence=figures(0.3, 0.5))  # fmt: skip

    record = search_rate(measure, 100.0, 5.0, 8.0, 64.0).record()
    assert not record.valid and record.reason.startswith("client-bound")
    assert record.verdict is not None and record.verdict.limit == "client" and "sent late" in record.verdict.why


def test_a_search_whose_client_was_saturated_is_invalid_and_says_so() -> None:
    from bench.capacity import search

    def measure(level: int) -> Level:
        p99 = 10_000 * level
        share = 0.5 if level < 4 else 0.97
        return Level(level, 100.0 * level, p99 / 2, p99, 1000, 3, evidence=figures(0.4, share, cpus=1))

    outcome = search(measure, budget_ms=35, min_gain_percent=5, max_concurrency=8)
    record = outcome.record()
    assert not record.valid
    assert "client-bound: client at 97 % of its 1 CPU(s)" in record.reason
    assert record.verdict is not None and record.verdict.limit == "client"
