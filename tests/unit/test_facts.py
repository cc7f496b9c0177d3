"""One source per fact: the models, their data sets, the results root, the port rule, the run-id
format, timeouts and retries live in bench/facts.py, and everything else derives from it."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from bench import facts
from modelzoo.config import CONFIG_DIR, load_config
from modelzoo.models import BUILDERS
from tests.conftest import REPO, run

pytestmark = pytest.mark.unit

# Where the facts may be spelled out: their home, data about the seed benchmark, tests' own
# expectations and recorded fixtures. Molecule's verify plays assert concrete paths on purpose.
ALLOWED = ("bench/facts.py", "collect/baselines/", "tests/", "molecule/", "README.md", "docs/")


def tracked_text_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    suffixes = (".py", ".yml", ".yaml", ".sh", ".j2", ".cfg", ".toml")
    return [name for name in listed.splitlines() if name.endswith(suffixes) and not name.startswith(ALLOWED)]


def offenders(pattern: str) -> list[str]:
    found = []
    for name in tracked_text_files():
        path = REPO / name
        if path.is_file() and re.search(pattern, path.read_text(errors="replace")):
            found.append(name)
    return found


def test_every_model_has_its_code_config_and_sweep_definition() -> None:
    assert list(BUILDERS) == facts.MODELS
    for model in facts.MODELS:
        assert load_config(model)["dataset"] == facts.MODEL_DATASETS[model]
        assert (REPO / "playbooks" / "sweeps" / f"{model}.yml").is_file(), model
    assert sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")) == sorted(facts.MODELS)


def test_no_other_file_lists_the_models_or_their_data_sets() -> None:
    # Three model names within one short stretch of text is a list of them.
    names = "|".join(facts.MODELS)
    assert offenders(rf"(?s)\b({names})\b.{{0,80}}\b({names})\b.{{0,80}}\b({names})\b") == [
        "modelzoo/models/__init__.py"  # the registry of model code, checked equal to the facts above
    ]
    assert offenders(r"(?m)^\s*dataset:\s*(criteo|taobao)") == []


def test_paths_ports_run_ids_and_timeouts_are_spelled_only_in_bench_facts() -> None:
    assert offenders(re.escape(facts.RESULTS_ROOT)) == []
    # The stand-in mirrors TF-Serving's own --port default (main.cc), which is TF-Serving's fact, not ours.
    assert offenders(rf"\b{facts.BASE_PORT}\b") == ["sim/tfserving_standin/server.py"]
    assert offenders(re.escape(facts.RUN_ID_STRFTIME) + "|%Y%m%dT") == []
    assert offenders(re.escape(facts.RUN_ID_PATTERN[1:20])) == []
    # Role defaults derive timeouts and retries from the facts (a deployment may still override them).
    timeouts = r"(?m)^\s*(sweep_client_timeout|sweep_retries|sweep_ready_timeout|train_timeout):\s*\d"
    assert [name for name in offenders(timeouts) if name.startswith("roles/")] == []


def test_ansible_reads_the_same_facts() -> None:
    shown = run(
        [
            *("ansible", "localhost", "-i", "localhost,", "-c", "local", "-m", "ansible.builtin.debug", "-a"),
            "msg={{ {'models': 'models' | recbench_fact, 'port': 3 | recbench_port,"
            " 'root': 'results_root' | recbench_fact} | to_json }}",
        ],
        timeout=120,
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    said = json.loads(re.search(r'"msg": "(.*)"', shown.stdout).group(1).replace('\\"', '"'))
    assert said == {"models": facts.MODELS, "port": facts.port_of(3), "root": facts.RESULTS_ROOT}


def test_the_facts_cli_prints_a_run_id_and_a_fact(capsys: pytest.CaptureFixture[str]) -> None:
    assert facts.main(["run-id"]) == 0
    assert facts.valid_run_id(capsys.readouterr().out.strip())
    assert facts.main(["models"]) == 0
    assert json.loads(capsys.readouterr().out) == facts.MODELS
    assert facts.main(["nope"]) == 2
    assert "no recbench fact 'nope'" in capsys.readouterr().err


def test_a_model_the_facts_do_not_know_is_refused_before_anything_changes(tmp_path: Path) -> None:
    playbook = tmp_path / "play.yml"
    playbook.write_text("- hosts: localhost\n  gather_facts: false\n  roles:\n    - role: modelzoo\n")
    proc = run(
        ["ansible-playbook", "-i", "localhost,", "-c", "local", str(playbook), "-e", '{"modelzoo_models": ["nope"]}']
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "modelzoo: modelzoo_models must list some of" in output and all(m in output for m in facts.MODELS)
    assert "changed=0" in output
