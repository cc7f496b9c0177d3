"""The host-side train stage with real TensorFlow: pinned training records, exported versions that never
overwrite, reruns that do nothing, a failing model recorded while the others go on, canonical installs."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest

from bench.train_stage import main as stage_main
from bench.train_stage import run_job
from tests.criteo_layouts import SAMPLE

pytestmark = pytest.mark.models


def make_job(tmp_path: Path, models: list[str], **extra: object) -> dict:
    cpus = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    return {
        "run_id": "r1",
        "host": "test-host",
        "models": models,
        "modes": [{"mode": "single", "cpus": cpus.split(",")[0]}, {"mode": "entire", "cpus": cpus}],
        "export_mode": "entire",
        "work_dir": str(tmp_path / "work"),
        "models_dir": str(tmp_path / "models"),
        "results_dir": str(tmp_path / "results" / "r1" / "test-host"),
        "data": {m: {"train": str(SAMPLE), "eval": str(SAMPLE)} for m in models},
        "train": {"steps": 2, "batch_size": 32},
        "timeout_s": 600,
        **extra,
    }


def test_trains_each_mode_pinned_records_and_exports_once(tmp_path: Path) -> None:
    fact = tmp_path / "host.fact"
    fact.write_text('#!/bin/sh\necho \'{"arch": "x86_64", "numa_node_count": 1}\'\n')
    fact.chmod(0o755)
    job = make_job(tmp_path, ["dlrm"], host_fact=str(fact))
    summary = run_job(job)
    assert summary == {
        "changed": True,
        "failed": [],
        "models": {"dlrm": {"single": "complete", "entire": "complete", "export": "complete"}},
    }
    train_dir = Path(job["results_dir"]) / "dlrm" / "train"
    single = json.loads((train_dir / "single.json").read_text())
    assert single["cpus"] == job["modes"][0]["cpus"] and single["run_id"] == "r1"
    assert single["command_args"][0] == "train" and single["trainer"]["steps"] == 2
    assert single["throughput_examples_per_s"] > 0
    assert single["host_facts"] == {"arch": "x86_64", "numa_node_count": 1}  # read when the record was written
    exported = json.loads((train_dir / "export.json").read_text())
    assert exported["version"] == 1 and exported["source"] == {"host": "test-host", "mode": "entire"}
    version_dir = Path(job["models_dir"]) / "dlrm" / "1"
    assert (version_dir / "saved_model.pb").is_file()
    assert json.loads((version_dir / "model_card.json").read_text())["model"] == "dlrm"

    mtimes = {p: p.stat().st_mtime_ns for p in train_dir.iterdir()}
    assert run_job(job)["changed"] is False  # same run: nothing repeated
    assert {p: p.stat().st_mtime_ns for p in train_dir.iterdir()} == mtimes

    again = make_job(tmp_path, ["dlrm"], run_id="r2", results_dir=str(tmp_path / "results" / "r2" / "test-host"))
    again["modes"] = again["modes"][1:]  # the export mode alone: what a second version needs
    assert run_job(again)["models"]["dlrm"]["export"] == "complete"
    assert sorted(p.name for p in (Path(job["models_dir"]) / "dlrm").iterdir()) == ["1", "2"]  # never overwritten


def test_a_failing_model_is_recorded_and_the_others_go_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.csv"
    broken.write_text("this is not criteo\n")
    # One mode is enough to show the others go on (two would only double the trainings).
    job = make_job(tmp_path, ["wide_and_deep", "deepfm"])
    job["modes"] = job["modes"][1:]
    job["data"]["wide_and_deep"] = {"train": str(broken), "eval": str(broken)}
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(job))
    assert stage_main([str(job_file)]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["failed"] == ["wide_and_deep"]
    assert summary["models"]["deepfm"]["export"] == "complete"
    assert summary["models"]["wide_and_deep"]["export"] == "skipped: training failed"
    failed = json.loads((Path(job["results_dir"]) / "wide_and_deep" / "train" / "entire.json").read_text())
    assert failed["status"] == "failed" and failed["exit_code"] == 2
    assert any("broken.csv" in line for line in failed["output_tail"]), failed["output_tail"]


def test_canonical_models_are_installed_as_the_next_version(tmp_path: Path) -> None:
    source = tmp_path / "export" / "7"
    source.mkdir(parents=True)
    (source / "model_card.json").write_text(json.dumps({"model": "dssm", "version": 7}))
    (source / "saved_model.pb").write_bytes(b"pb")
    archive = tmp_path / "dssm.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname="7")
    job = make_job(tmp_path, ["dssm"], canonical_archives={"dssm": str(archive)}, canonical_host="kunpeng-01")
    (Path(job["models_dir"]) / "dssm" / "1").mkdir(parents=True)  # an older version already there
    summary = run_job(job)
    assert summary["models"] == {"dssm": {"export": "complete"}}
    record = json.loads((Path(job["results_dir"]) / "dssm" / "train" / "export.json").read_text())
    assert record["version"] == 2 and record["source"]["host"] == "kunpeng-01"
    assert (Path(job["models_dir"]) / "dssm" / "2" / "saved_model.pb").read_bytes() == b"pb"
    assert run_job(job)["changed"] is False


def test_a_bad_job_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps({"run_id": "r1"}))
    assert stage_main([str(job_file)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"train_stage: {job_file}: job has no 'host'") and "\n" not in err
