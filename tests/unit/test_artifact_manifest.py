"""The artifact store's manifest is trusted only from a store nobody else could write (issue 21.7):
the test store lives in the shared /var/tmp, where another user could create it first. The roles that
read it (artifact, tfserving_build) read it through the tool, so they refuse such a store too."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from bench import facts
from tests.conftest import REPO, load_plugin, run

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


# The roles' real manifest reads, on local hosts: artifact (the whole role, as the user: no sudo) and
# tfserving_build (its main, which reads the manifest and, finding the build there, builds nothing),
# each against a group-writable store and a private one.
ROLE_PLAY = """
- name: Put an artifact on the host
  hosts: artifact
  gather_facts: false
  roles:
    - role: artifact
      artifact_name: data/sample.tar.gz

- name: Build TF-Serving unless the store has it
  hosts: tfserving_build
  gather_facts: true
  gather_subset: [min]
  roles:
    - role: tfserving_build
"""
BUILD = f"tfserving/tensorflow_model_server-{facts.fact('tfserving_version')}-{platform.machine()}-plain.tar.gz"


def _filled_store(store: Path) -> Path:
    """A private store (0755) holding a sample tarball and a TF-Serving build of this machine's arch."""
    store.mkdir(mode=0o755)
    store.chmod(0o755)
    (store / "data").mkdir()
    (store / "tfserving").mkdir()
    payload = store / "sample.txt"
    payload.write_text("1,2,3\n")
    with tarfile.open(store / "data/sample.tar.gz", "w:gz") as tar:
        tar.add(payload, arcname="sample.txt")
    (store / BUILD).write_bytes(b"not really a build")
    for relative, kind in (("data/sample.tar.gz", "data"), (BUILD, "tfserving")):
        added = tool(
            str(store), "add", str(store / relative), f"--kind={kind}", "--arch=any", "--name=x", "--version=1"
        )
        assert added.returncode == 0, added.stderr
    return store


def _play(tmp: Path) -> dict:
    proc = run(
        ["ansible-playbook", "-i", str(tmp / "inventory.yml"), str(tmp / "play.yml")],
        timeout=300,
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
        ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.json",  # only the JSON report on stdout
        ANSIBLE_CACHE_PLUGIN="ansible.builtin.memory",  # gathered facts stay out of the repository's cache
    )
    assert proc.stdout.startswith("{"), proc.stdout + proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def role_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], Path]:
    """Two runs of the roles (the second to show nothing changes), and the temporary directory."""
    tmp = tmp_path_factory.mktemp("roles")
    _filled_store(tmp / "private")
    _filled_store(tmp / "shared").chmod(0o775)  # group-writable: anyone of the group could swap the manifest
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "ansible_become": False}
    hosts = {
        f"{role}_{store}": local
        | {prefix + "_dir": str(tmp / store) for prefix in ("artifact", "tfserving_build_artifact")}
        | {
            "artifact_dest_dir": str(tmp / f"dest-{role}_{store}"),
            "artifact_unpack_dir": str(tmp / f"unpacked-{store}"),
        }
        for role in ("artifact", "tfserving_build")
        for store in ("private", "shared")
    }
    inventory = {
        role: {"hosts": {h: v for h, v in hosts.items() if h.startswith(role)}}
        for role in ("artifact", "tfserving_build")
    }
    (tmp / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp / "play.yml").write_text(ROLE_PLAY)
    return [_play(tmp), _play(tmp)], tmp


def _results(report: dict, host: str) -> list[dict]:
    """HOST's result of every task it ran, with the task's name (without the role's "role : " prefix)."""
    return [
        task["hosts"][host] | {"task": task["task"]["name"].split(" : ", 1)[-1]}
        for play in report["plays"]
        for task in play["tasks"]
        if host in task["hosts"]
    ]


@pytest.mark.parametrize("role", ["artifact", "tfserving_build"])
def test_the_roles_refuse_a_group_writable_store_in_one_line(role: str, role_runs: tuple[list[dict], Path]) -> None:
    (report, _), tmp = role_runs
    host = f"{role}_shared"
    assert report["stats"][host]["failures"] == 1, report["stats"][host]
    (failed,) = [result for result in _results(report, host) if result.get("failed")]
    assert failed["task"] == "Refuse a store that someone else could have written", failed
    expected = (
        f"artifact_manifest: refusing to trust {tmp / 'shared/manifest.json'}: {tmp / 'shared'} is writable by "
        f"group or others (mode 0775): chmod go-w {tmp / 'shared'}"
    )
    assert failed["msg"] == expected
    assert not (tmp / f"dest-{host}").exists()


def test_the_artifact_role_installs_from_a_private_store_and_changes_nothing_the_second_time(
    role_runs: tuple[list[dict], Path],
) -> None:
    (first, second), tmp = role_runs
    host = "artifact_private"
    assert first["stats"][host]["failures"] == 0, _results(first, host)
    assert (tmp / f"dest-{host}/data/sample.tar.gz").is_file()
    assert (tmp / "unpacked-private/sample.txt").read_text() == "1,2,3\n"
    assert first["stats"][host]["changed"] > 0
    assert second["stats"][host]["failures"] == 0 and second["stats"][host]["changed"] == 0, _results(second, host)


def test_tfserving_build_believes_a_private_store_that_has_the_build(role_runs: tuple[list[dict], Path]) -> None:
    (report, _), _ = role_runs
    host = "tfserving_build_private"
    results = _results(report, host)
    assert report["stats"][host]["failures"] == 0, results
    said = [r["msg"] for r in results if r["task"] == "Say that the build was already there"]
    assert said == [f"{BUILD} is in the store already: not rebuilt"], results
    assert not any(r["task"] == "Build unless the store has this build" and not r.get("skipped") for r in results)
