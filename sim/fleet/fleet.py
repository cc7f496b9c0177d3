"""The simulated fleet: podman containers booted with systemd, or QEMU virtual machines with real
kernels and NUMA nodes (sim/fleet/vm.py), reachable over SSH with pinned host keys.

Everything a fleet needs on the controller side lives in one state directory, yours alone (0700:
it holds the login key and the known_hosts every connection trusts):
    id_ed25519(.pub)   the controller's login key (fresh for every new fleet)
    hosts/<name>/      each host's seed: its own SSH host key and the authorized login key; a VM's
                       disks, pid file and console log beside it
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

from sim.fleet import vm as vm_machine
from sim.fleet.emulation import enable_aarch64_emulation
from sim.fleet.image import LOGIN_USER, SEED_DIR, ensure_image
from sim.fleet.keys import generate_keypair, known_hosts_line
from sim.fleet.podman import podman, podman_succeeds
from sim.fleet.vm import VmError, VmPaths, VmShape
from sim.fleet.vm_image import VmImage, ensure_vm_image

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STATE_DIR = REPO_ROOT / ".fleet"
# ansible.cfg's fact cache; a process may point Ansible elsewhere (ANSIBLE_CACHE_PLUGIN_CONNECTION).
FACT_CACHE_DIR = REPO_ROOT / ".ansible" / "facts"
LOOPBACK = "127.0.0.1"
# A third of a core: about 3x slower than a host that has a core to itself.
SLOW_CPUS = 0.33
# A VM boots its own kernel under TCG: about 40 s to sshd on x86_64, minutes for aarch64.
SSH_WAIT_SECONDS = {"container": 90.0, "emulated container": 300.0, "vm": 300.0, "emulated vm": 1200.0}

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
    # A virtual machine rather than a container: its NUMA nodes, memory, accelerator (kvm or tcg) and
    # its place on the fleet LAN (an address other VMs reach it at; empty where no LAN could be made).
    vm: bool = False
    numa: int = 1
    memory_mb: int = 0
    accel: str = ""
    lan_index: int = 0
    lan_address: str = ""

    @property
    def emulated(self) -> bool:
        return self.arch != platform.machine()

    @property
    def kind(self) -> str:
        return ("emulated " if self.emulated else "") + ("vm" if self.vm else "container")


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
        vm: VmShape | None = None,
    ) -> list[FleetHost]:
        """Make sure COUNT native hosts and AARCH64 emulated hosts of GROUP run; start what is missing.
        The last SLOW native hosts get a CPU quota of SLOW_CPUS (they start with it; a running host
        keeps what it has). With VM, the hosts are virtual machines of that shape (NUMA nodes, memory)."""
        if count < 0 or aarch64 < 0 or count + aarch64 == 0:
            raise FleetError("ask for at least one host (up N [--aarch64 M])")
        if not 0 <= slow <= count or slow_cpus <= 0:
            raise FleetError(f"--slow must be between 0 and {count} native hosts, --slow-cpus above 0")
        if vm is not None and slow:
            raise FleetError("--slow is a container's CPU quota: a VM host is slow already (TCG)")
        if vm is not None:
            try:
                vm.check()
            except VmError as err:
                raise FleetError(str(err)) from err
        wanted = [self._host(group, platform.machine(), i, vm) for i in range(1, count + 1)]
        for host in wanted[count - slow :]:
            host.cpus = slow_cpus
        wanted += [self._host(group, "aarch64", i, vm) for i in range(1, aarch64 + 1)]
        known = {h.name: h for h in self.hosts()}
        self._private_state_dir()
        public_key = generate_keypair(self.client_key, f"recbench-fleet-{self.name}")
        hosts = list(known.values())
        started = time.monotonic()
        for host in wanted:
            current = known.get(host.name)
            if current and self._machine(current).exists(current):
                self._machine(current).resume(current, log)
                continue
            if host.vm:
                host.lan_index = 1 + max((h.lan_index for h in hosts if h.vm), default=0)
            log(f"{host.name}: starting ({host.arch}, {host.kind}{f', {host.numa} NUMA nodes' if host.vm else ''})")
            self._machine(host).start(host, self._new_seed(host, public_key), log)
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
        """Remove every container and VM of this fleet, its LAN and its state directory (keys included)."""
        hosts = self.hosts()
        for host in hosts:
            self._machine(host).remove(host)
            _forget_cached_facts(host.name)
            log(f"{host.name}: removed")
        vm_machine.remove_lan(self.name, [h.lan_index for h in hosts if h.vm])
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
            state = self._machine(host).state(host)
            reachable = state == "running" and self._ssh_ok(host)
            row = {
                "host": host.name,
                "group": host.group,
                "arch": host.arch,
                "kind": host.kind,
                "address": f"{LOOPBACK}:{host.port}",
                "state": state,
                "cpus": f"{host.cpus:g}" if host.cpus else "unlimited",
            }
            if host.vm:
                row |= {"accel": host.accel, "numa": str(host.numa), "memory": f"{host.memory_mb}M"}
                row["lan"] = host.lan_address or "none"
            rows.append(row | {"ssh": "ok" if reachable else "unreachable"})
        return rows

    # --- helpers -----------------------------------------------------------------------------
    def _host(self, group: str, arch: str, index: int, vm: VmShape | None = None) -> FleetHost:
        infix = ("vm-" if vm else "") + ("" if arch == platform.machine() else "a64-")
        name = f"{group}-{infix}{index:02d}"
        host = FleetHost(name=name, arch=arch, group=group, container=f"recbench-{self.name}-{name}")
        if vm:
            host.vm, host.numa, host.memory_mb = True, vm.numa, vm.memory_mb
        return host

    def _machine(self, host: FleetHost) -> _Containers | _Vms:
        return _Vms(self) if host.vm else _Containers(self)

    def host_dir(self, host: FleetHost) -> Path:
        return self.state_dir / "hosts" / host.name

    def _new_seed(self, host: FleetHost, public_key: str) -> Path:
        """The host's seed: its own SSH host key, the controller's login key, a VM's LAN address."""
        seed = self.host_dir(host) / "seed"
        shutil.rmtree(self.host_dir(host), ignore_errors=True)
        seed.mkdir(parents=True)
        generate_keypair(seed / "ssh_host_ed25519_key", f"root@{host.name}")
        (seed / "authorized_keys").write_text(public_key + "\n")
        return seed

    def _host_public_key(self, host: FleetHost) -> str:
        return (self.host_dir(host) / "seed" / "ssh_host_ed25519_key.pub").read_text().strip()

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
                "fleet_kind": h.kind,
            } | ({"fleet_lan_address": h.lan_address} if h.lan_address else {})
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

    def ssh_command(self, host: FleetHost, command: str, timeout: float = 10.0) -> list[str]:
        """ssh argv running COMMAND on HOST as the login user, its host key checked (for tests and
        benchmarks that look inside a host)."""
        return [
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
            command,
        ]

    def _ssh_ok(self, host: FleetHost, timeout: float = 10.0) -> bool:
        try:
            proc = subprocess.run(self.ssh_command(host, "true", timeout), capture_output=True, timeout=timeout + 5)
        except subprocess.TimeoutExpired:
            return False
        return proc.returncode == 0

    def _wait_for_ssh(self, host: FleetHost) -> None:
        limit = SSH_WAIT_SECONDS[host.kind]
        machine = self._machine(host)
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self._ssh_ok(host):
                return
            if machine.state(host) != "running":
                raise FleetError(f"{host.name}: stopped while booting ({machine.where_to_look(host)})")
            time.sleep(0.5)
        raise FleetError(
            f"{host.name}: sshd did not answer on {LOOPBACK}:{host.port} within {limit:.0f} s "
            f"({machine.where_to_look(host)})"
        )


