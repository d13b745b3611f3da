# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's outbound HTTP proxy (inventory ``gpulab_proxy``), for the probe and every client.

``gpulab_proxy: {http: URL, https: URL, no_proxy: [host, .domain, 10.0.0.0/8, ...]}``. Hosts that
must be reached directly (the lab's own mirrors, cache nodes) are added to ``no_proxy`` from the
catalog: every entry with ``proxy: false``, and the cache nodes' entries. One rule decides whether
a URL goes through the proxy (:func:`proxy_for`), the same for the probe (the modules' ``proxy``
option, probe_transport.UrlOpener; never a task's environment, which Ansible prints at -vvv), pip
(``proxy`` in pip.conf), conda (``proxy_servers``) and dockerd (its systemd environment). Pure.
"""

from __future__ import annotations

import ipaddress

from urllib.parse import urlsplit

from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import (
    MirrorUrlError,
    mask_url,
    parse_mirror_url,
)

KEYS = ("http", "https", "no_proxy")
# Loopback itself only: another 127.x address is a host like any other (and the tests use that).
ALWAYS_DIRECT = ("localhost", "127.0.0.1", "::1")


class ProxyError(ValueError):
    """A proxy setting that cannot be used; the message names the variable and the fix."""


def _host_of(url_or_host):
    text = str(url_or_host)
    if "://" in text:
        try:
            return (urlsplit(text).hostname or "").lower()
        except ValueError:
            return ""
    text = text.strip().lower()
    if text.startswith("[") and "]" in text:
        return text[1:text.index("]")]
    if text.count(":") == 1:
        return text.split(":", 1)[0]
    return text


def _check_pattern(where, pattern):
    if not isinstance(pattern, str) or not pattern.strip() or any(c.isspace() or c in ",;\"'\\" for c in pattern):
        raise ProxyError("%s: %r must be a host, .domain, IP address or CIDR (one per list item)" % (where, pattern))


def proxy_settings(gpulab_proxy, mirrors=None, extra_direct=()):
    """Validate ``gpulab_proxy`` and return ``{http, https, no_proxy}`` (None when no proxy is set).

    ``no_proxy`` = the user's list + localhost/loopback + every catalog entry with ``proxy: false``
    + ``extra_direct`` (e.g. cache nodes), in that order, without duplicates.
    """
    if gpulab_proxy in (None, {}, ""):
        return None
    if not isinstance(gpulab_proxy, dict):
        raise ProxyError("gpulab_proxy: must be a mapping like {http: http://proxy.lab:3128, https: "
                         "http://proxy.lab:3128, no_proxy: [.lab.example]}")
    unknown = [key for key in gpulab_proxy if key not in KEYS]
    if unknown:
        raise ProxyError("gpulab_proxy: unknown key %r; allowed: %s" % (unknown[0], ", ".join(KEYS)))
    settings = {}
    for key in ("http", "https"):
        url = gpulab_proxy.get(key)
        if url in (None, ""):
            settings[key] = None
            continue
        try:
            parsed = parse_mirror_url(url, insecure=True)
        except MirrorUrlError as exc:
            raise ProxyError("gpulab_proxy.%s: %s" % (key, str(exc)[4:] if str(exc).startswith("url ") else exc))
        if parsed.path not in ("", "/"):
            raise ProxyError("gpulab_proxy.%s: %s: a proxy URL is scheme://host:port without a path"
                             % (key, mask_url(url)))
        settings[key] = url.rstrip("/")
    if not settings["http"] and not settings["https"]:
        raise ProxyError("gpulab_proxy: set http or https (or remove gpulab_proxy)")
    no_proxy = []
    user = gpulab_proxy.get("no_proxy") or []
    if isinstance(user, str):
        user = [item.strip() for item in user.split(",") if item.strip()]
    if not isinstance(user, list):
        raise ProxyError("gpulab_proxy.no_proxy: must be a list of hosts, .domains or CIDRs")
    for index, pattern in enumerate(user):
        _check_pattern("gpulab_proxy.no_proxy[%d]" % index, pattern)
    direct = []
    for service, entries in sorted((mirrors or {}).items()):
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and entry.get("proxy") is False and entry.get("url"):
                host = _host_of(entry["url"])
                if host:
                    direct.append(host)
    for item in list(user) + list(ALWAYS_DIRECT) + direct + [_host_of(h) for h in extra_direct or ()]:
        if item and item not in no_proxy:
            no_proxy.append(item)
    settings["no_proxy"] = no_proxy
    return settings


def bypasses(url, no_proxy):
    """True when ``url``'s host matches ``no_proxy`` (curl's rules: exact host, ``.domain`` or
    ``domain`` suffix, an IP address, a CIDR, or ``*``)."""
    host = _host_of(url)
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for pattern in no_proxy or []:
        pattern = pattern.strip().lower()
        if pattern == "*":
            return True
        if address is not None:
            try:
                if address in ipaddress.ip_network(pattern.strip("[]"), strict=False):
                    return True
            except ValueError:
                pass
            continue
        domain = pattern.lstrip(".")
        if host == domain or host.endswith("." + domain):
            return True
    return False


def proxy_for(url, settings):
    """The proxy URL a client should use for ``url``, or None (no proxy set, or ``url`` is direct)."""
    if not settings or bypasses(url, settings.get("no_proxy")):
        return None
    scheme = urlsplit(url).scheme.lower()
    return settings.get(scheme) or settings.get("https" if scheme == "http" else "http")


def proxy_environment(settings):
    """Environment variables for the probe and dockerd (lower- and upper-case, as tools differ)."""
    if not settings:
        return {}
    env = {}
    for key in ("http", "https"):
        if settings.get(key):
            env["%s_proxy" % key] = env["%s_PROXY" % key.upper()] = settings[key]
    env["no_proxy"] = env["NO_PROXY"] = ",".join(settings.get("no_proxy") or [])
    return env


def proxy_from_environment(env):
    """:func:`proxy_settings`' ``{http, https, no_proxy}`` back from :func:`proxy_environment`'s
    variables (the watcher's configuration holds those), or None when they name no proxy."""
    env = env or {}
    settings = {key: env.get("%s_proxy" % key) or env.get("%s_PROXY" % key.upper()) or None for key in ("http", "https")}
    if not settings["http"] and not settings["https"]:
        return None
    no_proxy = env.get("no_proxy") or env.get("NO_PROXY") or ""
    settings["no_proxy"] = [item.strip() for item in no_proxy.split(",") if item.strip()]
    return settings
