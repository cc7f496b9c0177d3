"""The recbench_hosts callback, in a real ansible-playbook run on three local hosts: the busiest host is
named with its own time, a look at a host's sweep queue is a progress line, and a failed host is listed
with its task and how far its queue got; and the one-line reason it shows for a host whose ssh host key
was refused."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import load_plugin

pytestmark = pytest.mark.unit

PLAY = """
- hosts: all
  gather_facts: false
  strategy: ansible.builtin.free
  tasks:
    - name: Work on b only
      ansible.builtin.command: sleep 5
      changed_when: false
      when: inventory_hostname == 'b'
    - name: Look at the queue of c
      ansible.builtin.command:
        argv: [echo, '{"recbench_progress": {"state": "running", "done": 1, "total": 4, "measured": 1,
          "skipped": 0, "failed": 0, "config_id": "dlrm-x", "measuring": {"numa0": "attempt 1: concurrency 2"},
          "heartbeat_age_s": 1}}']
      register: look
      until: look.attempts >= 2
      retries: 3
      delay: 0
      changed_when: false
      when: inventory_hostname == 'c'
    - name: Fail on c
      ansible.builtin.fail:
        msg: c gave up
      when: inventory_hostname == 'c'
"""


def test_the_busiest_host_and_a_failed_one_are_named_after_the_recap(repo: Path, tmp_path: Path) -> None:
    play = tmp_path / "play.yml"
    play.write_text(PLAY)
    proc = subprocess.run(
        ["ansible-playbook", "-i", "a,b,c,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
         str(play)],
        cwd=repo, capture_output=True, text=True, check=False,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    busiest = re.search(r"recbench: busiest hosts \(first task to last\): (\w+) (\d+) s, .*over 3 host\(s\)", output)
    assert busiest, output
    assert busiest.group(1) == "b" and int(busiest.group(2)) >= 2
    assert re.search(r"c: failed at 'Fail on c' \(\S+Z\): c gave up \(its sweep queue, last seen: 1 of 4", output), (
        output
    )
    # each look at a running queue is a line for its host (no terminal here: no bar)
    shown = "recbench: c: running, 1 of 4 configs done (1 measured, 0 recorded before, 0 with failed points), now"
    assert f"{shown} dlrm-x (numa0 attempt 1: concurrency 2), heartbeat 1 s ago" in output, output


callback = load_plugin("plugins/callback/recbench_hosts.py")

# What Ansible reports for a host whose key is not the pinned one (OpenSSH 9, StrictHostKeyChecking=yes).
CHANGED_KEY = (
    "Failed to connect to the host via ssh: @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n"
    "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\n"
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n"
    "IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\r\n"
    "The fingerprint for the ED25519 key sent by the remote host is\r\nSHA256:abc.\r\n"
    "Offending ED25519 key in /home/u/.ssh/known_hosts:3\r\n"
    "Host key for [127.0.0.1]:2201 has changed and you have requested strict checking.\r\n"
    "Host key verification failed."
)
UNKNOWN_KEY = (
    "Failed to connect to the host via ssh: No ED25519 host key is known for [127.0.0.1]:2202 and you have "
    "requested strict checking.\r\n"
    "Host key verification failed."
)


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        (CHANGED_KEY, "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!"),
        (CHANGED_KEY.replace("REMOTE HOST IDENTIFICATION", "remote host identification"),
         "Offending ED25519 key in /home/u/.ssh/known_hosts:3"),
        (UNKNOWN_KEY, UNKNOWN_KEY.splitlines()[0]),
        ("Failed to connect to the host via ssh: ssh: connect to host b port 22: Connection refused\n  more",
         "Failed to connect to the host via ssh: ssh: connect to host b port 22: Connection refused"),
        ("\n  c gave up  \nsecond line", "c gave up"),
        ("", ""),
        ("x" * 400, "x" * 300),
    ],
)  # fmt: skip
def test_a_refused_host_key_is_shown_by_sshs_line_about_the_key_not_its_banner(message: str, shown: str) -> None:
    assert callback.reason(message) == shown
