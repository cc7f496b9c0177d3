"""The fleet's failure threshold (playbooks/tasks/fail_threshold.yml), in a real ansible-playbook run on
three local hosts: one lost in a free play is a third of the fleet, which stops the run at a 20 %
threshold and not at 50 %; and no run prints Ansible's warning about max_fail_percentage under free."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PLAY = """
- name: A stage whose hosts go at their own pace
  hosts: all
  gather_facts: false
  strategy: ansible.builtin.free
  tasks:
    - name: Lose c
      ansible.builtin.fail:
        msg: c is lost
      when: inventory_hostname == 'c'

- name: The next stage's planning play
  hosts: all
  gather_facts: false
  tasks:
    - name: Check the fleet's failure threshold
      ansible.builtin.import_tasks: {threshold}

    - name: Go on
      ansible.builtin.debug:
        msg: the stage goes on
"""


def run_with(threshold: int, repo: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    play = tmp_path / "play.yml"
    play.write_text(PLAY.format(threshold=repo / "playbooks/tasks/fail_threshold.yml"))
    return subprocess.run(
        ["ansible-playbook", "-i", "a,b,c,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
         "-e", f"recbench_max_fail_percentage={threshold}", str(play)],
        cwd=repo, capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_too_many_lost_hosts_stop_the_run_and_fewer_do_not(repo: Path, tmp_path: Path) -> None:
    stopped = run_with(20, repo, tmp_path)
    output = stopped.stdout + stopped.stderr
    assert stopped.returncode != 0
    assert (
        "recbench: 1 of 3 hosts failed or were lost before this stage, more than recbench_max_fail_percentage (20 %)"
        in output
    )
    assert "the stage goes on" not in output
    went_on = run_with(50, repo, tmp_path)
    output = went_on.stdout + went_on.stderr
    assert output.count('"msg": "the stage goes on"') == 2, output  # a and b; c was lost
    assert "max_fail_percentage" not in output.replace("recbench_max_fail_percentage", "")
