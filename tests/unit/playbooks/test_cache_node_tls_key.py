# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cache_node role's TLS key check (tasks/tls_key.yml): real ansible-playbook, real runuser.

The registry caches run as docker-registry and read the key themselves; a key that user cannot
read fails the run naming cache_node_tls_key and the fix. Here the user is ``nobody`` (the role's
registry user overridden), the key a real file whose mode decides.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
PLAY = """- name: The TLS key check
  hosts: cache1
  gather_facts: false
  tasks:
    - name: Check
      ansible.builtin.include_role:
        name: gpulab.provision.cache_node
        tasks_from: tls_key
"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("runuser"), reason="needs root and runuser")


@pytest.fixture
def key_dir():
    # not under pytest's tmp_path: its parents are 0700, which nobody cannot search
    directory = tempfile.mkdtemp(prefix="gpulab-tls-")
    os.chmod(directory, 0o755)
    yield directory
    shutil.rmtree(directory)


def check(tmp_path, key):
    (tmp_path / "hosts.yml").write_text("all:\n  hosts:\n    cache1: {ansible_connection: local, ansible_python_interpreter: %s}\n"
                                        % sys.executable)
    (tmp_path / "play.yml").write_text(PLAY)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=os.path.join(str(tmp_path), ".ansible-tmp"))
    return subprocess.run([PLAYBOOK, "-i", "hosts.yml", "play.yml", "-e", "_cache_node_registry_user=nobody",
                           "-e", "cache_node_tls_key=%s" % key, "-e", "__cache_node_key_user_known=true"],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=180, check=False)


def test_a_key_the_registry_user_cannot_read_fails_naming_the_variable_and_the_fix(tmp_path, key_dir):
    key = os.path.join(key_dir, "cache.key")
    with open(key, "w", encoding="utf-8") as handle:
        handle.write("-----BEGIN PRIVATE KEY-----\n")
    os.chmod(key, 0o600)
    out = check(tmp_path, key)
    assert out.returncode != 0
    assert "cache_node_tls_key: %s is not readable by the user nobody" % key in out.stdout, out.stdout
    assert "chmod 0640" in out.stdout


def test_a_key_the_registry_user_can_read_passes(tmp_path, key_dir):
    key = os.path.join(key_dir, "cache.key")
    with open(key, "w", encoding="utf-8") as handle:
        handle.write("-----BEGIN PRIVATE KEY-----\n")
    os.chmod(key, 0o644)
    out = check(tmp_path, key)
    assert out.returncode == 0, out.stdout + out.stderr
