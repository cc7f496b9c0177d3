"""recbench-tune: apply saves the originals once, restore puts them back, bad hosts get clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.unit

TUNE = REPO / "roles/host_prep/files/recbench-tune"


def sysfs(root: Path, governors: list[str], thp: str = "always [madvise] never") -> Path:
    for cpu, governor in enumerate(governors):
        path = root / f"devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor"
        path.parent.mkdir(parents=True)
        path.write_text(governor + "\n")
    thp_path = root / "kernel/mm/transparent_hugepage/enabled"
    thp_path.parent.mkdir(parents=True)
    thp_path.write_text(thp + "\n")
    return root


def tune(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, RECBENCH_SYSFS=str(tmp_path / "sys"), RECBENCH_TUNE_STATE=str(tmp_path / "state.json"))
    return subprocess.run([sys.executable, str(TUNE), *args], env=env, capture_output=True, text=True, check=False)


def governors(root: Path) -> list[str]:
    files = sorted(root.glob("devices/system/cpu/cpu*/cpufreq/scaling_governor"))
    return [f.read_text().strip() for f in files]


def test_apply_then_restore_returns_the_host_to_its_original_state(tmp_path: Path) -> None:
    root = sysfs(tmp_path / "sys", ["ondemand", "schedutil"])
    assert tune(tmp_path, "apply", "--governor", "performance", "--thp", "never").returncode == 0
    assert governors(root) == ["performance", "performance"]
    assert (root / "kernel/mm/transparent_hugepage/enabled").read_text() == "never"
    saved = json.loads((tmp_path / "state.json").read_text())
    assert saved["thp"] == "madvise"
    assert sorted(saved["governors"].values()) == ["ondemand", "schedutil"]

    assert tune(tmp_path, "restore").returncode == 0
    assert governors(root) == ["ondemand", "schedutil"]
    assert (root / "kernel/mm/transparent_hugepage/enabled").read_text() == "madvise"
    assert not (tmp_path / "state.json").exists()


def test_a_second_apply_keeps_the_first_originals(tmp_path: Path) -> None:
    root = sysfs(tmp_path / "sys", ["powersave"])
    tune(tmp_path, "apply", "--governor", "performance")
    tune(tmp_path, "apply", "--governor", "schedutil")
    assert governors(root) == ["schedutil"]
    tune(tmp_path, "restore")
    assert governors(root) == ["powersave"]


def test_restore_without_tuning_changes_nothing(tmp_path: Path) -> None:
    root = sysfs(tmp_path / "sys", ["powersave"])
    assert tune(tmp_path, "restore").returncode == 0
    assert governors(root) == ["powersave"]


def test_a_host_without_cpufreq_is_a_clear_error_and_nothing_is_saved(tmp_path: Path) -> None:
    (tmp_path / "sys").mkdir()
    proc = tune(tmp_path, "apply", "--governor", "performance")
    assert proc.returncode != 0
    assert "no cpufreq governor" in proc.stderr
    assert not (tmp_path / "state.json").exists()
