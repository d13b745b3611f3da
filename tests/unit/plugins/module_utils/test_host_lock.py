# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lock shared by gpulab-mirror-watch and Ansible: only root's file, in a directory only root writes.

Before 1.3.0 the lock was ``/run/lock/gpulab-mirrors.lock`` (world-writable, sticky), opened for
append: a file another user created there first was used as is (and held by them at will).
"""

from __future__ import annotations

import fcntl
import os
import stat
import threading
import time

import pytest
import yaml

from ansible_collections.gpulab.provision.plugins.module_utils import host_lock
from ansible_collections.gpulab.provision.plugins.module_utils.client_files import Lock as ReExported
from ansible_collections.gpulab.provision.plugins.module_utils.host_lock import DEFAULT_LOCK_PATH, Lock, lock_holders
from ansible_collections.gpulab.provision.plugins.module_utils.watch_config import DEFAULT_SETTINGS

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
OTHER_UID = 65534  # nobody
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create another user's file")


def _mode(path):
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


def test_the_default_is_in_a_root_owned_directory_everywhere_it_is_named():
    assert DEFAULT_LOCK_PATH == "/run/gpulab/mirrors.lock" == DEFAULT_SETTINGS["lock_path"]
    assert ReExported is Lock  # client_files' name for it (mirror_probe_all)
    with open(os.path.join(ROOT, "roles", "mirror_watch", "defaults", "main.yml"), encoding="utf-8") as handle:
        assert yaml.safe_load(handle)["mirror_watch_lock_path"] == DEFAULT_LOCK_PATH
    with open(os.path.join(ROOT, "roles", "mirror_watch", "meta", "argument_specs.yml"), encoding="utf-8") as handle:
        specs = yaml.safe_load(handle)["argument_specs"]
    assert {spec["options"]["mirror_watch_lock_path"]["default"] for spec in specs.values()
            if "mirror_watch_lock_path" in spec["options"]} == {DEFAULT_LOCK_PATH}
    for path in ("plugins/modules/mirror_probe_all.py", "roles/mirror_watch/README.md", "docs/mirror_watch.md"):
        with open(os.path.join(ROOT, path), encoding="utf-8") as handle:
            text = handle.read()
        assert DEFAULT_LOCK_PATH in text and "/run/lock/gpulab-mirrors.lock\n" not in text, path


def test_a_missing_directory_is_created_0755_and_the_file_0600_whatever_the_umask(tmp_path):
    path = tmp_path / "run" / "gpulab" / "mirrors.lock"
    old = os.umask(0)
    try:
        with Lock(str(path), 1) as lock:
            assert lock.acquired and not lock.refused and lock.reason is None
    finally:
        os.umask(old)
    assert _mode(path.parent) == 0o755 and _mode(path) == 0o600
    assert path.stat().st_uid == os.geteuid()


def test_an_existing_file_of_ours_readable_by_others_is_made_0600(tmp_path):
    path = tmp_path / "mirrors.lock"
    path.write_text("")
    path.chmod(0o644)  # flock needs only a read-only descriptor: others must not be able to open it
    with Lock(str(path), 1) as lock:
        assert lock.acquired
    assert _mode(path) == 0o600


@pytest.mark.parametrize("mode", [0o1777, 0o777, 0o775])
def test_a_directory_others_may_write_is_refused_and_nothing_created(tmp_path, mode):
    shared = tmp_path / "lock"  # what /run/lock is: 1777
    shared.mkdir()
    shared.chmod(mode)
    with Lock(str(shared / "gpulab-mirrors.lock"), 1) as lock:
        assert not lock.acquired and lock.refused
    assert lock.reason == ("the lock directory %s is group- or world-writable (mode %04o), so another user can create "
                           "or replace the lock; use a directory only root writes, such as /run/gpulab" % (shared, mode))
    assert list(shared.iterdir()) == []


def test_a_symlink_planted_at_the_lock_path_is_not_followed(tmp_path):
    target = tmp_path / "elsewhere"
    (tmp_path / "mirrors.lock").symlink_to(target)
    with Lock(str(tmp_path / "mirrors.lock"), 1) as lock:
        assert not lock.acquired and lock.refused
    assert lock.reason == "the lock file %s is a symbolic link; remove it" % (tmp_path / "mirrors.lock")
    assert not target.exists()


def test_a_fifo_at_the_lock_path_is_refused_without_blocking(tmp_path):
    os.mkfifo(str(tmp_path / "mirrors.lock"))
    started = time.monotonic()
    with Lock(str(tmp_path / "mirrors.lock"), 1) as lock:
        assert not lock.acquired and "is not a regular file; remove it" in lock.reason
    assert time.monotonic() - started < 1


@as_root
def test_a_lock_file_another_user_created_is_refused_naming_the_owner(tmp_path):
    # the attack: a user creates the file first (in the old world-writable /run/lock) and holds it
    path = tmp_path / "mirrors.lock"
    path.write_text("")
    os.chown(str(path), OTHER_UID, OTHER_UID)
    with Lock(str(path), 1) as lock:
        assert not lock.acquired and lock.refused
    assert lock.reason == ("the lock file %s is owned by uid %d, not root (another user created it and can hold it); "
                           "remove it" % (path, OTHER_UID))


@as_root
def test_a_directory_another_user_owns_is_refused(tmp_path):
    theirs = tmp_path / "gpulab"
    theirs.mkdir(mode=0o755)
    os.chown(str(theirs), OTHER_UID, OTHER_UID)
    with Lock(str(theirs / "mirrors.lock"), 1) as lock:
        assert lock.refused and "is owned by uid %d, not root" % OTHER_UID in lock.reason
    assert list(theirs.iterdir()) == []


def test_a_held_lock_names_the_holder_after_the_wait(tmp_path):
    path = tmp_path / "mirrors.lock"
    with Lock(str(path), 1) as first:
        assert first.acquired
        started = time.monotonic()
        with Lock(str(path), 0.4) as second:
            assert not second.acquired and not second.refused
        assert 0.35 < time.monotonic() - started < 2
    assert second.reason == "%s is held by another writer (pid %d) for more than 0.4 s" % (path, os.getpid())
    with Lock(str(path), 0) as third:  # released: taken at once
        assert third.acquired


def test_the_lock_is_taken_as_soon_as_the_holder_lets_go(tmp_path):
    path = tmp_path / "mirrors.lock"
    fd = os.open(str(path), os.O_RDONLY | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    threading.Timer(0.3, os.close, (fd,)).start()
    with Lock(str(path), 5) as lock:
        assert lock.acquired


def test_lock_holders_reads_proc_locks_for_this_file_only(tmp_path):
    path = tmp_path / "mirrors.lock"
    path.write_text("")
    info = path.stat()
    dev = "%02x:%02x:%d" % (os.major(info.st_dev), os.minor(info.st_dev), info.st_ino)
    locks = tmp_path / "locks"
    locks.write_text("1: FLOCK  ADVISORY  WRITE 4242 %s 0 EOF\n"
                     "1: -> FLOCK  ADVISORY  WRITE 5151 %s 0 EOF\n"
                     "2: POSIX  ADVISORY  WRITE 77 00:01:1 0 EOF\n" % (dev, dev))
    fd = os.open(str(path), os.O_RDONLY)
    try:
        assert lock_holders(fd, str(locks)) == [4242]
        assert lock_holders(fd, str(tmp_path / "absent")) == []
    finally:
        os.close(fd)


def test_a_directory_that_cannot_be_created_is_refused_with_the_reason(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with Lock(str(blocker / "gpulab" / "mirrors.lock"), 1) as lock:
        assert lock.refused and lock.reason.startswith("cannot create the lock directory %s" % (blocker / "gpulab"))
    assert host_lock.FILE_MODE == 0o600 and host_lock.DIR_MODE == 0o755
