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
