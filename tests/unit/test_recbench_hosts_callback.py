"""The recbench_hosts callback, in a real ansible-playbook run on three local hosts: the busiest host is
named with its own time, and a failed host is listed with its task."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PLAY = """
- hosts: all
  gather_facts: false
  strategy: ansible.builtin.free
  tasks:
    - name: Work on b only
      ansible.builtin.command: sleep 2
      changed_when: false
      when: inventory_hostname == 'b'
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
    assert re.search(r"c: failed at 'Fail on c' \(\S+Z\): c gave up", output), output
