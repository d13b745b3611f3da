# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fake mirrors on loopback for tests and benchmarks: healthy, refusing, stalling, lying.

Everything binds to 127.0.0.0/8 only (unit tests: 127.0.0.1 port 0; bench: 127.0.20.x) and stops
cleanly: handlers that stall wait on an Event that :meth:`MirrorServer.stop` sets.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import ssl
import sys
import threading

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lab"))

from fake_mirror import MANIFEST_V2, fake_image, sha256_of  # noqa: E402  (tests/lab, the lab's fake mirror)


def _require_loopback(host):
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError("test servers bind to loopback only, not %s" % host)


class Route:
    """What a path answers. ``handler(request) -> (status, headers, body)`` overrides the rest.

    - ``delay``: seconds to wait before the status line (a mirror slow to send headers);
    - ``stall``: accept the request and never answer;
    - ``stall_body_after``: send headers (with the full Content-Length) and that many body bytes,
      then go silent.
    """

    def __init__(self, status=200, headers=None, body=b"", handler=None, delay=0.0, stall=False,
                 stall_body_after=None):
        self.status = status
        self.headers = dict(headers or {})
        self.body = body.encode("utf-8") if isinstance(body, str) else body
        self.handler = handler
        self.delay = delay
        self.stall = stall
        self.stall_body_after = stall_body_after


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "gpulab-test-mirror"

    def setup(self):
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(5)
            self.request.do_handshake()  # a client that rejects our cert ends the handler here
            self.request.settimeout(None)
        BaseHTTPRequestHandler.setup(self)

    def log_message(self, format, *args):  # noqa: A002 - quiet test output
        pass

    def do_GET(self):
        self._answer()

    def do_HEAD(self):
        self._answer(head=True)

    def _answer(self, head=False):
        mirror = self.server.mirror
        path = self.path
        mirror.requests.append({"method": self.command, "path": path, "headers": dict(self.headers)})
        route = mirror.routes.get(path) or mirror.routes.get(path.split("?", 1)[0]) or mirror.default
        stop = mirror.stopping
        if route.stall:
            stop.wait()
            return
        if route.delay:
            if stop.wait(route.delay):
                return
        if route.handler is not None:
            status, headers, body = route.handler(self)
            body = body.encode("utf-8") if isinstance(body, str) else (body or b"")
        else:
            status, headers, body = route.status, route.headers, route.body
        self.send_response(status)
        sent = {k.lower() for k in headers}
        for key, value in headers.items():
            self.send_header(key, value)
        if "content-length" not in sent:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if head:
            return
        if route.stall_body_after is not None:
            self.wfile.write(body[:route.stall_body_after])
            self.wfile.flush()
            stop.wait()
            return
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 drops SYNs when 25 probes connect at once

    def handle_error(self, request, client_address):
        pass  # TLS rejections and clients cut off at the deadline are expected here


class MirrorServer:
    """An HTTP(S) server with a route table. ``url`` is its base, ``requests`` what it received."""

    def __init__(self, host="127.0.0.1", port=0, tls=None):
        _require_loopback(host)
        self.host = host
        self.routes = {}
        self.default = Route(404, {"Content-Type": "text/plain"}, b"not found\n")
        self.requests = []
        self.stopping = threading.Event()
        self._httpd = _Server((host, port), _Handler)
        self._httpd.mirror = self
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True,
                                                 do_handshake_on_connect=False)
        self.port = self._httpd.server_address[1]
        self.scheme = "https" if tls is not None else "http"
        self._thread = None

    @property
    def url(self):
        return "%s://%s:%d" % (self.scheme, self.host, self.port)

    def route(self, path, *args, **kwargs):
        self.routes[path] = Route(*args, **kwargs)
        return self

    def start(self):
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="mirror-%s:%d" % (self.host, self.port))
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self):
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)


class StallingListener:
    """Accepts TCP connections and never sends a byte: the dead mirror that costs a timeout."""

    def __init__(self, host="127.0.0.1", port=0):
        _require_loopback(host)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(128)
        self._sock.settimeout(0.05)
        self.host, self.port = self._sock.getsockname()[:2]
        self._held = []
        self._stop = threading.Event()
        self._thread = None

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    def start(self):
        self._thread = threading.Thread(target=self._accept, name="stall-%s:%d" % (self.host, self.port))
        self._thread.daemon = True
        self._thread.start()
        return self

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _addr = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._held.append(conn)

    def stop(self):
        self._stop.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes accept() at once
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(5)
        for conn in self._held:
            conn.close()
        self._sock.close()


class RefusingPort:
    """A port bound but not listening: connecting to it is refused (RST), no timeout involved."""

    def __init__(self, host="127.0.0.1"):
        _require_loopback(host)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((host, 0))
        self.host, self.port = self._sock.getsockname()[:2]

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    def start(self):
        return self

    def stop(self):
        self._sock.close()


# ------------------------------------------------------------------------------------------
# Canned answers

