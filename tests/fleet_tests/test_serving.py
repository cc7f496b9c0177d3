"""Serving on the simulated fleet: tensorflow + tfserving (stand-in build) + perf_analyzer on two hosts,
then a real perf_analyzer sweep on each host against its own server serving a model zoo export.

The fleet is the one the pipeline tests use (see conftest.py); that site.yml is idempotent is shown there
(test_bench.py::test_each_stage_alone_is_idempotent)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

import pytest

from modelzoo.config import dataset_of, load_config
from modelzoo.export import export
from modelzoo.perf_input import write_perf_input
from modelzoo.train import train
from sim.fleet.fleet import Fleet
from sim.fleet.podman import podman
from tests.conftest import run
from tests.criteo_layouts import SAMPLE

pytestmark = pytest.mark.fleet

STORE = Path(os.environ.get("RECBENCH_ARTIFACTS", "/var/tmp/recbench-artifacts"))
STANDIN = "tfserving/tensorflow_model_server-2.15.1-x86_64-plain.tar.gz"


def playbook(fleet: Fleet, path: str, *extra: str, store: Path = STORE) -> tuple[int, str]:
    proc = run(
        ["ansible-playbook", "-i", str(fleet.inventory), path, "-e", f"recbench_artifact_dir={store}", *extra],
        timeout=1200,
    )
    return proc.returncode, proc.stdout + proc.stderr


def stdout_per_host(fleet: Fleet, module: str, args: str, tree: Path) -> dict[str, str]:
    """Run an ad-hoc module on every host; return each host's stdout (as the tree callback saved it)."""
    proc = run(
        ["ansible", "-i", str(fleet.inventory), "kunpeng", "--tree", str(tree), "-m", module, "-a", args], timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    return {p.name: json.loads(p.read_text()).get("stdout", "") for p in tree.iterdir()}


def perf_csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture(scope="module")
def served(bench_fleet: Fleet, sited: set[str], tmp_path_factory: pytest.TempPathFactory) -> tuple[Fleet, Path]:
    """The shared fleet with site.yml applied (unless the pipeline tests did) and dlrm, trained and
    exported here on the controller, served on every host."""
    manifest = STORE / "manifest.json"
    assert manifest.is_file(), f"{manifest} missing: scripts/test.sh fills the test artifact store first"
    out = tmp_path_factory.mktemp("models")
    train("dlrm", SAMPLE, out, batch_size=64, steps=3, log=lambda _: None)
    export("dlrm", out)
    if bench_fleet.name not in sited:
        rc, output = playbook(bench_fleet, "playbooks/site.yml")
        assert rc == 0, output[-4000:]
        sited.add(bench_fleet.name)
    rc, output = playbook(bench_fleet, "tests/fleet_tests/playbooks/serve.yml", "-e", f"model_dir={out / 'dlrm'}")
    assert rc == 0, output[-4000:]
    return bench_fleet, out


# What these two tests check is that each host's perf_analyzer reaches its own server and measures it,
# not perf_analyzer's stability rule (the sweep runner's tests own that): on a 2-core CI machine
# shared with an emulated host, a 50 % rule over 5 windows failed once (CI, stop 15), so the rule is
# widened and given more windows here.
PERF_ANALYZER_LENIENT = "-p 1000 -s 100 --max-trials 10"


def test_perf_analyzer_measures_each_hosts_own_server(served, tmp_path: Path) -> None:
    fleet, _ = served
    outputs = stdout_per_host(
        fleet,
        "ansible.builtin.shell",
        "cd /tmp && perf_analyzer -m dlrm --service-kind tfserving -i grpc -u localhost:8500 -b 16 "
        f"--concurrency-range 1:2 {PERF_ANALYZER_LENIENT} -f perf.csv --verbose-csv >/dev/null && cat perf.csv",
        tmp_path / "tree",
    )
    assert sorted(outputs) == ["kunpeng-01", "kunpeng-02"]
    for host, text in outputs.items():
        rows = perf_csv_rows(text)
        assert rows, f"{host}: empty CSV"
        assert {int(r["Concurrency"]) for r in rows} == {1, 2}
        assert all(float(r["Inferences/Second"]) > 0 for r in rows), rows
        assert all(float(r["p99 latency"]) > 0 for r in rows)


def test_perf_analyzer_sends_real_rows_from_perf_input(served, tmp_path: Path) -> None:
    fleet, _ = served
    data = tmp_path / "perf.json"
    write_perf_input(SAMPLE, dataset_of(load_config("dlrm")), data, rows=64)
    stdout_per_host(fleet, "ansible.builtin.copy", f"src={data} dest=/tmp/perf-input.json mode=0644", tmp_path / "c")
    outputs = stdout_per_host(
        fleet,
        "ansible.builtin.shell",
        "cd /tmp && perf_analyzer -m dlrm --service-kind tfserving -i grpc -u localhost:8500 -b 32 "
        f"--concurrency-range 1 {PERF_ANALYZER_LENIENT} --input-data perf-input.json -f real.csv "
        ">/dev/null && cat real.csv",
        tmp_path / "tree",
    )
    for host, text in outputs.items():
        rows = perf_csv_rows(text)
        assert rows and float(rows[0]["Inferences/Second"]) > 0, (host, rows)


def test_serving_ports_are_closed_to_other_hosts(served) -> None:
    fleet, _ = served
    first, second = fleet.hosts()
    address = podman("inspect", "--format", "{{.NetworkSettings.IPAddress}}", first.container).strip()
    probe = "timeout 5 bash -c 'echo > /dev/tcp/{}/{}' && echo open || echo closed"
    serving = podman("exec", second.container, "bash", "-c", probe.format(address, 8500)).strip()
    ssh = podman("exec", second.container, "bash", "-c", probe.format(address, 22)).strip()
    assert (serving, ssh) == ("closed", "open")


def test_a_tampered_artifact_stops_the_host_and_installs_nothing(served, tmp_path: Path) -> None:
    fleet, _ = served
    store = tmp_path / "store"
    (store / "tfserving").mkdir(parents=True)
    shutil.copy(STORE / "manifest.json", store / "manifest.json")
    tampered = store / STANDIN
    shutil.copy(STORE / STANDIN, tampered)
    with tampered.open("ab") as handle:
        handle.write(b"not what the manifest hashed")
    run(
        [
            "ansible",
            "-i",
            str(fleet.inventory),
            "kunpeng",
            "-b",
            "-m",
            "ansible.builtin.file",
            "-a",
            "path=/opt/recbench/tfserving/2.15.1-x86_64-plain state=absent",
        ]
    )
    rc, output = playbook(fleet, "playbooks/site.yml", "--tags", "tfserving", store=store)
    assert rc != 0
    assert f"sha256 mismatch for {STANDIN}" in output
    check = run(
        [
            "ansible",
            "-i",
            str(fleet.inventory),
            "kunpeng",
            "-m",
            "ansible.builtin.stat",
            "-a",
            "path=/opt/recbench/tfserving/2.15.1-x86_64-plain/bin/tensorflow_model_server",
        ]
    )
    assert '"exists": false' in check.stdout
    rc, output = playbook(fleet, "playbooks/site.yml", "--tags", "tfserving")  # the good store repairs it
    assert rc == 0, output[-3000:]


def test_a_server_with_nothing_to_serve_fails_readiness_with_a_clear_message(served, tmp_path: Path) -> None:
    fleet, out = served
    rc, output = playbook(
        fleet,
        "tests/fleet_tests/playbooks/serve.yml",
        "-e",
        f"model_dir={out / 'dlrm'}",
        "-e",
        "model_path=nothing-here",
        "-e",
        "tfserving_ready_timeout=8",
        "-l",
        "kunpeng-01",
    )
    assert rc != 0
    assert "did not serve dlrm within 8 s" in output
