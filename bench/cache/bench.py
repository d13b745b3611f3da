# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bench/cache: bytes the upstream serves when 5 hosts install the same wheels and pull the same
image, without and with a lab cache node in between; wall time of the 5 installs side by side.

PyPI: a PEP 503 upstream that counts the bytes it sends; devpi-server (as the role runs it) in
front. Docker: docker-registry upstream; registry proxies (as the role configures them) in front:
one straight to the upstream (distribution 2.8 alone), one through the role's nginx blob cache
(templates/nginx-registry.conf.j2 rendered as the role renders it), and one through the blob cache
to an upstream that answers every blob GET with a 307 to another address (as Docker Hub sends its
CDN). The bytes come from the upstream's own access log (http.response.written). The 5 "hosts" are
5 pip processes (separate --target dirs, --no-cache-dir) and 5 registry-protocol pulls (manifest +
every blob). Everything on 127.0.20.40-45 (the bench block).
"""

from __future__ import annotations

import base64
import hashlib
import html
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPSTREAM = ("127.0.20.40", 8080)
DEVPI = ("127.0.20.41", 3141)
REG_UP = ("127.0.20.42", 5000)
REG_PROXY = ("127.0.20.43", 5000)           # distribution 2.8 proxy -> REG_UP
REG_PROXY_CACHED = ("127.0.20.43", 5001)    # proxy -> nginx blob cache :5101 -> REG_UP
REG_PROXY_REDIRECT = ("127.0.20.43", 5002)  # proxy -> nginx blob cache :5102 -> REDIRECTOR -> 307 -> REG_UP
REDIRECTOR = ("127.0.20.44", 5000)
HOSTS = 5
# What pip 23+ asks an index for (PEP 691 JSON first).
PIP_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
PAUSE_S = float(os.environ.get("BENCH_CACHE_PAUSE_S", "2"))  # between the first host and the other four


class CountingIndex(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, wheels):
        super().__init__(address, IndexHandler)
        self.wheels = wheels
        self.sent = 0
        self.lock = threading.Lock()


class IndexHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, status, body, ctype):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        with self.server.lock:
            self.server.sent += len(body)

    def do_GET(self):
        wheels = self.server.wheels
        match = re.fullmatch(r"/simple/([^/]+)/", self.path)
        if self.path == "/simple/":
            names = sorted({norm(f.split("-")[0]) for f in os.listdir(wheels)})
            body = "".join('<a href="%s/">%s</a>\n' % (n, n) for n in names)
            return self._send(200, ("<html><body>%s</body></html>" % body).encode(), "text/html")
        if match:
            name = norm(match.group(1))
            links = []
            for f in sorted(os.listdir(wheels)):
                if norm(f.split("-")[0]) == name:
                    digest = hashlib.sha256(open(os.path.join(wheels, f), "rb").read()).hexdigest()
                    links.append('<a href="/files/%s#sha256=%s">%s</a>' % (f, digest, html.escape(f)))
            if not links:
                return self._send(404, b"not found", "text/plain")
            return self._send(200, ("<html><body>%s</body></html>" % "\n".join(links)).encode(), "text/html")
        if self.path.startswith("/files/"):
            path = os.path.join(wheels, os.path.basename(self.path))
            if os.path.exists(path):
                return self._send(200, open(path, "rb").read(), "application/octet-stream")
        return self._send(404, b"not found", "text/plain")


class RedirectHandler(BaseHTTPRequestHandler):
    """An upstream registry that sends blobs elsewhere: GET/HEAD of a blob -> 307 to REG_UP; the rest
    (the /v2/ ping, manifests) relayed from REG_UP."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _relay(self, method):
        if re.fullmatch(r"/v2/.+/blobs/sha256:[0-9a-f]{64}", self.path):
            self.send_response(307)
            self.send_header("Location", "http://%s:%d%s" % (REG_UP + (self.path,)))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        conn = http.client.HTTPConnection("%s:%d" % REG_UP, timeout=60)
        headers = {k: ", ".join(self.headers.get_all(k)) for k in ("Accept", "Authorization") if self.headers.get_all(k)}
        conn.request(method, self.path, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for key, value in resp.getheaders():
            if key.lower() not in ("connection", "transfer-encoding", "content-length", "date", "server"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data) if method == "GET" else resp.getheader("Content-Length", "0")))
        self.end_headers()
        if method == "GET":
            self.wfile.write(data)
        conn.close()

    def do_GET(self):
        self._relay("GET")

    def do_HEAD(self):
        self._relay("HEAD")


