"""The Molecule runner of scripts/test.sh: every scenario runs, failures show their log and fail the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.fleet import molecule_all

pytestmark = pytest.mark.unit


@pytest.fixture
def fake_molecule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `molecule` on PATH that records its arguments and fails the tensorflow scenario."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    script = bin_dir / "molecule"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {calls}\n'
        'echo "converging $3"\n'
        '[ "$3" = tensorflow ] && { echo "fatal: the tensorflow import failed"; exit 2; }\n'
        "exit 0\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return calls


def test_every_scenario_runs_and_a_failure_fails_the_run_with_its_log(
    fake_molecule: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = tmp_path / "logs"
    assert molecule_all.main(["--logs", str(logs)]) == 1
    ran = sorted(line.split()[2] for line in fake_molecule.read_text().splitlines())
    assert ran == molecule_all.all_scenarios()
    out, err = capsys.readouterr()
    assert "tensorflow: FAILED (exit 2)" in out
    assert "fatal: the tensorflow import failed" in out  # the tail of its log
    assert "host_prep: ok" in out
    assert err.strip() == "molecule: 1 failed: tensorflow"
    assert (logs / "host_prep.log").read_text() == "converging host_prep\n"


def test_all_pass_is_exit_zero(fake_molecule: Path, tmp_path: Path) -> None:
    assert molecule_all.main(["--logs", str(tmp_path / "logs"), "--lanes", "3", "host_prep", "nightly"]) == 0


def test_bad_arguments_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert molecule_all.main(["--logs", str(tmp_path), "nosuch"]) == 2
    assert capsys.readouterr().err.strip() == "molecule_all: no such scenario: nosuch"
    assert molecule_all.main(["--logs", str(tmp_path), "--lanes", "0"]) == 2
    assert capsys.readouterr().err.strip() == "molecule_all: --lanes must be at least 1"


def test_every_scenario_has_an_expected_duration_and_the_longest_start_first() -> None:
    assert set(molecule_all.EXPECTED_MINUTES) == set(molecule_all.all_scenarios())
    order = molecule_all.longest_first(molecule_all.all_scenarios())
    minutes = [molecule_all.EXPECTED_MINUTES[name] for name in order]
    assert minutes == sorted(minutes, reverse=True)


def test_scenarios_sharing_this_machine_never_overlap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `molecule` that records when each scenario starts and ends, and takes a moment."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    spans = tmp_path / "spans"
    script = bin_dir / "molecule"
    script.write_text(f'#!/bin/sh\necho "start $3" >> {spans}\nsleep 0.3\necho "end $3" >> {spans}\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    (group,) = molecule_all.EXCLUSIVE_GROUPS
    assert molecule_all.main(["--logs", str(tmp_path / "logs"), "--lanes", "4", *sorted(group), "artifact"]) == 0
    events = spans.read_text().split("\n")
    running: set[str] = set()
    for event in filter(None, events):
        what, name = event.split()
        if what == "start":
            assert not (running & group and name in group), events
            running.add(name)
        else:
            running.discard(name)
    assert {e.split()[1] for e in filter(None, events)} == group | {"artifact"}
