#!/usr/bin/env python3
"""The artifact store's manifest: every artifact's sha256 and what it is.

  artifact_manifest.py STORE add FILE --kind KIND --arch ARCH --name NAME --version VERSION
  artifact_manifest.py STORE verify [FILE ...]
  artifact_manifest.py STORE show
  artifact_manifest.py STORE check

`add` hashes FILE (a path inside STORE) and records it; it prints {"changed": true|false} so Ansible
can report honestly. `verify` re-hashes and exits 1 naming every file that does not match.
Writes are atomic: a crash never leaves a half-written manifest.

The manifest is what every artifact is trusted through, and it sits in the store it vouches for, so
the store is trusted only if nobody else could have written it: the store directory and the manifest
are yours (the user running this) and not writable by group or others, the manifest is a regular
file (not a link), and no directory above the store lets anyone else swap it (each is yours or
root's, and not writable by others unless sticky, like /tmp). Otherwise every command refuses in one
line and exits 3 (for instance a /var/tmp/recbench-artifacts that another user created first).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import stat
import sys
from pathlib import Path

MANIFEST = "manifest.json"
EXIT_UNTRUSTED = 3


class UntrustedStore(Exception):
    """The store could have been written by someone else; the message says what and how to fix it."""


def _refuse(store: Path, why: str) -> UntrustedStore:
    return UntrustedStore(f"refusing to trust {store / MANIFEST}: {why}")


def check_trusted(store: Path) -> None:
    """Raise UntrustedStore unless only the current user (or root, above the store) could have written
    STORE and its manifest. A store that does not exist yet holds nothing to trust."""
    me = os.geteuid()
    if not os.path.lexists(store):
        return
    link = os.lstat(store)
    if stat.S_ISLNK(link.st_mode) and link.st_uid not in (me, 0):
        raise _refuse(store, f"{store} is a link made by uid {link.st_uid}, not by you (uid {me})")
    real = store.resolve()
    info = real.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise _refuse(store, f"{real} is not a directory")
    if info.st_uid != me:
        raise _refuse(store, f"{real} belongs to uid {info.st_uid}, not to you (uid {me})")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise _refuse(
            store, f"{real} is writable by group or others (mode {info.st_mode & 0o7777:04o}): chmod go-w {real}"
        )
    for parent in real.parents:
        above = parent.stat()
        if above.st_uid not in (me, 0):
            raise _refuse(store, f"{parent} above it belongs to uid {above.st_uid}, who could replace the store")
        if above.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not above.st_mode & stat.S_ISVTX:
            raise _refuse(
                store, f"{parent} above it is writable by group or others (mode {above.st_mode & 0o7777:04o})"
            )
    manifest = real / MANIFEST
    if not os.path.lexists(manifest):
        return
    entry = os.lstat(manifest)
    if not stat.S_ISREG(entry.st_mode):
        raise _refuse(store, "it is not a regular file (a link or something else)")
    if entry.st_uid != me:
        raise _refuse(store, f"it belongs to uid {entry.st_uid}, not to you (uid {me})")
    if entry.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise _refuse(store, f"it is writable by group or others (mode {entry.st_mode & 0o7777:04o})")


def sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def load(store: Path) -> dict:
    check_trusted(store)
    path = store / MANIFEST
    if not path.exists():
        return {"schema": 1, "artifacts": {}}
    return json.loads(path.read_text())


def save(store: Path, manifest: dict) -> None:
    tmp = store / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, store / MANIFEST)


def add(store: Path, file: Path, kind: str, arch: str, name: str, version: str) -> bool:
    relative = str(file.resolve().relative_to(store.resolve()))
    entry = {
        "sha256": sha256_of(file),
        "kind": kind,
        "arch": arch,
        "name": name,
        "version": version,
        "size": file.stat().st_size,
    }
    manifest = load(store)
    if manifest["artifacts"].get(relative) == entry:
        return False
    manifest["artifacts"][relative] = entry
    save(store, manifest)
    return True


def verify(store: Path, files: list[str]) -> list[str]:
    artifacts = load(store)["artifacts"]
    problems = []
    for relative in files or sorted(artifacts):
        entry = artifacts.get(relative)
        path = store / relative
        if entry is None:
            problems.append(f"{relative}: not in {store / MANIFEST}")
        elif not path.is_file():
            problems.append(f"{relative}: missing")
        elif sha256_of(path) != entry["sha256"]:
            problems.append(f"{relative}: sha256 mismatch (manifest {entry['sha256'][:12]}...)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="artifact_manifest.py")
    parser.add_argument("store", type=Path)
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser = sub.add_parser("add")
    add_parser.add_argument("file", type=Path)
    for option in ("--kind", "--arch", "--name", "--version"):
        add_parser.add_argument(option, required=True)
    verify_parser = sub.add_parser("verify")
    verify_parser.add_argument("files", nargs="*")
    sub.add_parser("show")
    sub.add_parser("check", help="only check that the store can be trusted (exit 3 if not)")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except UntrustedStore as err:
        print(f"artifact_manifest: {err}", file=sys.stderr)
        return EXIT_UNTRUSTED


def _run(args: argparse.Namespace) -> int:
    if args.command == "check":
        check_trusted(args.store)
    elif args.command == "add":
        if not args.file.is_file():
            print(f"artifact_manifest: {args.file}: no such file", file=sys.stderr)
            return 2
        changed = add(args.store, args.file, args.kind, args.arch, args.name, args.version)
        print(json.dumps({"changed": changed}))
    elif args.command == "verify":
        problems = verify(args.store, args.files)
        for problem in problems:
            print(f"artifact_manifest: {problem}", file=sys.stderr)
        return 1 if problems else 0
    else:
        print(json.dumps(load(args.store), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
