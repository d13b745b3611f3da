# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP transport for the mirror probes: per-request openers and the sockets they open.

Standard library plus ``ansible.module_utils.urls`` (TLS contexts, the redirect handler); runs on
the managed host inside the mirror_probe module. Every socket a probe opens is registered in its
:class:`Connections`, so the runner can cut a stalled mirror short from another thread at the
deadline. :func:`describe_error` turns what the transport raises into a short human reason.
"""

from __future__ import annotations

import errno
import functools
import http.client
import socket
import ssl
import threading
import urllib.error
import urllib.request
import zlib

from urllib.parse import urlsplit

from ansible.module_utils.urls import make_context

try:
    from ansible.module_utils.urls import HTTPRedirectHandler
except ImportError:  # ansible-core 2.16: the same handler, made by a factory (2.17 made it a class)
    from ansible.module_utils.urls import RedirectHandlerFactory

    def HTTPRedirectHandler(follow_redirects=None):
        return RedirectHandlerFactory(follow_redirects)()

from ansible_collections.gpulab.provision.plugins.module_utils.probe_spec import ProbeSpecError
from ansible_collections.gpulab.provision.plugins.module_utils.proxy import proxy_for


class DeadlineExceeded(Exception):
    """The probe's one deadline has passed."""


def header(headers, name):
    """A header value from an http.client message or a plain dict, case-insensitively."""
    if headers is None:
        return None
    getter = getattr(headers, "get", None)
    value = getter(name) if getter else None
    if value is None:
        wanted = name.lower()
        for key, val in getattr(headers, "items", lambda: [])():
            if key.lower() == wanted:
                return val
    return value


# --------------------------------------------------------------------------------------------
# Errors -> short human reasons


def timeout_reason(timeout):
    return "timed out after %s s" % float(timeout)


def describe_error(exc, timeout):
    """A short, human reason for an exception raised while probing. Not yet masked."""
    if isinstance(exc, urllib.error.HTTPError):
        return "HTTP %d" % exc.code
    if isinstance(exc, urllib.error.URLError):
        inner = exc.reason
        if isinstance(inner, BaseException):
            return describe_error(inner, timeout)
        text = str(inner)
        if "timed out" in text:
            return timeout_reason(timeout)
        return text or "URL error"
    if isinstance(exc, DeadlineExceeded) or isinstance(exc, socket.timeout):
        return timeout_reason(timeout)
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = getattr(exc, "verify_message", None)
        return "certificate verify failed: %s" % detail if detail else "certificate verify failed"
    if isinstance(exc, ssl.SSLError):
        if "timed out" in str(exc):
            return timeout_reason(timeout)
        return "TLS error: %s" % (exc.reason or exc.__class__.__name__)
    if isinstance(exc, socket.gaierror):
        return "name does not resolve"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "connection closed without a response"
    if isinstance(exc, http.client.IncompleteRead):
        return "response ended early"
    if isinstance(exc, http.client.BadStatusLine):
        return "not an HTTP response"
    if isinstance(exc, http.client.HTTPException):
        return "bad HTTP response (%s)" % exc.__class__.__name__
    if isinstance(exc, zlib.error):
        return "bad gzip encoding"
    if isinstance(exc, OSError):
        named = {
            errno.ENETUNREACH: "network unreachable",
            errno.EHOSTUNREACH: "host unreachable",
            errno.ECONNABORTED: "connection aborted",
            errno.EPIPE: "connection closed",
        }
        if exc.errno in named:
            return named[exc.errno]
        if "timed out" in str(exc):
            return timeout_reason(timeout)
        return (exc.strerror or str(exc) or exc.__class__.__name__)[:200]
    return ("%s: %s" % (exc.__class__.__name__, exc))[:200]


# --------------------------------------------------------------------------------------------
# Sockets and openers


