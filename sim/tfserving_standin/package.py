"""Package the stand-in as a TF-Serving artifact of the same form as the build's, into a store.

  python -m sim.tfserving_standin.package --store artifacts --arch x86_64 [--version V]

Writes <store>/tfserving/tensorflow_model_server-<version>-<arch>-plain.tar.gz holding
bin/tensorflow_model_server and build-info.json, like roles/tfserving_build, and records its sha256
in the store's manifest. The launcher runs the server with the Python of the tensorflow role's
virtualenv (which has TensorFlow and the serving API protos). The version (default: TF-Serving's of
bench/versions.py) is the one build-info.json records, which the packaged server reports.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import tarfile
import time
from pathlib import Path

from bench import facts
from bench.versions import ARCHES, VERSIONS

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DEFAULT_PYTHON = f"{facts.TENSORFLOW_VENV}/bin/python"
DEFAULT_VERSION = VERSIONS["tfserving"]

LAUNCHER = """#!/bin/sh
# TF-Serving stand-in (recbench tests): same flags and gRPC API as tensorflow_model_server.
here=$(cd "$(dirname "$0")/.." && pwd)
exec {python} "$here/lib/standin/server.py" "$@"
"""


def artifact_name(version: str, arch: str, onednn: bool = False) -> str:
    return f"tensorflow_model_server-{version}-{arch}-{'onednn' if onednn else 'plain'}.tar.gz"


def manifest_tool() -> object:
    """The store's manifest tool (a role file, not a package), loaded as a module."""
    path = REPO / "roles/artifact_store/files/artifact_manifest.py"
    spec = importlib.util.spec_from_file_location("artifact_manifest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0  # the same input gives the same bytes, so the sha256 is stable
    tar.addfile(info, io.BytesIO(data))


def package(store: Path, arch: str, version: str = DEFAULT_VERSION, python: str = DEFAULT_PYTHON) -> Path:
    target = store / "tfserving" / artifact_name(version, arch)
    target.parent.mkdir(parents=True, exist_ok=True)
    build_info = {
        "version": version,
        "arch": arch,
        "onednn": False,
        "flavor": "plain",
        "standin": True,
        "bazel_version": None,
        "bazel_configs": [],
        "source": "sim/tfserving_standin",
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(0)),
    }
    partial = target.with_suffix(".partial")
    with open(partial, "wb") as raw:
        import gzip

        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
            _add(tar, "bin/tensorflow_model_server", LAUNCHER.format(python=python).encode(), 0o755)
            _add(tar, "lib/standin/server.py", (HERE / "server.py").read_bytes(), 0o644)
            _add(tar, "build-info.json", (json.dumps(build_info, indent=2) + "\n").encode(), 0o644)
    partial.replace(target)
    manifest_tool().add(store, target, "tfserving", arch, "tensorflow_model_server", version)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sim.tfserving_standin.package")
    parser.add_argument("--store", type=Path, default=REPO / "artifacts")
    parser.add_argument("--arch", action="append", required=True, choices=ARCHES)
    parser.add_argument("--version", default=DEFAULT_VERSION, help=f"TF-Serving version (default {DEFAULT_VERSION})")
    parser.add_argument("--python", default=DEFAULT_PYTHON, help="Python with TensorFlow on the hosts")
    args = parser.parse_args()
    for arch in args.arch:
        print(package(args.store, arch, args.version, args.python))


if __name__ == "__main__":
    main()
