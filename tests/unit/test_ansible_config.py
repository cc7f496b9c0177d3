"""The Ansible side of the repository: configuration, inventory, argument specs."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import stat
import subprocess
from pathlib import Path

import pytest

from sim.fleet.fleet import Fleet, FleetHost
from tests.conftest import REPO, run

pytestmark = pytest.mark.unit

TRACKED_TEXT = [".cfg", ".yml", ".yaml", ".py", ".sh", ".j2", ".ini", ".toml", ".md", ""]
KEY_CHECKING_OFF = re.compile(
    r"host_key_checking\s*[=:]\s*(false|no|0)|StrictHostKeyChecking[= ]+(no|off|accept-new)"
    r"|ANSIBLE_HOST_KEY_CHECKING|UserKnownHostsFile[= ]+/dev/null",
    re.IGNORECASE,
)


def repo_files() -> list[Path]:
    skip = {".git", ".venv", ".fleet", ".ansible", ".pytest_cache", ".ruff_cache", "__pycache__"}
    return [
        p
        for p in REPO.rglob("*")
        if p.is_file()
        and not skip & set(p.relative_to(REPO).parts)
        and p.suffix in TRACKED_TEXT
        and p.name != Path(__file__).name
    ]


def test_host_key_checking_is_never_switched_off() -> None:
    offenders = [
        f"{p.relative_to(REPO)}: {m.group(0)}"
        for p in repo_files()
        for m in [KEY_CHECKING_OFF.search(p.read_text(errors="replace"))]
        if m
    ]
    assert offenders == []


def test_ansible_cfg_has_what_a_fleet_needs() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "ansible.cfg")
    defaults = cfg["defaults"]
    assert defaults["inventory"] == "inventory/"
    assert defaults["roles_path"] == "roles"
    assert defaults.getboolean("host_key_checking") is True
    assert int(defaults["forks"]) >= 20
    assert defaults["fact_caching"] == "jsonfile"
    assert "profile_tasks" in defaults["callbacks_enabled"]
    assert cfg["ssh_connection"].getboolean("pipelining") is True


# --- host keys at every step, fetch's rsync included (issue 21.1) ------------------------------------
# rsync's ssh command is read from the real fetch.yml and synchronize action: a stand-in rsync records
# what it was given, and `ssh -G` says what ssh makes of it (its first value of an option wins).
FAKE_RSYNC = """#!/usr/bin/env python3
import json, os, sys
with open(os.environ["FAKE_RSYNC_LOG"], "a") as log:
    log.write(json.dumps(sys.argv) + "\\n")
"""
CLOSED_PORT = 1  # nothing listens there: Ansible's connection is refused at once


def effective_ssh(options: list[str], destination: str) -> dict[str, str]:
    """ssh's own reading of OPTIONS for DESTINATION (`ssh -G`, no config file): lower-case name -> value."""
    proc = subprocess.run(
        ["ssh", "-G", "-F", "/dev/null", *options, destination], capture_output=True, text=True, check=True
    )
    return dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)


def fleet_inventory(tmp_path: Path, port: int = 2222) -> tuple[Path, Path]:
    """The inventory the simulated fleet writes for one host at PORT, and the known_hosts it pins."""
    fleet = Fleet(tmp_path / "fleet", name="unit")
    fleet.state_dir.mkdir(mode=0o700)
    fleet._write_inventory([FleetHost("kunpeng-01", "x86_64", "kunpeng", "unused", port=port)])
    return fleet.inventory, fleet.known_hosts


