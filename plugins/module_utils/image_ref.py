# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Docker image references: parse ``repo[:tag|@digest]`` and check pinned requirements.

Pure and light (no HTTP stack): the inventory checks the filters run on the controller import it,
and so does the Docker probe (module_utils/probe_docker.py).
"""

from __future__ import annotations

from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_error import ImageArchiveError
from ansible_collections.gpulab.provision.plugins.module_utils.image_archive_refs import parse_ref
from ansible_collections.gpulab.provision.plugins.module_utils.probe_require import RequirementError
from ansible_collections.gpulab.provision.plugins.module_utils.probe_spec import ProbeSpecError

# Registries whose images a Docker Hub mirror (dockerd's registry-mirrors) serves.
HUB_DOMAINS = ("docker.io", "index.docker.io", "registry-1.docker.io")


def parse_image_ref(image):
    """``hello-world`` / ``library/hello-world:latest`` / ``repo@sha256:...`` -> ``(repository, reference)``.

    Parsed by the collection's one reference parser (:func:`image_archive_refs.parse_ref`, Docker's
    rule: a first component with a dot, a colon or ``localhost`` names a registry). Docker
    registry-mirrors serve Docker Hub only, so an image of another registry (``nvcr.io/...``,
    ``localhost:5000/...``) is refused, naming it; single-name images get Hub's ``library/``.
    """
    if not isinstance(image, str) or not image.strip():
        raise ProbeSpecError("docker_image must be a non-empty string such as library/hello-world:latest")
    try:
        domain, path, tag, digest = parse_ref(image.strip())
    except ImageArchiveError:
        raise ProbeSpecError("docker_image %r: not an image reference (repository[:tag][@digest], lowercase"
                             " repository)" % (image,))
    if domain not in HUB_DOMAINS:
        raise ProbeSpecError("docker_image %r is on %s, not Docker Hub: a Docker Hub mirror (dockerd's"
                             " registry-mirrors) cannot serve it; remove it here (a registry of its own is"
                             " a cache node's cache_node_registries entry)" % (image, domain))
    if domain != "docker.io" and "/" not in path:
        path = "library/" + path
    return path, digest or tag or "latest"


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
