"""Shared pytest helpers: paths of the repository and a runner for its Ansible commands."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def ansible_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env.update(extra)
    return env


def run(cmd: list[str], timeout: float = 600, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """Run a command from the repository root with the venv's tools first on PATH."""
    return subprocess.run(
        cmd, cwd=REPO, env=ansible_env(**extra_env), capture_output=True, text=True, timeout=timeout, check=False
    )


def collect_cli(*args: str, timeout: float = 120, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """`python -m collect ARGS` of this checkout, in a process of its own, as a user runs it."""
    return run([sys.executable, "-m", "collect", *args], timeout=timeout, **extra_env)


def load_plugin(relative: str) -> ModuleType:
    """An Ansible plugin file of the repository as a module, to test its functions directly."""
    path = REPO / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def repo() -> Path:
    return REPO
