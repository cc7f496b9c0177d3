"""Every role has a README whose variables table is the one its argument spec generates
(scripts/role_docs.py), so the documented variables, types and defaults cannot drift from the code."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.unit


def role_docs():  # scripts/ is not a package
    spec = importlib.util.spec_from_file_location("role_docs", REPO / "scripts" / "role_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_role_has_a_readme_with_the_variables_its_argument_spec_declares() -> None:
    docs = role_docs()
    roles = docs.roles()
    assert {p.name for p in roles} == {p.name for p in (REPO / "roles").iterdir() if p.is_dir()}
    assert docs.drifted() == [], "run python scripts/role_docs.py"
    for role in roles:
        text = (role / "README.md").read_text()
        assert "## Example playbook" in text and "## Requirements" in text, role.name


def test_the_table_holds_every_option_with_its_type_and_default() -> None:
    table = role_docs().render(REPO / "roles" / "tfserving")
    assert "| `tfserving_ready_timeout` | int | `180` |" in table  # the spec's default
    assert "| `tfserving_instances[].model` | str | required |" in table  # nested options too
    assert "### Entry point `stop`" in table and "One of `started`, `stopped`." in table
    # no default in the spec: the role's defaults/main.yml, a fact shown with its value
    assert "| `tfserving_port_range` | str | `8500-8599` (`port_range` of bench/facts.py) |" in table


def test_check_names_the_role_whose_readme_drifted_and_the_generator_mends_it(tmp_path: Path) -> None:
    for name in ("artifact", "nightly"):
        shutil.copytree(REPO / "roles" / name, tmp_path / "roles" / name)
    spec = tmp_path / "roles" / "nightly" / "meta" / "argument_specs.yml"
    spec.write_text(spec.read_text().replace('nightly_hour: {type: str, default: "2"', "nightly_hour: {type: int"))
    (tmp_path / "roles" / "artifact" / "README.md").unlink()

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(REPO / "scripts" / "role_docs.py"), "--check", "--root", str(tmp_path)],
            capture_output=True,
            text=True,
            check=False,
        )

    drifted = check()
    assert drifted.returncode == 1
    assert "roles/nightly/README.md: the variables table differs" in drifted.stderr
    assert "roles/artifact/README.md: missing" in drifted.stderr
    assert role_docs().main(["--root", str(tmp_path)]) == 0
    assert check().returncode == 0, check().stderr
    assert "| `nightly_hour` | int |" in (tmp_path / "roles" / "nightly" / "README.md").read_text()
    assert "## Role variables" in (tmp_path / "roles" / "artifact" / "README.md").read_text()  # a skeleton
