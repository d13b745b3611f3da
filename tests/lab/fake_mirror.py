# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fake package mirror on loopback, for Molecule scenarios, the demo and the benches.

Standard library only. Always exits after --lifetime seconds, so nothing lingers.

    python3 tests/lab/fake_mirror.py --listen 127.0.2.1:8080 --mode pypi [--projects pip,numpy] [--root DIR]
                                     [--lifetime 600] [--pidfile FILE --daemonize] [--log FILE] [--delay 0.5]
                                     [--serial 4242] [--seed a] [--blob-status 200]
    python3 tests/lab/fake_mirror.py --stop --pidfile FILE

Modes
  pypi      PEP 503 simple index (HTML; PEP 691 JSON when the client asks for it) for --projects,
            each page ending with <!--SERIAL n--> (--serial) like bandersnatch mirrors; files under /packages/.
            With --root, serves that directory instead (a static PEP 503 tree: DIR/simple/<project>/).
  slow      pypi, but every answer is delayed by --delay seconds (healthy, slow).
  stall     accepts TCP connections and never answers (a dead mirror that does not refuse).
  captive   answers 200 with an HTML login page on every path (a captive portal).
  registry  Docker registry API: /v2/ answers 401 with Docker-Distribution-Api-Version and a Bearer
            challenge; /token hands out a token; with a token every repository:tag is one small image
            (a v2 manifest, its config and one layer, made of --seed), without one 401. Blob GETs
            answer --blob-status (403: an allowlist mirror).
  conda     any .../<subdir>/repodata.json (and current_repodata.json) is a small valid repodata.
            With --root, serves that directory.
  apt       any .../InRelease, Release or Packages file of a flat ("/") or dists/<suite> repo.
            With --root, serves that directory.

A dead mirror that refuses needs no process: use an address of your block where nothing listens.

--daemonize: the port is bound before the command returns and --pidfile holds the server's pid,
so a playbook can start it with `creates: <pidfile>` and stop it with `--stop --pidfile <pidfile>`
(`removes: <pidfile>`). The server removes its pidfile when it exits.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import signal
import socket
import sys
import threading
import time

from email.utils import formatdate
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

MODES = ("pypi", "slow", "stall", "captive", "registry", "conda", "apt")
PEP691 = "application/vnd.pypi.simple.v1+json"
SERIAL = 4242  # the default of --serial


