"""Fetch results from every host over SSH (paramiko SFTP), in parallel, with timeouts and retries.

Only files not yet fetched are copied (same relative path and size means fetched); each lands
atomically. Host keys must already be in the known_hosts file the inventory names: an unknown or
changed key is refused, never accepted.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import paramiko

from collect.inventory import SshTarget


@dataclass
class PullReport:
    host: str
    fetched: int = 0
    already_here: int = 0
    error: str | None = None
    attempts: int = 0


def _connect(target: SshTarget, timeout: float) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(str(target.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        target.address,
        port=target.port,
        username=target.user,
        key_filename=str(target.key_file) if target.key_file else None,
        timeout=timeout,
        banner_timeout=timeout,
        auth_timeout=timeout,
        look_for_keys=target.key_file is None,
        allow_agent=False,
    )
    return client


def _walk(sftp: paramiko.SFTPClient, remote: PurePosixPath) -> list[tuple[PurePosixPath, int]]:
    files = []
    for entry in sftp.listdir_attr(str(remote)):
        if entry.filename.startswith("."):
            continue  # staging directories of unfinished work
        path = remote / entry.filename
        if stat.S_ISDIR(entry.st_mode or 0):
            files += _walk(sftp, path)
        elif stat.S_ISREG(entry.st_mode or 0):
            files.append((path, entry.st_size or 0))
    return files


def pull_host(
    target: SshTarget, remote_dir: str, dest: Path, timeout: float = 15.0, retries: int = 3, run_id: str | None = None
) -> PullReport:
    report = PullReport(target.name)
    if not target.known_hosts.is_file():
        report.error = f"known_hosts file {target.known_hosts} is missing: host keys must be pinned first"
        return report
    remote_root = PurePosixPath(remote_dir) / run_id if run_id else PurePosixPath(remote_dir)
    for attempt in range(1, retries + 1):
        report.attempts = attempt
        try:
            with _connect(target, timeout) as client, client.open_sftp() as sftp:
                sftp.get_channel().settimeout(timeout)
                try:
                    listing = _walk(sftp, remote_root)
                except FileNotFoundError:
                    listing = []
                for path, size in listing:
                    relative = path.relative_to(PurePosixPath(remote_dir))
                    local = dest / Path(*relative.parts)
                    if local.is_file() and local.stat().st_size == size:
                        report.already_here += 1
                        continue
                    local.parent.mkdir(parents=True, exist_ok=True)
                    partial = local.with_name(f".{local.name}.pull")
                    sftp.get(str(path), str(partial))
                    os.replace(partial, local)
                    report.fetched += 1
            report.error = None
            return report
        except paramiko.BadHostKeyException as err:
            report.error = f"host key of {target.address}:{target.port} does not match {target.known_hosts}: {err}"
            return report  # never retried, never accepted
        except paramiko.SSHException as err:
            report.error = f"{type(err).__name__}: {err}"
            if "not found in known_hosts" in str(err):
                return report
        except OSError as err:
            report.error = f"{type(err).__name__}: {err}"
        time.sleep(min(2**attempt, 10))
    return report


def pull(
    targets: list[SshTarget],
    remote_dir: str,
    dest: Path,
    run_id: str | None = None,
    timeout: float = 15.0,
    retries: int = 3,
    progress: Callable[[PullReport], None] | None = None,
) -> list[PullReport]:
    """Pull from every target in parallel; one host's failure never stops the others."""
    dest.mkdir(parents=True, exist_ok=True)

    def one(target: SshTarget) -> PullReport:
        report = pull_host(target, remote_dir, dest, timeout, retries, run_id)
        if progress:
            progress(report)
        return report

    with ThreadPoolExecutor(max_workers=min(32, max(1, len(targets)))) as pool:
        return list(pool.map(one, targets))
