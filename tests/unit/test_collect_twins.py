"""Twins on a planted fleet: five hosts of one fingerprint (one slow with THP off, one slow with nothing
different, one whose governor changed during the run), and one host of another CPU alone in its group."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from collect.changes import load_thresholds
from collect.cli import main
from collect.twins import NO_DIFFERENCE, fingerprint, twins
from tests.results_tree import point, stored

pytestmark = pytest.mark.unit

FACTS = {
    "cpu_model": "HiSilicon Kunpeng 920",
    "sockets": 2,
    "cores": 96,
    "threads": 96,
    "numa_nodes": [{"cpu_count": 24, "memory_mb": 131072}] * 4,
    "kernel": "5.10.0",
    "os": "openEuler 22.03",
    "governor": "performance",
    "thp": {"enabled": "always", "defrag": "madvise"},
    "sysctl": {"kernel.numa_balancing": "0", "vm.swappiness": "10"},
    "cmdline": "root=/dev/sda2",
}
VERSIONS = {"tensorflow": {"version": "2.15.1"}, "tfserving": {"build_key": "abc"}, "perf_analyzer": "2.46.0"}
THROUGHPUT = {"kp-01": 1000, "kp-02": 1010, "kp-03": 990, "kp-04": 700, "kp-05": 690, "x86-01": 400}


def metadata(host: str) -> dict:
    facts = copy.deepcopy(FACTS)
    start = copy.deepcopy(FACTS)
    if host == "kp-04":
        facts["thp"]["enabled"] = start["thp"]["enabled"] = "never"
    if host == "kp-02":
        facts["governor"] = "powersave"  # changed while it ran
    if host == "x86-01":
        facts["cpu_model"] = start["cpu_model"] = "Intel Xeon Platinum 8380"
    return {"host_facts": facts, "host_facts_start": start, "versions": VERSIONS, "started_at": "1", "finished_at": "2"}


@pytest.fixture
def store(tmp_path: Path):
    rows = [point("r1", host, "dlrm", "c", "numa0", 1, value) for host, value in THROUGHPUT.items()]
    with stored(tmp_path, rows, {host: metadata(host) for host in THROUGHPUT}) as store:
        yield store


def test_strays_are_named_with_the_field_that_differs_or_none(store) -> None:
    table = twins(store, "r1", load_thresholds()).set_index("host")
    assert table.loc["kp-04", "verdict"] == "strays"
    assert table.loc["kp-04", "why"] == "thp.enabled: never (twins: always)"
    assert table.loc["kp-05", "verdict"] == "strays" and table.loc["kp-05", "why"] == NO_DIFFERENCE
    assert set(table[table["verdict"] == "ok"].index) == {"kp-01", "kp-02", "kp-03"}
    assert table.loc["kp-01", "twins"] == 5 and table.loc["kp-01", "group_median"] == 990
    assert table.loc["x86-01", "verdict"] == "no verdict: 1 host(s) share this fingerprint"
    assert table.loc["x86-01", "group"] != table.loc["kp-01", "group"]
    assert table.loc["kp-02", "changed_during_run"] == "governor: performance -> powersave"


def test_the_fingerprint_holds_what_should_make_hosts_equal() -> None:
    fields = fingerprint(metadata("kp-01"))
    assert fields["numa_layout"] == [(24, 128)] * 4
    assert (fields["tensorflow"], fields["tfserving"], fields["perf_analyzer"]) == ("2.15.1", "abc", "2.46.0")
    assert "thp" not in fields and "governor" not in fields  # those explain; they do not group


def test_cli_twins_prints_strays_first(store, capsys) -> None:
    db = str(store.path)
    store.close()
    assert main(["twins", "--db", db]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "twins, run r1 (best throughput): 2 stray(s) among 6 host(s)"
    rows = [line for line in out if line.startswith("| dlrm")]
    assert [r.split("|")[4].strip() for r in rows[:2]] == ["kp-04", "kp-05"]
    assert "thp.enabled: never (twins: always)" in rows[0]
