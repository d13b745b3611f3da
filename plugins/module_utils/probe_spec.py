# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a mirror probe takes and gives: the validated mirror list, the deadline, a verdict.

Standard library only (plus the collection's mirror_url); runs on the managed host.
"""

from __future__ import annotations

from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import (
    MirrorUrlError,
    check_url,
    mask_url,
    split_credentials,
)

KINDS = ("pypi", "conda", "docker", "apt", "http")
MAX_TIMEOUT = 3600


class ProbeSpecError(ValueError):
    """Bad probe input (mirror list or options). Messages show URLs masked only."""


class Unhealthy(Exception):
    """Raised inside a probe: the mirror is unhealthy for ``reason``."""

    def __init__(self, reason):
        Exception.__init__(self, reason)
        self.reason = reason


class Verdict:
    """The outcome of one probe: healthy or not, why not, and the PyPI serial when there is one."""

    __slots__ = ("healthy", "reason", "serial")

    def __init__(self, healthy, reason=None, serial=None):
        self.healthy = bool(healthy)
        self.reason = None if healthy else (reason or "unhealthy")
        self.serial = serial

    def __repr__(self):
        return "Verdict(healthy=%r, reason=%r, serial=%r)" % (self.healthy, self.reason, self.serial)


class Mirror:
    """One validated mirror. ``url`` is the raw URL (may carry credentials: never show it)."""

    __slots__ = ("name", "url", "insecure", "url_masked", "base_url", "username", "password")

    def __init__(self, name, url, insecure=False):
        self.name = name
        self.url = url
        self.insecure = bool(insecure)
        self.url_masked = mask_url(url)
        self.base_url, self.username, self.password = split_credentials(url)


def validate_mirrors(kind, mirrors):
    """Check the mirror list and return :class:`Mirror` objects in input order."""
    if kind not in KINDS:
        raise ProbeSpecError("kind must be one of %s, not %r" % (", ".join(KINDS), kind))
    if not isinstance(mirrors, (list, tuple)):
        raise ProbeSpecError("mirrors must be a list of {name, url, insecure} dicts")
    seen = set()
    validated = []
    for index, item in enumerate(mirrors):
        if not isinstance(item, dict):
            raise ProbeSpecError("mirrors[%d] must be a dict with name and url" % index)
        name = item.get("name")
        url = item.get("url")
        if not isinstance(name, str) or not name.strip():
            raise ProbeSpecError("mirrors[%d]: name is missing" % index)
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
        validated.append(Mirror(name, url, insecure))
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
