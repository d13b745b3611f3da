# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which backups of a file to keep: the ones Ansible's ``backup: true`` leaves beside it.

``ansible.builtin.copy`` (and friends) name a backup ``<file>.<pid>.<YYYY-MM-DD@HH:MM:SS>~``. Every
change leaves one, so they pile up; the roles keep the newest N. :func:`plan_prune` is pure (names
and times in, names out); :func:`prune` applies it to a directory (module ``prune_backups`` and
``client_files``, the writer of the client files).
"""

from __future__ import annotations

import os
import re

_STAMP = r"(?P<stamp>\d{4}-\d{2}-\d{2}@\d{2}:\d{2}:\d{2})"


def backup_pattern(basename):
    """The regex a backup of ``basename`` matches (``pip.conf.1234.2026-11-27@13:00:00~``)."""
    return re.compile(r"^%s\.(?P<pid>\d+)\.%s~$" % (re.escape(basename), _STAMP))


def plan_prune(basename, entries, keep):
    """Split the backups of ``basename`` among ``entries`` into (keep, remove), newest first.

    ``entries``: iterable of ``(name, mtime)`` in the file's directory (other names are ignored).
    ``keep``: how many to keep (0 removes them all). Newest means the later time stamp in the name,
    then the later mtime, then the name.
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
        raise ValueError("keep must be a whole number >= 0, not %r" % (keep,))
    pattern = backup_pattern(basename)
    found = []
    for name, mtime in entries:
        match = pattern.match(name)
        if match:
            found.append((match.group("stamp"), float(mtime or 0), name))
    found.sort(reverse=True)
    names = [item[2] for item in found]
    return names[:keep], names[keep:]


def prune(path, keep, check=False):
    """Remove all but the newest ``keep`` backups of ``path``; returns ``(kept, removed)`` file names.

    A missing directory has no backups. ``check``: only say what would be removed. An unlink that
    fails for another reason than a file already gone raises :class:`OSError` (with its filename).
    """
    directory, basename = os.path.split(os.path.abspath(path))
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return [], []
    entries = []
    for name in names:
        try:
            entries.append((name, os.lstat(os.path.join(directory, name)).st_mtime))
        except OSError:
            continue
    kept, removed = plan_prune(basename, entries, keep)
    if not check:
        for name in removed:
            try:
                os.unlink(os.path.join(directory, name))
            except FileNotFoundError:
                pass
    return kept, removed
