# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils.image_archive_digest: checksums: parsing the user's, hashing a file, the mismatch error."""

from __future__ import annotations

import os

import pytest

from image_archive_helpers import sha  # shared with the other image_archive tests

from ansible_collections.gpulab.provision.plugins.module_utils import image_archive_digest as ia_digest
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_error import ImageArchiveError


def test_checksum_parsing():
    h = "ab" * 32
    assert ia_digest.parse_checksum("sha256:" + h) == h
    assert ia_digest.parse_checksum(h.upper()) == h
    assert ia_digest.parse_checksum(None) is None and ia_digest.parse_checksum("") is None
    for bad in ("md5:" + h, "sha256:1234", "zz" * 32):
        with pytest.raises(ImageArchiveError) as exc:
            ia_digest.parse_checksum(bad)
        assert exc.value.kind == "invalid"


def test_hash_file_reads_the_whole_file(tmp_path):
    path = tmp_path / "a.bin"
    data = os.urandom(3 * (1 << 20) + 7)   # more than one read chunk
    path.write_bytes(data)
    assert ia_digest.hash_file(str(path)) == (sha(data), len(data))


def test_checksum_mismatch_names_both_digests():
    exc = ia_digest.checksum_mismatch("/srv/a.tar", "a" * 64, "b" * 64)
    assert exc.kind == "checksum"
    assert str(exc) == "checksum mismatch for /srv/a.tar: expected sha256:%s, got sha256:%s" % ("a" * 64, "b" * 64)
    assert exc.details == {"expected": "sha256:" + "a" * 64, "actual": "sha256:" + "b" * 64}
