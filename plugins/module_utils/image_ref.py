# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Docker image references: parse ``repo[:tag|@digest]`` and check pinned requirements.

Pure and light (no HTTP stack): the inventory checks the filters run on the controller import it,
and so does the Docker probe (module_utils/probe_docker.py).
"""

from __future__ import annotations

import re

from ansible_collections.gpulab.provision.plugins.module_utils.probe_require import RequirementError
from ansible_collections.gpulab.provision.plugins.module_utils.probe_spec import ProbeSpecError

_IMAGE_REPO = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_IMAGE_DIGEST = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")


def parse_image_ref(image):
    """``hello-world`` / ``library/hello-world:latest`` / ``repo@sha256:...`` -> ``(repository, reference)``.

    Docker registry-mirrors serve Docker Hub only, so a ``docker.io/`` prefix is dropped and
    single-name images get Hub's ``library/``.
    """
    if not isinstance(image, str) or not image.strip():
        raise ProbeSpecError("docker_image must be a non-empty string such as library/hello-world:latest")
    ref = image.strip()
    for prefix in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
        if ref.startswith(prefix):
            ref = ref[len(prefix):]
    if "@" in ref:
        repository, reference = ref.split("@", 1)
        if not _IMAGE_DIGEST.match(reference):
            raise ProbeSpecError("docker_image %r: bad digest" % image)
        repository = repository.rsplit(":", 1)[0] if ":" in repository.rsplit("/", 1)[-1] else repository
    else:
        last = ref.rsplit("/", 1)[-1]
        if ":" in last:
            repository, reference = ref.rsplit(":", 1)
        else:
            repository, reference = ref, "latest"
        if not _IMAGE_TAG.match(reference):
            raise ProbeSpecError("docker_image %r: bad tag" % image)
    if "/" not in repository:
        repository = "library/" + repository
    if not _IMAGE_REPO.match(repository):
        raise ProbeSpecError("docker_image %r: bad repository name" % image)
    return repository, reference


def check_require(items):
    """Parsed ``require`` items (``(repository, reference)``); a tag must be pinned, never latest."""
    parsed = []
    for item in items:
        try:
            repository, reference = parse_image_ref(item)
        except ProbeSpecError as exc:
            raise RequirementError(str(exc).replace("docker_image ", "", 1))
        if reference == "latest":
            raise RequirementError("%r is not pinned; name a tag (e.g. pytorch/pytorch:2.5.1-cuda12.1-cudnn9-runtime) "
                                   "or a digest, never latest" % (item,))
        parsed.append((repository, reference))
    return parsed
