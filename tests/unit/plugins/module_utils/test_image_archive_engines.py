# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils.image_archive_engines: Docker and containerd through their CLI (output parsing, with a fake run)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.gpulab.provision.plugins.module_utils import image_archive_engines as ia_engines
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_error import ImageArchiveError


def test_docker_engine_query_parses_cli(monkeypatch):
    images = [{"id": "sha256:" + "a" * 64, "tags": ["x/y:1"], "digests": ["sha256:" + "b" * 64]}]
    calls = []

    def run(argv):
        calls.append(argv)
        return (1, '"sha256:%s"\t["x/y:1","registry.lab/x/y:1"]\n\n' % ("a" * 64),
                "Error response from daemon: No such image: sha256:%s\n" % ("b" * 64))

    present, refs = ia_engines.DockerEngine(run).query(images, ["x/y:1"])
    assert present == {"sha256:" + "a" * 64}
    assert refs["docker.io/x/y:1"] == {"sha256:" + "a" * 64}
    assert refs["registry.lab/x/y:1"] == {"sha256:" + "a" * 64}
    assert calls[0][:3] == ["docker", "image", "inspect"]

    def down(argv):
        return 1, "", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock.\n"

    with pytest.raises(ImageArchiveError) as exc:
        ia_engines.DockerEngine(down).query(images, [])
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

    engine = ia_engines.ContainerdEngine(run, namespace="k8s.io", address="/run/c.sock")
    present, refs = engine.query([img], ["x/y:1", "x/y:2", "x/y:3"])
    assert present == {img["id"]}
    assert refs == {"docker.io/x/y:1": {img["id"]}, "docker.io/x/y:2": set()}
    assert engine.load_argv()[-3:] == ["images", "import", "-"]


def test_parse_docker_inspect_normalizes_names_and_refuses_other_output():
    out = ('"sha256:%s"\t["ubuntu:20.04","lab/x:1","registry.lab:5000/a/b:2"]\n'
           '"sha256:%s"\tnull\n\n' % ("a" * 64, "b" * 64))
    assert ia_engines.parse_docker_inspect(out) == {
        "sha256:" + "a" * 64: ["docker.io/library/ubuntu:20.04", "docker.io/lab/x:1", "registry.lab:5000/a/b:2"],
        "sha256:" + "b" * 64: [],
    }
    assert ia_engines.parse_docker_inspect("") == {}
    # the old role format (space separated, no JSON) is not silently read as "nothing there"
    with pytest.raises(ImageArchiveError) as exc:
        ia_engines.parse_docker_inspect('sha256:%s ["x:1"]' % ("a" * 64))
    assert exc.value.kind == "engine"