class Connections:
    """The sockets one probe opened, so the deadline can cut them short from another thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self._socks = []
        self._aborted = False

    def add(self, sock):
        with self._lock:
            self._socks.append(sock)
            aborted = self._aborted
        if aborted:
            _shutdown(sock)

    def set_timeout(self, seconds):
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            try:
                sock.settimeout(max(seconds, 0.001))
            except OSError:
                pass

    def abort(self):
        with self._lock:
            self._aborted = True
            socks = list(self._socks)
        for sock in socks:
            _shutdown(sock)


def _shutdown(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Tracked:
    """Mixin for http.client connections: registers each connected socket in `connections`."""

    def __init__(self, *args, **kwargs):
        self._gpulab_connections = kwargs.pop("connections")
        super().__init__(*args, **kwargs)

    def connect(self):
        super().connect()
        self._gpulab_connections.add(self.sock)


class _TrackedHTTPConnection(_Tracked, http.client.HTTPConnection):
    pass


class _TrackedHTTPSConnection(_Tracked, http.client.HTTPSConnection):
    pass


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, connections):
        urllib.request.HTTPHandler.__init__(self)
        self._connections = connections

    def http_open(self, req):
        return self.do_open(functools.partial(_TrackedHTTPConnection, connections=self._connections), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, get_context, connections):
        # Not HTTPSHandler.__init__: from Python 3.12 it loads a default context (the CA store)
        # per handler. The context comes from get_context, built once per run and only if needed.
        urllib.request.AbstractHTTPHandler.__init__(self)  # pylint: disable=non-parent-init-called
        self._context = None
        self._check_hostname = None
        self._get_context = get_context
        self._connections = connections

    def https_open(self, req):
        return self.do_open(
            functools.partial(_TrackedHTTPSConnection, connections=self._connections),
            req,
            context=self._get_context(),
        )


class Response:
    """Status, headers and a readable body, whatever the status was."""

    def __init__(self, status, headers, fp):
        self.status = status
        self.headers = headers
        self.fp = fp

    def read1(self, size):
        if self.fp is None:
            return b""
        read1 = getattr(self.fp, "read1", None)
        return read1(size) if read1 else self.fp.read(size)

    def close(self):
        if self.fp is not None:
            try:
                self.fp.close()
            except Exception:  # closing a half-dead socket can raise anything; nothing to do about it
                pass


class UrlOpener:
    """HTTP(S) for probes, built on urllib and ``ansible.module_utils.urls``.

    Why not ``open_url``/``Request.open``: it installs its opener process-wide
    (``urllib.request.install_opener``) and then opens through the global one, so with probes in
    parallel a mirror could be fetched with another mirror's TLS settings (an ``insecure: true``
    mirror turning verification off for a strict one). Here every request gets its own opener,
    with TLS contexts from ansible's ``make_context`` (``ca_path``, ``validate_certs``), a proxy
    and ansible's redirect handler set to not follow: redirects are followed by the probe itself,
    so it can count them, spot loops and keep credentials on the mirror's own host.

    ``proxy``: the lab's proxy settings (``{http, https, no_proxy}``, :func:`proxy.proxy_settings`):
    each URL, redirects included, goes through the proxy :func:`proxy.proxy_for` gives it, the rule
    every client of the collection follows (a ``no_proxy`` CIDR too), with the proxy URL's
    credentials as Proxy-Authorization. None: the process's proxy environment (urllib's default).
    """

    def __init__(self, validate_certs=True, ca_path=None, proxy=None):
        self.validate_certs = validate_certs
        self.ca_path = ca_path
        self.proxy = proxy
        self._contexts = {}
        self._lock = threading.Lock()

    def context(self, insecure):
        verify = self.validate_certs and not insecure
        with self._lock:
            if verify not in self._contexts:
                if verify:
                    self._contexts[verify] = make_context(cafile=self.ca_path, validate_certs=True)
                else:
                    self._contexts[verify] = make_context(validate_certs=False)
            return self._contexts[verify]

    def prepare(self, mirrors):
        """Build the TLS contexts the mirrors need before the clock starts (~20 ms each), so the
        first HTTPS probe's latency is not inflated by loading the CA store."""
        for insecure in sorted({m.insecure for m in mirrors if urlsplit(m.base_url).scheme.lower() == "https"}):
            try:
                self.context(insecure)
            except (OSError, ssl.SSLError) as exc:
                raise ProbeSpecError("cannot load the CA certificates%s: %s" % (
                    " from ca_path %s" % self.ca_path if self.ca_path else "", getattr(exc, "strerror", None) or exc))

    def proxy_handler(self, url):
        """The ProxyHandler for ``url``: None (urllib's, from the environment) without settings."""
        if self.proxy is None:
            return None
        via = proxy_for(url, self.proxy)
        return urllib.request.ProxyHandler({urlsplit(url).scheme.lower(): via} if via else {})

    def open(self, method, url, headers, timeout, insecure, connections):
        handlers = [
            _HTTPHandler(connections),
            _HTTPSHandler(functools.partial(self.context, insecure), connections),
            HTTPRedirectHandler("none"),
        ]
        proxy = self.proxy_handler(url)
        if proxy is not None:
            handlers.append(proxy)
        opener = urllib.request.build_opener(*handlers)
        request = urllib.request.Request(url, headers=headers, method=method)
        try:
            resp = opener.open(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            return Response(exc.code, exc.headers, exc.fp)
        return Response(resp.status, resp.headers, resp)
