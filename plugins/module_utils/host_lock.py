# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lock the watcher and Ansible share on a host, safe against the host's other users.

``flock`` works on any open file, read-only included: whoever can open the lock file can hold it
forever, and whoever can create it first in a shared directory decides what it is (a symlink, a
FIFO, a file of theirs). So the lock lives in a directory that only root writes
(:data:`DEFAULT_LOCK_PATH`, ``/run/gpulab`` ``0755`` root, created here when missing), and the file
is opened without following a symlink (``O_NOFOLLOW``), without blocking on a FIFO, and refused
unless it is a regular file owned by root (the process's own user when not run as root). A file
this code creates is ``0600``: no other user can open it, so none can hold it.

A lock that cannot be taken is not an exception: :class:`Lock` says ``acquired = False`` and
``reason`` (one line, naming the path, the problem and the fix), and the writer defers its switch.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time

DEFAULT_LOCK_PATH = "/run/gpulab/mirrors.lock"
DIR_MODE = 0o755
FILE_MODE = 0o600
_OPEN_FLAGS = os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


class LockRefused(Exception):
    """The lock file or its directory is not safe to use; the message says why and the fix."""


def _owner_name(uid):
    return "root" if uid == 0 else "uid %d" % uid


def safe_dir(directory, euid=None, makedirs=os.makedirs):
    """Create ``directory`` (``0755``) when missing; refuse one another user owns or may write.

    :raises LockRefused: not a directory, owned by another user than root (or ``euid``), or
        group/world-writable.
    """
    euid = os.geteuid() if euid is None else euid
    if not os.path.lexists(directory):
        try:
            makedirs(directory, mode=DIR_MODE, exist_ok=True)
            # makedirs' mode passes through the umask; the directory must be exactly 0755.
            info = os.lstat(directory)
            if stat.S_ISDIR(info.st_mode) and info.st_uid == euid:
                os.chmod(directory, DIR_MODE)
        except OSError as exc:
            raise LockRefused("cannot create the lock directory %s (%s)" % (directory, exc.strerror or exc))
    try:
        info = os.stat(directory)
    except OSError as exc:
        raise LockRefused("cannot use the lock directory %s (%s)" % (directory, exc.strerror or exc))
    if not stat.S_ISDIR(info.st_mode):
        raise LockRefused("the lock directory %s is not a directory" % directory)
    if info.st_uid not in (0, euid):
        raise LockRefused("the lock directory %s is owned by %s, not %s; another user can replace the lock: "
                          "remove it (it is recreated as root's, mode 0755)"
                          % (directory, _owner_name(info.st_uid), _owner_name(euid)))
    if info.st_mode & 0o022:
        raise LockRefused("the lock directory %s is group- or world-writable (mode %04o), so another user can "
                          "create or replace the lock; use a directory only root writes, such as %s"
                          % (directory, stat.S_IMODE(info.st_mode), os.path.dirname(DEFAULT_LOCK_PATH)))
    return info


def open_lock(path, euid=None, makedirs=os.makedirs):
    """The lock file's descriptor, opened safely (see the module docstring).

    :raises LockRefused: the directory or the file is not safe, or the file cannot be opened.
    """
    euid = os.geteuid() if euid is None else euid
    safe_dir(os.path.dirname(os.path.abspath(path)), euid, makedirs)
    old_umask = os.umask(0o077)
    try:
        fd = os.open(path, _OPEN_FLAGS, FILE_MODE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LockRefused("the lock file %s is a symbolic link; remove it" % path)
        raise LockRefused("cannot open the lock file %s (%s)" % (path, exc.strerror or exc))
    finally:
        os.umask(old_umask)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise LockRefused("the lock file %s is not a regular file; remove it" % path)
        if info.st_uid not in (0, euid):
            raise LockRefused("the lock file %s is owned by %s, not %s (another user created it and can hold it); "
                              "remove it" % (path, _owner_name(info.st_uid), _owner_name(euid)))
        if info.st_mode & 0o077:
            os.fchmod(fd, FILE_MODE)  # ours: from now on no other user can open it
    except BaseException:
        os.close(fd)
        raise
    return fd


def lock_holders(fd, locks_path="/proc/locks"):
    """The pids holding a lock on ``fd``'s file (from ``/proc/locks``; empty when unknown)."""
    try:
        info = os.fstat(fd)
        with open(locks_path, encoding="ascii", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return []
    wanted = "%02x:%02x:%d" % (os.major(info.st_dev), os.minor(info.st_dev), info.st_ino)
    pids = []
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 00:2d:5678 0 EOF" ("->" marks a waiter)
        if len(fields) >= 6 and "->" not in fields[1] and fields[5].lower() == wanted and fields[4].isdigit():
            pids.append(int(fields[4]))
    return sorted(set(pids))


class Lock:
    """flock on the lock file the watcher and Ansible share.

    ``acquired`` is False when the lock was refused (see :func:`open_lock`) or still held after
    ``wait_s``; ``reason`` then says why, in one line without credentials.
    """

    def __init__(self, path, wait_s, sleep=time.sleep, clock=time.monotonic, euid=None):
        self.path, self.wait_s, self.sleep, self.clock, self.euid = path, wait_s, sleep, clock, euid
        self.fd = None
        self.acquired = False
        self.refused = False
        self.reason = None

    def __enter__(self):
        try:
            self.fd = open_lock(self.path, self.euid)
        except LockRefused as exc:
            self.refused, self.reason = True, str(exc)
            return self
        give_up = self.clock() + float(self.wait_s)
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.acquired = True
                return self
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    self.reason = "cannot lock %s (%s)" % (self.path, exc.strerror or exc)
                    return self
                if self.clock() >= give_up:
                    holders = lock_holders(self.fd)
                    self.reason = "%s is held by another writer%s for more than %s s" % (
                        self.path, " (pid %s)" % ", ".join(str(pid) for pid in holders) if holders else "",
                        self.wait_s)
                    return self
                self.sleep(0.2)

    def __exit__(self, *exc):
        if self.fd is not None:
            if self.acquired:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
        return False
