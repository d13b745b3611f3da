# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a read of an archive found, remembered per file, so a re-run on an unchanged file reads none of it."""

from __future__ import annotations

import hashlib
import json
import os
import stat

from ansible_collections.gpulab.provision.plugins.module_utils.atomic_file import replace_text

CACHE_VERSION = 1


def stat_key(st):
    """What must stay the same for a cache entry to hold: device, inode, size, mtime, ctime."""
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


class ManifestCache(object):
    """What a read of an archive found, keyed by its path and stat (inode, size, mtime, ctime).

    A changed file (new inode, size, mtime or ctime) misses. The directory must belong to the
    current user and not be writable by others, or the cache is ignored.
    """

    def __init__(self, directory):
        self.directory = directory

    def _file(self, realpath):
        return os.path.join(self.directory,
                            hashlib.sha256(realpath.encode("utf-8", "surrogateescape")).hexdigest()[:40]
                            + ".json")

    def _trusted(self, path):
        try:
            st = os.lstat(path)
        except OSError:
            return False
        return st.st_uid == os.geteuid() and not st.st_mode & 0o022 and not stat.S_ISLNK(st.st_mode)

    def load(self, realpath, st):
        if not self.directory or not self._trusted(self.directory):
            return None
        path = self._file(realpath)
        if not self._trusted(path):
            return None
        try:
            with open(path, "r") as f:
                entry = json.load(f)
        except (OSError, ValueError):
            return None
        if (not isinstance(entry, dict) or entry.get("version") != CACHE_VERSION
                or entry.get("path") != realpath or entry.get("stat") != stat_key(st)
                or not isinstance(entry.get("info"), dict)):
            return None
        return entry["info"]

    def store(self, realpath, st, info):
        if not self.directory:
            return False
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            if not self._trusted(self.directory):
                return False
            keep = dict((k, info.get(k)) for k in ("format", "compression", "size", "uncompressed_size",
                                                   "sha256", "images"))
            entry = {"version": CACHE_VERSION, "path": realpath, "stat": stat_key(st), "info": keep}
            replace_text(self._file(realpath), json.dumps(entry), mode=0o600, prefix=".tmp-")
            return True
        except (OSError, ValueError, TypeError):
            return False
