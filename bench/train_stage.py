"""Host side of the train stage: train, record and export the models of one run on this host.

    python -m bench.train_stage JOB.json

The job (written by role `train`) names the run, the host, the models, the pinning modes (`single`:
NUMA node 0's CPUs, `entire`: every CPU) and where data, work, models and results live. For each
model and mode the trainer runs pinned with taskset, as the seed did, and its record lands in
<results_dir>/<model>/train/<mode>.json. The mode named by `export_mode` is exported as the next
version under <models_dir>/<model>/, which TF-Serving serves (it picks the highest version);
<results_dir>/<model>/train/export.json says which. With `canonical_archives` the host trains
nothing and installs the SavedModels one host trained for the whole fleet instead.

Everything already recorded for this run is skipped, so re-running a run repeats no work. A model
that fails is recorded as failed with the end of its output and the others go on; the exit status
is 1 when anything failed. Prints a JSON summary whose "changed" says whether anything was done.
The job's `host_fact` names the host's fact executable, read into each training record
(bench.hostfact). Standard library only: it runs in TensorFlow's virtualenv on the host.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from bench import facts
from bench.hostfact import read_host_fact
from bench.jobfile import load_job
from bench.layout import export_record_path, now, train_record_path, write_record
from bench.records import ExportRecord, ModelCard, RecordError, TrainerRecord, TrainRecord, load

TAIL_LINES = 20
TRAINER_RECORD = facts.TRAIN_RECORD_NAME  # what modelzoo.train writes beside its checkpoint
MODEL_CARD = facts.MODEL_CARD_NAME  # what modelzoo.export writes into a version directory


def next_version(base: Path) -> int:
    versions = [int(p.name) for p in base.iterdir() if p.name.isdigit()] if base.is_dir() else []
    return max(versions, default=0) + 1


def modelzoo(job: dict, args: list[str], cpus: str) -> tuple[int | None, str, float]:
    """Run `python -m modelzoo ARGS` pinned to CPUS; return exit code (None: timed out), output, seconds."""
    cmd = ([] if not cpus else ["taskset", "-c", cpus]) + [sys.executable, "-m", "modelzoo", *args]
    began = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=float(job.get("timeout_s", facts.TRAIN_TIMEOUT_S)), check=False
        )
        code, output = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired:
        code, output = None, f"timed out after {job.get('timeout_s', facts.TRAIN_TIMEOUT_S)} s"
    return code, output, round(time.monotonic() - began, 3)


def trainer_record_path(work: Path, model: str) -> Path:
    """Where the model zoo's trainer leaves its record (modelzoo.train.record_path)."""
    return work / model / TRAINER_RECORD


def read_model_card(version_dir: Path) -> ModelCard:
    return load(ModelCard, (version_dir / MODEL_CARD).read_text())


def tail(output: str) -> list[str]:
    return output.strip().splitlines()[-TAIL_LINES:]


def train_mode(job: dict, model: str, mode: dict, results: Path) -> str:
    """Train MODEL pinned as MODE says; return its status. A record already there is kept as it is."""
    record_path = train_record_path(results, model, mode["mode"])
    if record_path.is_file():
        return load(TrainRecord, record_path.read_text()).status
    work = Path(job["work_dir"]) / mode["mode"]
    shutil.rmtree(work / model, ignore_errors=True)  # a run cut short leaves a stale checkpoint
    data = job["data"][model]
    args = ["train", f"--model={model}", f"--output={work}", f"--data={data['train']}", f"--eval-data={data['eval']}"]
    args += [f"--{key.replace('_', '-')}={job['train'][key]}" for key in sorted(job["train"])]
    started = now()
    code, output, seconds = modelzoo(job, args, mode.get("cpus", ""))
    measured = {
        "run_id": job["run_id"],
        "host": job["host"],
        "model": model,
        "mode": mode["mode"],
        "cpus": mode.get("cpus") or "all",
        "cpu_note": mode.get("note", ""),
        "command_args": args,
        "exit_code": code,
        "seconds": seconds,
        "started_at": started,
        "finished_at": now(),
        "host_facts": read_host_fact(job["host_fact"]) if job.get("host_fact") else {},
    }
    trainer_record = trainer_record_path(work, model)
    trainer, refused = None, ""
    if code == 0 and trainer_record.is_file():
        try:
            trainer = load(TrainerRecord, trainer_record.read_text())
        except RecordError as err:  # the training ran, but its record is not one to trust
            refused = f"{trainer_record}: {err}"
    if trainer is not None:
        record = TrainRecord(
            **measured, status="complete", trainer=trainer, throughput_examples_per_s=trainer.throughput_examples_per_s
        )
    else:
        record = TrainRecord(
            **measured, status="failed", output_tail=[*tail(output), *([refused] if refused else [])][-TAIL_LINES:]
        )
    write_record(record_path, record)
    return record.status


