# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health probes for package mirrors: PyPI, conda, Docker registry, apt, plain HTTP.

Standard library plus ``ansible.module_utils.urls`` (for the TLS context and the redirect handler);
importable and testable without Ansible running. The entry point is :func:`run_probe`.

Health means the mirror answered its protocol correctly, in time (a captive portal's 200 is not
healthy). All mirrors are probed at once, each in a daemon thread, and :func:`run_probe` returns at
one deadline whatever the mirrors do: a mirror that has not finished by then is reported as timed
out, and its sockets are shut down.
"""

from __future__ import annotations

import errno
import functools
import http.client
import json
import re
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
import zlib

from html.parser import HTMLParser
from urllib.parse import unquote, urlencode, urljoin, urlsplit

from ansible.module_utils.urls import HTTPRedirectHandler, make_context

from ansible_collections.gpulab.provision.plugins.module_utils.mirror_url import (
    MirrorUrlError,
    SecretMasker,
    basic_auth_value,
    check_url,
    join_path,
    mask_url,
    same_host,
    split_credentials,
)

KINDS = ("pypi", "conda", "docker", "apt", "http")
DEFAULT_TIMEOUT = 3.0
MAX_REDIRECTS = 5
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_SMALL_BODY_BYTES = 1024 * 1024  # token responses
READ_CHUNK = 64 * 1024
USER_AGENT = "gpulab.provision-mirror_probe/1"
REDIRECT_CODES = (301, 302, 303, 307, 308)

DEFAULT_OPTIONS = {
    "project": "pip",
    "channel": "pkgs/main",
    "subdir": "noarch",
    "suite": "bookworm",
    "path": "",
    "docker_image": None,
}

PYPI_ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"
MANIFEST_ACCEPT = ", ".join((
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
))
DIST_SUFFIXES = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz", ".tar", ".egg", ".exe", ".msi", ".rpm")

_SERIAL_COMMENT = re.compile(r"<!--\s*SERIAL\s+(\d+)\s*-->", re.IGNORECASE)
_APT_FIELD = re.compile(r"^(Suite|Codename|Date):", re.MULTILINE)
_AUTH_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
_IMAGE_REPO = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_IMAGE_DIGEST = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")


class ProbeSpecError(ValueError):
    """Bad probe input (mirror list or options). Messages show URLs masked only."""


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


# --------------------------------------------------------------------------------------------
# Validation


def normalize_project(name):
    """PEP 503 name normalization: ``Zope.Interface`` -> ``zope-interface``."""
    return re.sub(r"[-_.]+", "-", name).lower()


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


def validate_options(kind, options=None):
    """Fill in defaults for the kind-specific options and check them."""
    merged = dict(DEFAULT_OPTIONS)
    for key, value in (options or {}).items():
        if key not in DEFAULT_OPTIONS:
            raise ProbeSpecError("unknown probe option %r" % key)
        if value is not None:
            merged[key] = value
    for key in ("project", "channel", "subdir", "suite"):
        if not isinstance(merged[key], str) or not merged[key].strip():
            raise ProbeSpecError("%s must be a non-empty string" % key)
    if not isinstance(merged["path"], str):
        raise ProbeSpecError("path must be a string")
    for key in ("channel", "subdir", "suite", "path"):
        if ".." in merged[key].split("/"):
            raise ProbeSpecError("%s must not contain '..'" % key)
    if kind == "docker" and merged["docker_image"]:
        parse_image_ref(merged["docker_image"])
    return merged


def _check_timeout(timeout):
    try:
        timeout = float(timeout)
    except (TypeError, ValueError):
        raise ProbeSpecError("timeout must be a number of seconds")
    if not 0 < timeout <= 3600:
        raise ProbeSpecError("timeout must be more than 0 and at most 3600 seconds")
    return timeout


def probe_url(kind, base_url, options):
    """The URL a probe GETs first, built from a mirror's base URL (credentials already split off)."""
    if kind == "pypi":
        return join_path(base_url, normalize_project(options["project"]), "")
    if kind == "conda":
        return join_path(base_url, options["channel"], options["subdir"], "repodata.json")
    if kind == "docker":
        return join_path(base_url, "v2", "")
    if kind == "apt":
        suite = options["suite"]
        if suite.endswith("/"):  # flat repository: `deb URL sub/` reads URL/sub/InRelease
            sub = suite.strip("/")
            if sub in ("", "."):
                return join_path(base_url, "InRelease")
            return join_path(base_url, sub, "InRelease")
        return join_path(base_url, "dists", suite, "InRelease")
    if kind == "http":
        return join_path(base_url, options["path"]) if options["path"] else base_url
    raise ProbeSpecError("unknown kind %r" % kind)


