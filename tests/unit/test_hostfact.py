"""The host fact read by the runners when they record: its JSON, or a reason that loses no result."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.hostfact import read_host_fact

pytestmark = pytest.mark.unit


def script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "fact"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_the_fact_is_what_the_script_prints(tmp_path: Path) -> None:
    assert read_host_fact(script(tmp_path, "echo '{\"cores\": 4}'")) == {"cores": 4}


@pytest.mark.parametrize(
    ("body", "reason"),
    [("exit 3", "exit 3"), ("echo not json", "not JSON"), ("echo '[1]'", "not a JSON object")],
)
def test_a_broken_fact_is_a_reason_not_a_crash(tmp_path: Path, body: str, reason: str) -> None:
    assert reason in read_host_fact(script(tmp_path, body))["error"]


def test_a_missing_fact_is_a_reason(tmp_path: Path) -> None:
    assert "no-such-fact" in read_host_fact(str(tmp_path / "no-such-fact"))["error"]
