"""Host keys on the simulated fleet (issue 21.1): a host that presents another key than the one the
fleet pinned in its known_hosts is refused, at every step, by fetch.yml (Ansible's connection and the
rsync of the results) and by collect pull, each time in one line, and the other host's results come
home. Two hosts, one tiny result each, no TensorFlow: seconds."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bench.facts import RESULTS_ROOT
from collect.inventory import targets
from collect.pull import pull
from sim.fleet.fleet import LOOPBACK, Fleet, FleetHost
from sim.fleet.podman import podman
from tests.conftest import REPO, run
from tests.fleet_tests.conftest import adhoc, results_on_hosts

pytestmark = pytest.mark.fleet

RUN_ID = "run1"
# A new host key replacing the pinned one; sshd re-reads its keys on reload, and the connections it
# already serves (an Ansible control master) live on.
NEW_KEY = (
    "rm -f /etc/ssh/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key.pub"
    " && ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key && systemctl reload ssh"
)
PINNED_KEY = "/usr/local/sbin/fleet-seed && systemctl reload ssh"  # the seed's key, as at first boot


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path_factory.mktemp("keysfleet"), name="pytest-keys")
    fleet.down(log=lambda _: None)
    fleet.up(2, log=lambda _: None)
    results_on_hosts(fleet, tmp_path_factory.mktemp("keysresults"), RUN_ID, [("numa0", "plain.csv", [1, 2])])
    # fetch.yml pulls with rsync, which host_prep installs (site.yml, minutes): only rsync here.
    adhoc(fleet, "all", "ansible.builtin.apt", "name=rsync update_cache=true")
    yield fleet
    fleet.down(log=lambda _: None)


def presented_key(host: FleetHost) -> str:
    """The ed25519 key the host's sshd presents now (ssh-keyscan), `type base64`."""
    proc = run(["ssh-keyscan", "-T", "5", "-t", "ed25519", "-p", str(host.port), LOOPBACK], timeout=30)
    return " ".join(proc.stdout.split()[1:3])


def pinned_key(fleet: Fleet, host: FleetHost) -> str:
    (line,) = [
        line for line in fleet.known_hosts.read_text().splitlines() if line.startswith(f"[{LOOPBACK}]:{host.port} ")
    ]
    return " ".join(line.split()[1:3])


def _wait_for_key(host: FleetHost, wanted: bool, key: str) -> None:
    for _ in range(50):
        presented = presented_key(host)
        if presented and (presented == key) == wanted:
            return
        time.sleep(0.2)
    raise AssertionError(f"{host.name}: sshd kept presenting {presented_key(host)!r}")


@contextmanager
def another_key(fleet: Fleet, host: FleetHost) -> Iterator[None]:
    """HOST presents a fresh key (the known_hosts still pins its old one) until the block ends."""
    pinned = pinned_key(fleet, host)
    podman("exec", host.container, "sh", "-c", NEW_KEY)
    _wait_for_key(host, False, pinned)
    try:
        yield
    finally:
        podman("exec", host.container, "sh", "-c", PINNED_KEY)
        _wait_for_key(host, True, pinned)


def fetch(fleet: Fleet, results: Path, controls: Path) -> tuple[int, str]:
    proc = run(
        [
            "ansible-playbook",
            "-i",
            str(fleet.inventory),
            str(REPO / "playbooks/fetch.yml"),
            "-e",
            f"recbench_results_dir={results}",
            "-e",
            f"recbench_run_id={RUN_ID}",
        ],
        timeout=300,
        ANSIBLE_SSH_CONTROL_PATH_DIR=str(controls),
    )
    return proc.returncode, proc.stdout + proc.stderr


def fetched(results: Path, host: str) -> list[str]:
    root = results / RUN_ID / host
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def casualty(output: str, host: str) -> str:
    """The line recbench_hosts prints for HOST at the end of the run (the one-line reason)."""
    lines = [line.strip() for line in output.splitlines() if line.strip().startswith(f"{host}: ")]
    assert len(lines) == 1, output[-4000:]
    return lines[0]


def test_fetch_refuses_a_host_whose_key_is_not_the_pinned_one_and_the_other_comes_home(
    fleet: Fleet, tmp_path: Path
) -> None:
    victim, other = fleet.hosts()
    with another_key(fleet, victim):
        rc, output = fetch(fleet, tmp_path / "results", tmp_path / "cp")
    assert rc != 0, output[-4000:]
    line = casualty(output, victim.name)
    assert "at 'Give up on a host that was not reached'" in line, line
    assert "host key refused, nothing fetched: " in line, line
    assert f"key in {fleet.known_hosts}:" in line and "has changed" in line, line
    assert fetched(tmp_path / "results", victim.name) == []
    assert len(fetched(tmp_path / "results", other.name)) == 2, output[-4000:]


def test_fetch_rsync_refuses_it_even_while_ansible_still_talks_to_the_host(fleet: Fleet, tmp_path: Path) -> None:
    """Ansible's connection was opened (the key checked) before the key changed and is kept open
    (ControlPersist): the host still answers Ansible through it, but rsync connects anew, and checks."""
    victim, other = fleet.hosts()
    controls = tmp_path / "cp"
    opened = run(
        ["ansible", "-i", str(fleet.inventory), "all", "-m", "ansible.builtin.raw", "-a", "true"],
        timeout=120,
        ANSIBLE_SSH_CONTROL_PATH_DIR=str(controls),
    )
    assert opened.returncode == 0, opened.stdout[-2000:]
    with another_key(fleet, victim):
        rc, output = fetch(fleet, tmp_path / "results", controls)
    assert rc != 0, output[-4000:]
    line = casualty(output, victim.name)
    assert "at 'Give up on a host whose results could not be pulled'" in line, line
    assert "host key refused, nothing fetched: " in line and f"key in {fleet.known_hosts}:" in line, line
    assert fetched(tmp_path / "results", victim.name) == []
    assert len(fetched(tmp_path / "results", other.name)) == 2, output[-4000:]


def test_collect_pull_refuses_it_too(fleet: Fleet, tmp_path: Path) -> None:
    victim, other = fleet.hosts()
    with another_key(fleet, victim):
        reports = pull(targets(fleet.inventory, "kunpeng"), RESULTS_ROOT, tmp_path / "api", retries=2, timeout=10)
        cli = run(
            [
                "python",
                "-m",
                "collect",
                "pull",
                "-i",
                str(fleet.inventory),
                "--limit",
                "kunpeng",
                "--dest",
                str(tmp_path / "cli"),
            ],
            timeout=120,
        )
    refused, ok = reports
    assert refused.host == victim.name and refused.attempts == 1  # never retried
    assert refused.error and "does not match" in refused.error and "\n" not in refused.error
    assert (ok.host, ok.error, ok.fetched) == (other.name, None, 2)
    assert cli.returncode != 0, cli.stderr  # some host failed
    (line,) = [line for line in cli.stderr.splitlines() if line.startswith(f"pull: {victim.name}: ")]
    assert "FAILED after 1 attempt(s): host key of" in line and "does not match" in line, line
    assert "unreachable or refused: " + victim.name in cli.stdout
    assert fetched(tmp_path / "cli", victim.name) == [] and len(fetched(tmp_path / "cli", other.name)) == 2
