# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils.image_archive: the manifest reader on real ``docker save`` archives, and the logic.

Archives made by the local dockerd (``docker import`` of a one-file tar, then ``docker save``) are
the reference: the image IDs and tags read from .tar, .tar.gz and .tar.zst must equal what
``docker image inspect`` says. Tests that need dockerd are skipped when ``docker info`` fails;
the rest use archives built here in Python (docker save classic, Docker 25+ and OCI layouts).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import uuid

import pytest

from image_archive_helpers import (  # shared with the other image_archive tests
    DOCKER_OK, DOCKER_WHY, compress, docker_import, needs_docker, needs_zstd, rmi, sh, tar_bytes, sha,
)

from ansible_collections.gpulab.provision.plugins.module_utils import image_archive as ia


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def build_archive(path, tags=("gpulab-test/synthetic:1.0",), layout="classic", payload=b"hello\n",
                  arch="amd64", index_names=None):
    """A docker save style archive made in Python; returns the image ID.

    layout: classic (docker <= 24), docker25 (OCI layout + manifest.json pointing at blobs) or oci
    (index.json only). index_names: annotations for index.json (default: the tags, fully qualified).
    """
    layer = tar_bytes({"hello.txt": payload})
    config = json.dumps({"architecture": arch, "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha(layer)]}},
                        sort_keys=True).encode()
    image_id = "sha256:" + sha(config)
    members = {}
    if layout == "classic":
        layer_dir = sha(layer + b"dir")
        members[sha(config) + ".json"] = config
        members[layer_dir + "/VERSION"] = b"1.0"
        members[layer_dir + "/json"] = b'{"id":"%s"}' % layer_dir.encode()
        members[layer_dir + "/layer.tar"] = layer
        members["manifest.json"] = json.dumps([{"Config": sha(config) + ".json", "RepoTags": list(tags) or None,
                                                "Layers": [layer_dir + "/layer.tar"]}]).encode()
    else:
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": "sha256:" + sha(config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": "sha256:" + sha(layer), "size": len(layer)}]}).encode()
        members["blobs/sha256/" + sha(config)] = config
        members["blobs/sha256/" + sha(layer)] = layer
        members["blobs/sha256/" + sha(manifest)] = manifest
        names = index_names if index_names is not None else [ia.normalize_ref(t) for t in tags]
        descs = []
        for name in names or [None]:
            desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": "sha256:" + sha(manifest), "size": len(manifest),
                    "platform": {"architecture": arch, "os": "linux"}}
            if name:
                desc["annotations"] = {"io.containerd.image.name": name,
                                       "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]}
            descs.append(desc)
        members["index.json"] = json.dumps({"schemaVersion": 2, "manifests": descs}).encode()
        members["oci-layout"] = b'{"imageLayoutVersion":"1.0.0"}'
        if layout == "docker25":
            members["manifest.json"] = json.dumps([{"Config": "blobs/sha256/" + sha(config),
                                                    "RepoTags": list(tags) or None,
                                                    "Layers": ["blobs/sha256/" + sha(layer)]}]).encode()
    with open(path, "wb") as f:
        f.write(tar_bytes(members))
    return image_id


def truncate_copy(src, dst, keep):
    with open(src, "rb") as f:
        data = f.read()
    with open(dst, "wb") as f:
        f.write(data[:keep if keep >= 0 else len(data) + keep])
    return dst


def run_cli(argv):
    p = subprocess.run(argv, capture_output=True, text=True, check=False)
    return p.returncode, p.stdout, p.stderr


# ---------------------------------------------------------------------------------------------
# fixtures: real archives from dockerd
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def real(tmp_path_factory):
    """A tiny image made with docker import, saved with docker save, plus its variants."""
    if not DOCKER_OK:
        pytest.skip("needs a working dockerd (%s)" % DOCKER_WHY)
    d = tmp_path_factory.mktemp("image-archive-real")
    repo = "gpulab-test/ia-tiny-%s" % uuid.uuid4().hex[:8]
    ref = repo + ":1.0"
    image_id = docker_import(ref, {"hello.txt": ("gpulab %s\n" % repo).encode()})
    try:
        out = {"id": image_id, "ref": ref, "repo": repo, "dir": str(d)}
        out["tar"] = str(d / "tiny.tar")
        sh("docker", "save", "-o", out["tar"], ref)
        out["inspect_tags"] = json.loads(sh("docker", "image", "inspect", "--format", "{{json .RepoTags}}",
                                            ref).stdout)
        out["tar.gz"] = compress(out["tar"], "gz")
        out["tar.xz"] = compress(out["tar"], "xz")
        if shutil.which("zstd"):
            out["tar.zst"] = compress(out["tar"], "zst")
        out["truncated"] = truncate_copy(out["tar"], str(d / "truncated.tar"), os.path.getsize(out["tar"]) // 2)
        out["truncated.gz"] = truncate_copy(out["tar.gz"], str(d / "truncated.tar.gz"), -20)
        if "tar.zst" in out:
            out["truncated.zst"] = truncate_copy(out["tar.zst"], str(d / "truncated.tar.zst"), -10)
        out["sha256"] = sha(open(out["tar"], "rb").read())
        yield out
    finally:
        rmi(image_id)


# ---------------------------------------------------------------------------------------------
# manifest reader on real archives
# ---------------------------------------------------------------------------------------------

@needs_docker
@pytest.mark.parametrize("variant", ["tar", "tar.gz", "tar.xz",
                                     pytest.param("tar.zst", marks=needs_zstd)])
def test_real_archive_ids_and_tags_match_docker_inspect(real, variant):
    info = ia.scan_archive(real[variant])
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
    with pytest.raises(ia.ImageArchiveError) as exc:
        ia.scan_archive(real[variant])
    assert exc.value.kind == "truncated"
    assert "archive is truncated or not a tar" in str(exc.value)


@needs_docker
def test_real_checksum_verified_while_streaming(real, tmp_path):
    out = tmp_path / "copy.tar"

    class FileSink(object):
        def __init__(self):
            self.f = open(str(out), "wb")
            self.state = None

        def write(self, data):
            self.f.write(data)

        def commit(self):
            self.f.close()
            self.state = "committed"
            return ""

        def abort(self):
            self.f.close()
            self.state = "aborted"

    for variant in ("tar", "tar.gz"):
        sink = FileSink()
        res = ia.stream_into(real[variant], ia.detect_compression(real[variant]), sink,
                             expected_sha256=sha(open(real[variant], "rb").read()), hold_back=1024)
        assert sink.state == "committed"
        assert out.read_bytes() == open(real["tar"], "rb").read()
        assert res["tar_bytes"] == os.path.getsize(real["tar"])

    sink = FileSink()
    with pytest.raises(ia.ImageArchiveError) as exc:
        ia.stream_into(real["tar"], "none", sink, expected_sha256="0" * 64, hold_back=4096, chunk=1024)
    assert exc.value.kind == "checksum"
    assert "expected sha256:%s, got sha256:%s" % ("0" * 64, real["sha256"]) in str(exc.value)
    assert sink.state == "aborted"
    sent = out.read_bytes()
    # the engine never saw the end of the tar (at most one byte past the held-back tail, sent to
    # put the cut inside a tar block)
    assert 0 < len(sent) <= os.path.getsize(real["tar"]) - 4096 + 1
    assert len(sent) % 512 != 0


@needs_docker
def test_real_load_through_process_sink_and_docker_engine(real):
    """stream_into + ProcessSink + DockerEngine against the real dockerd (the module does the same)."""
    engine = ia.DockerEngine(run_cli)
    rmi(real["id"])
    info = ia.scan_archive(real["tar"])
    present, refs = engine.query(info["images"], [real["ref"]])
    assert present == set() and refs == {}

    # wrong checksum: the stream is cut and docker load is killed: nothing loaded
    sink = ia.ProcessSink(engine.load_argv())
    with pytest.raises(ia.ImageArchiveError):
        ia.stream_into(real["tar"], "none", sink, expected_sha256="1" * 64, hold_back=2048, chunk=1000)
    sink.close()
    assert engine.query(info["images"], [real["ref"]])[0] == set()

    sink = ia.ProcessSink(engine.load_argv())
    res = ia.stream_into(real["tar"], "none", sink, expected_sha256=real["sha256"])
    sink.close()
    assert res["sha256"] == real["sha256"]
    present, refs = engine.query(info["images"], [real["ref"]])
    assert present == {real["id"]}
    assert refs == {ia.normalize_ref(real["ref"]): {real["id"]}}


def test_docker_engine_query_parses_cli(monkeypatch):
    images = [{"id": "sha256:" + "a" * 64, "tags": ["x/y:1"], "digests": ["sha256:" + "b" * 64]}]
    calls = []

    def run(argv):
        calls.append(argv)
        return (1, '"sha256:%s"\t["x/y:1","registry.lab/x/y:1"]\n\n' % ("a" * 64),
                "Error response from daemon: No such image: sha256:%s\n" % ("b" * 64))

    present, refs = ia.DockerEngine(run).query(images, ["x/y:1"])
    assert present == {"sha256:" + "a" * 64}
    assert refs["docker.io/x/y:1"] == {"sha256:" + "a" * 64}
    assert refs["registry.lab/x/y:1"] == {"sha256:" + "a" * 64}
    assert calls[0][:3] == ["docker", "image", "inspect"]

    def down(argv):
        return 1, "", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock.\n"

    with pytest.raises(ia.ImageArchiveError) as exc:
        ia.DockerEngine(down).query(images, [])
    assert exc.value.kind == "engine"


def test_containerd_engine_query_parses_cli():
    img = {"id": "sha256:" + "c" * 64, "tags": ["x/y:1"], "digests": []}
    manifest = {"config": {"digest": img["id"]}, "layers": []}
    ls = ("REF TYPE DIGEST SIZE PLATFORMS LABELS\n"
          "docker.io/x/y:1 application/vnd.docker.distribution.manifest.v2+json sha256:%s 1 KiB linux/amd64 -\n"
          "docker.io/x/y:2 application/vnd.docker.distribution.manifest.v2+json sha256:%s 1 KiB linux/amd64 -\n"
          % ("d" * 64, "e" * 64))

    def run(argv):
        assert argv[:5] == ["ctr", "--address", "/run/c.sock", "--namespace", "k8s.io"]
        if argv[5:7] == ["images", "ls"]:
            return 0, ls, ""
        if argv[5:7] == ["content", "get"]:
            if argv[7] == "sha256:" + "d" * 64:
                return 0, json.dumps(manifest), ""
            return 0, json.dumps({"config": {"digest": "sha256:" + "f" * 64}, "layers": []}), ""
        raise AssertionError(argv)

    engine = ia.ContainerdEngine(run, namespace="k8s.io", address="/run/c.sock")
    present, refs = engine.query([img], ["x/y:1", "x/y:2", "x/y:3"])
    assert present == {img["id"]}
    assert refs == {"docker.io/x/y:1": {img["id"]}, "docker.io/x/y:2": set()}
    assert engine.load_argv()[-3:] == ["images", "import", "-"]


# ---------------------------------------------------------------------------------------------
# manifest reader on archives built here (no docker needed)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout,fmt", [("classic", "docker"), ("docker25", "docker+oci"), ("oci", "oci")])
@pytest.mark.parametrize("comp", ["", "gz", "xz", pytest.param("zst", marks=needs_zstd)])
def test_synthetic_layouts(tmp_path, layout, fmt, comp):
    path = str(tmp_path / "img.tar")
    image_id = build_archive(path, tags=["gpulab-test/synthetic:1.0", "nvcr.io/nvidia/pytorch:23.10-py3"],
                             layout=layout)
    if comp:
        path = compress(path, comp)
    info = ia.scan_archive(path)
    assert info["format"] == fmt
    assert len(info["images"]) == 1
    img = info["images"][0]
    assert img["id"] == image_id
    want = ["docker.io/gpulab-test/synthetic:1.0", "nvcr.io/nvidia/pytorch:23.10-py3"]
    assert [ia.normalize_ref(t) for t in img["tags"]] == want
    if layout != "classic":
        assert img["digests"] and img["digests"][0].startswith("sha256:")


def test_oci_bare_ref_name_is_not_a_tag(tmp_path):
    path = str(tmp_path / "img.tar")
    build_archive(path, tags=[], layout="oci", index_names=[])
    # a bare org.opencontainers.image.ref.name ("1.0") names no repository
    with open(path, "rb") as f:
        data = f.read()
    info = ia.scan_archive(path)
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
    index = json.dumps({"schemaVersion": 2, "mediaType": ia.MEDIA_INDEX[0], "manifests": [
        {"digest": manifests[a], "platform": {"os": "linux", "architecture": a}} for a in ("arm64", "amd64")]}).encode()
    blobs[sha(index)] = index
    top = {"schemaVersion": 2, "manifests": [
        {"mediaType": ia.MEDIA_INDEX[0], "digest": "sha256:" + sha(index),
         "annotations": {"io.containerd.image.name": "docker.io/lab/multi:2.0"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifests["arm64"],
         "annotations": {"org.opencontainers.image.ref.name": "lab/arm-only:1.0"}},
    ]}
    members = dict(("blobs/sha256/" + k, v) for k, v in sorted(blobs.items()))
    members["index.json"] = json.dumps(top).encode()
    path = tmp_path / "multi.tar"
    path.write_bytes(tar_bytes(members))
    info = ia.scan_archive(str(path))
    assert info["format"] == "oci"
    first, second = info["images"]
    host = ia._host_arch()
    assert first["id"] == ids.get(host, ids["arm64"])
    assert first["tags"] == ["docker.io/lab/multi:2.0"]
    assert "sha256:" + sha(index) in first["digests"]
    assert second["id"] == ids["arm64"] and second["tags"] == ["lab/arm-only:1.0"]


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
        info = ia.scan_archive(str(out))
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
        info = ia.scan_archive(path)
        assert info["images"][0]["id"] == "sha256:" + sha(cfg)
        assert info["uncompressed_size"] == os.path.getsize(str(big))
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 64 * 1024, "peak RSS grew by %d KiB scanning a 256 MiB layer" % grown_kib


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(ia.ImageArchiveError) as exc:
        ia.scan_archive(str(tmp_path / "nope.tar"))
    assert exc.value.kind == "missing"
    assert "archive not found: %s" % (tmp_path / "nope.tar") in str(exc.value)
    with pytest.raises(ia.ImageArchiveError) as exc:
        ia.scan_archive(str(tmp_path))
    assert exc.value.kind == "missing"


def test_non_image_tar(tmp_path):
    path = tmp_path / "random.tar"
    path.write_bytes(tar_bytes({"data.bin": os.urandom(20000), "README": b"not an image"}))
    for p in (str(path), compress(str(path), "gz")):
        with pytest.raises(ia.ImageArchiveError) as exc:
            ia.scan_archive(p)
        assert exc.value.kind == "not_image"
        assert str(exc.value) == "no manifest.json or index.json: not a docker save / OCI archive"


@pytest.mark.parametrize("content", [b"", os.urandom(5000), b"\0" * 4096, b"just text\n" * 100])
def test_not_a_tar(tmp_path, content):
    path = tmp_path / "x.tar"
    path.write_bytes(content)
    with pytest.raises(ia.ImageArchiveError) as exc:
        ia.scan_archive(str(path))
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
    with pytest.raises(ia.ImageArchiveError) as exc:
        ia.scan_archive(path)
    assert exc.value.kind == "truncated", exc.value


def test_truncated_compressed_stream(tmp_path):
    full = str(tmp_path / "full.tar")
    build_archive(full, payload=os.urandom(50000))
    gz = compress(full, "gz")
    with open(gz, "rb") as f:
        data = f.read()
    for keep in (len(data) - 4, len(data) // 2):
        cut = tmp_path / ("cut-%d.tar.gz" % keep)
        cut.write_bytes(data[:keep])
        with pytest.raises(ia.ImageArchiveError) as exc:
            ia.scan_archive(str(cut))
        assert exc.value.kind == "truncated"


def test_corrupt_gzip_body(tmp_path):
    full = str(tmp_path / "full.tar")
    build_archive(full, payload=os.urandom(50000))
    data = bytearray(open(compress(full, "gz"), "rb").read())
    for i in range(200, 400):
        data[i] ^= 0xFF
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(bytes(data))
    with pytest.raises(ia.ImageArchiveError) as exc:
        ia.scan_archive(str(bad))
    assert exc.value.kind == "truncated" and "archive is truncated or not a tar" in str(exc.value)


def test_checksum_parsing():
    h = "ab" * 32
    assert ia.parse_checksum("sha256:" + h) == h
    assert ia.parse_checksum(h.upper()) == h
    assert ia.parse_checksum(None) is None and ia.parse_checksum("") is None
    for bad in ("md5:" + h, "sha256:1234", "zz" * 32):
        with pytest.raises(ia.ImageArchiveError) as exc:
            ia.parse_checksum(bad)
        assert exc.value.kind == "invalid"


def test_checksum_ok_and_mismatch_in_stream(tmp_path):
    path = str(tmp_path / "a.tar")
    build_archive(path, payload=os.urandom(100000))
    gz = compress(path, "gz")
    digest = sha(open(gz, "rb").read())

    class Sink(object):
        def __init__(self):
            self.buf = io.BytesIO()
            self.state = None

        def write(self, d):
            self.buf.write(d)

        def commit(self):
            self.state = "committed"
            return ""

        def abort(self):
            self.state = "aborted"

    s = Sink()
    ia.stream_into(gz, "gzip", s, expected_sha256=digest, hold_back=1024)
    assert s.state == "committed" and s.buf.getvalue() == open(path, "rb").read()
    s = Sink()
    with pytest.raises(ia.ImageArchiveError) as exc:
        ia.stream_into(gz, "gzip", s, expected_sha256="f" * 64, hold_back=1024)
    assert s.state == "aborted" and exc.value.kind == "checksum"
    assert "expected sha256:%s, got sha256:%s" % ("f" * 64, digest) in str(exc.value)
    # a file that changed since it was read is refused too
    s = Sink()
    with pytest.raises(ia.ImageArchiveError) as exc:
        ia.stream_into(gz, "gzip", s, known_sha256="e" * 64, hold_back=1024)
    assert s.state == "aborted" and "changed while it was being read" in str(exc.value)


def test_detect_compression_ignores_file_name(tmp_path):
    path = str(tmp_path / "a.tar.zst")   # a plain tar with a misleading name
    build_archive(path)
    assert ia.detect_compression(path) == "none"
    assert ia.scan_archive(path)["compression"] == "none"


# ---------------------------------------------------------------------------------------------
# references, latest, retag, plan
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ref,full,familiar,latest", [
    ("ubuntu", "docker.io/library/ubuntu:latest", "ubuntu:latest", True),
    ("ubuntu:20.04", "docker.io/library/ubuntu:20.04", "ubuntu:20.04", False),
    ("docker.io/library/ubuntu:20.04", "docker.io/library/ubuntu:20.04", "ubuntu:20.04", False),
    ("index.docker.io/pytorch/pytorch:2.1", "docker.io/pytorch/pytorch:2.1", "pytorch/pytorch:2.1", False),
    ("nvcr.io/nvidia/pytorch:23.10-py3", "nvcr.io/nvidia/pytorch:23.10-py3", "nvcr.io/nvidia/pytorch:23.10-py3", False),
    ("localhost:5000/lab/x:latest", "localhost:5000/lab/x:latest", "localhost:5000/lab/x:latest", True),
    ("lab/x@sha256:" + "a" * 64, "docker.io/lab/x@sha256:" + "a" * 64, "lab/x@sha256:" + "a" * 64, False),
])
def test_refs(ref, full, familiar, latest):
    assert ia.normalize_ref(ref) == full
    assert ia.familiar_ref(ref) == familiar
    assert ia.is_latest(ref) is latest


@pytest.mark.parametrize("bad", ["", "Upper:1", "lab/Upper:1", "a b:1", "x:" + "t" * 200, "x/:1", "x:1:2"])
def test_bad_refs(bad):
    with pytest.raises(ia.ImageArchiveError) as exc:
        ia.normalize_ref(bad)
    assert exc.value.kind == "invalid"


IMG = {"id": "sha256:" + "1" * 64, "tags": ["pytorch/pytorch:2.1-cuda12.1"], "digests": []}
UNTAGGED = {"id": "sha256:" + "2" * 64, "tags": [], "digests": []}


def test_latest_refused_and_allowed():
    latest = {"id": "sha256:" + "3" * 64, "tags": ["lab/x:latest"], "digests": []}
    for images, targets in (([latest], {}), ([IMG], {IMG["id"]: ["lab/pytorch"]}), ([UNTAGGED], {})):
        with pytest.raises(ia.ImageArchiveError) as exc:
            ia.check_latest(images, targets, allow_latest=False)
        assert exc.value.kind == "latest"
        assert "pytorch-2.1-cuda12.1-ubuntu20.04" in str(exc.value)
        assert "allow_latest" in str(exc.value)
        ia.check_latest(images, targets, allow_latest=True)
    ia.check_latest([IMG], {IMG["id"]: ["lab/pytorch:2.1"]}, allow_latest=False)
    # an untagged image named through retag is fine
    ia.check_latest([UNTAGGED], {UNTAGGED["id"]: ["lab/unnamed:1"]}, allow_latest=False)


def test_retag_mapping_and_prefix():
    images = [IMG, UNTAGGED]
    t = ia.retag_targets(images, retag={"docker.io/pytorch/pytorch:2.1-cuda12.1": "lab/pytorch:2.1",
                                        "222222222222": "lab/unnamed:1"})
    assert t == {IMG["id"]: ["lab/pytorch:2.1"], UNTAGGED["id"]: ["lab/unnamed:1"]}
    t = ia.retag_targets(images, prefix="registry.lab.internal/mirror")
    assert t == {IMG["id"]: ["registry.lab.internal/mirror/pytorch/pytorch:2.1-cuda12.1"], UNTAGGED["id"]: []}
    with pytest.raises(ia.ImageArchiveError) as exc:
        ia.retag_targets(images, retag={"nothere:1": "lab/x:1"})
    assert exc.value.kind == "invalid" and "nothere:1" in str(exc.value)
    for bad in ("Bad Name", "lab/x@sha256:" + "a" * 64):
        with pytest.raises(ia.ImageArchiveError) as exc:
            ia.retag_targets(images, retag={"pytorch/pytorch:2.1-cuda12.1": bad})
        assert exc.value.kind == "invalid"


def test_plan():
    tag = ia.normalize_ref(IMG["tags"][0])
    targets = {IMG["id"]: ["lab/pytorch:2.1"]}
    # absent: load, then tag the extra name
    steps = ia.plan([IMG], targets, set(), {})
    assert steps == [{"id": IMG["id"], "tags": IMG["tags"], "load": True, "tag": ["lab/pytorch:2.1"]}]
    # present with every tag: nothing to do
    full = {tag: {IMG["id"]}, "docker.io/lab/pytorch:2.1": {IMG["id"]}}
    steps = ia.plan([IMG], targets, {IMG["id"]}, full)
    assert steps[0]["load"] is False and steps[0]["tag"] == []
    # present but the archive's tag moved elsewhere: retag, no reload
    steps = ia.plan([IMG], targets, {IMG["id"]}, {tag: {"sha256:other"}, "docker.io/lab/pytorch:2.1": {IMG["id"]}})
    assert steps[0]["load"] is False and steps[0]["tag"] == IMG["tags"]
    # force reloads
    assert ia.plan([IMG], targets, {IMG["id"]}, full, force=True)[0]["load"] is True


def test_free_bytes_walks_up_to_an_existing_dir(tmp_path):
    checked, avail = ia.free_bytes(str(tmp_path / "not" / "yet"))
    assert checked == str(tmp_path) and avail > 0


# ---------------------------------------------------------------------------------------------
# cache and preload (with a fake engine)
# ---------------------------------------------------------------------------------------------

class FakeEngine(object):
    name = "fake"

    def __init__(self, staging):
        self.ids = set()
        self.refs = {}
        self.loads = 0
        self.tags = []
        self.staging = staging

    def query(self, images, refs):
        return set(i["id"] for i in images) & self.ids, dict((k, set(v)) for k, v in self.refs.items())

    def default_staging_dir(self):
        return self.staging

    def can_load(self, info):
        return None

    def load_argv(self, path=None):
        return ["fake-load"] + ([path] if path else [])

    def run(self, argv):
        # the direct load: the engine reads the file itself
        assert argv[0] == "fake-load" and os.path.isfile(argv[1])
        self.loads += 1
        self.direct = argv[1]
        for img in ia.scan_archive(argv[1])["images"]:
            self.ids.add(img["id"])
            for t in img["tags"]:
                self.refs.setdefault(ia.normalize_ref(t), set()).add(img["id"])
        return 0, "", ""

    def tag(self, image_id, ref, source_ref=None):
        self.tags.append(ref)
        self.refs.setdefault(ia.normalize_ref(ref), set()).add(image_id)


def fake_sink_factory(engine, images):
    class Sink(object):
        def __init__(self, argv, label=None):
            self.data = io.BytesIO()

        def write(self, d):
            self.data.write(d)

        def commit(self):
            engine.loads += 1
            for img in images:
                engine.ids.add(img["id"])
                for t in img["tags"]:
                    engine.refs.setdefault(ia.normalize_ref(t), set()).add(img["id"])
            return ""

        def abort(self):
            pass

        def close(self):
            pass
    return Sink


def test_preload_with_cache(tmp_path):
    path = str(tmp_path / "a.tar")
    image_id = build_archive(path, tags=["lab/a:1.0"], payload=os.urandom(5000))
    digest = sha(open(path, "rb").read())
    engine = FakeEngine(str(tmp_path))
    images = ia.scan_archive(path)["images"]
    factory = fake_sink_factory(engine, images)
    cache = str(tmp_path / "cache")
    kw = dict(checksum="sha256:" + digest, cache_dir=cache, sink_factory=factory, retag={"lab/a:1.0": "lab/b:1.0"})

    r = ia.preload(path, engine, check_mode=True, **kw)
    assert r["changed"] and r["images"][0]["action"] == "would_load" and engine.loads == 0
    assert r["images"][0]["retagged"] == ["lab/b:1.0"] and engine.tags == []
    assert not os.path.exists(cache)          # check mode writes nothing

    r = ia.preload(path, engine, **kw)
    assert r["changed"] and r["loaded"] == 1 and engine.loads == 1
    assert r["images"][0] == {"id": image_id, "tags": ["lab/a:1.0"], "action": "loaded", "retagged": ["lab/b:1.0"]}
    assert r["archive"]["sha256"] == "sha256:" + digest and not r["archive"]["from_cache"]

    assert r["load_mode"] == "stream"

    r = ia.preload(path, engine, **kw)
    assert not r["changed"] and r["skipped_count"] == 1 and r["bytes_read"] == 0 and r["archive"]["from_cache"]
    assert r["load_mode"] is None

    # image removed: the cache vouches for the checksum, so the engine reads the file by path
    engine.ids.clear()
    engine.refs.clear()
    r = ia.preload(path, engine, **kw)
    assert r["changed"] and r["load_mode"] == "direct" and engine.loads == 2 and r["bytes_read"] == 0
    assert r["images"][0]["retagged"] == ["lab/b:1.0"]

    # the cache never hides a changed file
    os.utime(path, None)
    engine.ids.clear()
    engine.refs.clear()
    r = ia.preload(path, engine, **kw)
    assert r["changed"] and r["load_mode"] == "stream" and engine.loads == 3
    os.utime(path, None)
    with pytest.raises(ia.ImageArchiveError) as exc:
        bad = dict(kw)
        bad["checksum"] = "0" * 64
        ia.preload(path, engine, **bad)
    assert exc.value.kind == "checksum"
    r = ia.preload(path, engine, **kw)
    assert not r["changed"] and r["bytes_read"] > 0 and not r["archive"]["from_cache"]


def test_preload_space_check_happens_before_any_load(tmp_path):
    path = str(tmp_path / "a.tar")
    build_archive(path, tags=["lab/a:1.0"])
    engine = FakeEngine(str(tmp_path))
    factory = fake_sink_factory(engine, ia.scan_archive(path)["images"])
    with pytest.raises(ia.ImageArchiveError) as exc:
        ia.preload(path, engine, min_free_bytes=1 << 60, sink_factory=factory)
    e = exc.value
    assert e.kind == "space" and engine.loads == 0
    assert "not enough free space in %s" % tmp_path in str(e)
    assert e.details["needed"] > e.details["available"]
    assert "need %d bytes" % e.details["needed"] in str(e) and "available %d" % e.details["available"] in str(e)


def test_cache_ignored_when_others_can_write(tmp_path):
    path = str(tmp_path / "a.tar")
    build_archive(path)
    cache_dir = tmp_path / "c"
    cache = ia.ManifestCache(str(cache_dir))
    st = os.stat(path)
    info = ia.scan_archive(path)
    assert cache.store(path, st, info)
    assert cache.load(path, st)["images"] == info["images"]
    os.chmod(str(cache_dir), 0o777)
    assert cache.load(path, st) is None
