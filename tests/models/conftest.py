"""Generated data sets shared by the model tests (made once per session, deterministic)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from modelzoo.generate import generate

VENV = Path(sys.executable).parent.parent


@pytest.fixture
def perf_analyzer_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real perf_analyzer of the venv (tritonclient's wheel) finds the CUDA runtime it links."""
    libs = sorted(VENV.glob("lib/python3*/site-packages/nvidia/cuda_runtime/lib"))
    assert libs, "nvidia-cuda-runtime-cu12 is not installed in the venv (scripts/bootstrap.sh)"
    monkeypatch.setenv("LD_LIBRARY_PATH", str(libs[0]))


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("generated")
    files = {
        "criteo_train": ("criteo", 100_000, 1),
        "criteo_eval": ("criteo", 10_000, 2),
        "taobao_train": ("taobao", 200_000, 1),
        "taobao_eval": ("taobao", 10_000, 2),
    }
    paths = {}
    for name, (dataset, rows, seed) in files.items():
        paths[name] = root / f"{name}.csv"
        generate(dataset, paths[name], rows, seed)
    return paths