def normalize(name):
    """PEP 503 project name normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


def project_files(project):
    """Two small fake distributions per project: (filename, content bytes, sha256)."""
    files = []
    for version in ("1.0", "1.1"):
        filename = "%s-%s-py3-none-any.whl" % (normalize(project).replace("-", "_"), version)
        content = ("fake distribution %s %s\n" % (project, version)).encode()
        files.append((filename, content, hashlib.sha256(content).hexdigest()))
    return files


class Handler(SimpleHTTPRequestHandler):
    """One handler for every HTTP mode; the server object carries the options."""

    server_version = "fake-mirror/1.0"
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        log = self.server.options.log
        if log:
            with open(log, "a", encoding="utf-8") as handle:
                handle.write("%s %s %s\n" % (time.strftime("%H:%M:%S"), self.address_string(), format % args))

    # -- helpers -----------------------------------------------------------------------------
    def _send(self, status, body, content_type="text/html; charset=utf-8", headers=None):
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _path(self):
        return urlsplit(self.path).path

    # -- dispatch ----------------------------------------------------------------------------
    def do_HEAD(self):  # noqa: N802 - http.server's naming
        self.do_GET()

    def do_GET(self):  # noqa: N802
        options = self.server.options
        if options.mode == "slow":
            time.sleep(options.delay)
        if options.root and options.mode in ("pypi", "slow", "conda", "apt"):
            return super().do_GET() if self.command == "GET" else super().do_HEAD()
        handler = getattr(self, "_mode_" + ("pypi" if options.mode == "slow" else options.mode))
        return handler()

    # -- modes -------------------------------------------------------------------------------
    def _mode_captive(self):
        self._send(200, "<!DOCTYPE html><html><head><title>Campus network login</title></head>"
                        "<body><form action=\"/login\" method=\"post\">Please log in"
                        "<input name=\"user\"><input name=\"password\" type=\"password\"></form></body></html>\n")

    def _mode_pypi(self):
        serial = self.server.options.serial
        path = self._path()
        parts = [part for part in path.split("/") if part]
        projects = {normalize(name): name for name in self.server.options.projects}
        wants_json = PEP691 in (self.headers.get("Accept") or "")
        if parts and parts[0] == "packages" and len(parts) == 2:
            for name in projects.values():
                for filename, content, _sha in project_files(name):
                    if filename == parts[1]:
                        return self._send(200, content, "application/octet-stream")
            return self._send(404, "not found\n", "text/plain")
        if parts[:1] != ["simple"] or len(parts) > 2:
            return self._send(404, "not found\n", "text/plain")
        if len(parts) == 1:  # the project list
            if wants_json:
                body = {"meta": {"api-version": "1.0", "_last-serial": serial},
                        "projects": [{"name": name} for name in sorted(projects.values())]}
                return self._send(200, json.dumps(body), PEP691, {"X-PyPI-Last-Serial": str(serial)})
            links = "".join('<a href="/simple/%s/">%s</a>\n' % (key, name) for key, name in sorted(projects.items()))
            return self._send(200, "<!DOCTYPE html>\n<html><body>\n%s</body></html>\n<!--SERIAL %d-->\n"
                              % (links, serial), headers={"X-PyPI-Last-Serial": str(serial)})
        key = normalize(parts[1])
        if key not in projects:
            return self._send(404, "no such project\n", "text/plain")
        files = project_files(projects[key])
        if wants_json:
            body = {"meta": {"api-version": "1.0", "_last-serial": serial}, "name": key,
                    "files": [{"filename": filename, "url": "/packages/%s" % filename, "hashes": {"sha256": sha}}
                              for filename, _content, sha in files]}
            return self._send(200, json.dumps(body), PEP691, {"X-PyPI-Last-Serial": str(serial)})
        links = "".join('<a href="/packages/%s#sha256=%s">%s</a><br/>\n' % (filename, sha, filename)
                        for filename, _content, sha in files)
        return self._send(200, "<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" content=\"1.0\">"
                               "<title>Links for %s</title></head><body><h1>Links for %s</h1>\n%s</body></html>\n"
                               "<!--SERIAL %d-->\n" % (key, key, links, serial),
                          headers={"X-PyPI-Last-Serial": str(serial)})

    def _mode_registry(self):
        path = self._path()
        host = self.headers.get("Host") or "%s:%d" % self.server.server_address[:2]
        api = {"Docker-Distribution-Api-Version": "registry/2.0"}
        challenge = dict(api, **{"WWW-Authenticate": 'Bearer realm="http://%s/token",service="fake-registry"' % host})
        authorized = (self.headers.get("Authorization") or "").startswith("Bearer ")
        if path == "/token":
            return self._send(200, json.dumps({"token": "fake-token", "access_token": "fake-token", "expires_in": 300}),
                              "application/json")
        if path in ("/v2", "/v2/"):
            if authorized:
                return self._send(200, "{}", "application/json", api)
            return self._send(401, json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}),
                              "application/json", challenge)
        match = re.match(r"^/v2/(.+)/(manifests|blobs)/([^/]+)$", path)
        if not match:
            return self._send(404, json.dumps({"errors": [{"code": "NAME_UNKNOWN"}]}), "application/json", api)
        if not authorized:
            return self._send(401, json.dumps({"errors": [{"code": "UNAUTHORIZED"}]}), "application/json", challenge)
        # every repository:tag is the same small image: a v2 manifest, its config and one layer
        config, layer, manifest = fake_image(self.server.options.seed)
        if match.group(2) == "manifests":
            return self._send(200, manifest, MANIFEST_V2, dict(api, **{"Docker-Content-Digest": sha256_of(manifest)}))
        blobs = {sha256_of(config): config, sha256_of(layer): layer}
        if match.group(3) not in blobs:
            return self._send(404, json.dumps({"errors": [{"code": "BLOB_UNKNOWN"}]}), "application/json", api)
        if self.server.options.blob_status != 200:  # a mirror that serves an allowlist of images only
            return self._send(self.server.options.blob_status, json.dumps({"errors": [{"code": "DENIED"}]}),
                              "application/json", api)
        return self._send(200, blobs[match.group(3)], "application/octet-stream", api)

    def _mode_conda(self):
        path = self._path()
        name = path.rsplit("/", 1)[-1]
        if name in ("repodata.json", "current_repodata.json"):
            subdir = path.rstrip("/").split("/")[-2] if path.count("/") >= 2 else "noarch"
            body = {"info": {"subdir": subdir}, "repodata_version": 1,
                    "packages": {"fake-1.0-0.tar.bz2": {"name": "fake", "version": "1.0", "build": "0",
                                                        "build_number": 0, "depends": [], "subdir": subdir}},
                    "packages.conda": {}, "removed": []}
            return self._send(200, json.dumps(body), "application/json")
        return self._send(404, "not found\n", "text/plain")

    def _mode_apt(self):
        path = self._path()
        name = path.rsplit("/", 1)[-1]
        release = ("Origin: fake-mirror\nLabel: fake-mirror\nSuite: stable\nCodename: fake\nDate: %s\n"
                   "Architectures: amd64\nComponents: main\nSHA256:\n %s 0 Packages\n"
                   % (formatdate(usegmt=True), hashlib.sha256(b"").hexdigest()))
        if name == "InRelease":
            return self._send(200, "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n%s"
                                   "-----BEGIN PGP SIGNATURE-----\n\nZmFrZQ==\n-----END PGP SIGNATURE-----\n" % release,
                              "text/plain")
        if name == "Release":
            return self._send(200, release, "text/plain")
        if name == "Packages":
            return self._send(200, "", "text/plain")
        return self._send(404, "not found\n", "text/plain")


MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def sha256_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def fake_image(seed):
    """``(config, layer, manifest)`` bytes of a tiny image; another seed gives other digests."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers"},
                         "seed": seed}).encode()
    layer = ("fake layer " + seed).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST_V2,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config),
                   "digest": sha256_of(config)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(layer),
                    "digest": sha256_of(layer)}],
    }).encode()
    return config, layer, manifest


