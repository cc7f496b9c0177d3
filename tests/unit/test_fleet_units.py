"""Pieces of the simulated fleet that need no containers."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.fleet.fleet import Fleet, FleetError
from sim.fleet.keys import generate_keypair, known_hosts_line

pytestmark = pytest.mark.unit


def test_known_hosts_lines_use_openssh_port_syntax() -> None:
    key = "ssh-ed25519 AAAAC3Nza comment@host"
    assert known_hosts_line("127.0.0.1", 40022, key) == "[127.0.0.1]:40022 ssh-ed25519 AAAAC3Nza"
    assert known_hosts_line("10.0.0.5", 22, key) == "10.0.0.5 ssh-ed25519 AAAAC3Nza"


def test_generated_keys_are_distinct_and_kept(tmp_path: Path) -> None:
    first = generate_keypair(tmp_path / "a" / "key", "a")
    second = generate_keypair(tmp_path / "b" / "key", "b")
    assert first != second
    assert generate_keypair(tmp_path / "a" / "key", "a") == first
    assert (tmp_path / "a" / "key").stat().st_mode & 0o077 == 0


def test_up_needs_at_least_one_host(tmp_path: Path) -> None:
    with pytest.raises(FleetError, match="at least one host"):
        Fleet(tmp_path, "unit").up(0)


def test_an_empty_state_directory_has_no_hosts(tmp_path: Path) -> None:
    assert Fleet(tmp_path, "unit").hosts() == []


def test_molecule_platforms_map_to_fleet_hosts_of_their_architecture(tmp_path: Path) -> None:
    import json
    import platform

    from sim.fleet.fleet import FleetHost
    from sim.fleet.molecule import instance_config

    fleet = Fleet(tmp_path, "unit")
    hosts = [
        FleetHost("molecule-01", platform.machine(), "molecule", "c1", 40001),
        FleetHost("molecule-a64-01", "aarch64", "molecule", "c2", 40002),
    ]
    fleet.state_dir.mkdir(parents=True, exist_ok=True)
    fleet.state_file.write_text(json.dumps({"name": "unit", "hosts": [h.__dict__ for h in hosts]}))
    config = instance_config([{"name": "arm", "arch": "aarch64"}, {"name": "native"}], fleet)
    assert [(c["instance"], c["port"], c["fleet_host"]) for c in config] == [
        ("arm", 40002, "molecule-a64-01"),
        ("native", 40001, "molecule-01"),
    ]
    assert all(c["address"] == "127.0.0.1" and c["identity_file"] == str(fleet.client_key) for c in config)


def test_molecule_reaches_its_hosts_over_ssh_with_their_keys_pinned(repo: Path) -> None:
    import yaml

    config = yaml.safe_load((repo / "molecule" / "config.yml").read_text())
    ssh = " ".join(config["driver"]["ssh_connection_options"])
    assert "StrictHostKeyChecking=yes" in ssh and "/fleet/known_hosts" in ssh
    assert config["provisioner"]["config_options"]["defaults"]["host_key_checking"] is True
    assert config["provisioner"]["config_options"]["ssh_connection"]["pipelining"] is True
