# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small forward HTTP proxy for tests: absolute-form GET/HEAD (plain HTTP) and CONNECT (HTTPS).

It logs one line per request ("GET http://127.0.3.1:8080/simple/six/" or "CONNECT host:port") to
--log, so a test can prove a client went through it. Loopback only: it refuses to forward to any
address outside 127.0.0.0/8 and ::1 (the test network rule), and it stops after --lifetime seconds.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import select
import socket
import sys
import threading
import time

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


def loopback(host):
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    log_path = None

    def log_message(self, *args):  # quiet stderr
        pass

    def _log(self, line):
        with open(self.log_path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def _forward(self):
        self._log("%s %s" % (self.command, self.path))
        parts = urlsplit(self.path)
        if parts.scheme != "http" or not parts.hostname or not loopback(parts.hostname):
            self.send_error(403, "test proxy: loopback http:// targets only")
            return
        upstream = socket.create_connection((parts.hostname, parts.port or 80), timeout=10)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        headers = "".join("%s: %s\r\n" % (k, v) for k, v in self.headers.items()
                          if k.lower() not in ("proxy-connection", "connection", "proxy-authorization"))
        upstream.sendall(("%s %s HTTP/1.0\r\n%sConnection: close\r\n\r\n" % (self.command, path, headers)).encode())
        while True:
            chunk = upstream.recv(65536)
            if not chunk:
                break
            self.wfile.write(chunk)
        upstream.close()

    do_GET = do_HEAD = _forward

    def do_CONNECT(self):
        self._log("CONNECT %s" % self.path)
        host, _sep, port = self.path.rpartition(":")
        if not loopback(host):
            self.send_error(403, "test proxy: loopback targets only")
            return
        upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
        self.send_response(200, "Connection established")
        self.end_headers()
        sockets = [self.connection, upstream]
        while True:
            readable, _w, _x = select.select(sockets, [], [], 30)
            if not readable:
                break
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    upstream.close()
                    return
                (upstream if sock is self.connection else self.connection).sendall(data)


def _stop_after(seconds):
    """A test server never outlives its test run."""
    time.sleep(seconds)
    os._exit(0)  # pylint: disable=protected-access


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", required=True, help="127.x.y.z:port")
    parser.add_argument("--log", required=True)
    parser.add_argument("--pidfile")
    parser.add_argument("--lifetime", type=float, default=1800)
    args = parser.parse_args()
    host, _sep, port = args.listen.rpartition(":")
    if not loopback(host):
        sys.exit("listen on loopback only")
    Proxy.log_path = args.log
    server = ThreadingHTTPServer((host, int(port)), Proxy)
    if args.pidfile:
        with open(args.pidfile, "w", encoding="utf-8") as handle:
            handle.write(str(os.getpid()))
    threading.Thread(target=_stop_after, args=(args.lifetime,), daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