# --------------------------------------------------------------------------------------------
# Classifiers: pure functions of (status, headers, body)


def _header(headers, name):
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


def _text(body):
    return body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else str(body or "")


def _status_reason(status):
    return "HTTP %d" % status


class _AnchorParser(HTMLParser):
    def __init__(self):
        HTMLParser.__init__(self, convert_charrefs=True)
        self.hrefs = []
        self.serial = None

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            for key, value in attrs:
                if key == "href" and value:
                    self.hrefs.append(value)

    def handle_comment(self, data):
        match = re.match(r"\s*SERIAL\s+(\d+)\s*$", data, re.IGNORECASE)
        if match and self.serial is None:
            self.serial = int(match.group(1))


def _is_project_file(href, project):
    filename = unquote(urlsplit(href).path.rsplit("/", 1)[-1]).lower()
    if not filename.endswith(DIST_SUFFIXES):
        return False
    return normalize_project(filename).startswith(project + "-")


def _int_or_none(value):
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def classify_pypi(status, headers, body, project="pip"):
    """PEP 691 JSON with files, or PEP 503 HTML linking at least one file of ``project``."""
    if not 200 <= status < 300:
        return Verdict(False, _status_reason(status))
    project = normalize_project(project)
    header_serial = _int_or_none(_header(headers, "X-PyPI-Last-Serial"))
    content_type = (_header(headers, "Content-Type") or "").lower()
    text = _text(body)
    if "json" in content_type or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return Verdict(False, "not a PyPI simple page")
        if not isinstance(data, dict) or not isinstance(data.get("files"), list):
            return Verdict(False, "not a PyPI simple page")
        meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
        serial = _int_or_none(meta.get("_last-serial"))
        if serial is None:
            serial = header_serial
        if not data["files"]:
            return Verdict(False, "no files listed for %s" % project, serial)
        return Verdict(True, serial=serial)
    parser = _AnchorParser()
    try:
        parser.feed(text)
        parser.close()
    except Exception:  # HTMLParser is lenient; anything it still chokes on is not a simple page
        return Verdict(False, "not a PyPI simple page")
    serial = parser.serial
    if serial is None:
        match = _SERIAL_COMMENT.search(text)
        serial = int(match.group(1)) if match else header_serial
    if not any(_is_project_file(href, project) for href in parser.hrefs):
        return Verdict(False, "not a PyPI simple page", serial)
    return Verdict(True, serial=serial)


def classify_conda(status, headers, body):
    """repodata.json that parses, with a ``packages`` or ``packages.conda`` mapping."""
    if not 200 <= status < 300:
        return Verdict(False, _status_reason(status))
    try:
        data = json.loads(_text(body))
    except ValueError:
        return Verdict(False, "repodata does not parse")
    if not isinstance(data, dict):
        return Verdict(False, "repodata does not parse")
    if isinstance(data.get("packages"), dict) or isinstance(data.get("packages.conda"), dict):
        return Verdict(True)
    return Verdict(False, "repodata has no packages")


def classify_apt(status, headers, body):
    """A clearsigned InRelease with a Suite, Codename or Date field."""
    if not 200 <= status < 300:
        return Verdict(False, _status_reason(status))
    text = _text(body).lstrip("\ufeff")
    if not text.startswith("-----BEGIN PGP SIGNED MESSAGE-----"):
        return Verdict(False, "not a signed InRelease file")
    if not _APT_FIELD.search(text):
        return Verdict(False, "InRelease has no Suite, Codename or Date field")
    return Verdict(True)


def classify_http(status, headers, body=None):
    """Any 2xx."""
    if 200 <= status < 300:
        return Verdict(True)
    return Verdict(False, _status_reason(status))


def classify_registry(status, headers):
    """``/v2/`` answered 200 or 401 with ``Docker-Distribution-API-Version: registry/2.0``."""
    if status not in (200, 401):
        return Verdict(False, _status_reason(status))
    api = (_header(headers, "Docker-Distribution-API-Version") or "").strip().lower()
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


# --------------------------------------------------------------------------------------------
# Errors -> short human reasons


