"""The artifact store's manifest is trusted only from a store nobody else could write (issue 21.7):
the test store lives in the shared /var/tmp, where another user could create it first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, load_plugin

pytestmark = pytest.mark.unit

TOOL = REPO / "roles/artifact_store/files/artifact_manifest.py"
manifest_tool = load_plugin("roles/artifact_store/files/artifact_manifest.py")


def tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, check=False)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A store of yours, 0755, holding one recorded artifact."""
    store = tmp_path / "store"
    store.mkdir(mode=0o755)
    store.chmod(0o755)
    artifact = store / "data" / "sample.csv"
    artifact.parent.mkdir()
    artifact.write_text("1,2,3\n")
    added = tool(str(store), "add", str(artifact), "--kind=data", "--arch=any", "--name=sample.csv", "--version=1")
    assert added.returncode == 0, added.stderr
    return store


def refusal(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 3, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith("artifact_manifest: refusing to trust "), line
    return line


def test_a_store_of_yours_that_only_you_can_write_is_trusted(store: Path) -> None:
    assert tool(str(store), "check").returncode == 0
    assert tool(str(store), "verify").returncode == 0
    assert '"data/sample.csv"' in tool(str(store), "show").stdout


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757])
def test_a_store_others_can_write_is_refused_by_every_command(store: Path, mode: int) -> None:
    store.chmod(mode)
    add = ["add", str(store / "data/sample.csv"), "--kind=data", "--arch=any", "--name=sample.csv", "--version=2"]
    for command in (["check"], ["verify"], ["show"], add):
        line = refusal(tool(str(store), *command))
        assert f"{store} is writable by group or others (mode {mode:04o})" in line, line
    assert "--version=2" not in (store / "manifest.json").read_text()


def test_a_manifest_others_can_write_is_refused(store: Path) -> None:
    (store / "manifest.json").chmod(0o666)
    assert "it is writable by group or others (mode 0666)" in refusal(tool(str(store), "verify"))


def test_a_manifest_that_is_a_link_is_refused(store: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "their-manifest.json"
    (store / "manifest.json").rename(elsewhere)
    (store / "manifest.json").symlink_to(elsewhere)
    assert "not a regular file" in refusal(tool(str(store), "show"))


def test_a_store_someone_else_made_is_refused(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As another user would see it (whoever runs this owns the store): the check compares owners.
    someone_else = os.geteuid() + 4242
    monkeypatch.setattr(manifest_tool.os, "geteuid", lambda: someone_else)
    with pytest.raises(manifest_tool.UntrustedStore, match=r"belongs to uid \d+, not to you"):
        manifest_tool.load(store)


def test_a_store_inside_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    # Not sticky: anyone could rename the store away and put their own in its place.
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    (shared / "store").mkdir(mode=0o755)
    line = refusal(tool(str(shared / "store"), "check"))
    assert f"{shared} above it is writable by group or others (mode 0777)" in line, line


def test_a_store_in_a_sticky_shared_directory_like_var_tmp_is_trusted_when_it_is_yours(tmp_path: Path) -> None:
    shared = tmp_path / "vartmp"
    shared.mkdir()
    shared.chmod(0o1777)
    (shared / "store").mkdir(mode=0o755)
    assert tool(str(shared / "store"), "check").returncode == 0


def test_a_store_not_made_yet_holds_nothing_to_trust(tmp_path: Path) -> None:
    assert tool(str(tmp_path / "missing"), "check").returncode == 0
    assert manifest_tool.load(tmp_path / "missing") == {"schema": 1, "artifacts": {}}
