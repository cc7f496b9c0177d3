#!/usr/bin/env python3
"""Build one wheelhouse artifact: the wheels (with dependencies) of some packages for one target
architecture and Python, downloaded with pip's explicit platform options, packed as
<store>/wheels/<component>-<version>-<arch>.tar.gz and recorded in the store's manifest.

  wheelhouse.py STORE COMPONENT VERSION ARCH --python 3.11 --platform TAG [...] REQUIREMENT [...]
      [--no-deps REQUIREMENT ...]

Hosts install from it with `pip install --no-index --find-links`, so they need no internet.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from artifact_manifest import add


def pip_download(dest: Path, python: str, platforms: list[str], requirements: list[str], deps: bool) -> None:
    abi = "cp" + python.replace(".", "")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--dest",
        str(dest),
        "--only-binary=:all:",
        "--python-version",
        python,
        "--implementation",
        "cp",
        "--abi",
        abi,
        "--abi",
        "abi3",
        "--abi",
        "none",
    ]
    for platform in platforms:
        cmd += ["--platform", platform]
    if not deps:
        cmd.append("--no-deps")
    proc = subprocess.run(cmd + requirements, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if "ERROR" in line] or proc.stderr.splitlines()[-3:]
        sys.exit(f"wheelhouse: pip download of {' '.join(requirements)} failed: {' '.join(errors)}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="wheelhouse.py")
    parser.add_argument("store", type=Path)
    parser.add_argument("component")
    parser.add_argument("version")
    parser.add_argument("arch")
    parser.add_argument("--python", required=True)
    parser.add_argument("--platform", action="append", required=True)
    parser.add_argument("--no-deps", action="append", default=[], metavar="REQUIREMENT")
    parser.add_argument("requirements", nargs="*")
    args = parser.parse_intermixed_args()
    if not args.requirements and not args.no_deps:
        parser.error("name at least one requirement")
    target = args.store / "wheels" / f"{args.component}-{args.version}-{args.arch}.tar.gz"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        wheels = Path(tmp) / "wheels"
        wheels.mkdir()
        if args.requirements:
            pip_download(wheels, args.python, args.platform, args.requirements, deps=True)
        if args.no_deps:
            pip_download(wheels, args.python, args.platform, args.no_deps, deps=False)
        partial = Path(tmp) / target.name
        with tarfile.open(partial, "w:gz") as tar:
            for wheel in sorted(wheels.iterdir()):
                tar.add(wheel, arcname=wheel.name)
        partial.replace(target)
    add(args.store, target, "wheelhouse", args.arch, args.component, args.version)
    print(f"wheelhouse: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
