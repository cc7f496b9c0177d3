#!/usr/bin/env python3
"""The artifact store's manifest: every artifact's sha256 and what it is.

  artifact_manifest.py STORE add FILE --kind KIND --arch ARCH --name NAME --version VERSION
  artifact_manifest.py STORE verify [FILE ...]
  artifact_manifest.py STORE show

`add` hashes FILE (a path inside STORE) and records it; it prints {"changed": true|false} so Ansible
can report honestly. `verify` re-hashes and exits 1 naming every file that does not match.
Writes are atomic: a crash never leaves a half-written manifest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

MANIFEST = "manifest.json"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load(store: Path) -> dict:
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
    args = parser.parse_args(argv)
    if args.command == "add":
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
