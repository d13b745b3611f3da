# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Docker probe's image references follow the one parser (image_archive_refs.parse_ref, Docker's
own rule: a first component with a dot, a colon or ``localhost`` is a registry), so a requirement
on another registry is refused for a Docker Hub mirror instead of probed as a Hub repository."""

from __future__ import annotations

import pytest

from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_refs import parse_ref
from ansible_collections.gpulab.provision.plugins.module_utils.image_ref import parse_image_ref
from ansible_collections.gpulab.provision.plugins.module_utils.probe_inputs import require_errors
from ansible_collections.gpulab.provision.plugins.module_utils.probe_spec import ProbeSpecError

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize("image", [
    "hello-world", "library/hello-world:latest", "docker.io/nvidia/cuda:12.4.1-base-ubuntu22.04",
    "index.docker.io/pytorch/pytorch:2.5.1-cuda12.1-cudnn9-runtime", "busybox@" + DIGEST, "busybox:1.36@" + DIGEST,
    "a/b/c:1", "my-org__x/img:v1",
])
def test_hub_references_agree_with_the_archive_parser(image):
    domain, path, tag, digest = parse_ref(image)
    assert domain == "docker.io"
    assert parse_image_ref(image) == (path, digest or tag or "latest")


@pytest.mark.parametrize("image, registry", [
    ("nvcr.io/nvidia/pytorch:24.05-py3", "nvcr.io"),
    ("ghcr.io/org/img:1.0", "ghcr.io"),
    ("localhost:5000/team/img:1", "localhost:5000"),
    ("localhost/img:1", "localhost"),
    ("harbor.lab:8443/proxy/library/ubuntu:22.04", "harbor.lab:8443"),
])
def test_another_registry_is_refused_for_a_docker_hub_mirror(image, registry):
    with pytest.raises(ProbeSpecError) as info:
        parse_image_ref(image)
    text = str(info.value)
    assert registry in text and "Docker Hub" in text and "registry-mirrors" in text


def test_a_require_item_on_nvcr_io_is_an_inventory_error_naming_the_item():
    [error] = require_errors({"docker": ["pytorch/pytorch:2.5.1-cuda12.1-cudnn9-runtime",
                                         "nvcr.io/nvidia/pytorch:24.05-py3"]}, {"docker": "docker"})
    assert error.startswith("gpulab_mirror_require.docker[1]: 'nvcr.io/nvidia/pytorch:24.05-py3' is on nvcr.io")


@pytest.mark.parametrize("image", ["", "UPPER/case:1", "img:bad tag", "img@sha256:short", "a//b"])
def test_malformed_references_still_fail(image):
    with pytest.raises(ProbeSpecError):
        parse_image_ref(image)
