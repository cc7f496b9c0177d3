"""A private registry on this machine holding the SDK stand-in image, behind TLS and a password, for
testing perf_analyzer's `image` mode pull with credentials (nvcr.io cannot be reached from here).

  python -m sim.triton_sdk_standin.registry start --dir DIR --port PORT --archive FILE --image NAME
  python -m sim.triton_sdk_standin.registry stop --dir DIR --port PORT

`start` runs Debian's docker-registry (the CNCF distribution registry) on 127.0.0.1:PORT with a
self-signed certificate that podman is told to trust (/etc/containers/certs.d/localhost:PORT/),
htpasswd (bcrypt) authentication for REGISTRY_USER / REGISTRY_PASSWORD from the environment, pushes
the image from FILE (a `podman save` archive) as localhost:PORT/NAME, then logs out and removes every
local copy, so that only a logged-in pull can bring it back. `stop` ends the registry and removes the
trust and the credentials it left.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt

CERTS_D = Path("/etc/containers/certs.d")

CONFIG = """version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {dir}/data
http:
  addr: 127.0.0.1:{port}
  tls:
    certificate: {dir}/registry.crt
    key: {dir}/registry.key
auth:
  htpasswd:
    realm: recbench-test-registry
    path: {dir}/htpasswd
"""


def run(*command: str, stdin: str | None = None) -> str:
    proc = subprocess.run(command, input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} failed: {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout


def certificate(directory: Path) -> Path:
    """A self-signed certificate for localhost (a CA certificate, so it can be its own trust root)."""
    cert = directory / "registry.crt"
    run(
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        "-keyout", str(directory / "registry.key"), "-out", str(cert),
    )  # fmt: skip
    return cert


def wait_until_answering(port: int, cert: Path, seconds: float = 30) -> None:
    """The registry answers /v2/ with 401 (credentials wanted) once it is up."""
    context = ssl.create_default_context(cafile=str(cert))
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(f"https://localhost:{port}/v2/", context=context, timeout=5)
            raise SystemExit(f"registry on port {port} answered without asking for credentials")
        except urllib.error.HTTPError as err:
            if err.code == 401:
                return
            raise SystemExit(f"registry on port {port} answered {err.code}") from err
        except (urllib.error.URLError, ConnectionError) as err:
            if time.monotonic() > deadline:
                raise SystemExit(f"registry on port {port} did not answer within {seconds:.0f} s: {err}") from err
            time.sleep(0.3)


def start(directory: Path, port: int, archive: Path, image: str, user: str, password: str) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "data").mkdir(exist_ok=True)
    cert = certificate(directory)
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()
    (directory / "htpasswd").write_text(f"{user}:{hashed}\n")
    config = directory / "config.yml"
    config.write_text(CONFIG.format(dir=directory, port=port))
    trust = CERTS_D / f"localhost:{port}"
    trust.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cert, trust / "ca.crt")
    with (directory / "registry.log").open("w") as log:
        process = subprocess.Popen(
            ["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    (directory / "registry.pid").write_text(f"{process.pid}\n")
    wait_until_answering(port, cert)
    registry, remote = f"localhost:{port}", f"localhost:{port}/{image}"
    loaded = run("podman", "load", "--quiet", "--input", str(archive)).strip().rsplit(" ", 1)[-1]
    run("podman", "tag", loaded, remote)
    run("podman", "login", "--username", user, "--password-stdin", registry, stdin=password)
    run("podman", "push", "--quiet", remote)
    run("podman", "logout", registry)
    run("podman", "rmi", remote, loaded)
    return remote


def stop(directory: Path, port: int) -> None:
    pid_file = directory / "registry.pid"
    if pid_file.is_file():
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
        pid_file.unlink()
    subprocess.run(["podman", "logout", f"localhost:{port}"], capture_output=True, check=False)
    shutil.rmtree(CERTS_D / f"localhost:{port}", ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.triton_sdk_standin.registry", description=__doc__)
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--dir", type=Path, required=True, help="the registry's files (storage, keys, log)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--archive", type=Path, help="start: the image archive to push")
    parser.add_argument("--image", help="start: the name to push it as, without the registry")
    args = parser.parse_args(argv)
    if args.action == "stop":
        stop(args.dir, args.port)
        return 0
    user, password = os.environ.get("REGISTRY_USER", ""), os.environ.get("REGISTRY_PASSWORD", "")
    if not (args.archive and args.image and user and password):
        parser.error("start needs --archive, --image, and REGISTRY_USER and REGISTRY_PASSWORD in the environment")
    print(start(args.dir.resolve(), args.port, args.archive, args.image, user, password))
    return 0


if __name__ == "__main__":
    sys.exit(main())
