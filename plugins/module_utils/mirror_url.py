# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mirror URLs: split off credentials, mask secrets, join paths.

Standard library only: this file runs on the managed host inside the mirror_probe module. Mirror
URLs may carry credentials (``https://user:token@host/simple``) or tokens in the query string, so
everything that is shown to a person goes through :func:`mask_url` or :class:`SecretMasker`.
"""

from __future__ import annotations

import base64
import re

from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

MASK = "***"

# Query keys whose values are secrets: ?token=, ?access_token=, ?X-Amz-Signature=, ?api_key=, ...
_SECRET_QUERY_KEY = re.compile(r"(token|auth|pass|pwd|secret|key|sig|cred|session)", re.IGNORECASE)
# Any scheme://userinfo@ inside free text (exception messages, Location headers, ...)
_USERINFO_IN_TEXT = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@'\"<>]+@")


class MirrorUrlError(ValueError):
    """A mirror URL that cannot be used. The message never contains the raw URL."""


def split_credentials(url):
    """Return ``(url_without_userinfo, username, password)``; username/password are None if absent.

    Username and password are percent-decoded, as pip and urllib do.
    """
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, hostport = parts.netloc.rsplit("@", 1)
    user, sep, password = userinfo.partition(":")
    return (
        urlunsplit(parts._replace(netloc=hostport)),
        unquote(user),
        unquote(password) if sep else None,
    )


def basic_auth_value(username, password):
    """The value of an ``Authorization: Basic`` header."""
    raw = "%s:%s" % (username or "", password or "")
    return "Basic " + base64.b64encode(raw.encode("utf-8")).decode("ascii")


def _mask_query(query):
    if not query:
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(_SECRET_QUERY_KEY.search(key) for key, _value in pairs):
        return query
    masked = [(key, MASK if _SECRET_QUERY_KEY.search(key) else value) for key, value in pairs]
    return urlencode(masked, safe="*/:")


def mask_url(url):
    """``https://user:pw@h/x?token=abc`` -> ``https://***@h/x?token=***``.

    Never raises: a string that does not parse as a URL is masked as free text.
    """
    if not isinstance(url, str):
        url = str(url)
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = MASK + "@" + netloc.rsplit("@", 1)[1]
        return urlunsplit(parts._replace(netloc=netloc, query=_mask_query(parts.query)))
    except ValueError:
        return _USERINFO_IN_TEXT.sub(r"\1" + MASK + "@", url)


def url_secrets(url):
    """Every secret substring of ``url`` (raw and percent-decoded), longest first.

    Used to scrub free text (exception messages) and to tell Ansible which values never to echo.
    """
    found = set()
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        found.add(userinfo)
        found.add(unquote(userinfo))
        user, sep, password = userinfo.partition(":")
        if sep and password:
            found.add(password)
            found.add(unquote(password))
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if value and _SECRET_QUERY_KEY.search(key):
            found.add(value)
            found.add(quote(value, safe=""))
    return sorted((s for s in found if s), key=len, reverse=True)


class SecretMasker:
    """Scrubs known secrets (and any ``scheme://userinfo@``) out of free text."""

    def __init__(self, urls=()):
        self._secrets = []
        for url in urls:
            self.add_url(url)

    def add_url(self, url):
        for secret in url_secrets(url):
            if secret not in self._secrets:
                self._secrets.append(secret)
        self._secrets.sort(key=len, reverse=True)

    def add_secret(self, secret):
        if secret and secret not in self._secrets:
            self._secrets.append(secret)
            self._secrets.sort(key=len, reverse=True)

    @property
    def secrets(self):
        return list(self._secrets)

    def __call__(self, text):
        if text is None:
            return None
        text = str(text)
        text = _USERINFO_IN_TEXT.sub(r"\1" + MASK + "@", text)
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text


def origin(url):
    """``(scheme, host, port)`` with default ports filled in; credentials are only sent to it."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


def same_host(url_a, url_b):
    """True when both URLs point at the same host and port (an http->https upgrade keeps it)."""
    _sa, host_a, port_a = origin(url_a)
    _sb, host_b, port_b = origin(url_b)
    return host_a == host_b and (port_a == port_b or {port_a, port_b} == {80, 443})


def join_path(url, *segments):
    """Append path segments to a URL's path, keeping its query string.

    ``join_path("https://h/simple?token=x", "pip", "")`` -> ``https://h/simple/pip/?token=x``.
    An empty last segment gives a trailing slash.
    """
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    for segment in segments:
        path += "/" + segment.strip("/")
    return urlunsplit(parts._replace(path=path))


def check_url(url, insecure=False, bare_host=False):
    """Validate a mirror URL; raise :class:`MirrorUrlError` with a message that shows it masked.

    - scheme must be http or https (``file://``, ``ftp://`` are refused);
    - plain ``http://`` only with ``insecure``;
    - ``bare_host`` (Docker registry mirrors): ``scheme://host[:port]`` and nothing else.
    """
    shown = mask_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # pylint: disable=pointless-statement  # raises ValueError on a bad port
    except ValueError:
        raise MirrorUrlError("url %s does not parse" % shown)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise MirrorUrlError(
            "url %s: scheme must be http or https, not %s" % (shown, "'%s'" % scheme if scheme else "missing")
        )
    if not parts.hostname:
        raise MirrorUrlError("url %s has no host" % shown)
    if scheme == "http" and not insecure:
        raise MirrorUrlError(
            "url %s is plain http: use https, or set insecure: true for this mirror" % shown
        )
    if bare_host and (parts.path not in ("", "/") or parts.query or parts.fragment):
        raise MirrorUrlError(
            "url %s: Docker registry-mirrors must be scheme://host[:port], without a path or query"
            % shown
        )
