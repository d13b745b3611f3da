# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils.image_archive_load: the verified stream into an engine: nothing is committed unless the whole file checks out."""

from __future__ import annotations

import io
import os

import pytest

from image_archive_helpers import (  # shared with the other image_archive tests
    compress, needs_docker, rmi, sha, build_archive, run_cli, real_archives,
)

from ansible_collections.gpulab.provision.plugins.module_utils import image_archive_engines as ia_engines
from ansible_collections.gpulab.provision.plugins.module_utils import image_archive_load as ia_load
from ansible_collections.gpulab.provision.plugins.module_utils import image_archive_manifest as ia_manifest
from ansible_collections.gpulab.provision.plugins.module_utils import image_archive_refs as ia_refs
from ansible_collections.gpulab.provision.plugins.module_utils import image_archive_streams as ia_streams
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_error import ImageArchiveError


@pytest.fixture(scope="session")
def real(tmp_path_factory):
    """A tiny image from the local dockerd, saved, compressed and truncated (image_archive_helpers)."""
    yield from real_archives(tmp_path_factory)


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
        res = ia_load.stream_into(real[variant], ia_streams.detect_compression(real[variant]), sink,
                                  expected_sha256=sha(open(real[variant], "rb").read()), hold_back=1024)
        assert sink.state == "committed"
        assert out.read_bytes() == open(real["tar"], "rb").read()
        assert res["tar_bytes"] == os.path.getsize(real["tar"])

    sink = FileSink()
    with pytest.raises(ImageArchiveError) as exc:
        ia_load.stream_into(real["tar"], "none", sink, expected_sha256="0" * 64, hold_back=4096, chunk=1024)
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
    engine = ia_engines.DockerEngine(run_cli)
    rmi(real["id"])
    info = ia_manifest.scan_archive(real["tar"])
    present, refs = engine.query(info["images"], [real["ref"]])
    assert present == set() and refs == {}

    # wrong checksum: the stream is cut and docker load is killed: nothing loaded
    sink = ia_load.ProcessSink(engine.load_argv())
    with pytest.raises(ImageArchiveError):
        ia_load.stream_into(real["tar"], "none", sink, expected_sha256="1" * 64, hold_back=2048, chunk=1000)
    sink.close()
    assert engine.query(info["images"], [real["ref"]])[0] == set()

    sink = ia_load.ProcessSink(engine.load_argv())
    res = ia_load.stream_into(real["tar"], "none", sink, expected_sha256=real["sha256"])
    sink.close()
    assert res["sha256"] == real["sha256"]
    present, refs = engine.query(info["images"], [real["ref"]])
    assert present == {real["id"]}
    assert refs == {ia_refs.normalize_ref(real["ref"]): {real["id"]}}


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
    ia_load.stream_into(gz, "gzip", s, expected_sha256=digest, hold_back=1024)
    assert s.state == "committed" and s.buf.getvalue() == open(path, "rb").read()
    s = Sink()
    with pytest.raises(ImageArchiveError) as exc:
        ia_load.stream_into(gz, "gzip", s, expected_sha256="f" * 64, hold_back=1024)
    assert s.state == "aborted" and exc.value.kind == "checksum"
    assert "expected sha256:%s, got sha256:%s" % ("f" * 64, digest) in str(exc.value)
    # a file that changed since it was read is refused too
    s = Sink()
    with pytest.raises(ImageArchiveError) as exc:
        ia_load.stream_into(gz, "gzip", s, known_sha256="e" * 64, hold_back=1024)
    assert s.state == "aborted" and "changed while it was being read" in str(exc.value)
