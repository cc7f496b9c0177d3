"""SSH keys of the simulated fleet: the controller's login key, each host's own host key, known_hosts."""

from __future__ import annotations

import subprocess
from pathlib import Path


def generate_keypair(private_key: Path, comment: str) -> str:
    """Create an ed25519 key pair at PRIVATE_KEY (and .pub) unless it exists; return the public key."""
    if not private_key.exists():
        private_key.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(private_key)],
            check=True,
        )
    return private_key.with_suffix(".pub").read_text().strip()


def known_hosts_line(address: str, port: int, public_key: str) -> str:
    """One known_hosts entry in OpenSSH's `[address]:port keytype key` form (no comment)."""
    key_type, key_body = public_key.split()[:2]
    host = address if port == 22 else f"[{address}]:{port}"
    return f"{host} {key_type} {key_body}"
