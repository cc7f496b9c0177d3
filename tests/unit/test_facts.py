"""One source per fact: the models, their data sets, the paths on a host, the local facts directory,
the versions (bench/versions.py), the record file names, the port rule, the run-id format, timeouts and
retries live in bench/facts.py, and everything else derives from it, roles included."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench import facts
from bench.versions import VERSIONS
from modelzoo.config import CONFIG_DIR, load_config
from modelzoo.models import BUILDERS
from tests.conftest import REPO, run

pytestmark = pytest.mark.unit

# Where the facts may be spelled out: their home (bench/facts.py, and bench/versions.py for the
# versions), data about the seed benchmark, tests' own expectations and recorded fixtures. Molecule's
# verify plays assert concrete paths on purpose.
ALLOWED = ("bench/facts.py", "bench/versions.py", "collect/baselines/", "tests/", "molecule/", "README.md", "docs/")


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


# Files of other owners that still spell a fact of this module, each waiting to read it from here:
# shrink these lists as they switch over (roles/ and playbooks/ must already spell none).
# Python files allowed a second spelling of a fact, by fact (none left: every file derives them).
SECOND_SPELLINGS: dict[str, list[str]] = {}


def _version(text: str) -> str:
    """A version (or an image's tag) as it would be spelled, not as part of a longer one."""
    return rf"(?<![\w.]){re.escape(text)}(?![\w])"


def test_roles_spell_no_path_directory_version_or_record_name_of_the_facts() -> None:
    # Role defaults, vars, tasks, templates and argument specs derive them with recbench_fact.
    patterns = {
        "base_dir": re.escape(facts.BASE_DIR),
        "facts_d_dir": re.escape(facts.FACTS_D_DIR),
        "record_names": "|".join(re.escape(n) for n in (facts.TRAIN_RECORD_NAME, facts.MODEL_CARD_NAME)),
        # an image's release (24.05) as well as its whole name
        "triton_sdk_image": _version(VERSIONS["triton_sdk_image"].rsplit(":", 1)[1].split("-")[0]),
        **{name: _version(version) for name, version in VERSIONS.items() if name != "triton_sdk_image"},
    }
    for fact, pattern in patterns.items():
        found = offenders(pattern)
        assert [name for name in found if name.startswith(("roles/", "playbooks/", "inventory/"))] == [], fact
        # elsewhere, only the files still waiting to switch over (a file that switched may leave the list)
        assert set(found) <= set(SECOND_SPELLINGS.get(fact, [])), fact


def test_the_files_that_switched_over_derive_the_facts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Once on the list above: the stand-ins, the host fact's reader, the model zoo's CLI help.
    import importlib.util
    import tarfile

    from bench import hostfact
    from modelzoo.cli import parser
    from sim.tfserving_standin import package, server
    from sim.triton_sdk_standin import image

    assert f"{facts.FACTS_D_DIR}/recbench_host.fact" == hostfact.DEFAULT_FACT
    assert f"{facts.TENSORFLOW_VENV}/bin/python" == package.DEFAULT_PYTHON
    assert f"write {facts.TRAIN_RECORD_NAME}" in parser().format_help()
    release = VERSIONS["triton_sdk_image"].rsplit(":", 1)[1].split("-")[0]
    assert image.DEFAULT_IMAGE.endswith(f":{release}") and f"-{release}-" in image.DEFAULT_ARCHIVE
    # Run from the repository, the server stands in for the table's TF-Serving; packaged, for the
    # version its package records (the server travels without bench/).
    assert server.standin_version() == f"{VERSIONS['tfserving']}-standin"
    store = tmp_path / "store"
    store.mkdir(mode=0o755)
    assert package.package(store, "x86_64").name == package.artifact_name(VERSIONS["tfserving"], "x86_64")
    with tarfile.open(package.package(store, "x86_64", version="9.9.9")) as tar:
        tar.extractall(tmp_path / "pkg", filter="data")
    spec = importlib.util.spec_from_file_location("packaged_server", tmp_path / "pkg/lib/standin/server.py")
    assert spec and spec.loader
    packaged = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "packaged_server", packaged)  # its dataclasses look it up there
    spec.loader.exec_module(packaged)
    assert packaged.standin_version() == "9.9.9-standin"


def test_the_roles_defaults_are_the_facts(tmp_path: Path) -> None:
    # The defaults that replaced a spelled path or version, as Ansible resolves them.
    expected = {
        "tfserving_version": VERSIONS["tfserving"],
        "tfserving_build_version": VERSIONS["tfserving"],
        "tensorflow_version": VERSIONS["tensorflow"],
        "artifact_store_tensorflow_version": VERSIONS["tensorflow"],
        "perf_analyzer_version": VERSIONS["tritonclient"],
        "artifact_store_tritonclient_version": VERSIONS["tritonclient"],
        "perf_analyzer_cuda_runtime_version": VERSIONS["cuda_runtime"],
        "modelzoo_pyyaml_version": VERSIONS["pyyaml"],
        "perf_analyzer_image": VERSIONS["triton_sdk_image"],
        "artifact_store_arches": ["x86_64", "aarch64"],
        "tensorflow_venv": f"{facts.BASE_DIR}/venvs/tensorflow",
        "modelzoo_venv": f"{facts.BASE_DIR}/venvs/tensorflow",
        "tfserving_probe_python": f"{facts.BASE_DIR}/venvs/tensorflow/bin/python",
        "perf_analyzer_venv": f"{facts.BASE_DIR}/venvs/perf_analyzer",
        "tfserving_install_dir": f"{facts.BASE_DIR}/tfserving",
        "tfserving_build_dir": f"{facts.BASE_DIR}/build/tfserving",
        "modelzoo_home": f"{facts.BASE_DIR}/modelzoo",
        "artifact_dest_dir": f"{facts.BASE_DIR}/artifacts",
        "__host_prep_facts_dir": facts.FACTS_D_DIR,
        "__sweep_host_fact": f"{facts.FACTS_D_DIR}/recbench_host.fact",
    }
    files = [
        f"{REPO}/roles/{role}/defaults/main.yml"
        for role in (
            "tfserving",
            "tfserving_build",
            "tensorflow",
            "artifact_store",
            "perf_analyzer",
            "modelzoo",
            "artifact",
        )
    ]
    files += [f"{REPO}/roles/{role}/vars/main.yml" for role in ("host_prep", "sweep")]
    playbook = tmp_path / "defaults.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  vars_files: " + json.dumps(files) + "\n  tasks:\n"
        "    - ansible.builtin.copy:\n        dest: " + str(tmp_path / "seen.json") + "\n        mode: '0644'\n"
        '        content: "{{ {' + ", ".join(f"'{name}': {name}" for name in expected) + '} | to_json }}"\n'
    )
    python = f"ansible_python_interpreter={sys.executable}"
    proc = run(["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", python, str(playbook)], timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((tmp_path / "seen.json").read_text()) == expected


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
