# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replace a file atomically: a temporary file in the same directory, flushed, then ``os.replace``.

One implementation for every file the collection writes on a host outside Ansible's own modules:
the client files (:mod:`client_files`), the watcher's state and fact, image_archive's cache entries.
A reader sees the old file or the new one, never half of one; a failure leaves no temporary file.
"""

from __future__ import annotations

import os
import tempfile


def replace_text(path, text, mode=0o644, owner=None, check=None, prefix=".gpulab."):
    """Write ``text`` to ``path`` through a temporary file; returns nothing.

    ``mode``: the new file's mode. ``owner``: ``(uid, gid)`` to chown to, or None to leave the
    temporary file's. ``check``: a function of the temporary file's path run before the replace;
    it raises to keep the old file.
    """
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        if owner is not None:
            os.chown(tmp, owner[0], owner[1])
        if check is not None:
            check(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
