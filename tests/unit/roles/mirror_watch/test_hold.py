# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tasks_from: hold - the script of the task itself, run with sh and flock as the host runs it.

It checks the lock as the watcher does (module_utils/host_lock.py) before flock opens it: flock(1)
would follow a symlink and use another user's file.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
TASKS = os.path.join(ROOT, "roles", "mirror_watch", "tasks", "hold.yml")

pytestmark = pytest.mark.skipif(not shutil.which("flock"), reason="util-linux flock")


def hold(lock, lease, holder="ansible-playbook failover"):
    with open(TASKS, encoding="utf-8") as handle:
        argv = yaml.safe_load(handle)[0]["ansible.builtin.command"]["argv"]
    assert argv[:2] == ["sh", "-c"]
    assert argv[4:] == ["{{ mirror_watch_lock_path }}", "{{ mirror_watch_lease_path }}",
                        "ansible-playbook {{ ansible_play_name | default('') }}"]
    done = subprocess.run(argv[:4] + [str(lock), str(lease), holder], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=30, check=False)
    return done.returncode, done.stderr.decode()


def _mode(path):
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


def test_it_creates_the_directory_0755_the_lock_0600_and_writes_the_lease(tmp_path):
    lock, lease = tmp_path / "run" / "gpulab" / "mirrors.lock", tmp_path / "lease"
    assert hold(lock, lease) == (0, "")
    assert _mode(lock.parent) == 0o755 and _mode(lock) == 0o600 and lease.read_text() == "ansible-playbook failover\n"
    assert hold(lock, lease) == (0, "")  # again, on the existing lock


def test_a_world_writable_directory_is_refused_naming_the_variable(tmp_path):
    shared = tmp_path / "lock"
    shared.mkdir()
    shared.chmod(0o1777)
    rc, err = hold(shared / "gpulab-mirrors.lock", tmp_path / "lease")
    assert rc == 3 and err == (
        "mirror_watch_lock_path (%s): the lock directory %s is group- or world-writable (mode 1777), so another user "
        "can create or replace the lock; use a directory only root writes, such as /run/gpulab\n"
        % (shared / "gpulab-mirrors.lock", shared))
    assert list(shared.iterdir()) == [] and not (tmp_path / "lease").exists()


def test_a_symlink_and_a_fifo_are_refused(tmp_path):
    (tmp_path / "mirrors.lock").symlink_to(tmp_path / "target")
    rc, err = hold(tmp_path / "mirrors.lock", tmp_path / "lease")
    assert rc == 3 and "the lock file %s is a symbolic link; remove it" % (tmp_path / "mirrors.lock") in err
    assert not (tmp_path / "target").exists()
    os.mkfifo(str(tmp_path / "fifo.lock"))
    rc, err = hold(tmp_path / "fifo.lock", tmp_path / "lease")
    assert rc == 3 and "is not a regular file; remove it" in err


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create another user's file")
def test_another_users_lock_file_or_directory_is_refused(tmp_path):
    lock = tmp_path / "mirrors.lock"
    lock.write_text("")
    os.chown(str(lock), 65534, 65534)
    rc, err = hold(lock, tmp_path / "lease")
    assert rc == 3 and "the lock file %s is owned by uid 65534, not root" % lock in err
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(str(theirs), 65534, 65534)
    rc, err = hold(theirs / "mirrors.lock", tmp_path / "lease")
    assert rc == 3 and "the lock directory %s is owned by uid 65534, not root" % theirs in err
    assert not (tmp_path / "lease").exists()
