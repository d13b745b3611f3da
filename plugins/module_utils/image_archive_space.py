# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Room for a load: the engine unpacks the stream once to stage it and once into its image store."""

from __future__ import annotations

import os

from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_error import ImageArchiveError


def free_bytes(path):
    """(existing directory checked, bytes available to unprivileged users) for path or a parent."""
    probe = os.path.abspath(path)
    while not os.path.isdir(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    st = os.statvfs(probe)
    return probe, st.f_bavail * st.f_frsize


def check_space(directory, uncompressed_size, min_free_bytes=0):
    """{path, needed, available} for a load of ``uncompressed_size`` bytes; ImageArchiveError(kind='space')
    when the file system of ``directory`` (or its nearest existing parent) has less than
    2 x uncompressed_size + min_free_bytes available."""
    checked, available = free_bytes(directory)
    min_free_bytes = int(min_free_bytes or 0)
    needed = 2 * int(uncompressed_size) + min_free_bytes
    if available < needed:
        raise ImageArchiveError(
            "not enough free space in %s: need %d bytes (2 x %d uncompressed, unpacked once to stage and "
            "once into the image store, + min_free_bytes %d), available %d"
            % (checked, needed, uncompressed_size, min_free_bytes, available),
            kind="space", needed=needed, available=available, path=checked)
    return {"path": checked, "needed": needed, "available": available}
