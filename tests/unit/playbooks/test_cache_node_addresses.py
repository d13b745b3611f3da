# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cache_node role's preflight with two cache nodes in the inventory: real ansible-playbook.

Two nodes that advertise one address fail the role's preflight naming both, before any task that
could change the node; with their own addresses the check passes and the preflight goes on.
"""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
LOCAL = "ansible_connection: local, ansible_python_interpreter: %s" % sys.executable
PLAY = """- name: The cache node role's preflight
  hosts: cache1
  gather_facts: false
  tasks:
    - name: Preflight
      ansible.builtin.include_role:
        name: gpulab.provision.cache_node
        tasks_from: preflight
"""


def preflight(tmp_path, second_address):
    (tmp_path / "hosts.yml").write_text(
        "gpulab_cache_nodes:\n"
        "  hosts:\n"
        "    cache1: {%s, ansible_host: 10.0.0.5}\n"
        "    cache2: {%s, ansible_host: %s}\n" % (LOCAL, LOCAL, second_address))
    (tmp_path / "play.yml").write_text(PLAY)
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.update(ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=os.path.join(str(tmp_path), ".ansible-tmp"))
    return subprocess.run([PLAYBOOK, "-i", "hosts.yml", "play.yml"], cwd=str(tmp_path), env=env, capture_output=True,
                          text=True, timeout=180, check=False)


def test_two_nodes_on_one_address_fail_the_preflight_naming_both(tmp_path):
    out = preflight(tmp_path, "10.0.0.5")
    assert out.returncode != 0
    assert "cache nodes cache1 and cache2 both advertise 10.0.0.5" in out.stdout, out.stdout
    assert "give each node its own cache_node_advertise_address" in out.stdout
    # it stopped there: nothing after the check ran
    assert "Plan the registry instances" not in out.stdout


def test_nodes_with_their_own_addresses_pass_the_check(tmp_path):
    out = preflight(tmp_path, "10.0.0.6")
    assert "both advertise" not in out.stdout
    assert "ok: [cache1]" in out.stdout.split("Check the lab's cache nodes together", 1)[1].split("TASK", 1)[0], out.stdout