def rsync_argv_of_fetch(tmp_path: Path, *inventory_args: str, run_id: str | None = "run1") -> list[str]:
    """The arguments fetch.yml's synchronize hands rsync, run for real with a stand-in rsync: only the
    pull task (--start-at-task), as if the host had results."""
    fake, log = tmp_path / "rsync", tmp_path / "rsync.log"
    fake.write_text(FAKE_RSYNC)
    fake.chmod(0o755)
    proc = run(
        [
            "ansible-playbook",
            *inventory_args,
            "playbooks/fetch.yml",
            "--start-at-task",
            "Pull the results",
            "-e",
            json.dumps(
                {
                    "fetch_source": {"stat": {"exists": True}},
                    "ansible_rsync_path": str(fake),
                    "recbench_results_dir": str(tmp_path / "results"),
                }
                | ({"recbench_run_id": run_id} if run_id else {})
            ),
        ],
        timeout=120,
        FAKE_RSYNC_LOG=str(log),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    (argv,) = [json.loads(line) for line in log.read_text().splitlines()]
    return argv


def rsync_ssh_of_fetch(tmp_path: Path, *inventory_args: str) -> list[str]:
    """The ssh command line (after `ssh`) that fetch.yml's synchronize hands rsync."""
    argv = rsync_argv_of_fetch(tmp_path, *inventory_args)
    (rsh,) = [arg.split("=", 1)[1] for arg in argv if arg.startswith("--rsh=")]
    command = shlex.split(rsh)
    assert Path(command[0]).name == "ssh", command
    return command[1:]


def test_fetch_rsync_checks_host_keys_against_the_fleets_pinned_known_hosts(tmp_path: Path) -> None:
    inventory, known_hosts = fleet_inventory(tmp_path)
    options = rsync_ssh_of_fetch(tmp_path, "-i", str(inventory))
    ssh = effective_ssh(options, "recbench@127.0.0.1")
    assert ssh["stricthostkeychecking"] == "true", options
    assert ssh["userknownhostsfile"] == str(known_hosts), options
    assert ssh["globalknownhostsfile"] == "/dev/null", options
    assert ssh["port"] == "2222"


def test_fetch_rsync_checks_host_keys_on_the_production_fleet(tmp_path: Path) -> None:
    # No known_hosts of the lab in the inventory: the user's own, and an unknown host is refused, not asked.
    options = rsync_ssh_of_fetch(tmp_path, "-l", "kp920-01.lab.example")
    ssh = effective_ssh(options, "recbench-admin@192.0.2.11")
    assert ssh["stricthostkeychecking"] == "true", options
    assert ssh["userknownhostsfile"].split()[0] == str(Path("~/.ssh/known_hosts").expanduser()), options


def test_fetching_every_run_brings_only_this_hosts_directories_home(tmp_path: Path) -> None:
    # a host's results root naming another host (planted, or a copy) must not land in that host's place
    inventory, _ = fleet_inventory(tmp_path)
    argv = rsync_argv_of_fetch(tmp_path, "-i", str(inventory), run_id=None)
    filters = [a for a in argv if a.startswith(("--include=", "--exclude="))]
    assert "--include=/*/kunpeng-01/***" in filters and filters[-1] == "--exclude=*", filters
    source = tmp_path / "host-root"
    for path in ("r1/kunpeng-01/dlrm/m.json", "r1/kunpeng-02/dlrm/m.json", "r2/kunpeng-01/.x.partial/m.json"):
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        (source / path).write_text("{}")
    home = tmp_path / "home"
    subprocess.run(["rsync", "-r", *filters, f"{source}/", f"{home}/"], check=True, capture_output=True)
    fetched = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())
    assert fetched == ["r1/kunpeng-01/dlrm/m.json"], fetched


def ansible_ssh_command(tmp_path: Path, *args: str) -> list[str]:
    """The ssh command line (after `ssh`, before the host) of Ansible's own connection, from -vvv."""
    proc = run(["ansible", "-vvv", *args, "-m", "ansible.builtin.raw", "-a", "true"], timeout=120)
    assert "UNREACHABLE" in proc.stdout, proc.stdout[-3000:]
    (line,) = [line for line in proc.stdout.splitlines() if "SSH: EXEC ssh " in line][:1]
    words = shlex.split(line.split("SSH: EXEC ", 1)[1])
    return words[1 : len(words) - 1 - words[::-1].index("127.0.0.1")]


def test_ansibles_own_connection_checks_host_keys_against_the_pinned_known_hosts(tmp_path: Path) -> None:
    inventory, known_hosts = fleet_inventory(tmp_path, port=CLOSED_PORT)
    options = ansible_ssh_command(tmp_path, "-i", str(inventory), "kunpeng-01")
    ssh = effective_ssh(options, "127.0.0.1")
    assert ssh["stricthostkeychecking"] == "true", options
    assert ssh["userknownhostsfile"] == str(known_hosts), options


