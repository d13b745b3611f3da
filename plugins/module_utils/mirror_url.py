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
import ipaddress
import re

from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

MASK = "***"

# Query keys whose values are secrets: ?token=, ?access_token=, ?X-Amz-Signature=, ?api_key=, ...
_SECRET_QUERY_KEY = re.compile(r"(token|auth|pass|pwd|secret|key|sig|cred|session)", re.IGNORECASE)
# Any scheme://userinfo@ inside free text (exception messages, Location headers, ...). Greedy up to
# the last '@' of the word: a password with an unencoded '/' or '#' is masked too (a path that
# holds an '@' is over-masked, which is the safe side).
_USERINFO_IN_TEXT = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s'\"<>]*@")


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

    Never raises: a string that does not parse as a URL is masked as free text. A password with an
    unencoded ``/``, ``#`` or ``?`` (which a URL parser reads as the start of the path, fragment or
    query) is masked too: everything between ``://`` and the last ``@`` is hidden.
    """
    if not isinstance(url, str):
        url = str(url)
    if any(char.isspace() for char in url):
        return _USERINFO_IN_TEXT.sub(r"\1" + MASK + "@", url)
    if "://" not in url and "@" in url:
        # no scheme (a mistyped URL): everything before the last '@' may be a user and password
        host_part = url.rsplit("@", 1)[1]
        path, sep, query = host_part.partition("?")
        return MASK + "@" + path + (sep + _mask_query(query) if sep else "")
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = MASK + "@" + netloc.rsplit("@", 1)[1]
        elif "@" in url.partition("://")[2]:
            # userinfo that the parser split: mask up to the last '@', keep the rest unparsed
            scheme, _sep, rest = url.partition("://")
            return scheme + "://" + MASK + "@" + rest.rsplit("@", 1)[1]
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


# RFC 3986 characters: unreserved, gen-delims, sub-delims and '%' of a percent-encoding. The single
# quote, although a sub-delim, is refused as well: it delimits strings in the formats these URLs are
# written into. Everything else (control characters, space, '"', '\\', '<', '>', '{', '}', '|',
# '^', '`', non-ASCII) must be percent-encoded.
_URL_CHAR = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&()*+,;=%]")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_DNS_LABEL = re.compile(r"(?i)^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
KINDS_APPENDING_PATHS = ("pypi", "conda", "docker", "apt", "http")


def _describe_char(char):
    if char == " ":
        return "a space"
    if ord(char) < 32 or ord(char) == 127:
        return "a control character (%r)" % char
    if ord(char) > 127:
        return "a non-ASCII character (%r)" % char
    return "the character %r" % char


def _host_error(host):
    """None when ``host`` (as urlsplit's hostname, brackets removed) is a DNS name or IP address."""
    if ":" in host:
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
            return None
        except ValueError:
            return "host %r is not a valid IPv6 address" % host
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    if len(host) > 253 or not all(_DNS_LABEL.match(label) for label in labels):
        return "host %r is not a valid host name or IP address" % host
    return None


class MirrorUrl:
    """One mirror URL, parsed once, strictly, the same way for the probe and for every renderer.

    ``url`` is what a client is given (credentials included; a Docker mirror without a trailing
    slash); ``base_url`` the same without credentials; ``hostport`` the authority without
    credentials (``[fd00::1]:8080`` keeps IPv6 brackets, which pip's trusted-host needs).
    """

    __slots__ = ("url", "base_url", "scheme", "host", "port", "hostport", "username", "password",
                 "path", "insecure", "kind")

    def __init__(self, **fields):
        for name in self.__slots__:
            setattr(self, name, fields.get(name))

    @property
    def has_credentials(self):
        return self.username is not None or self.password is not None

    @property
    def masked(self):
        return mask_url(self.url)

    def as_dict(self):
        """Plain data, without the credentials (safe to return from a filter or module)."""
        return {"url_masked": self.masked, "base_url": self.base_url, "scheme": self.scheme,
                "host": self.host, "port": self.port, "hostport": self.hostport, "path": self.path,
                "insecure": self.insecure, "kind": self.kind, "has_credentials": self.has_credentials}

    def __repr__(self):
        return "MirrorUrl(%s)" % self.masked


def parse_mirror_url(url, kind=None, insecure=False):
    """Validate a mirror URL strictly and return a :class:`MirrorUrl`.

    Raises :class:`MirrorUrlError` with a message that shows the URL masked and says how to fix it:

    - only RFC 3986 characters (anything else percent-encoded), well-formed ``%XX`` escapes;
    - scheme http or https, plain ``http://`` only with ``insecure``; a host that is a DNS name,
      an IPv4 address or a bracketed IPv6 address; a numeric port;
    - an ``@`` only as the end of the user part (a password's ``/``, ``#``, ``?``, ``@`` encoded);
    - no query string or fragment: every client appends paths to a mirror URL (pip the project,
      conda the channel, apt ``dists/``, dockerd ``/v2/``), after which a query is no longer one, so
      the URL the client would ask for is not the URL that was probed;
    - ``kind`` docker: ``scheme://host[:port]`` only, without credentials (dockerd refuses a
      path and "username/password not allowed" in registry-mirrors).
    """
    if not isinstance(url, str) or not url:
        raise MirrorUrlError("url must be a non-empty string like https://mirror.example/simple")
    shown = mask_url(url)
    for index, char in enumerate(url):
        if not _URL_CHAR.match(char):
            raise MirrorUrlError(
                "url %r contains %s at position %d; URLs may hold RFC 3986 characters only: "
                "percent-encode it (a space is %%20, a quote %%22 or %%27)"
                % (shown, _describe_char(char), index + 1))
    if _BAD_PERCENT.search(url):
        raise MirrorUrlError("url %r has a '%%' that is not a %%XX escape; write a literal %% as %%25" % shown)
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise MirrorUrlError("url %r: scheme must be http or https, not missing; use https://%s"
                             % (shown, shown.lstrip("/")))
    scheme = scheme.lower()
    if scheme not in ("http", "https"):
        raise MirrorUrlError("url %r: scheme must be http or https, not %r" % (shown, scheme))
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in rest[len(authority):]:
        raise MirrorUrlError(
            "url %r has an '@' after the host part; if it belongs to a password, percent-encode the "
            "password's special characters (/ as %%2F, # as %%23, ? as %%3F, @ as %%40)" % shown)
    if authority.count("@") > 1:
        raise MirrorUrlError("url %r has more than one '@'; percent-encode an '@' in the user or password as %%40"
                             % shown)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # pylint: disable=raise-missing-from
        raise MirrorUrlError("url %r does not parse (a port must be a number 1-65535; an IPv6 address needs "
                             "brackets: https://[fd00::1]:8080/...)" % shown)
    host = parts.hostname
    if not host:
        raise MirrorUrlError("url %r has no host" % shown)
    error = _host_error(host)
    if error:
        raise MirrorUrlError("url %r: %s" % (shown, error))
    if scheme == "http" and not insecure:
        raise MirrorUrlError("url %r is plain http: use https, or set insecure: true for this mirror" % shown)
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise MirrorUrlError(
            "url %r has a query string or fragment; clients append paths to a mirror URL, so it would "
            "not reach the mirror as written. Remove it; a token belongs in the user part "
            "(https://user:token@host/...)" % shown)
    hostport = parts.netloc.rsplit("@", 1)[-1]
    base, username, password = split_credentials(url)
    if kind == "docker":
        if parts.path not in ("", "/"):
            raise MirrorUrlError("url %r: Docker registry-mirrors must be scheme://host[:port], without a path; "
                                 "use %s://%s" % (shown, scheme, hostport))
        if username is not None:
            raise MirrorUrlError("url %r: dockerd refuses a user or password in registry-mirrors; remove it "
                                 "and use docker login (or a credential helper) on the host" % shown)
        url = base = "%s://%s" % (parts.scheme, hostport)
    return MirrorUrl(url=url, base_url=base, scheme=scheme, host=host.lower(), port=port, hostport=hostport,
                     username=username, password=password, path=parts.path, insecure=bool(insecure), kind=kind)


def check_url(url, insecure=False, bare_host=False, kind=None):
    """Validate a mirror URL (see :func:`parse_mirror_url`); ``bare_host`` means kind docker."""
    return parse_mirror_url(url, kind="docker" if bare_host else kind, insecure=insecure)
