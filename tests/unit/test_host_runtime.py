"""What the modelzoo role ships to the hosts runs on their standard library alone: every module of
the bundle's `bench/` imports with site-packages hidden (`python -S`), and the controller-only code
(sweep definitions with PyYAML, the collector's SQL) is not in the bundle."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO, load_plugin

pytestmark = pytest.mark.unit

bundle = load_plugin("roles/modelzoo/files/bundle.py")


def shipped_bench_modules() -> list[str]:
    files = bundle.members(REPO / "bench")
    return sorted(
        "bench." + ".".join(path.relative_to(REPO / "bench").with_suffix("").parts).removesuffix(".__init__")
        for path in files
        if path.suffix == ".py"
    )


def test_the_bundle_leaves_the_controller_code_out() -> None:
    modules = shipped_bench_modules()
    assert "bench.records" in modules and "bench.sweep" in modules and "bench.train_stage" in modules
    assert not [m for m in modules if m.startswith("bench.controller")], modules
    assert (REPO / "bench" / "controller" / "sweeps.py").is_file()


def test_every_module_shipped_to_hosts_imports_with_the_standard_library_alone() -> None:
    modules = shipped_bench_modules()
    script = (
        "import importlib, sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "failed = []\n"
        f"for name in {modules!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError as err:\n"
        "        failed.append(f'{name}: {err}')\n"
        "print('\\n'.join(failed))\n"
    )
    # -S: no site-packages; -I: no user site, no PYTHON* environment, the script's directory not on the path
    done = subprocess.run([sys.executable, "-S", "-I", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", done.stdout


def test_the_check_would_see_a_third_party_import() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-S",
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(REPO)!r}); import bench.controller.sweeps",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "No module named 'yaml'" in done.stderr
