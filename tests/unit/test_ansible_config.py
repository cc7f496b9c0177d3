"""The Ansible side of the repository: configuration, inventory, argument specs."""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path

import pytest

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
