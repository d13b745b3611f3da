# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SHA-256 of archive files: the user's checksum parsed, a whole file hashed, a mismatch reported."""

from __future__ import annotations

import re

from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_error import ImageArchiveError
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_streams import open_archive


def parse_checksum(value):
    """``sha256:<hex>`` or bare hex -> lower-case hex, or None when not given."""
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip().lower()
    algo, sep, hexpart = text.partition(":")
    if not sep:
        algo, hexpart = "sha256", text
    if algo != "sha256":
        raise ImageArchiveError("checksum: unsupported algorithm %r, only sha256 is supported" % algo,
                                kind="invalid")
    if not re.match(r"^[0-9a-f]{64}$", hexpart):
        raise ImageArchiveError("checksum: %r is not sha256:<64 hex digits>" % value, kind="invalid")
    return hexpart


def hash_file(path):
    """(sha256 hex, bytes read) of the whole file, streaming."""
    raw = open_archive(path, "none").raw
    try:
        raw.drain()
        return raw.hexdigest(), raw.bytes_read
    finally:
        raw.close()


def checksum_mismatch(path, expected, actual):
    """The error for a file whose SHA-256 (hex) is not the expected one (hex)."""
    return ImageArchiveError("checksum mismatch for %s: expected sha256:%s, got sha256:%s"
                             % (path, expected, actual), kind="checksum",
                             expected="sha256:" + expected, actual="sha256:" + actual)
