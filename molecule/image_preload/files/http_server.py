# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab file server of the image_preload scenario: python3's http.server on the container's loopback,
plus what a real file server does and http.server does not: byte ranges (Range: bytes=N-, answered 206).

--cut-once NAME:BYTES makes the first GET of /NAME stop after BYTES bytes and close the connection
(an interrupted download); later requests are served in full. Files under /private/ need HTTP Basic
credentials (--auth USER:PASSWORD, asked for with a 401 challenge) and ?token=--token. Every request
is appended to --log as one JSON line {path (without the query), range, status, sent, auth, token},
auth and token saying whether the right ones came (never their values), so the test can see the
resume and the credentials at work.
"""

import argparse
import base64
import http.server
import json
import os
import re

from urllib.parse import parse_qs, urlsplit


class Handler(http.server.SimpleHTTPRequestHandler):
    cut = {}
    log_path = None
    auth = None
    token = None

    def _auth_ok(self):
        want = "Basic " + base64.b64encode(self.auth.encode("utf-8")).decode("ascii") if self.auth else None
        return want is not None and self.headers.get("Authorization") == want

    def _token_ok(self):
        return self.token is not None and parse_qs(urlsplit(self.path).query).get("token") == [self.token]

    def record(self, status, sent):
        with open(self.log_path, "a") as f:
            f.write(json.dumps({"path": urlsplit(self.path).path, "range": self.headers.get("Range"),
                                "status": status, "sent": sent, "auth": self._auth_ok(),
                                "token": self._token_ok()}) + "\n")

    def do_GET(self):
        if urlsplit(self.path).path.startswith("/private/"):
            if not self._auth_ok():
                self.record(401, 0)
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="gpulab lab files"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if not self._token_ok():
                self.record(403, 0)
                self.send_error(403)
                return
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.record(404, 0)
            self.send_error(404)
            return
        size = os.path.getsize(path)
        start = 0
        m = re.match(r"^bytes=(\d+)-$", self.headers.get("Range") or "")
        if m:
            start = int(m.group(1))
            if start >= size:
                self.record(416, 0)
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % size)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, size - 1, size))
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size - start))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        limit = self.cut.pop(urlsplit(self.path).path.lstrip("/"), None)
        sent = 0
        with open(path, "rb") as f:
            f.seek(start)
            while True:
                want = 65536 if limit is None else min(65536, limit - sent)
                block = f.read(want) if want > 0 else b""
                if not block:
                    break
                self.wfile.write(block)
                sent += len(block)
        self.wfile.flush()
        self.record(206 if m else 200, sent)
        if limit is not None:
            self.close_connection = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8090)
    ap.add_argument("--directory", default=".")
    ap.add_argument("--log", required=True)
    ap.add_argument("--cut-once", action="append", default=[])
    ap.add_argument("--auth", help="USER:PASSWORD for /private/")
    ap.add_argument("--token", help="?token= value for /private/")
    args = ap.parse_args()
    Handler.auth = args.auth
    Handler.token = args.token
    for spec in args.cut_once:
        name, _sep, nbytes = spec.rpartition(":")
        Handler.cut[name] = int(nbytes)
    Handler.log_path = args.log
    os.chdir(args.directory)
    http.server.ThreadingHTTPServer((args.bind, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
