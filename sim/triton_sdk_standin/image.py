"""A stand-in for the Triton SDK image (triton_sdk_image of bench/versions.py), archived into an
artifact store, for perf_analyzer's `image` mode where nvcr.io cannot be reached.

  python -m sim.triton_sdk_standin.image --store DIR [--image NAME] [--archive images/NAME.tar]

The image holds the real perf_analyzer (the binary the tritonclient wheel of bench/versions.py ships,
which the SDK image carries too) at /usr/local/bin, with exactly the shared libraries it links: built
FROM scratch out of the controller's copies, so it needs no registry. It is saved with `podman save`
(docker-archive, which docker loads too), recorded in the store's manifest, and removed from local
storage so that the role under test has to load it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from bench.versions import VERSIONS
from sim.tfserving_standin.package import manifest_tool

# The release the stand-in stands in for: the SDK image's tag without its flavour (-py3-sdk).
RELEASE = VERSIONS["triton_sdk_image"].rsplit(":", 1)[1].split("-")[0]
DEFAULT_IMAGE = f"localhost/recbench-triton-sdk-standin:{RELEASE}"
DEFAULT_ARCHIVE = f"images/triton-sdk-standin-{RELEASE}-x86_64.tar"
LIBRARY_DIR = "/usr/local/lib"
# `libfoo.so.1 => /usr/lib/x86_64-linux-gnu/libfoo.so.1 (0x...)` or `/lib64/ld-linux-x86-64.so.2 (0x...)`
LDD_LINE = re.compile(r"^\s*(?:(\S+) => )?(/\S+) \(0x[0-9a-f]+\)$")


def venv_perf_analyzer() -> tuple[Path, Path]:
    """The tritonclient wheel's perf_analyzer in this virtualenv, and the CUDA runtime wheel's lib dir."""
    venv = Path(sys.executable).parent.parent
    binary = venv / "bin" / "perf_analyzer"
    cudart = sorted(venv.glob("lib/python3*/site-packages/nvidia/cuda_runtime/lib"))
    if not binary.is_file() or not cudart:
        raise SystemExit(f"{venv} has no perf_analyzer or CUDA runtime wheel: run scripts/bootstrap.sh")
    return binary, cudart[0]


def linked_libraries(binary: Path, extra_dir: Path) -> dict[str, Path]:
    """Where each library BINARY links lives here: path inside the image -> file on this machine."""
    env = os.environ | {"LD_LIBRARY_PATH": str(extra_dir)}
    proc = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True, env=env)
    if "not found" in proc.stdout:
        raise SystemExit(f"ldd {binary}: a library is missing\n{proc.stdout}")
    libraries = {}
    for line in proc.stdout.splitlines():
        match = LDD_LINE.match(line)
        if match:
            soname, path = match.group(1), Path(match.group(2))
            # The loader keeps its absolute path; the rest go to one directory on LD_LIBRARY_PATH.
            inside = str(path) if soname is None else f"{LIBRARY_DIR}/{soname}"
            libraries[inside] = path.resolve()
    return libraries


def root_filesystem(binary: Path, libraries: dict[str, Path]) -> bytes:
    """A tar of the image's whole filesystem."""
    with tempfile.TemporaryFile() as raw:
        with tarfile.open(fileobj=raw, mode="w") as tar:
            tar.add(binary, arcname="usr/local/bin/perf_analyzer")
            for inside, source in libraries.items():
                tar.add(source, arcname=inside.lstrip("/"))
            info = tarfile.TarInfo("tmp")
            info.type, info.mode = tarfile.DIRTYPE, 0o1777
            tar.addfile(info)
        raw.seek(0)
        return raw.read()


def podman(*args: str, data: bytes | None = None) -> str:
    proc = subprocess.run(["podman", *args], input=data, capture_output=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"podman {args[0]} failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode(errors="replace")


def build(store: Path, image: str = DEFAULT_IMAGE, archive: str = DEFAULT_ARCHIVE) -> Path:
    binary, cudart = venv_perf_analyzer()
    rootfs = root_filesystem(binary, linked_libraries(binary, cudart))
    changes = ["ENV PATH=/usr/local/bin", f"ENV LD_LIBRARY_PATH={LIBRARY_DIR}", "WORKDIR /tmp"]
    podman("import", *(arg for change in changes for arg in ("--change", change)), "-", image, data=rootfs)
    target = store / archive
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    podman("save", "--format", "docker-archive", "--output", str(partial), image)
    podman("rmi", image)
    shutil.move(partial, target)
    manifest_tool().add(store, target, "image", "x86_64", "triton-sdk-standin", RELEASE)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.triton_sdk_standin.image", description=__doc__)
    parser.add_argument("--store", type=Path, required=True, help="the artifact store (has manifest.json)")
    parser.add_argument("--image", default=DEFAULT_IMAGE, help=f"image name (default {DEFAULT_IMAGE})")
    parser.add_argument("--archive", default=DEFAULT_ARCHIVE, help=f"path in the store (default {DEFAULT_ARCHIVE})")
    args = parser.parse_args(argv)
    print(build(args.store, args.image, args.archive))
    return 0


if __name__ == "__main__":
    sys.exit(main())
