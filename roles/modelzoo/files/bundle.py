#!/usr/bin/env python3
"""Pack Python package directories into one reproducible tar.gz: sorted names, fixed times and owners,
no bytecode. The same sources always give the same bytes, so copying the bundle to a host changes
something only when the code did.

    bundle.py OUTPUT.tar.gz PACKAGE_DIR [PACKAGE_DIR ...]      prints "written <sha256>" or "unchanged <sha256>"
"""

from __future__ import annotations

import gzip
import hashlib
import io
import sys
import tarfile
from pathlib import Path

# controller: the controller-only subpackage (bench/controller) never travels to the hosts.
SKIP_DIRS = {"__pycache__", "controller"}
SKIP_SUFFIXES = {".pyc", ".pyo"}


def members(source: Path) -> list[Path]:
    return sorted(
        path
        for path in source.rglob("*")
        if path.is_file()
        and not SKIP_DIRS.intersection(path.relative_to(source).parts)
        and path.suffix not in SKIP_SUFFIXES
    )


def bundle_bytes(sources: list[Path]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for source, path in ((s, p) for s in sorted(sources, key=lambda s: s.name) for p in members(s)):
            info = tarfile.TarInfo(f"{source.name}/{path.relative_to(source).as_posix()}")
            data = path.read_bytes()
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    output, sources = Path(argv[0]), [Path(arg) for arg in argv[1:]]
    for source in sources:
        if not (source / "__init__.py").is_file():
            print(f"bundle: {source} is not a Python package", file=sys.stderr)
            return 2
    data = bundle_bytes(sources)
    digest = hashlib.sha256(data).hexdigest()
    if output.is_file() and output.read_bytes() == data:
        print(f"unchanged {digest}")
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(output)
    print(f"written {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
