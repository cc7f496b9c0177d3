"""Fetch results from every host over SSH (paramiko SFTP), in parallel, with timeouts and retries.

Each host's files land only under its own directory here, <dest>/<run_id>/<host>/...: a listing that
names another host's files, or a name that is not one path component of letters, digits, '.', '_'
and '-' ('../x', an absolute path, a newline), is refused and named, never written. Each file lands
atomically. A file already here is kept when the host's copy has the same content (sha256); when the
content differs it is never replaced: the host is reported with the file's name, so a host (or a
changed result) cannot overwrite what was fetched. Host keys must already be in the known_hosts file
the inventory names: an unknown or changed key is refused, never accepted.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import paramiko

from collect import names
from collect.errors import clip
from collect.inventory import SshTarget

SHOWN = 3  # refused names and conflicting files named in a host's one-line error


@dataclass
class PullReport:
    host: str
    fetched: int = 0
    already_here: int = 0
    error: str | None = None
    attempts: int = 0
    refused: list[str] = field(default_factory=list)  # listed names outside this host's own directory
    conflicts: list[str] = field(default_factory=list)  # files here whose content differs from the host's


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


def _walk(sftp: paramiko.SFTPClient, remote: PurePosixPath, refused: list[str]) -> list[tuple[PurePosixPath, int]]:
    files = []
    for entry in sftp.listdir_attr(str(remote)):
        staging = entry.filename.startswith(".") and "/" not in entry.filename and entry.filename not in (".", "..")
        if staging:
            continue  # staging directories of unfinished work
        if not names.is_valid("file name", entry.filename):
            refused.append(f"{remote}/{entry.filename}")
            continue
        path = remote / entry.filename
        if stat.S_ISDIR(entry.st_mode or 0):
            files += _walk(sftp, path, refused)
        elif stat.S_ISREG(entry.st_mode or 0):
            files.append((path, entry.st_size or 0))
    return files


def _own(relative: PurePosixPath, host: str, run_id: str | None) -> bool:
    """RELATIVE (to the remote results root) lies under <run_id>/<HOST>/ and every part is a name."""
    parts = relative.parts
    return (
        len(parts) >= 3
        and names.is_valid("run id", parts[0])
        and (run_id is None or parts[0] == run_id)
        and parts[1] == host
        and all(names.is_valid("file name", part) for part in parts[2:])
    )


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _fetch(sftp: paramiko.SFTPClient, remote: PurePosixPath, size: int, local: Path, report: PullReport) -> None:
    """REMOTE into LOCAL, atomically, unless a file with other content is there already."""
    here = local.exists() or local.is_symlink()
    if here and (not local.is_file() or local.is_symlink() or local.stat().st_size != size):
        report.conflicts.append(str(local))
        return
    local.parent.mkdir(parents=True, exist_ok=True)
    partial = local.with_name(f".{local.name}.pull")
    try:
        sftp.get(str(remote), str(partial))
        if local.is_file():
            if _sha256(partial) == _sha256(local):
                report.already_here += 1
            else:
                report.conflicts.append(str(local))
            return
        os.replace(partial, local)
        report.fetched += 1
    finally:
        partial.unlink(missing_ok=True)


def _refusals(report: PullReport) -> str | None:
    said = []
    if report.refused:
        said.append(
            f"listing names {len(report.refused)} path(s) outside its own directory <run>/{report.host}/ "
            f"(not written): {', '.join(report.refused[:SHOWN])}"
        )
    if report.conflicts:
        said.append(
            f"{len(report.conflicts)} file(s) here differ from the host's copy (kept, not replaced; move one "
            f"away to fetch it again): {', '.join(report.conflicts[:SHOWN])}"
        )
    return clip("; ".join(said), 600) if said else None


def pull_host(
    target: SshTarget, remote_dir: str, dest: Path, timeout: float = 15.0, retries: int = 3, run_id: str | None = None
) -> PullReport:
    report = PullReport(target.name)
    if not names.is_valid("host", target.name):
        report.error = f"{names.refusal('host', target.name)}: its results would have no directory of their own"
        return report
    if run_id is not None and not names.is_valid("run id", run_id):
        report.error = names.refusal("run id", run_id)
        return report
    if not target.known_hosts.is_file():
        report.error = f"known_hosts file {target.known_hosts} is missing: host keys must be pinned first"
        return report
    root = PurePosixPath(remote_dir)
    remote_root = root / run_id if run_id else root
    for attempt in range(1, retries + 1):
        report.attempts = attempt
        report.refused, report.conflicts = [], []
        report.fetched = report.already_here = 0
        try:
            with _connect(target, timeout) as client, client.open_sftp() as sftp:
                sftp.get_channel().settimeout(timeout)
                try:
                    listing = _walk(sftp, remote_root, report.refused)
                except FileNotFoundError:
                    listing = []
                for path, size in listing:
                    relative = path.relative_to(root)
                    if not _own(relative, target.name, run_id):
                        report.refused.append(str(path))
                        continue
                    _fetch(sftp, path, size, dest / Path(*relative.parts), report)
            report.error = _refusals(report)
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
