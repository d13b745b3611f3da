# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils.image_archive_streams: the archive file: missing, compression detected by content, cut or corrupt compressed data."""

from __future__ import annotations

import os

import pytest

from image_archive_helpers import compress, build_archive  # shared with the other image_archive tests

from ansible_collections.gpulab.provision.plugins.module_utils import image_archive_manifest as ia_manifest
from ansible_collections.gpulab.provision.plugins.module_utils import image_archive_streams as ia_streams
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_error import ImageArchiveError


def test_missing_file(tmp_path):
    with pytest.raises(ImageArchiveError) as exc:
        ia_manifest.scan_archive(str(tmp_path / "nope.tar"))
    assert exc.value.kind == "missing"
    assert "archive not found: %s" % (tmp_path / "nope.tar") in str(exc.value)
    with pytest.raises(ImageArchiveError) as exc:
        ia_manifest.scan_archive(str(tmp_path))
    assert exc.value.kind == "missing"


def test_truncated_compressed_stream(tmp_path):
    full = str(tmp_path / "full.tar")
    build_archive(full, payload=os.urandom(50000))
    gz = compress(full, "gz")
    with open(gz, "rb") as f:
        data = f.read()
    for keep in (len(data) - 4, len(data) // 2):
        cut = tmp_path / ("cut-%d.tar.gz" % keep)
        cut.write_bytes(data[:keep])
        with pytest.raises(ImageArchiveError) as exc:
            ia_manifest.scan_archive(str(cut))
        assert exc.value.kind == "truncated"


def test_corrupt_gzip_body(tmp_path):
    full = str(tmp_path / "full.tar")
    build_archive(full, payload=os.urandom(50000))
    data = bytearray(open(compress(full, "gz"), "rb").read())
    for i in range(200, 400):
        data[i] ^= 0xFF
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(bytes(data))
    with pytest.raises(ImageArchiveError) as exc:
        ia_manifest.scan_archive(str(bad))
    assert exc.value.kind == "truncated" and "archive is truncated or not a tar" in str(exc.value)


def test_detect_compression_ignores_file_name(tmp_path):
    path = str(tmp_path / "a.tar.zst")   # a plain tar with a misleading name
    build_archive(path)
    assert ia_streams.detect_compression(path) == "none"
    assert ia_manifest.scan_archive(path)["compression"] == "none"