class _Containers:
    """Fleet hosts as podman containers booted with systemd (one kernel: this machine's)."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def exists(self, host: FleetHost) -> bool:
        return podman_succeeds("container", "exists", host.container)

    def state(self, host: FleetHost) -> str:
        if not self.exists(host):
            return "missing"
        return podman("inspect", "--format", "{{.State.Status}}", host.container).strip()

    def resume(self, host: FleetHost, log: Log) -> None:
        if _running(host.container):
            return
        if host.emulated:
            enable_aarch64_emulation()
        log(f"{host.name}: starting stopped container")
        podman("start", host.container)
        host.port = _published_ssh_port(host.container)

    def start(self, host: FleetHost, seed: Path, log: Log) -> None:
        image = ensure_image(host.arch, log)
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
            f"recbench.fleet={self.fleet.name}",
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

    def remove(self, host: FleetHost) -> None:
        podman("rm", "--force", "--time", "5", host.container, check=False)

    def where_to_look(self, host: FleetHost) -> str:
        return f"podman logs {host.container}"


class _Vms:
    """Fleet hosts as QEMU virtual machines (sim/fleet/vm.py): their own kernels and NUMA nodes."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def paths(self, host: FleetHost) -> VmPaths:
        return VmPaths(self.fleet.host_dir(host))

    def exists(self, host: FleetHost) -> bool:
        return self.paths(host).disk.exists()

    def state(self, host: FleetHost) -> str:
        if not self.exists(host):
            return "missing"
        return "running" if vm_machine.running(self.paths(host)) else "stopped"

    def resume(self, host: FleetHost, log: Log) -> None:
        if vm_machine.running(self.paths(host)):
            return
        log(f"{host.name}: booting stopped VM")
        try:
            image = vm_machine.image_of(self.paths(host))
        except VmError as err:
            raise FleetError(f"{host.name}: {err}") from err
        tap = vm_machine.ensure_tap(self.fleet.name, host.lan_index) if host.lan_address else None
        self._boot(host, image, tap)

    def start(self, host: FleetHost, seed: Path, log: Log) -> None:
        image = ensure_vm_image(host.arch, log)
        host.accel = vm_machine.accelerator(host.arch, image, log)
        tap = vm_machine.ensure_tap(self.fleet.name, host.lan_index)
        host.lan_address = vm_machine.lan_address(host.lan_index) if tap else ""
        if tap:
            network = seed / "network"
            network.mkdir()
            (network / "10-lan.network").write_text(vm_machine.lan_network_file(host.lan_index))
        vm_machine.make_disks(self.paths(host), image, seed)
        self._boot(host, image, tap)

    def _boot(self, host: FleetHost, image: VmImage, tap: str | None) -> None:
        shape = VmShape(numa=host.numa, memory_mb=host.memory_mb)
        spec = vm_machine.VmSpec(host.arch, host.name, shape, host.accel, tap, host.lan_index)
        paths = self.paths(host)
        try:
            host.port = vm_machine.start(lambda port: vm_machine.qemu_command(spec, image, paths, port), paths)
        except VmError as err:
            raise FleetError(f"{host.name}: {err}") from err

    def remove(self, host: FleetHost) -> None:
        vm_machine.stop(self.paths(host))

    def where_to_look(self, host: FleetHost) -> str:
        paths = self.paths(host)
        return f"console {paths.console}: {vm_machine.console_tail(paths)}"


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