def nginx_conf(work):
    """The bench's nginx: the role's registry blob cache template (roles/cache_node/templates/
    nginx-registry.conf.j2) for the two cached proxies, their plan made by the role's own function."""
    import jinja2  # pylint: disable=import-outside-toplevel
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    sys.path.insert(0, os.path.join(root, "collections"))
    from ansible_collections.gpulab.provision.plugins.module_utils import cache_catalog  # pylint: disable=import-outside-toplevel
    settings = cache_catalog.node_settings({
        "cache_node_services": ["docker"], "cache_node_registry_blob_cache_address": REG_PROXY[0],
        "cache_node_registries": [
            {"name": "up.bench.test", "port": REG_PROXY_CACHED[1], "upstream": "http://%s:%d" % REG_UP},
            {"name": "redirect.bench.test", "port": REG_PROXY_REDIRECT[1], "upstream": "http://%s:%d" % REDIRECTOR}]},
        "bench")
    plan = cache_catalog.registry_instances(settings)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(root, "roles", "cache_node", "templates")),
                             trim_blocks=True, undefined=jinja2.StrictUndefined)
    body = env.get_template("nginx-registry.conf.j2").render(
        _cache_node_registry_plan=plan, cache_node_data_dir=work, _cache_node_log_dir=work,
        cache_node_registry_blob_max_size="1g", cache_node_registry_blob_inactive="30d",
        cache_node_registry_blob_lock_timeout="1h", cache_node_registry_ca_file="/etc/ssl/certs/ca-certificates.crt",
        # never asked: every redirect of the bench goes to an IP address
        __cache_node_resolvers=["127.0.20.45"])
    head = ("user root;\nworker_processes 2;\npid %s/nginx.pid;\nerror_log %s/nginx-error.log warn;\n"
            "events { worker_connections 1024; }\nhttp {\n  sendfile on;\n"
            "  log_format gpulab_cache '$remote_addr [$time_local] \"$request\" $status $body_bytes_sent"
            " cache=$upstream_cache_status';\n" % (work, work))
    return head + body + "}\n", [(r["remote"], r["upstream"]) for r in plan]


def serve_redirector():
    server = ThreadingHTTPServer(REDIRECTOR, RedirectHandler)
    server.daemon_threads = True
    server.serve_forever()