def timeout_reason(timeout):
    return "timed out after %s s" % float(timeout)


def describe_error(exc, timeout):
    """A short, human reason for an exception raised while probing. Not yet masked."""
    if isinstance(exc, urllib.error.HTTPError):
        return _status_reason(exc.code)
    if isinstance(exc, urllib.error.URLError):
        inner = exc.reason
        if isinstance(inner, BaseException):
            return describe_error(inner, timeout)
        text = str(inner)
        if "timed out" in text:
            return timeout_reason(timeout)
        return text or "URL error"
    if isinstance(exc, _DeadlineExceeded) or isinstance(exc, socket.timeout):
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
# HTTP plumbing


class _DeadlineExceeded(Exception):
    pass


class _Unhealthy(Exception):
    def __init__(self, reason):
        Exception.__init__(self, reason)
        self.reason = reason


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
    with TLS contexts from ansible's ``make_context`` (``ca_path``, ``validate_certs``), the
    host's proxy environment (urllib's default ProxyHandler) and ansible's redirect handler set
    to not follow: redirects are followed by the probe itself, so it can count them, spot loops
    and keep credentials on the mirror's own host.
    """

    def __init__(self, validate_certs=True, ca_path=None):
        self.validate_certs = validate_certs
        self.ca_path = ca_path
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

    def open(self, method, url, headers, timeout, insecure, connections):
        opener = urllib.request.build_opener(
            _HTTPHandler(connections),
            _HTTPSHandler(functools.partial(self.context, insecure), connections),
            HTTPRedirectHandler("none"),
        )
        request = urllib.request.Request(url, headers=headers, method=method)
        try:
            resp = opener.open(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            return Response(exc.code, exc.headers, exc.fp)
        return Response(resp.status, resp.headers, resp)


# --------------------------------------------------------------------------------------------
# One mirror


class _MirrorProbe:
    def __init__(self, kind, mirror, options, opener, deadline_at, timeout, clock):
        self.kind = kind
        self.mirror = mirror
        self.options = options
        self.opener = opener
        self.deadline_at = deadline_at
        self.timeout = timeout
        self.clock = clock
        self.connections = Connections()
        self.status = None  # last HTTP status seen; read by the main thread at the deadline

    def remaining(self):
        left = self.deadline_at - self.clock()
        if left <= 0:
            raise _DeadlineExceeded()
        return left

    def run(self):
        """Return ``(Verdict, latency_ms or None)``."""
        started = self.clock()
        try:
            verdict = getattr(self, "_probe_" + self.kind)()
        except _Unhealthy as exc:
            verdict = Verdict(False, exc.reason)
        except Exception as exc:  # every failure becomes a reason, never a crash of the module
            verdict = Verdict(False, describe_error(exc, self.timeout))
        if verdict.healthy and self.clock() > self.deadline_at:
            verdict = Verdict(False, timeout_reason(self.timeout))
        latency = int(round((self.clock() - started) * 1000)) if verdict.healthy else None
        return verdict, latency

    # -- HTTP with redirects, credentials kept on their host, bounded body reads

    def _open(self, method, url, headers=None, private_headers=None):
        """Send a request, following up to MAX_REDIRECTS redirects. Return the final Response.

        ``private_headers`` (and the mirror's own Basic credentials) go only to the host the
        chain started on, never to a host a redirect points at.
        """
        start_url = url
        current = url
        seen = {url}
        for _hop in range(MAX_REDIRECTS + 1):
            send = {"User-Agent": USER_AGENT}
            send.update(headers or {})
            if same_host(current, start_url):
                if self.mirror.username is not None and same_host(current, self.mirror.base_url):
                    send["Authorization"] = basic_auth_value(self.mirror.username, self.mirror.password)
                send.update(private_headers or {})
            resp = self.opener.open(method, current, send, self.remaining(), self.mirror.insecure, self.connections)
            self.status = resp.status
            if resp.status not in REDIRECT_CODES:
                return resp
            location = _header(resp.headers, "Location")
            resp.close()
            if not location:
                raise _Unhealthy("HTTP %d redirect without a Location" % resp.status)
            target, _user, _password = split_credentials(urljoin(current, location.strip()))
            scheme = urlsplit(target).scheme.lower()
            if scheme not in ("http", "https"):
                raise _Unhealthy("redirect to an unsupported scheme")
            if scheme == "http" and urlsplit(current).scheme.lower() == "https" and not self.mirror.insecure:
                raise _Unhealthy("redirect from https to plain http (set insecure: true to allow)")
            if target in seen:
                raise _Unhealthy("redirect loop")
            seen.add(target)
            current = target
            if resp.status == 303 and method != "HEAD":
                method = "GET"
        raise _Unhealthy("redirect loop (more than %d redirects)" % MAX_REDIRECTS)

    def _read(self, resp, cap=None, what="response", truncate=False):
        """Read the whole body within the deadline and ``cap`` bytes (after gzip decoding).

        Over the cap the mirror is unhealthy, unless ``truncate``: then reading just stops there.
        """
        if cap is None:
            cap = MAX_BODY_BYTES
        encoding = (_header(resp.headers, "Content-Encoding") or "").strip().lower()
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding in ("gzip", "x-gzip") else None
        body = bytearray()
        too_large = _Unhealthy("%s larger than %s" % (what, _size(cap)))
        try:
            while True:
                self.connections.set_timeout(self.remaining())
                chunk = resp.read1(READ_CHUNK)
                if not chunk:
                    break
                if decoder is not None:
                    chunk = decoder.decompress(chunk, cap + 1 - len(body))
                body += chunk
                if len(body) > cap:
                    if truncate:
                        return bytes(body[:cap])
                    raise too_large
            if decoder is not None:
                body += decoder.flush()
                if len(body) > cap:
                    raise too_large
        finally:
            resp.close()
        return bytes(body)

    def _get_and_read(self, url, headers=None, cap=None, what="response", truncate=False):
        resp = self._open("GET", url, headers)
        if not 200 <= resp.status < 300:
            resp.close()
            return resp, b""
        return resp, self._read(resp, cap, what, truncate)

    # -- kinds

    def _probe_pypi(self):
        url = probe_url("pypi", self.mirror.base_url, self.options)
        resp, body = self._get_and_read(url, {"Accept": PYPI_ACCEPT}, what="simple page")
        return classify_pypi(resp.status, resp.headers, body, self.options["project"])

    def _probe_conda(self):
        url = probe_url("conda", self.mirror.base_url, self.options)
        resp, body = self._get_and_read(url, {"Accept-Encoding": "gzip"}, what="repodata")
        return classify_conda(resp.status, resp.headers, body)

    def _probe_apt(self):
        url = probe_url("apt", self.mirror.base_url, self.options)
        resp, body = self._get_and_read(url, what="InRelease")
        return classify_apt(resp.status, resp.headers, body)

    def _probe_http(self):
        url = probe_url("http", self.mirror.base_url, self.options)
        # the body only has to arrive in time; a big one is fine, reading just stops at the cap
        resp, _body = self._get_and_read(url, truncate=True)
        return classify_http(resp.status, resp.headers)

    def _probe_docker(self):
        resp = self._open("GET", probe_url("docker", self.mirror.base_url, self.options))
        resp.close()
        verdict = classify_registry(resp.status, resp.headers)
        if not verdict.healthy or not self.options.get("docker_image"):
            return verdict
        return self._probe_manifest(self.options["docker_image"])

    def _probe_manifest(self, image):
        repository, reference = parse_image_ref(image)
        shown = image.strip()
        url = join_path(self.mirror.base_url, "v2", repository, "manifests", reference)
        accept = {"Accept": MANIFEST_ACCEPT}
        resp = self._open("HEAD", url, accept)
        resp.close()
        if resp.status == 401:
            challenge = parse_bearer_challenge(_header(resp.headers, "WWW-Authenticate"))
            if challenge is None:
                return Verdict(False, "image %s: the registry wants credentials (no Bearer challenge)" % shown)
            token = self._fetch_token(challenge, repository)
            resp = self._open("HEAD", url, accept, private_headers={"Authorization": "Bearer " + token})
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

    def _fetch_token(self, challenge, repository):
        realm, _user, _password = split_credentials(challenge["realm"])
        scheme = urlsplit(realm).scheme.lower()
        if scheme not in ("http", "https") or not urlsplit(realm).hostname:
            raise _Unhealthy("token realm is not an http(s) URL")
        if scheme == "http" and not self.mirror.insecure:
            raise _Unhealthy("token realm is plain http (set insecure: true to allow)")
        params = []
        if challenge.get("service"):
            params.append(("service", challenge["service"]))
        params.append(("scope", challenge.get("scope") or "repository:%s:pull" % repository))
        url = realm + ("&" if urlsplit(realm).query else "?") + urlencode(params)
        resp = self._open("GET", url, {"Accept": "application/json"})
        if resp.status != 200:
            resp.close()
            raise _Unhealthy("token endpoint: HTTP %d" % resp.status)
        body = self._read(resp, MAX_SMALL_BODY_BYTES, what="token response")
        try:
            data = json.loads(_text(body))
        except ValueError:
            data = None
        token = (data.get("token") or data.get("access_token")) if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise _Unhealthy("token endpoint returned no token")
        return token


def _size(nbytes):
    if nbytes % (1024 * 1024) == 0:
        return "%d MiB" % (nbytes // (1024 * 1024))
    return "%d bytes" % nbytes


# --------------------------------------------------------------------------------------------
# All mirrors, one deadline


class _Board:
    """Results posted by the probe threads; closed at the deadline so late posts are dropped."""

    def __init__(self, count):
        self.cond = threading.Condition()
        self.results = [None] * count
        self.pending = count
        self.closed = False

    def post(self, index, result):
        with self.cond:
            if self.closed or self.results[index] is not None:
                return
            self.results[index] = result
            self.pending -= 1
            self.cond.notify_all()

    def close_at(self, deadline_at, clock):
        with self.cond:
            while self.pending:
                left = deadline_at - clock()
                if left <= 0:
                    break
                self.cond.wait(left)
            self.closed = True
            return list(self.results)


def _result(mirror, verdict, latency_ms, status, masker):
    return {
        "name": mirror.name,
        "url": mirror.url_masked,
        "healthy": verdict.healthy,
        "latency_ms": latency_ms if verdict.healthy else None,
        "http_status": status,
        "reason": masker(verdict.reason) if verdict.reason else None,
        "serial": verdict.serial,
    }


def run_probe(kind, mirrors, deadline=DEFAULT_TIMEOUT, opener=None, validate_certs=True, ca_path=None,
              clock=time.monotonic, **options):
    """Probe every mirror at once; return by ``deadline`` seconds (plus thread bookkeeping).

    :arg kind: pypi, conda, docker, apt or http.
    :arg mirrors: list of ``{name, url, insecure}`` dicts.
    :arg deadline: seconds for the whole probe, all mirrors together.
    :arg opener: an object with ``open(method, url, headers, timeout, insecure, connections)``
        returning a :class:`Response` (default :class:`UrlOpener`); tests inject fakes.
    :kwarg options: project, channel, subdir, suite, path, docker_image.
    :returns: ``{"results": [...], "elapsed_ms": int, "timeout": float}``, results in input order.
    :raises ProbeSpecError: bad input; the message never shows credentials.
    """
    timeout = _check_timeout(deadline)
    validated = validate_mirrors(kind, mirrors)
    options = validate_options(kind, options)
    masker = SecretMasker(m.url for m in validated)
    if opener is None:
        opener = UrlOpener(validate_certs=validate_certs, ca_path=ca_path)
    if hasattr(opener, "prepare"):
        opener.prepare(validated)

    started = clock()
    deadline_at = started + timeout
    board = _Board(len(validated))
    probes = [_MirrorProbe(kind, m, options, opener, deadline_at, timeout, clock) for m in validated]

    def work(index, probe):
        try:
            verdict, latency = probe.run()
        except BaseException as exc:  # pragma: no cover - run() already turns errors into verdicts
            verdict, latency = Verdict(False, describe_error(exc, timeout)), None
        board.post(index, _result(probe.mirror, verdict, latency, probe.status, masker))

    # Daemon threads, not a ThreadPoolExecutor: its workers are joined at interpreter exit, so a
    # stalled mirror would hold the module's process open past the deadline.
    for index, probe in enumerate(probes):
        thread = threading.Thread(target=work, args=(index, probe), name="probe-%d" % index)
        thread.daemon = True
        thread.start()

    results = board.close_at(deadline_at, clock)
    for index, probe in enumerate(probes):
        if results[index] is None:
            probe.connections.abort()
            results[index] = _result(probe.mirror, Verdict(False, timeout_reason(timeout)), None, probe.status,
                                     masker)
    return {
        "results": results,
        "elapsed_ms": int(round((clock() - started) * 1000)),
        "timeout": timeout,
    }
