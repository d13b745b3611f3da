# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a mirror probe takes and gives: the validated mirror list, the deadline, a verdict.

Standard library only (plus the collection's mirror_url); runs on the managed host.
"""

from __future__ import annotations

import re

from urllib.parse import unquote

from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import (
    MirrorUrlError,
    check_url,
    mask_url,
    split_credentials,
)

KINDS = ("pypi", "conda", "docker", "apt", "http")
MAX_TIMEOUT = 3600
# A mirror's (and a service's) name: printed in the report, the module's results and the watcher's
# journal line, used as a key in the local fact and in files. Letters, digits, ``.``, ``_`` and ``-``,
# starting with a letter or digit, at most MAX_NAME_CHARS: no space, newline or escape sequence can
# reach a printed line through it. A lab cache node's entry is ``cache-<inventory name>``, so the
# limit leaves room for a host's full DNS name.
MAX_NAME_CHARS = 128
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,%d}\Z" % (MAX_NAME_CHARS - 1))
NAME_RULE = ("letters, digits, '.', '_' and '-', starting with a letter or digit, at most %d characters"
             % MAX_NAME_CHARS)
# How many mirrors one probe takes (each is probed in a thread of its own, all at once).
MAX_MIRRORS = 64


class ProbeSpecError(ValueError):
    """Bad probe input (mirror list or options). Messages show URLs masked only."""


class Unhealthy(Exception):
    """Raised inside a probe: the mirror is unhealthy for ``reason``."""

    def __init__(self, reason):
        Exception.__init__(self, reason)
        self.reason = reason


class Verdict:
    """The outcome of one probe: healthy or not, why not, and the freshness signals it carried.

    ``serial``: the PyPI serial; ``updated``: epoch seconds of the mirror's last sync where it
    publishes one; ``digests``: ``{image: Docker-Content-Digest}`` of the images a registry served.
    """

    __slots__ = ("healthy", "reason", "serial", "updated", "digests")

    def __init__(self, healthy, reason=None, serial=None, updated=None, digests=None):
        self.healthy = bool(healthy)
        self.reason = None if healthy else (reason or "unhealthy")
        self.serial = serial
        self.updated = updated
        self.digests = digests

    def __repr__(self):
        return "Verdict(healthy=%r, reason=%r, serial=%r, updated=%r)" % (
            self.healthy, self.reason, self.serial, self.updated)


class Mirror:
    """One validated mirror. ``url`` is the raw URL (may carry credentials: never show it).

    ``reference``: probed for the freshness and digest comparison, never chosen unless the
    policy says so. ``status_url``/``status_name``: the mirror site's status feed and the entry
    in it (the URL's ``#fragment``).
    """

    __slots__ = ("name", "url", "insecure", "url_masked", "base_url", "username", "password", "reference",
                 "status_url", "status_name")

    def __init__(self, name, url, insecure=False, reference=False, status_url=None):
        self.name = name
        self.url = url
        self.insecure = bool(insecure)
        self.url_masked = mask_url(url)
        self.base_url, self.username, self.password = split_credentials(url)
        self.reference = bool(reference)
        self.status_url, self.status_name = split_status_url(status_url) if status_url else (None, None)


def name_problem(name, what="mirror name"):
    """None when ``name`` is a usable mirror or service name, else what is wrong (not naming where)."""
    if isinstance(name, bool) or not isinstance(name, (str, int, float)):
        return "must be a %s (%s), got %s" % (what, NAME_RULE, type(name).__name__)
    if not isinstance(name, str):
        return ("%r is a number in YAML; quote it (name: '%s') so it stays text" % (name, name)
                if NAME_PATTERN.match(str(name)) else "must be a %s (%s), got %r" % (what, NAME_RULE, name))
    if not NAME_PATTERN.match(name):
        return "%r is not a %s: use %s" % (name, what, NAME_RULE)
    return None


def split_status_url(value):
    """``https://site/static/tunasync.json#pypi`` -> ``(url, "pypi")``; the fragment names the feed entry."""
    url, sep, name = value.strip().partition("#")
    return url, unquote(name) if sep else None


def check_status_url(value, insecure, where):
    """Validate a mirror's ``status_url``; raise :class:`ProbeSpecError` naming ``where``."""
    if not isinstance(value, str) or not value.strip():
        raise ProbeSpecError("%s: must be a URL such as https://mirrors.example/static/tunasync.json#pypi" % where)
    url, name = split_status_url(value)
    if not name:
        raise ProbeSpecError("%s: %s needs #<name>, the mirror's entry in the feed, e.g. "
                             "https://mirrors.example/static/tunasync.json#pypi" % (where, mask_url(url)))
    try:
        check_url(url, insecure=insecure)
    except MirrorUrlError as exc:
        raise ProbeSpecError("%s: %s" % (where, exc))


def validate_mirrors(kind, mirrors):
    """Check the mirror list and return :class:`Mirror` objects in input order."""
    if kind not in KINDS:
        raise ProbeSpecError("kind must be one of %s, not %r" % (", ".join(KINDS), kind))
    if not isinstance(mirrors, (list, tuple)):
        raise ProbeSpecError("mirrors must be a list of {name, url, insecure} dicts")
    if len(mirrors) > MAX_MIRRORS:
        raise ProbeSpecError("mirrors: %d entries; a probe takes at most %d" % (len(mirrors), MAX_MIRRORS))
    seen = set()
    validated = []
    for index, item in enumerate(mirrors):
        if not isinstance(item, dict):
            raise ProbeSpecError("mirrors[%d] must be a dict with name and url" % index)
        name = item.get("name")
        url = item.get("url")
        if name is None or name == "":
            raise ProbeSpecError("mirrors[%d]: name is missing" % index)
        problem = name_problem(name)
        if problem:
            raise ProbeSpecError("mirrors[%d].name: %s" % (index, problem))
        if not isinstance(url, str) or not url.strip():
            raise ProbeSpecError("mirror %r: url is missing" % name)
        if name in seen:
            raise ProbeSpecError("duplicate mirror name %r: names must be unique" % name)
        seen.add(name)
        insecure = item.get("insecure", False)
        if insecure is None:
            insecure = False
        if not isinstance(insecure, bool):
            raise ProbeSpecError("mirror %r: insecure must be true or false" % name)
        url = url.strip()
        try:
            check_url(url, insecure=insecure, bare_host=(kind == "docker"))
        except MirrorUrlError as exc:
            raise ProbeSpecError("mirror %r: %s" % (name, exc))
        reference = item.get("reference") or False
        if not isinstance(reference, bool):
            raise ProbeSpecError("mirror %r: reference must be true or false" % name)
        status_url = item.get("status_url")
        if status_url is not None:
            check_status_url(status_url, insecure, "mirror %r: status_url" % name)
        validated.append(Mirror(name, url, insecure, reference, status_url))
    return validated


def check_timeout(timeout):
    """The deadline as a float, or :class:`ProbeSpecError`."""
    try:
        timeout = float(timeout)
    except (TypeError, ValueError):
        raise ProbeSpecError("timeout must be a number of seconds")
    if not 0 < timeout <= MAX_TIMEOUT:
        raise ProbeSpecError("timeout must be more than 0 and at most %d seconds" % MAX_TIMEOUT)
    return timeout