def parse_listen(value):
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError("--listen wants HOST:PORT, got %r" % value)
    return host.strip("[]"), int(port)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--listen", type=parse_listen, help="HOST:PORT (loopback only)")
    parser.add_argument("--mode", choices=MODES, default="pypi")
    parser.add_argument("--root", help="serve this directory (pypi, slow, conda, apt)")
    parser.add_argument("--projects", default="pip", help="comma-separated projects for the generated PyPI index")
    parser.add_argument("--lifetime", type=float, default=600.0, help="exit after this many seconds (default 600)")
    parser.add_argument("--delay", type=float, default=0.5, help="seconds each answer waits in slow mode")
    parser.add_argument("--pidfile", help="write the server's pid here; removed on exit")
    parser.add_argument("--daemonize", action="store_true", help="detach once listening (needs --pidfile)")
    parser.add_argument("--log", help="append one line per request here")
    parser.add_argument("--serial", type=int, default=SERIAL, help="pypi: the serial every page carries (a stale mirror: lower)")
    parser.add_argument("--seed", default="a", help="registry: what the image is made of (another seed, other digests)")
    parser.add_argument("--blob-status", type=int, default=200,
                        help="registry: the status of every blob GET (403: a mirror that serves an allowlist only)")
    parser.add_argument("--stop", action="store_true", help="stop the server whose pid is in --pidfile")
    options = parser.parse_args(argv)
    if options.stop:
        if not options.pidfile:
            parser.error("--stop needs --pidfile")
        return options
    if not options.listen:
        parser.error("--listen HOST:PORT is required")
    if not options.listen[0].startswith("127."):
        parser.error("--listen must be a 127.0.0.0/8 address (tests only send traffic to loopback)")
    if options.daemonize and not options.pidfile:
        parser.error("--daemonize needs --pidfile")
    if options.lifetime <= 0:
        parser.error("--lifetime must be > 0")
    options.projects = [name.strip() for name in options.projects.split(",") if name.strip()]
    if options.root:
        options.root = os.path.abspath(options.root)
        if not os.path.isdir(options.root):
            parser.error("--root %s is not a directory" % options.root)
    return options


def stop(pidfile, wait=5.0):
    """Stop the server recorded in pidfile (SIGTERM, then SIGKILL). Returns 0 when it is gone."""
    try:
        with open(pidfile, encoding="ascii") as handle:
            pid = int(handle.read().strip())
    except (OSError, ValueError):
        return 0
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.unlink(pidfile)
    except FileNotFoundError:
        pass
    return 0


class StallServer:
    """Accepts connections and holds them open without a byte in reply."""

    def __init__(self, address):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(address)
        self.socket.listen(128)
        self.held = []

    def serve_forever(self):
        while True:
            try:
                connection, _peer = self.socket.accept()
            except OSError:
                return
            self.held.append(connection)


def make_server(options):
    if options.mode == "stall":
        return StallServer(options.listen)
    handler = partial(Handler, directory=options.root) if options.root else Handler
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(options.listen, handler)
    server.options = options
    return server


def write_pidfile(path, pid):
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w", encoding="ascii") as handle:
        handle.write("%d\n" % pid)
    os.replace(tmp, path)


def daemonize(pidfile):
    """Classic double fork. The original process returns only in the grandchild; the others exit
    after the pidfile is written, so the caller can rely on it once the command returns."""
    read_end, write_end = os.pipe()
    if os.fork() > 0:  # original process: wait for the grandchild's pid to be on disk
        os.close(write_end)
        os.read(read_end, 1)
        os._exit(0)
    os.close(read_end)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    write_pidfile(pidfile, os.getpid())
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.write(write_end, b"x")
    os.close(write_end)


def serve(options):
    server = make_server(options)  # bind first: an address in use fails here, in the foreground
    if options.daemonize:
        daemonize(options.pidfile)
    elif options.pidfile:
        write_pidfile(options.pidfile, os.getpid())
    mypid = os.getpid()

    def finish(*_args):
        if options.pidfile:
            try:
                with open(options.pidfile, encoding="ascii") as handle:
                    if int(handle.read().strip()) == mypid:
                        os.unlink(options.pidfile)
            except (OSError, ValueError):
                pass
        os._exit(0)

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    if not options.daemonize:
        print("fake_mirror %s on %s:%d for %.0f s" % ((options.mode,) + options.listen + (options.lifetime,)), flush=True)
    time.sleep(options.lifetime)
    finish()


def main(argv=None):
    options = parse_args(argv)
    if options.stop:
        return stop(options.pidfile)
    try:
        serve(options)
    except OSError as exc:
        print("fake_mirror: cannot listen on %s:%d: %s" % (options.listen + (exc,)), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
