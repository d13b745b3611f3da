# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which backups of a file to keep: the ones Ansible's ``backup: true`` leaves beside it.

``ansible.builtin.copy`` (and friends) name a backup ``<file>.<pid>.<YYYY-MM-DD@HH:MM:SS>~``. Every
change leaves one, so they pile up; the roles keep the newest N. :func:`plan_prune` is pure (names
and times in, names out); :func:`prune` applies it to a directory (module ``prune_backups`` and
``client_files``, the writer of the client files).

Newest means the file's own modification time, never the date in its name: a name is only a name
(a backup named with a future date must not make the real newest one go). Only regular files owned
by the user who prunes (root for the roles) count as backups: a directory, a symlink, a FIFO or
another user's file that looks like a backup is neither counted nor removed.
"""

from __future__ import annotations

import os
import re
import stat

_STAMP = r"(?P<stamp>\d{4}-\d{2}-\d{2}@\d{2}:\d{2}:\d{2})"


class PruneError(OSError):
    """Some backups could not be removed; ``removed`` holds the ones that were."""

    def __init__(self, message, removed, failed):
        super().__init__(message)
        self.removed, self.failed = removed, failed


def backup_pattern(basename):
    """The regex a backup of ``basename`` matches (``pip.conf.1234.2026-11-27@13:00:00~``)."""
    return re.compile(r"^%s\.(?P<pid>\d+)\.%s~$" % (re.escape(basename), _STAMP))


def plan_prune(basename, entries, keep):
    """Split the backups of ``basename`` among ``entries`` into (keep, remove), newest first.

    ``entries``: iterable of ``(name, mtime)`` in the file's directory (other names are ignored;
    the caller leaves out what is not a backup file, see :func:`prune`). ``keep``: how many to keep
    (0 removes them all). Newest means the later mtime, then the later name.
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
        raise ValueError("keep must be a whole number >= 0, not %r" % (keep,))
    pattern = backup_pattern(basename)
    found = []
    for name, mtime in entries:
        if pattern.match(name):
            found.append((float(mtime or 0), name))
    found.sort(reverse=True)
    names = [item[1] for item in found]
    return names[:keep], names[keep:]


def backup_entries(directory, basename, owner=None):
    """``(name, mtime)`` of each backup of ``basename`` in ``directory`` that is a regular file owned by ``owner``.

    ``owner``: a uid (default: this process's effective uid). Anything else named like a backup (a
    directory, symlink, FIFO, another user's file) is left out: never counted, never removed.
    """
    owner = os.geteuid() if owner is None else owner
    pattern = backup_pattern(basename)
    entries = []
    for name in os.listdir(directory):
        if not pattern.match(name):
            continue
        try:
            info = os.lstat(os.path.join(directory, name))
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode) and info.st_uid == owner:
            entries.append((name, info.st_mtime))
    return entries


def prune(path, keep, check=False):
    """Remove all but the newest ``keep`` backups of ``path``; returns ``(kept, removed)`` file names.

    A missing directory has no backups. ``check``: only say what would be removed. Every removal
    is tried; when some fail for another reason than a file already gone, :class:`PruneError`
    names them and carries the ones that were removed.
    """
    directory, basename = os.path.split(os.path.abspath(path))
    try:
        entries = backup_entries(directory, basename)
    except (FileNotFoundError, NotADirectoryError):
        return [], []
    kept, removed = plan_prune(basename, entries, keep)
    if check:
        return kept, removed
    done, failed = [], []
    for name in removed:
        try:
            os.unlink(os.path.join(directory, name))
        except FileNotFoundError:
            pass
        except OSError as exc:
            failed.append("%s (%s)" % (os.path.join(directory, name), exc.strerror or exc))
            continue
        done.append(name)
    if failed:
        raise PruneError("cannot remove %s" % ", ".join(failed), done, failed)
    return kept, done