def export_model(job: dict, model: str, results: Path) -> str:
    """Export the export mode's training as the next version under models_dir; return the status."""
    record_path = export_record_path(results, model)
    if record_path.is_file():
        return load(ExportRecord, record_path.read_text()).status
    work = Path(job["work_dir"]) / job["export_mode"]
    base = Path(job["models_dir"]) / model
    base.mkdir(parents=True, exist_ok=True)
    version = next_version(base)
    shutil.rmtree(work / model / str(version), ignore_errors=True)
    code, output, seconds = modelzoo(
        job, ["export", f"--model={model}", f"--output={work}", f"--version={version}"], ""
    )
    who = {"run_id": job["run_id"], "host": job["host"], "model": model, "seconds": seconds}
    exported = work / model / str(version)
    if code == 0 and exported.is_dir():
        # Same file system (both under the recbench base directory): the rename is atomic.
        os.replace(exported, base / str(version))
        record = ExportRecord(
            **who,
            status="complete",
            version=version,
            path=str(base / str(version)),
            model_card=read_model_card(base / str(version)),
            source={"host": job["host"], "mode": job["export_mode"]},
        )
    else:
        record = ExportRecord(**who, status="failed", exit_code=code, output_tail=tail(output))
    write_record(record_path, record)
    return record.status


def install_canonical(job: dict, model: str, archive: Path, results: Path) -> str:
    """Install the canonical SavedModel of MODEL (a tar.gz of one version directory) as the next version."""
    record_path = export_record_path(results, model)
    if record_path.is_file():
        return load(ExportRecord, record_path.read_text()).status
    base = Path(job["models_dir"]) / model
    base.mkdir(parents=True, exist_ok=True)
    version = next_version(base)
    staging = base / f".canonical-{version}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    with tarfile.open(archive) as tar:
        unsafe = [m.name for m in tar.getmembers() if m.name.startswith("/") or ".." in Path(m.name).parts]
        if unsafe:
            raise ValueError(f"{archive}: refusing paths outside the archive: {unsafe[:3]}")
        tar.extractall(staging)
    (source,) = [p for p in staging.iterdir() if p.is_dir()]  # the archive holds one version directory
    os.replace(source, base / str(version))
    staging.rmdir()
    record = ExportRecord(
        run_id=job["run_id"],
        host=job["host"],
        model=model,
        status="complete",
        version=version,
        path=str(base / str(version)),
        model_card=read_model_card(base / str(version)),
        source={"canonical_archive": str(archive), "host": job.get("canonical_host", "")},
    )
    write_record(record_path, record)
    return record.status


def run_job(job: dict) -> dict:
    results = Path(job["results_dir"])
    summary: dict = {"changed": False, "failed": [], "models": {}}
    for model in job["models"]:
        exists_before = export_record_path(results, model).is_file()
        statuses: dict = {}
        archive = job.get("canonical_archives", {}).get(model)
        if archive:
            statuses["export"] = install_canonical(job, model, Path(archive), results)
        else:
            for mode in job["modes"]:
                before = train_record_path(results, model, mode["mode"]).is_file()
                statuses[mode["mode"]] = train_mode(job, model, mode, results)
                summary["changed"] |= not before
            if statuses.get(job["export_mode"]) == "complete":
                statuses["export"] = export_model(job, model, results)
            else:
                statuses["export"] = "skipped: training failed"
        summary["changed"] |= not exists_before and statuses["export"] == "complete"
        if any(s != "complete" for s in statuses.values()):
            summary["failed"].append(model)
        summary["models"][model] = statuses
    return summary


REQUIRED = ("run_id", "host", "models", "models_dir", "results_dir")


def main(argv: list[str] | None = None) -> int:
    def canonical_or_training(job: dict) -> tuple[str, ...]:
        return () if job.get("canonical_archives") else ("modes", "export_mode", "work_dir", "data", "train")

    job = load_job(argv, "train_stage", REQUIRED, canonical_or_training)
    if job is None:
        return 2
    summary = run_job(job)
    print(json.dumps(summary, sort_keys=True))
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