def request(method, url, body=None, headers=None, timeout=120):
    """``(status, headers, body)`` of one HTTP request (http.client: the bench talks to loopback only)."""
    _scheme, _sep, rest = url.partition("://")
    hostport, _sep, path = rest.partition("/")
    conn = http.client.HTTPConnection(hostport, timeout=timeout)
    try:
        conn.request(method, "/" + path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status >= 400:
            raise SystemExit("%s %s: HTTP %d %s" % (method, url, resp.status, data[:200]))
        return resp.status, resp.headers, data
    finally:
        conn.close()


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def pip_install(python, index, target, packages, fail=True):
    start = time.monotonic()
    env = {"PATH": "/usr/bin:/bin", "HOME": target, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_CONFIG_FILE": os.devnull}
    host = index.split("/")[2].split(":")[0]
    proc = subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-cache-dir", "--no-deps", "--target", target,
                           "--index-url", index, "--trusted-host", host] + packages,
                          env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        if not fail:
            return proc.stderr.strip().splitlines()[-1:]
        raise SystemExit("pip failed against %s:\n%s" % (index, proc.stderr))
    return time.monotonic() - start


def registry_pull(base, repo, tag):
    """A registry-protocol pull: manifest, config and every layer, as dockerd asks for them."""
    accept = "application/vnd.docker.distribution.manifest.v2+json"
    manifest = json.loads(request("GET", "%s/v2/%s/manifests/%s" % (base, repo, tag), headers={"Accept": accept})[2])
    total = 0
    for digest in [manifest["config"]["digest"]] + [layer["digest"] for layer in manifest["layers"]]:
        data = request("GET", "%s/v2/%s/blobs/%s" % (base, repo, digest))[2]
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise SystemExit("digest mismatch for %s" % digest)
        total += len(data)
    return total


def push_image(base, repo, tag, layer_sizes):
    """Push an image with random layers through the registry API (no dockerd needed)."""
    def upload(data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        location = request("POST", "%s/v2/%s/blobs/uploads/" % (base, repo), body=b"")[1]["Location"]
        if location.startswith("/"):
            location = base + location
        sep = "&" if "?" in location else "?"
        request("PUT", location + sep + "digest=" + digest, body=data, headers={"Content-Type": "application/octet-stream"})
        return {"digest": digest, "size": len(data)}

    layers = [dict(upload(os.urandom(size)), mediaType="application/vnd.docker.image.rootfs.diff.tar.gzip")
              for size in layer_sizes]
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": dict(upload(config), mediaType="application/vnd.docker.container.image.v1+json"),
                "layers": layers}
    request("PUT", "%s/v2/%s/manifests/%s" % (base, repo, tag), body=json.dumps(manifest).encode(),
            headers={"Content-Type": "application/vnd.docker.distribution.manifest.v2+json"})


def set_devpi_upstream(base, password, mirror_url, index="pypi"):
    """Create root/pypi with its upstream through devpi's API, as the role does (upstream already up)."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    login = request("POST", base + "/+login", body=json.dumps({"user": "root", "password": password}).encode(), headers=headers)
    token = json.loads(login[2])["result"]["password"]
    auth = base64.b64encode(("root:" + token).encode()).decode()
    request("PUT", base + "/root/" + index, body=json.dumps({"type": "mirror", "mirror_url": mirror_url}).encode(),
            headers=dict(headers, **{"X-Devpi-Auth": auth}))


def written_bytes(log_path, since):
    """Bytes the upstream registry wrote since ``since``, and how many blob GETs it answered."""
    total = blob_gets = 0
    with open(log_path) as handle:
        handle.seek(since)
        for line in handle:
            match = re.search(r"http\.response\.written=(\d+)", line)
            if match:
                total += int(match.group(1))
                if re.search(r"http\.request\.method=GET .*http\.request\.uri=\"/v2/[^\"]+/blobs/sha256:", line):
                    blob_gets += 1
    return total, blob_gets


def main():
    work, wheels, packages, python, reg_log, devpi_password, extra = sys.argv[1:8]
    packages = packages.split()
    server = CountingIndex(UPSTREAM, wheels)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    set_devpi_upstream("http://%s:%d" % DEVPI, devpi_password, "http://%s:%d/simple/" % UPSTREAM)
    out = {}

    def five_installs(index, label, first_alone=False):
        """5 hosts at once; with first_alone, one host first (a cold cache: devpi answered an empty
        page to concurrent first requests for a project it was still fetching, see cold_pages)."""
        before = server.sent
        start = time.monotonic()
        times = []
        hosts = list(range(HOSTS))
        if first_alone:
            times.append(pip_install(python, index, "%s/%s-0" % (work, label), packages))
            hosts = hosts[1:]
            time.sleep(PAUSE_S)
        with ThreadPoolExecutor(HOSTS) as pool:
            times += list(pool.map(lambda i: pip_install(python, index, "%s/%s-%d" % (work, label, i), packages), hosts))
        wall = time.monotonic() - start - (PAUSE_S if first_alone else 0)
        return {"upstream_bytes": server.sent - before, "wall_s": round(wall, 2), "per_host_s": [round(t, 2) for t in times]}

    def cold_pages(index, project):
        """5 simultaneous first requests for a project page: how many come back without any file link."""
        def get(_i):
            return request("GET", index + project + "/", headers={"Accept": PIP_ACCEPT})[2].decode()
        with ThreadPoolExecutor(HOSTS) as pool:
            pages = list(pool.map(get, range(HOSTS)))
        return sum(1 for page in pages if project.replace("-", "_") not in page.replace("-", "_"))

    up = "http://%s:%d/simple/" % UPSTREAM
    cache = "http://%s:%d/root/pypi/+simple/" % DEVPI
    out["pypi_without"] = five_installs(up, "direct")
    out["devpi_cold_concurrent_empty_pages"] = cold_pages(cache, extra)
    out["pypi_with"] = five_installs(cache, "cache", first_alone=True)

    def five_pulls(base, tag, first_alone=False):
        time.sleep(1)
        size = os.path.getsize(reg_log)
        start = time.monotonic()
        hosts = list(range(HOSTS))
        sizes = []
        if first_alone:
            sizes.append(registry_pull(base, "library/benchimg", tag))
            hosts = hosts[1:]
            time.sleep(PAUSE_S)
        with ThreadPoolExecutor(HOSTS) as pool:
            sizes += list(pool.map(lambda _i: registry_pull(base, "library/benchimg", tag), hosts))
        wall = time.monotonic() - start - (PAUSE_S if first_alone else 0)
        time.sleep(1.5)  # the access log line is written when each response completes
        upstream_bytes, blob_gets = written_bytes(reg_log, size)
        return {"upstream_bytes": upstream_bytes, "upstream_blob_gets": blob_gets, "wall_s": round(wall, 2),
                "image_bytes": sizes[0]}

    # A tag with its own random layers per measurement, so each one starts from a cold proxy.
    tags = ("1.0", "2.0", "3.0", "4.0", "5.0", "6.0", "7.0")
    for tag in tags:
        push_image("http://%s:%d" % REG_UP, "library/benchimg", tag, [8 << 20, 4 << 20, 1 << 20])
    out["image_blobs"] = 4
    out["docker_without"] = five_pulls("http://%s:%d" % REG_UP, "1.0")
    # distribution 2.8's proxy alone: a blob it lacks is fetched twice (to the client and to its
    # storage), and once more by every pull that asks for it while that fetch runs.
    out["docker_proxy_only"] = five_pulls("http://%s:%d" % REG_PROXY, "2.0", first_alone=True)
    out["docker_proxy_only_all_cold_at_once"] = five_pulls("http://%s:%d" % REG_PROXY, "3.0")
    # The role's setup: the proxy's upstream is its nginx blob cache (one fetch per blob).
    out["docker_with"] = five_pulls("http://%s:%d" % REG_PROXY_CACHED, "4.0", first_alone=True)
    out["docker_with_all_cold_at_once"] = five_pulls("http://%s:%d" % REG_PROXY_CACHED, "5.0")
    # The same, the upstream redirecting every blob GET to another address (followed by nginx).
    out["docker_with_redirect"] = five_pulls("http://%s:%d" % REG_PROXY_REDIRECT, "6.0", first_alone=True)
    out["docker_with_redirect_all_cold_at_once"] = five_pulls("http://%s:%d" % REG_PROXY_REDIRECT, "7.0")
    # 5 pip installs at the same instant against a cold devpi index (root/cold, its own file store).
    set_devpi_upstream("http://%s:%d" % DEVPI, devpi_password, up, index="cold")
    before = server.sent
    with ThreadPoolExecutor(HOSTS) as pool:
        results = list(pool.map(lambda i: pip_install(python, "http://%s:%d/root/cold/+simple/" % DEVPI,
                                                      "%s/cold-%d" % (work, i), packages, fail=False), range(HOSTS)))
    errors = [r[0] for r in results if isinstance(r, list) and r]
    out["pypi_all_cold_at_once"] = {"failed_installs": sum(1 for r in results if isinstance(r, list)),
                                    "upstream_bytes": server.sent - before, "errors": sorted(set(errors))}
    without = out["docker_without"]["upstream_bytes"]
    for key in ("docker_proxy_only", "docker_proxy_only_all_cold_at_once", "docker_with", "docker_with_all_cold_at_once",
                "docker_with_redirect", "docker_with_redirect_all_cold_at_once"):
        with_ = out[key]["upstream_bytes"]
        out[key]["ratio"] = round(without / with_, 2) if with_ else None
    out["docker_ratio"] = out["docker_with"]["ratio"]
    out["docker_ratio_all_cold_at_once"] = out["docker_with_all_cold_at_once"]["ratio"]
    with_ = out["pypi_with"]["upstream_bytes"]
    out["pypi_ratio"] = round(out["pypi_without"]["upstream_bytes"] / with_, 2) if with_ else None
    print(json.dumps(out, indent=1))
    server.shutdown()


if __name__ == "__main__":
    if sys.argv[1:] == ["redirector"]:
        serve_redirector()
    elif sys.argv[1:2] == ["nginx-conf"]:
        print(nginx_conf(sys.argv[2])[0])
    else:
        main()
