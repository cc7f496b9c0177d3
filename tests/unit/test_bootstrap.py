"""The bootstrap is idempotent: on a machine it already set up, it checks and changes nothing."""

from __future__ import annotations

import pytest

from tests.conftest import run

pytestmark = pytest.mark.unit


def test_second_bootstrap_does_nothing_and_says_so() -> None:
    proc = run(["bash", "scripts/bootstrap.sh"], timeout=120)
    said = proc.stdout + proc.stderr
    assert proc.returncode == 0, said
    lines = proc.stdout.splitlines()
    assert any(line.startswith("bootstrap: Debian packages: all") and "nothing to do" in line for line in lines), said
    assert any("virtualenv" in line and "up to date, nothing to do" in line for line in lines), said
    assert "installing" not in proc.stdout, said
