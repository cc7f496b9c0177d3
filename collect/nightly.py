"""The nightly run: bench.yml through ansible-runner for a limit, then pull, ingest, report and the
regression check. One run at a time (an exclusive lock); every run keeps its logs under
<logs>/<run_id>/ (ansible-runner's artifacts: stdout, events, status) plus nightly.log."""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench import facts
from collect.errors import EXIT_ALARM, EXIT_HOSTS, EXIT_OK, EXIT_SKIPPED, EXIT_USAGE, CollectError, clip

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PLAYBOOK = REPO / "playbooks" / "bench.yml"


class NightlyError(CollectError):
    """The nightly run could not start or finish (the message says why); results obtained are kept."""

    exit_code = EXIT_USAGE


@dataclass
class NightlyOptions:
    inventory: Path
    limit: str
    results: Path
    db: Path
    reports: Path
    logs: Path
    lock: Path
    run_id: str = ""
    playbook: Path = DEFAULT_PLAYBOOK
    extra_vars_files: list[Path] = field(default_factory=list)
    pull_timeout: float = 15.0
    pull_retries: int = 3
    # A shared directory to export this run to (a Parquet dataset): how controllers that each drive a
    # shard of the fleet merge their stores (`collect import` on any of them).
    export_dir: Path | None = None


@dataclass
class NightlyOutcome:
    run_id: str
    playbook_status: str
    failed_hosts: list[str]
    regressions: list[str]
    report_dir: Path | None
    log_dir: Path
    skipped: int = 0  # result files ingest named and skipped

    @property
    def exit_code(self) -> int:
        """1: a regression; 4: the pipeline failed on some host (the others' results are reported) or
        no result came home; 3: some result files were skipped (each named in the log); 0: none."""
        if self.regressions:
            return EXIT_ALARM
        failed = self.playbook_status != "successful" or self.failed_hosts or self.report_dir is None
        return EXIT_HOSTS if failed else (EXIT_SKIPPED if self.skipped else EXIT_OK)


@contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """Hold LOCK for the duration; a second nightly run fails at once instead of overlapping."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise NightlyError(f"another nightly run holds {lock} ({holder})") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {datetime.now(UTC).isoformat(timespec='seconds')}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_playbook(
    options: NightlyOptions, run_id: str, log_dir: Path, say: Callable[[str], None]
) -> tuple[str, list[str]]:
    """bench.yml through ansible-runner, from the repository (its ansible.cfg applies); returns the
    runner's status and the hosts that failed or were unreachable."""
    import ansible_runner

    (log_dir / "runner").mkdir(parents=True, exist_ok=True)
    extra = " ".join(f"-e @{path.resolve()}" for path in options.extra_vars_files)
    runner = ansible_runner.run(
        private_data_dir=str(log_dir / "runner"),
        project_dir=str(REPO),
        playbook=str(options.playbook.resolve()),
        inventory=str(options.inventory.resolve()),
        limit=options.limit,
        extravars={"recbench_run_id": run_id, "recbench_results_dir": str(options.results.resolve())},
        cmdline=extra or None,
        quiet=True,
        event_handler=lambda event: _progress(event, say),
    )
    stats = runner.stats or {}
    failed = sorted(set(stats.get("failures", {})) | set(stats.get("dark", {})))
    return runner.status, failed


def _progress(event: dict, say: Callable[[str], None]) -> bool:
    if event.get("event") == "playbook_on_play_start":
        say(f"play: {event.get('event_data', {}).get('name', '')}")
    return True


def nightly(options: NightlyOptions, say: Callable[[str], None] = print) -> NightlyOutcome:
    from collect import names
    from collect.changes import describe
    from collect.ingest import ingest
    from collect.inventory import targets
    from collect.legacy import migrate_if_legacy
    from collect.pull import pull
    from collect.report import build_report
    from collect.store import Store

    if not options.inventory.exists():
        raise NightlyError(f"inventory {options.inventory} does not exist")
    run_id = names.check("run id", options.run_id or facts.new_run_id(), "nightly")
    log_dir = options.logs / run_id
    with exclusive(options.lock):
        log_dir.mkdir(parents=True, exist_ok=True)
        with (log_dir / "nightly.log").open("a") as log:

            def say_and_log(line: str) -> None:
                stamp = datetime.now(UTC).isoformat(timespec="seconds")
                log.write(f"{stamp} {line}\n")
                log.flush()
                say(f"nightly: {line}")

            say_and_log(f"run {run_id}: {options.playbook.name} on '{options.limit}' of {options.inventory}")
            status, failed_hosts = run_playbook(options, run_id, log_dir, say_and_log)
            say_and_log(
                f"playbook {status}"
                + (f"; hosts that did not finish: {', '.join(failed_hosts)}" if failed_hosts else "")
            )
            # The fetch stage may have missed a host that dropped off: pull what it left behind.
            reports = pull(
                targets(options.inventory, options.limit),
                facts.RESULTS_ROOT,
                options.results,
                run_id,
                options.pull_timeout,
                options.pull_retries,
            )
            for report in reports:
                state = f"FAILED: {report.error}" if report.error else "ok"
                say_and_log(
                    f"pull {report.host}: {report.fetched} fetched, {report.already_here} already here, {state}"
                )
            if not (options.results / run_id).is_dir():
                say_and_log(f"no results of run {run_id} came home")
                return NightlyOutcome(run_id, status, failed_hosts, [], None, log_dir)
            with Store(migrate_if_legacy(options.db)) as store:
                ingested = ingest(options.results, store)
                for problem in ingested.problems:
                    say_and_log(clip(f"ingest skipped {problem}", 2000))
                say_and_log(f"ingest: {ingested.added} new, {len(ingested.problems)} skipped")
                report = build_report(store, run_id, options.reports)
                if options.export_dir:
                    from collect.exchange import export_dataset

                    written = export_dataset(store, options.export_dir, [run_id])
                    say_and_log(f"export: {written['instances']} instance(s) of run {run_id} to {options.export_dir}")
            regressions = describe(report.alarms)
            for line in regressions:
                say_and_log(f"REGRESSION {line}")
            say_and_log(f"report: {report.directory}")
            return NightlyOutcome(
                run_id, status, failed_hosts, regressions, report.directory, log_dir, len(ingested.problems)
            )


def main_nightly(options: NightlyOptions) -> int:
    outcome = nightly(options, lambda line: print(line, file=sys.stderr, flush=True))
    verdicts = {EXIT_ALARM: "regression", EXIT_HOSTS: "pipeline failed", EXIT_SKIPPED: "some results skipped"}
    verdict = verdicts.get(outcome.exit_code, "ok")
    print(f"nightly {outcome.run_id}: {verdict}; logs in {outcome.log_dir}")
    return outcome.exit_code
