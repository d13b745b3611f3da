# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Docker registry mirror health: ``/v2/`` like a registry, then each image the lab needs.

Per image: the registry's Bearer token flow (401 ``WWW-Authenticate`` -> anonymous token for
``repository:<name>:pull``), ``HEAD`` of the manifest (OCI index, Docker manifest list, Docker v2
and OCI manifest types) for its ``Docker-Content-Digest``, then one byte (``Range``) of one blob,
which catches mirrors that serve manifests but only an allowlist of blobs. Across mirrors,
:func:`digest_consensus` marks the ones that serve another digest for a tag.

Standard library only; runs on the managed host.
"""

from __future__ import annotations

import functools
import json
import re

from urllib.parse import urlencode, urlsplit

from ansible_collections.gpulab.provision.plugins.module_utils import image_ref
from ansible_collections.gpulab.provision.plugins.module_utils.image_ref import parse_image_ref
from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import join_path, split_credentials
from ansible_collections.gpulab.provision.plugins.module_utils.probe_session import MAX_SMALL_BODY_BYTES, text_of
from ansible_collections.gpulab.provision.plugins.module_utils.probe_spec import Unhealthy, Verdict
from ansible_collections.gpulab.provision.plugins.module_utils.probe_transport import header

MANIFEST_ACCEPT = ", ".join((
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
))

_AUTH_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
# probe.py checks a service's require items with CHECKS[kind].check_require (pure: module_utils/image_ref.py)
check_require = image_ref.check_require


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


def images_of(options):
    """The images every mirror must serve: the probe image, then each required one (no repeats)."""
    images = []
    for image in [options.get("docker_image")] + list(options.get("require") or []):
        if image and image.strip() not in images:
            images.append(image.strip())
    return images


def check(session, options):
    """``/v2/`` like a registry, then every image at once: manifest (token flow) and one blob byte."""
    resp = session.open("GET", probe_url(session.mirror.base_url, options))
    resp.close()
    verdict = classify_registry(resp.status, resp.headers)
    images = images_of(options)
    if not verdict.healthy or not images:
        return verdict
    answers = session.parallel([functools.partial(probe_image, session, image) for image in images])
    digests = {image: digest for image, (digest, _problem) in zip(images, answers) if digest}
    problems = [problem for _digest, problem in answers if problem]
    if problems:
        return Verdict(False, "; ".join(problems), digests=digests)
    return Verdict(True, digests=digests)


def probe_image(session, image):
    """``(Docker-Content-Digest or None, problem or None)`` for one image on this mirror."""
    repository, reference = parse_image_ref(image)
    url = join_path(session.mirror.base_url, "v2", repository, "manifests", reference)
    accept = {"Accept": MANIFEST_ACCEPT}
    auth = {}
    resp = session.open("HEAD", url, accept)
    resp.close()
    if resp.status == 401:
        challenge = parse_bearer_challenge(header(resp.headers, "WWW-Authenticate"))
        if challenge is None:
            return None, "image %s: the registry wants credentials (no Bearer challenge)" % image
        auth = {"Authorization": "Bearer " + fetch_token(session, challenge, repository)}
        resp = session.open("HEAD", url, accept, private_headers=auth)
        resp.close()
    if resp.status != 200:
        return None, _manifest_problem(image, resp.status)
    digest = (header(resp.headers, "Docker-Content-Digest") or "").strip() or None
    with session.aside():  # http_status stays the manifest's answer
        return digest, _blob_problem(session, image, repository, digest or reference, auth)


def _manifest_problem(image, status):
    if status == 404:
        return "image %s not found (HTTP 404)" % image
    if status == 401:
        return "image %s: token refused (HTTP 401)" % image
    if status == 429:
        return "image %s: rate limited (HTTP 429)" % image
    return "image %s: HTTP %d" % (image, status)


def _blob_problem(session, image, repository, reference, auth):
    """Fetch one byte of one blob of the image (an index leads to its first manifest): None when served.

    Mirrors that serve only an allowlist of images answer manifests but 403 the blobs of others.
    """
    blob = None
    for _level in range(3):
        url = join_path(session.mirror.base_url, "v2", repository, "manifests", reference)
        resp, body = session.get(url, {"Accept": MANIFEST_ACCEPT}, cap=MAX_SMALL_BODY_BYTES, what="manifest",
                                 private_headers=auth)
        if not 200 <= resp.status < 300:
            return "image %s: manifest GET HTTP %d" % (image, resp.status)
        try:
            data = json.loads(text_of(body))
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return "image %s: manifest does not parse" % image
        if isinstance(data.get("manifests"), list) and data["manifests"]:
            reference = _pick_manifest(data["manifests"])
            if not reference:
                return "image %s: index without a manifest digest" % image
            continue
        candidates = [data.get("config")] + list(data.get("layers") or [])
        blob = next((item["digest"] for item in candidates if isinstance(item, dict) and item.get("digest")), None)
        break
    if not blob:
        return "image %s: manifest names no blob" % image
    resp = session.open("GET", join_path(session.mirror.base_url, "v2", repository, "blobs", blob),
                        {"Range": "bytes=0-0"}, private_headers=auth)
    if resp.status in (200, 206):
        session.read(resp, cap=1, what="blob", truncate=True)
        return None
    resp.close()
    if resp.status == 403:
        return "image %s: blob refused (HTTP 403; the mirror serves an allowlist only?)" % image
    return "image %s: blob HTTP %d" % (image, resp.status)


def _pick_manifest(manifests):
    """linux/amd64 where the index says, else the first entry."""
    entries = [item for item in manifests if isinstance(item, dict) and item.get("digest")]
    for item in entries:
        platform = item.get("platform") or {}
        if platform.get("os") == "linux" and platform.get("architecture") == "amd64":
            return item["digest"]
    return entries[0]["digest"] if entries else None


def _short(digest):
    return digest if len(digest) <= 19 else digest[:19] + "..."


def digest_consensus(results, references=()):
    """Mirrors that serve another digest for a tag than the reference (or the majority) become unhealthy.

    ``results`` are mirror_probe results with ``digests`` (``{image: digest}``); ``references``
    the names of reference entries. Without a reference, the most common digest decides when it
    is strictly more common than every other; a tie decides nothing.
    """
    images = []
    for result in results:
        for image in result.get("digests") or {}:
            if image not in images:
                images.append(image)
    for image in images:
        served = [(r["name"], r["digests"][image]) for r in results if (r.get("digests") or {}).get(image)]
        by_reference = sorted({digest for name, digest in served if name in references})
        if len(by_reference) == 1:
            expected, source = by_reference[0], "the reference has"
        else:
            counts = {}
            for _name, digest in served:
                counts[digest] = counts.get(digest, 0) + 1
            ranked = sorted(counts.items(), key=lambda item: -item[1])
            if len(ranked) < 2 or ranked[0][1] == ranked[1][1]:
                continue
            expected, source = ranked[0][0], "%d of %d mirrors have" % (ranked[0][1], len(served))
        for result in results:
            digest = (result.get("digests") or {}).get(image)
            if result.get("healthy") and digest and digest != expected:
                result["healthy"] = False
                result["latency_ms"] = None
                result["reason"] = "serves an old digest for %s (%s; %s %s)" % (
                    image, _short(digest), source, _short(expected))
    return results


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
