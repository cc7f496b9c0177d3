"""The simulated fleet: podman containers booted with systemd, reachable over SSH with pinned host keys.

Everything a fleet needs on the controller side lives in one state directory, yours alone (0700:
it holds the login key and the known_hosts every connection trusts):
    id_ed25519(.pub)   the controller's login key (fresh for every new fleet)
    hosts/<name>/      each host's seed: its own SSH host key and the authorized login key
    known_hosts        pins every host's key at its loopback port
    inventory.yml      an Ansible inventory placing the hosts in their group
    fleet.json         what was started, for `status` and `down`
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from sim.fleet.emulation import enable_aarch64_emulation
from sim.fleet.image import LOGIN_USER, SEED_DIR, ensure_image
from sim.fleet.keys import generate_keypair, known_hosts_line
from sim.fleet.podman import podman, podman_succeeds

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STATE_DIR = REPO_ROOT / ".fleet"
# ansible.cfg's fact cache; a process may point Ansible elsewhere (ANSIBLE_CACHE_PLUGIN_CONNECTION).
FACT_CACHE_DIR = REPO_ROOT / ".ansible" / "facts"
LOOPBACK = "127.0.0.1"
# A third of a core: about 3x slower than a host that has a core to itself.
SLOW_CPUS = 0.33
SSH_WAIT_SECONDS = {"native": 90.0, "emulated": 300.0}

Log = Callable[[str], None]


class FleetError(RuntimeError):
    """The fleet could not be brought to the state asked for; the message says why."""


@dataclass
class FleetHost:
    name: str
    arch: str
    group: str
    container: str
    port: int = 0
    # CPU quota of the container (podman --cpus), None for no limit: a slower host than its peers,
    # as real fleets have (another CPU generation, a host busy with something else).
    cpus: float | None = None

    @property
    def emulated(self) -> bool:
        return self.arch != platform.machine()


class Fleet:
    def __init__(self, state_dir: Path = DEFAULT_STATE_DIR, name: str | None = None) -> None:
        self.state_dir = state_dir.resolve()
        # Containers carry the fleet's name, so a test fleet and a user's fleet never collide.
        self.name = name or os.environ.get("RECBENCH_FLEET_NAME") or "default"

    # --- paths -------------------------------------------------------------------------------
    @property
    def client_key(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    @property
    def inventory(self) -> Path:
        return self.state_dir / "inventory.yml"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "fleet.json"

    # --- state -------------------------------------------------------------------------------
    def hosts(self) -> list[FleetHost]:
        if not self.state_file.exists():
            return []
        return [FleetHost(**h) for h in json.loads(self.state_file.read_text())["hosts"]]

    def _private_state_dir(self) -> None:
        """Create the state directory 0700, or make an existing one (an older fleet's) 0700: whoever
        could write in it could pin their own host keys or read the login key."""
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self.state_dir.chmod(0o700)
        except PermissionError as err:
            raise FleetError(f"{self.state_dir}: not yours, cannot make it private ({err.strerror})") from err

    def _save(self, hosts: list[FleetHost]) -> None:
        self._private_state_dir()
        payload = {"name": self.name, "hosts": [asdict(h) for h in hosts]}
        _atomic_write(self.state_file, json.dumps(payload, indent=2) + "\n")

    # --- commands ----------------------------------------------------------------------------
    def up(
        self,
        count: int,
        group: str = "kunpeng",
        aarch64: int = 0,
        log: Log = print,
        slow: int = 0,
        slow_cpus: float = SLOW_CPUS,
    ) -> list[FleetHost]:
        """Make sure COUNT native hosts and AARCH64 emulated hosts of GROUP run; start what is missing.
        The last SLOW native hosts get a CPU quota of SLOW_CPUS (they start with it; a running host
        keeps what it has)."""
        if count < 0 or aarch64 < 0 or count + aarch64 == 0:
            raise FleetError("ask for at least one host (up N [--aarch64 M])")
        if not 0 <= slow <= count or slow_cpus <= 0:
            raise FleetError(f"--slow must be between 0 and {count} native hosts, --slow-cpus above 0")
        wanted = [self._host(group, platform.machine(), i) for i in range(1, count + 1)]
        for host in wanted[count - slow :]:
            host.cpus = slow_cpus
        wanted += [self._host(group, "aarch64", i) for i in range(1, aarch64 + 1)]
        known = {h.name: h for h in self.hosts()}
        self._private_state_dir()
        public_key = generate_keypair(self.client_key, f"recbench-fleet-{self.name}")
        hosts = list(known.values())
        started = time.monotonic()
        for host in wanted:
            current = known.get(host.name)
            if current and podman_succeeds("container", "exists", current.container):
                if not _running(current.container):
                    if current.emulated:
                        enable_aarch64_emulation()
                    log(f"{host.name}: starting stopped container")
                    podman("start", current.container)
                    current.port = _published_ssh_port(current.container)
                continue
            image = ensure_image(host.arch, log)
            log(f"{host.name}: starting ({host.arch}{', emulated' if host.emulated else ''})")
            self._start(host, image, public_key)
            hosts = [h for h in hosts if h.name != host.name] + [host]
            _forget_cached_facts(host.name)
        self._save(hosts)
        self._write_known_hosts(hosts)
        self._write_inventory(hosts)
        for host in hosts:
            self._wait_for_ssh(host)
        log(
            f"fleet '{self.name}': {len(hosts)} host(s) ready in {time.monotonic() - started:.1f} s; "
            f"inventory {self.inventory}"
        )
        return hosts

    def down(self, log: Log = print) -> None:
        """Remove every container of this fleet and its state directory (keys included)."""
        for host in self.hosts():
            podman("rm", "--force", "--time", "5", host.container, check=False)
            _forget_cached_facts(host.name)
            log(f"{host.name}: removed")
        # Containers of this fleet that the state file no longer knows about (an interrupted `up`).
        stray = podman(
            "ps", "-a", "--filter", f"label=recbench.fleet={self.name}", "--format", "{{.Names}}", check=False
        ).split()
        for container in stray:
            podman("rm", "--force", "--time", "5", container, check=False)
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def status(self) -> list[dict[str, str]]:
        rows = []
        for host in self.hosts():
            state = "missing"
            if podman_succeeds("container", "exists", host.container):
                state = podman("inspect", "--format", "{{.State.Status}}", host.container).strip()
            reachable = state == "running" and self._ssh_ok(host)
            rows.append(
                {
                    "host": host.name,
                    "group": host.group,
                    "arch": host.arch,
                    "address": f"{LOOPBACK}:{host.port}",
                    "container": state,
                    "cpus": f"{host.cpus:g}" if host.cpus else "unlimited",
                    "ssh": "ok" if reachable else "unreachable",
                }
            )
        return rows

    # --- helpers -----------------------------------------------------------------------------
    def _host(self, group: str, arch: str, index: int) -> FleetHost:
        infix = "" if arch == platform.machine() else "a64-"
        name = f"{group}-{infix}{index:02d}"
        return FleetHost(name=name, arch=arch, group=group, container=f"recbench-{self.name}-{name}")

    def _start(self, host: FleetHost, image: str, public_key: str) -> None:
        seed = self.state_dir / "hosts" / host.name
        shutil.rmtree(seed, ignore_errors=True)
        seed.mkdir(parents=True)
        generate_keypair(seed / "ssh_host_ed25519_key", f"root@{host.name}")
        (seed / "authorized_keys").write_text(public_key + "\n")
        podman("rm", "--force", host.container, check=False)
        if host.emulated:
            enable_aarch64_emulation()
        args = [
            "run",
            "--detach",
            "--name",
            host.container,
            "--hostname",
            host.name,
            "--systemd=always",
            "--label",
            f"recbench.fleet={self.name}",
            "--publish",
            f"{LOOPBACK}::22",
            "--volume",
            f"{seed}:{SEED_DIR}:ro",
            # root on a bare-metal host may set firewall rules (the tfserving role does)
            "--cap-add",
            "NET_ADMIN",
        ]
        if host.emulated:
            args += ["--arch", "arm64"]
        if host.cpus:
            args += ["--cpus", f"{host.cpus:g}"]
        podman(*args, image)
        host.port = _published_ssh_port(host.container)

    def _host_public_key(self, host: FleetHost) -> str:
        return (self.state_dir / "hosts" / host.name / "ssh_host_ed25519_key.pub").read_text().strip()

    def _write_known_hosts(self, hosts: list[FleetHost]) -> None:
        lines = [known_hosts_line(LOOPBACK, h.port, self._host_public_key(h)) for h in hosts]
        _atomic_write(self.known_hosts, "\n".join(lines) + "\n")

    def ssh_options(self) -> list[str]:
        return [
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "IdentitiesOnly=yes",
        ]

    def _write_inventory(self, hosts: list[FleetHost]) -> None:
        groups: dict[str, dict] = {}
        for h in sorted(hosts, key=lambda h: h.name):
            groups.setdefault(h.group, {"hosts": {}})["hosts"][h.name] = {
                "ansible_host": LOOPBACK,
                "ansible_port": h.port,
                "fleet_arch": h.arch,
            }
        inventory = {
            "all": {
                "vars": {
                    "ansible_user": LOGIN_USER,
                    "ansible_ssh_private_key_file": str(self.client_key),
                    "ansible_ssh_common_args": " ".join(self.ssh_options()),
                    "ansible_python_interpreter": "/usr/bin/python3",
                },
                "children": groups,
            }
        }
        header = f"# Simulated fleet '{self.name}', written by `python -m sim.fleet up`. Do not edit.\n"
        _atomic_write(self.inventory, header + yaml.safe_dump(inventory, sort_keys=False))

    def _ssh_ok(self, host: FleetHost, timeout: float = 10.0) -> bool:
        cmd = [
            "ssh",
            *self.ssh_options(),
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={int(timeout)}",
            "-i",
            str(self.client_key),
            "-p",
            str(host.port),
            f"{LOGIN_USER}@{LOOPBACK}",
            "true",
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout + 5, check=False)
        except subprocess.TimeoutExpired:
            return False
        return proc.returncode == 0

    def _wait_for_ssh(self, host: FleetHost) -> None:
        limit = SSH_WAIT_SECONDS["emulated" if host.emulated else "native"]
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self._ssh_ok(host):
                return
            time.sleep(0.5)
        raise FleetError(
            f"{host.name}: sshd did not answer on {LOOPBACK}:{host.port} within {limit:.0f} s "
            f"(podman logs {host.container})"
        )


def _running(container: str) -> bool:
    return podman("inspect", "--format", "{{.State.Running}}", container).strip() == "true"


def _published_ssh_port(container: str) -> int:
    mapping = podman("port", container, "22/tcp").strip().splitlines()
    if not mapping:
        raise FleetError(f"{container}: sshd port was not published")
    return int(mapping[0].rsplit(":", 1)[1])


def _forget_cached_facts(host_name: str) -> None:
    """A new container under an old name must not inherit the old one's cached facts."""
    cache = Path(os.environ.get("ANSIBLE_CACHE_PLUGIN_CONNECTION") or FACT_CACHE_DIR)
    (cache / host_name).unlink(missing_ok=True)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