PEP503_PIP = (
    "<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" content=\"1.1\">"
    "<title>Links for pip</title></head><body><h1>Links for pip</h1>\n"
    "<a href=\"../../packages/pip-24.0-py3-none-any.whl#sha256=abc\">pip-24.0-py3-none-any.whl</a><br/>\n"
    "<a href=\"../../packages/pip-24.0.tar.gz#sha256=def\">pip-24.0.tar.gz</a><br/>\n"
    "</body></html>\n"
)


def pep503_page(files, serial=None):
    links = "".join('<a href="../../packages/%s#sha256=00">%s</a><br/>\n' % (f, f) for f in files)
    tail = "<!--SERIAL %d-->" % serial if serial is not None else ""
    return "<!DOCTYPE html>\n<html><body>\n%s</body></html>\n%s" % (links, tail)


def pep691_json(name="pip", files=("pip-24.0-py3-none-any.whl",), serial=None):
    meta = {"api-version": "1.1"}
    if serial is not None:
        meta["_last-serial"] = serial
    return json.dumps({
        "meta": meta,
        "name": name,
        "files": [{"filename": f, "url": "../../packages/" + f, "hashes": {"sha256": "00"}} for f in files],
    })


CAPTIVE_PORTAL = (
    "<html><head><title>Campus network login</title></head><body>"
    "<form action=\"/login\"><a href=\"/login\">Log in to continue</a></form></body></html>"
)

REPODATA = json.dumps({
    "info": {"subdir": "noarch"},
    "packages": {"six-1.16.0-pyhd3eb1b0_1.tar.bz2": {"name": "six", "version": "1.16.0"}},
    "packages.conda": {},
})

INRELEASE = (
    "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n"
    "Origin: Debian\nLabel: Debian\nSuite: stable\nCodename: bookworm\n"
    "Date: Sat, 09 Nov 2024 10:00:00 UTC\nArchitectures: amd64\nComponents: main\n"
    "-----BEGIN PGP SIGNATURE-----\n\niQIzBAEBCgAdFiEE\n-----END PGP SIGNATURE-----\n"
)

REGISTRY_HEADERS = {"Docker-Distribution-API-Version": "registry/2.0", "Content-Type": "application/json"}


def pypi_mirror(server, body=PEP503_PIP, content_type="text/html", project="pip", prefix="/simple"):
    return server.route("%s/%s/" % (prefix, project), 200, {"Content-Type": content_type}, body)


def healthy_pypi_server(host="127.0.0.1", **kwargs):
    """A started server with a PEP 503 page for pip under /simple."""
    return pypi_mirror(MirrorServer(host, **kwargs)).start()


# ------------------------------------------------------------------------------------------
# A Docker registry's image: manifest (by tag and by digest), optional index, blobs

OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def add_image(registry, repository, tag, seed="a", blob_status=206, index=False, token=None, challenge=None):
    """Serve ``repository:tag`` on a MirrorServer acting as a registry; return the tag's digest.

    The image is fake_mirror's (tests/lab): another ``seed``, other digests (a registry serving
    another build of the same tag). ``blob_status`` is what blob GETs answer (403: an allowlist
    mirror). With ``token`` every manifest and blob request needs ``Authorization: Bearer
    <token>``, else 401 with ``challenge`` in ``WWW-Authenticate``.
    """
    config, layer, manifest = fake_image(seed)
    documents = {sha256_of(manifest): (MANIFEST_V2, manifest)}
    top = manifest
    if index:
        top = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": MANIFEST_V2, "digest": sha256_of(manifest), "size": len(manifest),
             "platform": {"architecture": "amd64", "os": "linux"}}]}).encode()
        documents[sha256_of(top)] = (OCI_INDEX, top)
    tag_type = OCI_INDEX if index else MANIFEST_V2

    def authorized(handler):
        return token is None or handler.headers.get("Authorization") == "Bearer " + token

    def refuse():
        return 401, dict(REGISTRY_HEADERS, **{"WWW-Authenticate": challenge or 'Bearer realm="none"'}), ""

    def serve(media_type, body):
        def handler(request):
            if not authorized(request):
                return refuse()
            return 200, dict(REGISTRY_HEADERS, **{"Content-Type": media_type,
                                                  "Docker-Content-Digest": sha256_of(body)}), body
        return handler

    def blob(data):
        def handler(request):
            if not authorized(request):
                return refuse()
            if blob_status in (200, 206):
                return blob_status, {"Content-Range": "bytes 0-0/%d" % len(data)}, data[:1]
            return blob_status, {"Content-Type": "application/json"}, '{"errors":[{"code":"DENIED"}]}'
        return handler

    base = "/v2/%s" % repository
    registry.route("%s/manifests/%s" % (base, tag), handler=serve(tag_type, top))
    for digest, (media_type, body) in documents.items():
        registry.route("%s/manifests/%s" % (base, digest), handler=serve(media_type, body))
    for data in (config, layer):
        registry.route("%s/blobs/%s" % (base, sha256_of(data)), handler=blob(data))
    return sha256_of(top)
