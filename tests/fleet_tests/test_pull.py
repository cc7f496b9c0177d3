"""collect pull over real SSH from the simulated fleet: new files only, pinned host keys, dead hosts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from collect.inventory import targets
from collect.pull import pull
from sim.fleet.fleet import Fleet
from sim.fleet.podman import podman
from tests.conftest import run
from tests.fleet_tests.conftest import results_on_hosts

pytestmark = pytest.mark.fleet


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path_factory.mktemp("pullfleet"), name="pytest-pull")
    fleet.down(log=lambda _: None)
    fleet.up(2, log=lambda _: None)
    results_on_hosts(
        fleet,
        tmp_path_factory.mktemp("hostresults"),
        "run1",
        [("numa0", "verbose.csv", [1, 2, 3, 4]), ("numa1", "plain.csv", [1, 2, 3, 4])],
    )
    yield fleet
    fleet.down(log=lambda _: None)


def test_pull_fetches_every_result_once(fleet: Fleet, tmp_path: Path) -> None:
    hosts = targets(fleet.inventory, "kunpeng")
    assert [h.name for h in hosts] == ["kunpeng-01", "kunpeng-02"]
    first = pull(hosts, "/opt/recbench/results", tmp_path)
    assert [(r.host, r.fetched, r.error) for r in first] == [("kunpeng-01", 4, None), ("kunpeng-02", 4, None)]
    fetched = tmp_path / "run1" / "kunpeng-02" / "dlrm" / "dlrm-entire-b16-x" / "numa0" / "perf.csv"
    assert fetched.read_text().startswith("Concurrency,Inferences/Second")
    again = pull(hosts, "/opt/recbench/results", tmp_path)
    assert [(r.fetched, r.already_here) for r in again] == [(0, 4), (0, 4)]


def test_a_host_presenting_another_key_is_refused(fleet: Fleet, tmp_path: Path) -> None:
    first, second = targets(fleet.inventory, "kunpeng")
    lines = first.known_hosts.read_text().splitlines()
    forged = tmp_path / "known_hosts"
    # kunpeng-01's address with kunpeng-02's key, kunpeng-02's own entry kept.
    forged.write_text(f"{lines[0].split()[0]} {' '.join(lines[1].split()[1:])}\n{lines[1]}\n")
    hosts = [
        type(first)(**{**first.__dict__, "known_hosts": forged}),
        type(second)(**{**second.__dict__, "known_hosts": forged}),
    ]
    reports = pull(hosts, "/opt/recbench/results", tmp_path / "out", retries=2, timeout=5)
    assert reports[0].error and "does not match" in reports[0].error
    assert reports[0].attempts == 1  # a wrong key is never retried
    assert reports[1].error is None and reports[1].fetched == 4


def test_a_dead_host_is_reported_after_retries_and_costs_the_others_nothing(fleet: Fleet, tmp_path: Path) -> None:
    hosts = targets(fleet.inventory, "kunpeng")
    victim = fleet.hosts()[0]
    podman("stop", "--time", "1", victim.container)
    try:
        # A stopped host refuses at once; the live one may share the cores with other tests: 10 s to answer.
        reports = pull(hosts, "/opt/recbench/results", tmp_path, retries=2, timeout=10)
    finally:
        fleet.up(2, log=lambda _: None)
    assert reports[0].error is not None and reports[0].attempts == 2
    assert reports[1].error is None and reports[1].fetched == 4


def test_cli_pull_names_the_failed_hosts(fleet: Fleet, tmp_path: Path) -> None:
    ok = run(
        ["python", "-m", "collect", "pull", "-i", str(fleet.inventory), "--limit", "kunpeng", "--dest", str(tmp_path)]
    )
    assert ok.returncode == 0, ok.stderr
    assert "pull: 8 file(s) fetched" in ok.stdout
    bad = run(["python", "-m", "collect", "pull", "-i", str(fleet.inventory), "--limit", "nowhere"])
    assert bad.returncode == 2
    assert "no host or group named 'nowhere'" in bad.stderr
