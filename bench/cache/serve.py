# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bench/cache, serving: how fast the cache node serves a large cached wheel to 1, 4 and 8 clients at
once, beside nginx serving the same file from the same disk in the same run; and whether 8 clients
probing a cold node at the same moment, with the lab's pins, all find it healthy.

Three servers of one stored file (devpi's own copy under <serverdir>/+files):
  static  nginx, a plain ``root`` on devpi's +files directory (the ceiling: sendfile from disk)
  node    the cache node as the role runs it: nginx (roles/cache_node/templates/nginx-pypi.conf.j2,
          rendered as the role renders it) in front of devpi-server
  devpi   devpi-server alone (the node before nginx was put in front of it)
Clients are curl processes (``-o /dev/null``). Cold probes: the collection's own probe
(module_utils/probe.run_probe, kind pypi, with ``require``) from 8 threads at one instant, against a
devpi alone and against the node, each cold, the upstream answering every project page after
BENCH_SERVE_PAGE_DELAY_S (2 s). Everything on 127.0.20.46-48 (the bench block).
Usage (bench/cache/run calls it): serve.py WORKDIR DEVPI_BIN_DIR WHEELS_DIR SIZE_MB
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NODE = "127.0.20.46"            # nginx :3141 in front of devpi :3140; static nginx :8090
DIRECT = "127.0.20.47"          # devpi alone :3140
UPSTREAM = ("127.0.20.48", 8080)
PAGE_DELAY_S = float(os.environ.get("BENCH_SERVE_PAGE_DELAY_S", "2"))
CLIENTS = (1, 4, 8)
ROUNDS = int(os.environ.get("BENCH_SERVE_ROUNDS", "3"))
PINNED = ("six", "idna", "packaging", "attrs", "certifi")


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


class SlowIndex(ThreadingHTTPServer):
    daemon_threads = True


class SlowIndexHandler(BaseHTTPRequestHandler):
    """A PEP 503 index over a directory; every project page answers after PAGE_DELAY_S."""

    def log_message(self, *args):
        pass

    def _send(self, body, ctype="text/html"):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        wheels = self.server.wheels
        files = sorted(os.listdir(wheels))
        if self.path == "/simple/":
            names = sorted({norm(f.split("-")[0]) for f in files})
            return self._send(("<html><body>%s</body></html>" % "".join(
                '<a href="%s/">%s</a>\n' % (n, n) for n in names)).encode())
        match = re.fullmatch(r"/simple/([^/]+)/", self.path)
        if match:
            mine = [f for f in files if norm(f.split("-")[0]) == norm(match.group(1))]
            if not mine:
                self.send_error(404)
                return None
            time.sleep(PAGE_DELAY_S)
            links = ['<a href="/files/%s#sha256=%s">%s</a>' % (f, self.server.digests[f], html.escape(f)) for f in mine]
            return self._send(("<html><body>%s</body></html>" % "\n".join(links)).encode())
        if self.path.startswith("/files/") and os.path.basename(self.path) in files:
            path = os.path.join(wheels, os.path.basename(self.path))
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(os.path.getsize(path)))
            self.end_headers()
            with open(path, "rb") as handle:
                while True:
                    chunk = handle.read(1 << 20)
                    if not chunk:
                        break
                    self.wfile.write(chunk)
            return None
        self.send_error(404)
        return None


def digest(path):
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


def wait_http(url, seconds=60):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("not up: " + url)