def test_ansibles_own_connection_refuses_unknown_hosts_on_the_production_fleet(tmp_path: Path) -> None:
    # ssh's default would ask (and a nightly run has nobody to answer); ansible.cfg says yes.
    address = ["-e", "ansible_host=127.0.0.1", "-e", f"ansible_port={CLOSED_PORT}"]
    options = ansible_ssh_command(tmp_path, "kp920-01.lab.example", *address)
    ssh = effective_ssh(options, "127.0.0.1")
    assert ssh["stricthostkeychecking"] == "true", options
    assert ssh["userknownhostsfile"].split()[0] == str(Path("~/.ssh/known_hosts").expanduser()), options


# --- private runtime paths (issue 21.7) ---------------------------------------------------------------
SHARED_DIRS = ("/tmp", "/var/tmp", "/dev/shm")
# ssh binds a control socket at ControlPath plus a 17-character random suffix; sun_path holds 107 bytes.
UNIX_SOCKET_PATH_MAX = 107 - 17


def test_ssh_control_sockets_live_in_a_directory_only_you_can_write(tmp_path: Path) -> None:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(REPO / "ansible.cfg")
    configured = cfg["ssh_connection"]["control_path_dir"]
    assert not configured.startswith(SHARED_DIRS), configured
    # What Ansible really uses (it creates the directory 0700 when missing), and that nobody else could
    # have made that directory first: the one above it is yours and writable by you alone.
    inventory, _ = fleet_inventory(tmp_path, port=CLOSED_PORT)
    options = ansible_ssh_command(tmp_path, "-i", str(inventory), "kunpeng-01")
    control_path = Path(effective_ssh(options, "127.0.0.1")["controlpath"])
    for directory in (control_path.parent, control_path.parent.parent):
        info = directory.stat()
        assert info.st_uid == os.geteuid(), directory
        assert not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH), f"{directory}: {info.st_mode & 0o7777:04o}"
    assert not control_path.parent.stat().st_mode & 0o077
    assert len(os.fsencode(control_path)) <= UNIX_SOCKET_PATH_MAX, control_path


def test_no_runtime_state_of_ansible_cfg_sits_in_a_shared_directory() -> None:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(REPO / "ansible.cfg")
    paths = {
        "local_tmp": cfg["defaults"]["local_tmp"],
        "fact_caching_connection": cfg["defaults"]["fact_caching_connection"],
        "control_path_dir": cfg["ssh_connection"]["control_path_dir"],
    }
    assert {k: v for k, v in paths.items() if os.path.expanduser(v).startswith(SHARED_DIRS)} == {}


def test_the_fleet_state_directory_with_the_pinned_known_hosts_is_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o777)
    state.chmod(0o777)  # an older fleet's directory, or a loose umask
    Fleet(state, name="unit")._private_state_dir()
    assert state.stat().st_mode & 0o777 == 0o700


def test_production_inventory_has_both_groups() -> None:
    proc = run(["ansible-inventory", "--list"])
    assert proc.returncode == 0, proc.stderr
    inventory = json.loads(proc.stdout)
    assert inventory["kunpeng"]["hosts"]
    assert inventory["x86"]["hosts"]


def argument_check(tmp_path: Path, extra_vars: str) -> str:
    playbook = tmp_path / "play.yml"
    playbook.write_text("- hosts: localhost\n  gather_facts: false\n  roles:\n    - role: host_prep\n")
    proc = run(
        ["ansible-playbook", "-i", "localhost,", "-c", "local", str(playbook), "-e", extra_vars],
        ANSIBLE_ROLES_PATH=str(REPO / "roles"),
    )
    assert proc.returncode != 0, "a bad variable must stop the play"
    return proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("extra_vars", "expected"),
    [
        ('{"host_prep_thp": "sometimes"}', "host_prep_thp"),
        ('{"host_prep_governor": "turbo"}', "host_prep_governor"),
        ('{"host_prep_tune_thp": "maybe"}', "host_prep_tune_thp"),
        ('{"host_prep_extra_packages": {"numactl": 1}}', "host_prep_extra_packages"),
    ],
)
def test_bad_variables_fail_before_anything_changes(tmp_path: Path, extra_vars: str, expected: str) -> None:
    output = argument_check(tmp_path, extra_vars)
    assert "Validating arguments against arg spec" in output
    assert expected in output
    assert "changed=0" in output or "changed" not in output.split("PLAY RECAP")[-1]


def test_relative_directories_are_refused_with_a_clear_message(tmp_path: Path) -> None:
    output = argument_check(tmp_path, '{"host_prep_base_dir": "opt/recbench"}')
    assert "host_prep: opt/recbench must be an absolute path" in output
