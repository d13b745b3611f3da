# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils.image_archive_manifest: the manifest reader (image IDs, tags, digests) on real ``docker save`` archives and on
layouts built here (docker save classic, Docker 25+, OCI)."""

from __future__ import annotations

import json
import os

import pytest

from image_archive_helpers import (  # shared with the other image_archive tests
    compress, needs_docker, needs_zstd, tar_bytes, sha, build_archive, real_archives,
)

from ansible_collections.gpulab.provision.plugins.module_utils import image_archive_manifest as ia_manifest
from ansible_collections.gpulab.provision.plugins.module_utils import image_archive_refs as ia_refs
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_error import ImageArchiveError


@pytest.fixture(scope="session")
def real(tmp_path_factory):
    """A tiny image from the local dockerd, saved, compressed and truncated (image_archive_helpers)."""
    yield from real_archives(tmp_path_factory)


@needs_docker
@pytest.mark.parametrize("variant", ["tar", "tar.gz", "tar.xz",
                                     pytest.param("tar.zst", marks=needs_zstd)])
def test_real_archive_ids_and_tags_match_docker_inspect(real, variant):
    info = ia_manifest.scan_archive(real[variant])
    assert [img["id"] for img in info["images"]] == [real["id"]]
    assert info["images"][0]["tags"] == real["inspect_tags"] == [real["ref"]]
    assert info["format"] == "docker"
    assert info["compression"] == {"tar": "none", "tar.gz": "gzip", "tar.xz": "xz", "tar.zst": "zstd"}[variant]
    assert info["uncompressed_size"] == os.path.getsize(real["tar"])
    if variant == "tar":
        # headers only, by seeking: far less than the file
        assert info["sha256"] is None
        assert info["bytes_read"] < os.path.getsize(real["tar"])
    else:
        # one read gives both the manifest and the checksum of the file
        assert info["sha256"] == sha(open(real[variant], "rb").read())
        assert info["bytes_read"] == os.path.getsize(real[variant])


@needs_docker
@pytest.mark.parametrize("variant", ["truncated", "truncated.gz", pytest.param("truncated.zst", marks=needs_zstd)])
def test_real_truncated_archives(real, variant):
    with pytest.raises(ImageArchiveError) as exc:
        ia_manifest.scan_archive(real[variant])
    assert exc.value.kind == "truncated"
    assert "archive is truncated or not a tar" in str(exc.value)


@pytest.mark.parametrize("layout,fmt", [("classic", "docker"), ("docker25", "docker+oci"), ("oci", "oci")])
@pytest.mark.parametrize("comp", ["", "gz", "xz", pytest.param("zst", marks=needs_zstd)])
def test_synthetic_layouts(tmp_path, layout, fmt, comp):
    path = str(tmp_path / "img.tar")
    image_id = build_archive(path, tags=["gpulab-test/synthetic:1.0", "nvcr.io/nvidia/pytorch:23.10-py3"],
                             layout=layout)
    if comp:
        path = compress(path, comp)
    info = ia_manifest.scan_archive(path)
    assert info["format"] == fmt
    assert len(info["images"]) == 1
    img = info["images"][0]
    assert img["id"] == image_id
    want = ["docker.io/gpulab-test/synthetic:1.0", "nvcr.io/nvidia/pytorch:23.10-py3"]
    assert [ia_refs.normalize_ref(t) for t in img["tags"]] == want
    if layout != "classic":
        assert img["digests"] and img["digests"][0].startswith("sha256:")


def test_oci_bare_ref_name_is_not_a_tag(tmp_path):
    path = str(tmp_path / "img.tar")
    build_archive(path, tags=[], layout="oci", index_names=[])
    # a bare org.opencontainers.image.ref.name ("1.0") names no repository
    with open(path, "rb") as f:
        data = f.read()
    info = ia_manifest.scan_archive(path)
    assert info["images"][0]["tags"] == []
    assert data  # archive readable


def test_multi_image_archive_and_nested_index(tmp_path):
    """Two images in one OCI archive, one behind a multi-platform index."""
    layer = tar_bytes({"a": b"a"})
    blobs = {}
    ids = {}
    manifests = {}
    for arch in ("amd64", "arm64"):
        cfg = json.dumps({"architecture": arch, "os": "linux", "rootfs": {"diff_ids": []}}).encode()
        blobs[sha(cfg)] = cfg
        ids[arch] = "sha256:" + sha(cfg)
        man = json.dumps({"schemaVersion": 2, "config": {"digest": ids[arch], "size": len(cfg)},
                          "layers": [{"digest": "sha256:" + sha(layer), "size": len(layer)}]}).encode()
        blobs[sha(man)] = man
        manifests[arch] = "sha256:" + sha(man)
    blobs[sha(layer)] = layer
    index = json.dumps({"schemaVersion": 2, "mediaType": ia_manifest.MEDIA_INDEX[0], "manifests": [
        {"digest": manifests[a], "platform": {"os": "linux", "architecture": a}} for a in ("arm64", "amd64")]}).encode()
    blobs[sha(index)] = index
    top = {"schemaVersion": 2, "manifests": [
        {"mediaType": ia_manifest.MEDIA_INDEX[0], "digest": "sha256:" + sha(index),
         "annotations": {"io.containerd.image.name": "docker.io/lab/multi:2.0"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifests["arm64"],
         "annotations": {"org.opencontainers.image.ref.name": "lab/arm-only:1.0"}},
    ]}
    members = dict(("blobs/sha256/" + k, v) for k, v in sorted(blobs.items()))
    members["index.json"] = json.dumps(top).encode()
    path = tmp_path / "multi.tar"
    path.write_bytes(tar_bytes(members))
    info = ia_manifest.scan_archive(str(path))
    assert info["format"] == "oci"
    first, second = info["images"]
    host = ia_manifest._host_arch()
    assert first["id"] == ids.get(host, ids["arm64"])
    assert first["tags"] == ["docker.io/lab/multi:2.0"]
    assert "sha256:" + sha(index) in first["digests"]
    assert second["id"] == ids["arm64"] and second["tags"] == ["lab/arm-only:1.0"]


def test_non_image_tar(tmp_path):
    path = tmp_path / "random.tar"
    path.write_bytes(tar_bytes({"data.bin": os.urandom(20000), "README": b"not an image"}))
    for p in (str(path), compress(str(path), "gz")):
        with pytest.raises(ImageArchiveError) as exc:
            ia_manifest.scan_archive(p)
        assert exc.value.kind == "not_image"
        assert str(exc.value) == "no manifest.json or index.json: not a docker save / OCI archive"
