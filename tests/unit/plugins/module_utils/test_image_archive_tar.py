# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils.image_archive_tar: the strict streaming tar reader: long names, flat memory, truncation anywhere."""

from __future__ import annotations

import io
import json
import os
import tarfile

import pytest

from image_archive_helpers import compress, needs_zstd, sha, build_archive  # shared with the other image_archive tests

from ansible_collections.gpulab.provision.plugins.module_utils import image_archive_manifest as ia_manifest
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_error import ImageArchiveError


def test_pax_and_gnu_long_names(tmp_path):
    """Members with names over 100 characters (pax and GNU long-name headers) are found."""
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        src = tmp_path / "src.tar"
        image_id = build_archive(str(src), layout="classic")
        out = tmp_path / ("long-%d.tar" % fmt)
        with tarfile.open(str(src)) as tin, tarfile.open(str(out), "w", format=fmt) as tout:
            for m in tin.getmembers():
                data = tin.extractfile(m).read()
                if m.name == "manifest.json":
                    m.name = "./" + "d" * 120 + "/../manifest.json"
                    tout.addfile(m, io.BytesIO(data))
                    m2 = tarfile.TarInfo("./manifest.json")
                    m2.size = len(data)
                    tout.addfile(m2, io.BytesIO(data))
                else:
                    tout.addfile(m, io.BytesIO(data))
        info = ia_manifest.scan_archive(str(out))
        assert info["images"][0]["id"] == image_id


def test_memory_stays_flat_on_big_members(tmp_path):
    """A layer far bigger than any buffer is skipped, never read into memory (streamed or seeked)."""
    import resource
    big = tmp_path / "big.tar"
    layer_size = 256 << 20
    with tarfile.open(str(big), "w") as tf:
        info = tarfile.TarInfo("0" * 64 + "/layer.tar")
        info.size = layer_size

        class Zeros(io.RawIOBase):
            left = layer_size

            def readable(self):
                return True

            def readinto(self, b):
                n = min(len(b), self.left)
                b[:n] = b"\0" * n
                self.left -= n
                return n

        tf.addfile(info, io.BufferedReader(Zeros(), 1 << 20))
        cfg = b'{"rootfs":{}}'
        ci = tarfile.TarInfo(sha(cfg) + ".json")
        ci.size = len(cfg)
        tf.addfile(ci, io.BytesIO(cfg))
        man = json.dumps([{"Config": sha(cfg) + ".json", "RepoTags": ["a/b:1"], "Layers": []}]).encode()
        mi = tarfile.TarInfo("manifest.json")
        mi.size = len(man)
        tf.addfile(mi, io.BytesIO(man))
    gz = compress(str(big), "gz")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for path in (str(big), gz):
        info = ia_manifest.scan_archive(path)
        assert info["images"][0]["id"] == "sha256:" + sha(cfg)
        assert info["uncompressed_size"] == os.path.getsize(str(big))
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 64 * 1024, "peak RSS grew by %d KiB scanning a 256 MiB layer" % grown_kib


@pytest.mark.parametrize("content", [b"", os.urandom(5000), b"\0" * 4096, b"just text\n" * 100])
def test_not_a_tar(tmp_path, content):
    path = tmp_path / "x.tar"
    path.write_bytes(content)
    with pytest.raises(ImageArchiveError) as exc:
        ia_manifest.scan_archive(str(path))
    assert exc.value.kind == "truncated"
    assert "archive is truncated or not a tar" in str(exc.value)


@pytest.mark.parametrize("comp", ["", "gz", "xz", pytest.param("zst", marks=needs_zstd)])
@pytest.mark.parametrize("cut", ["half", "before_end_block", "in_header"])
def test_truncated_synthetic(tmp_path, comp, cut):
    full = str(tmp_path / "full.tar")
    build_archive(full, layout="docker25", payload=os.urandom(3000))
    with open(full, "rb") as f:
        data = f.read()
    # Python's tarfile pads to 10240: find where the members end
    with tarfile.open(full) as tf:
        end = max(m.offset_data + ((m.size + 511) // 512) * 512 for m in tf.getmembers())
    keep = {"half": len(data) // 2, "before_end_block": end, "in_header": end - 512 * 2 - 100}[cut]
    path = str(tmp_path / "cut.tar")
    with open(path, "wb") as f:
        f.write(data[:keep])
    if comp:
        path = compress(path, comp)
    with pytest.raises(ImageArchiveError) as exc:
        ia_manifest.scan_archive(path)
    assert exc.value.kind == "truncated", exc.value
