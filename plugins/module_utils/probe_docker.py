# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Docker registry mirror health: ``/v2/`` like a registry, then an image manifest (Bearer token flow).

Standard library only; runs on the managed host.
"""

from __future__ import annotations

import json
import re

from urllib.parse import urlencode, urlsplit

from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import join_path, split_credentials
from ansible_collections.gpulab.provision.plugins.module_utils.probe_session import MAX_SMALL_BODY_BYTES, text_of
from ansible_collections.gpulab.provision.plugins.module_utils.probe_spec import ProbeSpecError, Unhealthy, Verdict
from ansible_collections.gpulab.provision.plugins.module_utils.probe_transport import header

MANIFEST_ACCEPT = ", ".join((
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
))

_AUTH_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
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


def check_options(options):
    if options.get("docker_image"):
        parse_image_ref(options["docker_image"])


def probe_url(base_url, options):
    return join_path(base_url, "v2", "")


def classify_registry(status, headers):
    """``/v2/`` answered 200 or 401 with ``Docker-Distribution-API-Version: registry/2.0``."""
    if status not in (200, 401):
        return Verdict(False, "HTTP %d" % status)
    api = (header(headers, "Docker-Distribution-API-Version") or "").strip().lower()
    if not api.startswith("registry/2."):
        return Verdict(False, "not a registry (no Docker-Distribution-API-Version header)")
    return Verdict(True)


def parse_bearer_challenge(value):
    """``Bearer realm="...",service="...",scope="..."`` -> dict, or None for other schemes."""
    if not value:
        return None
    value = value.strip()
    if not value.lower().startswith("bearer "):
        return None
    params = {}
    for match in _AUTH_PARAM.finditer(value[len("bearer "):]):
        key = match.group(1).lower()
        raw = match.group(2) if match.group(2) is not None else match.group(3)
        params.setdefault(key, re.sub(r"\\(.)", r"\1", raw))
    return params if params.get("realm") else None


def check(session, options):
    resp = session.open("GET", probe_url(session.mirror.base_url, options))
    resp.close()
    verdict = classify_registry(resp.status, resp.headers)
    if not verdict.healthy or not options.get("docker_image"):
        return verdict
    return probe_manifest(session, options["docker_image"])


def probe_manifest(session, image):
    repository, reference = parse_image_ref(image)
    shown = image.strip()
    url = join_path(session.mirror.base_url, "v2", repository, "manifests", reference)
    accept = {"Accept": MANIFEST_ACCEPT}
    resp = session.open("HEAD", url, accept)
    resp.close()
    if resp.status == 401:
        challenge = parse_bearer_challenge(header(resp.headers, "WWW-Authenticate"))
        if challenge is None:
            return Verdict(False, "image %s: the registry wants credentials (no Bearer challenge)" % shown)
        token = fetch_token(session, challenge, repository)
        resp = session.open("HEAD", url, accept, private_headers={"Authorization": "Bearer " + token})
        resp.close()
    if resp.status == 200:
        return Verdict(True)
    if resp.status == 404:
        return Verdict(False, "image %s not found (HTTP 404)" % shown)
    if resp.status == 401:
        return Verdict(False, "image %s: token refused (HTTP 401)" % shown)
    if resp.status == 429:
        return Verdict(False, "image %s: rate limited (HTTP 429)" % shown)
    return Verdict(False, "image %s: HTTP %d" % (shown, resp.status))


def fetch_token(session, challenge, repository):
    """An anonymous pull token from the challenge's realm."""
    realm, _user, _password = split_credentials(challenge["realm"])
    scheme = urlsplit(realm).scheme.lower()
    if scheme not in ("http", "https") or not urlsplit(realm).hostname:
        raise Unhealthy("token realm is not an http(s) URL")
    if scheme == "http" and not session.mirror.insecure:
        raise Unhealthy("token realm is plain http (set insecure: true to allow)")
    params = []
    if challenge.get("service"):
        params.append(("service", challenge["service"]))
    params.append(("scope", challenge.get("scope") or "repository:%s:pull" % repository))
    url = realm + ("&" if urlsplit(realm).query else "?") + urlencode(params)
    resp = session.open("GET", url, {"Accept": "application/json"})
    if resp.status != 200:
        resp.close()
        raise Unhealthy("token endpoint: HTTP %d" % resp.status)
    body = session.read(resp, MAX_SMALL_BODY_BYTES, what="token response")
    try:
        data = json.loads(text_of(body))
    except ValueError:
        data = None
    token = (data.get("token") or data.get("access_token")) if isinstance(data, dict) else None
    if not isinstance(token, str) or not token:
        raise Unhealthy("token endpoint returned no token")
    return token