def start_devpi(bindir, work, name, host, procs):
    data = os.path.join(work, name)
    subprocess.run([os.path.join(bindir, "devpi-init"), "--serverdir", data, "--no-root-pypi", "--root-passwd", "pw"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(os.path.join(work, name + ".log"), "w") as log:
        procs.append(subprocess.Popen([os.path.join(bindir, "devpi-server"), "--serverdir", data, "--host", host,
                                       "--port", "3140", "--restrict-modify", "root"], stdout=log, stderr=log))
    base = "http://%s:3140" % host
    wait_http(base + "/+api")
    sys.path.insert(0, os.path.dirname(__file__))
    import bench  # pylint: disable=import-outside-toplevel
    bench.set_devpi_upstream(base, "pw", "http://%s:%d/simple/" % UPSTREAM)
    return data


def nginx_conf(work, devpi_data):
    """The role's PyPI front (nginx-pypi.conf.j2 as the role renders it) and a static server of the same disk."""
    import jinja2  # pylint: disable=import-outside-toplevel
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(root, "roles", "cache_node", "templates")),
                             trim_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["bool"] = bool
    front = env.get_template("nginx-pypi.conf.j2").render(
        listen=NODE, cache_node_pypi_port=3141, _cache_node_tls=False, _cache_node_local=NODE,
        _cache_node_devpi_port=3140, cache_node_data_dir=work, _cache_node_log_dir=work,
        _cache_node_pypi_dir=devpi_data, cache_node_pypi_page_valid="1m", cache_node_pypi_fetch_max_size="2g")
    # the role's nginx.conf.j2 head (user, workers, sendfile), with the bench's paths
    return ("user root;\nworker_processes 2;\npid %s/nginx.pid;\nerror_log %s/nginx-error.log warn;\n"
            "events { worker_connections 1024; }\nhttp {\n  include /etc/nginx/mime.types;\n"
            "  default_type application/octet-stream;\n  sendfile on;\n  server_tokens off;\n"
            "  log_format gpulab_cache '$remote_addr [$time_local] \"$request\" $status $body_bytes_sent"
            " cache=$upstream_cache_status';\n%s\n"
            "  server {\n    listen %s:8090;\n    access_log off;\n    root \"%s/+files\";\n  }\n}\n"
            % (work, work, front, NODE, devpi_data))


def download_wall(url, clients):
    """Seconds for ``clients`` curl processes to download ``url`` at once (all must succeed)."""
    start = time.monotonic()
    procs = [subprocess.Popen(["curl", "-sf", "-o", "/dev/null", url]) for _client in range(clients)]
    codes = [p.wait() for p in procs]
    wall = time.monotonic() - start
    if any(codes):
        raise SystemExit("curl failed %s on %s" % (codes, url))
    return wall


def cold_probes(base, pins, clients=8):
    """``clients`` probes at one instant (the collection's own probe, require = the pins): how many healthy."""
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    sys.path.insert(0, os.path.join(root, "collections"))
    from ansible_collections.gpulab.provision.plugins.module_utils import probe  # pylint: disable=import-outside-toplevel
    barrier = threading.Barrier(clients)
    results = [None] * clients

    def one(index):
        barrier.wait()
        out = probe.run_probe("pypi", [{"name": "node", "url": base, "insecure": True}], deadline=30,
                              project=pins[0].split("==")[0], require=list(pins))
        results[index] = out["results"][0]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(1 for r in results if r and r["healthy"]), sorted({r["reason"] for r in results if r and not r["healthy"]})


def main():
    work, bindir, wheels_src, size_mb = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    wheels = os.path.join(work, "upstream")
    os.makedirs(wheels, exist_ok=True)
    pins = []
    for name in PINNED:
        found = sorted(f for f in os.listdir(wheels_src) if norm(f.split("-")[0]) == name)
        if not found:
            raise SystemExit("no %s wheel in %s" % (name, wheels_src))
        shutil.copy(os.path.join(wheels_src, found[-1]), wheels)
        pins.append("%s==%s" % (name, found[-1].split("-")[1]))
    big = os.path.join(wheels, "bigwheel-1.0-py3-none-any.whl")
    with open(big, "wb") as handle:
        for _chunk in range(size_mb):
            handle.write(os.urandom(1 << 20))
    server = SlowIndex(UPSTREAM, SlowIndexHandler)
    server.wheels = wheels
    server.digests = {f: digest(os.path.join(wheels, f)) for f in os.listdir(wheels)}
    threading.Thread(target=server.serve_forever, daemon=True).start()

    procs = []
    try:
        node_data = start_devpi(bindir, work, "devpi-node", NODE, procs)
        start_devpi(bindir, work, "devpi-direct", DIRECT, procs)
        with open(os.path.join(work, "nginx.conf"), "w") as handle:
            handle.write(nginx_conf(work, node_data))
        procs.append(subprocess.Popen(["/usr/sbin/nginx", "-c", os.path.join(work, "nginx.conf"), "-g", "daemon off;"]))
        wait_http("http://%s:3141/+api" % NODE)

        out = {"size_bytes": os.path.getsize(big), "rounds": ROUNDS, "page_delay_s": PAGE_DELAY_S}
        # cold probes first: both devpis have fetched nothing yet
        healthy, reasons = cold_probes("http://%s:3140/root/pypi/+simple/" % DIRECT, pins)
        out["cold_probe_devpi_alone"] = {"healthy": healthy, "of": 8, "reasons": reasons}
        healthy, reasons = cold_probes("http://%s:3141/root/pypi/+simple/" % NODE, pins)
        out["cold_probe_node"] = {"healthy": healthy, "of": 8, "reasons": reasons}
        out["pins"] = pins

        # store the big file on the node (one fetch through nginx and devpi) and find its path
        page = urllib.request.urlopen("http://%s:3141/root/pypi/+simple/bigwheel/" % NODE, timeout=60).read().decode()
        href = re.search(r'href="([^"#]+bigwheel-1\.0-py3-none-any\.whl)', page).group(1)
        path = "/root/pypi/+f/" + href.split("+f/", 1)[1]
        download_wall("http://%s:3141%s" % (NODE, path), 1)
        stored = os.path.join(node_data, "+files") + path
        end = time.monotonic() + 60  # devpi commits a fetched file after the response has gone out
        while time.monotonic() < end and not (os.path.isfile(stored) and os.path.getsize(stored) == out["size_bytes"]):
            time.sleep(0.5)
        if not os.path.isfile(stored) or os.path.getsize(stored) != out["size_bytes"]:
            found = subprocess.run(["find", os.path.join(node_data, "+files"), "-name", "bigwheel*"],
                                   stdout=subprocess.PIPE, text=True, check=False).stdout
            raise SystemExit("devpi did not store %s (found: %s)" % (stored, found.strip() or "nothing"))
        # devpi alone serves its own copy too (the direct devpi fetches it once)
        download_wall("http://%s:3140%s" % (DIRECT, path), 1)
        urls = {"static": "http://%s:8090%s" % (NODE, path), "node": "http://%s:3141%s" % (NODE, path),
                "devpi": "http://%s:3140%s" % (DIRECT, path)}
        rows = {}
        for clients in CLIENTS:
            walls = {name: [] for name in urls}
            for _round in range(ROUNDS):  # interleaved, so a busy moment of the machine hits all three alike
                for name, url in urls.items():
                    walls[name].append(download_wall(url, clients))
            row = {name: round(clients * out["size_bytes"] / statistics.median(w) / 1e6, 1) for name, w in walls.items()}
            row["node_vs_static"] = round(row["node"] / row["static"], 2)
            row["devpi_vs_static"] = round(row["devpi"] / row["static"], 2)
            rows[str(clients)] = row
        out["serving_mb_s"] = rows
        print(json.dumps(out, indent=1))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        server.shutdown()


if __name__ == "__main__":
    main()
