#!/usr/bin/env python3
"""Pack a Python package directory into a reproducible tar.gz: sorted names, fixed times and owners, no
bytecode. The same sources always give the same bytes, so copying the bundle to a host changes
something only when the code did.

    bundle.py SOURCE_DIR OUTPUT.tar.gz      prints "written <sha256>" or "unchanged <sha256>"
"""

from __future__ import annotations

import gzip
import hashlib
import io
import sys
import tarfile
from pathlib import Path

SKIP_DIRS = {"__pycache__"}
SKIP_SUFFIXES = {".pyc", ".pyo"}


def members(source: Path) -> list[Path]:
    return sorted(
        path
        for path in source.rglob("*")
        if path.is_file()
        and not SKIP_DIRS.intersection(path.relative_to(source).parts)
        and path.suffix not in SKIP_SUFFIXES
    )


def bundle_bytes(source: Path) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in members(source):
            info = tarfile.TarInfo(f"{source.name}/{path.relative_to(source).as_posix()}")
            data = path.read_bytes()
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    source, output = Path(argv[0]), Path(argv[1])
    if not (source / "__init__.py").is_file():
        print(f"bundle: {source} is not a Python package", file=sys.stderr)
        return 2
    data = bundle_bytes(source)
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
