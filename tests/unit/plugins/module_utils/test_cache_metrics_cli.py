# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpulab-cache-metrics' main() against real HTTP servers on 127.0.45.x: a cache node's endpoints
(devpi's /+api, nginx's health location, a registry's /v2/ and its debug server serving the
recorded 2.8.2 answers) and their upstreams, writing gpulab_cache_node.prom into a tmp dir."""

from __future__ import annotations

import io
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import promtool
from ansible_collections.gpulab.provision.plugins.module_utils import cache_metrics_cli as cli

FIXTURES = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "cache-metrics"))
NODE, UPSTREAM, DEAD = "127.0.45.10", "127.0.45.3", "127.0.45.99"


def _read(name):
    with open(os.path.join(FIXTURES, name), "rb") as handle:
        return handle.read()


REPODATA = json.dumps({"info": {"subdir": "noarch"}, "packages": {}, "packages.conda": {}}).encode()
SIX_PAGE = b'<html><body><a href="../../six-1.17.0-py2.py3-none-any.whl#sha256=00">six-1.17.0-py2.py3-none-any.whl</a></body></html>'
ROUTES = {
    # the node
    "/+api": (200, "application/json", b'{"type": "list:userconfig", "result": {}}'),
    "/gpulab-health": (200, "text/plain", b"ok\n"),
    "/v2/": (200, "application/json", b"{}"),
    "/metrics": (200, "text/plain; version=0.0.4", _read("registry-2.8.2-metrics.txt")),
    "/debug/vars": (200, "application/json", _read("registry-2.8.2-debug-vars.json")),
    # the upstreams
    "/simple/six/": (200, "text/html", SIX_PAGE),
    "/anaconda/pkgs/main/noarch/repodata.json": (200, "application/json", REPODATA),
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802
        self.server.seen.append(self.path)
        status, kind, body = ROUTES.get(self.path.split("?")[0], (404, "text/plain", b"no\n"))
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def servers():
    started = {}
    for name, host in (("node", NODE), ("upstream", UPSTREAM)):
        server = ThreadingHTTPServer((host, 0), _Handler)
        server.daemon_threads = True
        server.seen = []
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started[name] = server
    yield {name: "http://%s:%d" % server.server_address[:2] for name, server in started.items()}, started
    for server in started.values():
        server.shutdown()
        server.server_close()


def make_config(tmp_path, urls, **extra):
    node, up = urls["node"], urls["upstream"]
    for sub in ("pypi/+files", "conda", "registry/docker-io/docker/registry"):
        (tmp_path / "data" / sub).mkdir(parents=True, exist_ok=True)
    (tmp_path / "data/pypi/+files/six.whl").write_bytes(b"x" * 1000)
    (tmp_path / "data/conda/abc").write_bytes(b"y" * 300)
    (tmp_path / "data/registry/docker-io/docker/registry/blob").write_bytes(b"z" * 70)
    os.link(tmp_path / "data/registry/docker-io/docker/registry/blob", tmp_path / "data/registry/docker-io/link")
    (tmp_path / "prom").mkdir()
    data = str(tmp_path / "data")
    config = {
        "metrics_dir": str(tmp_path / "prom"),
        "timeout_s": 3,
        "services": [
            {"service": "pypi", "endpoint": node + "/+api", "data_dir": data + "/pypi",
             "upstream": {"url": "http://labuser:s3cret@%s/simple" % up[len("http://"):], "insecure": True,
                          "options": {"project": "six"}}},
            {"service": "conda", "endpoint": node + "/gpulab-health", "data_dir": data + "/conda",
             "upstream": {"url": up + "/anaconda", "insecure": True, "options": {"channel": "pkgs/main"}}},
            {"service": "docker", "registry": "docker.io", "endpoint": node + "/v2/",
             "data_dir": data + "/registry/docker-io", "registry_debug": node,
             "upstream": {"url": "http://%s:9" % DEAD, "insecure": True}},
        ],
    }
    config.update(extra)
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(config))
    return str(path)


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    status = cli.main(argv, out=out, err=err)
    return status, out.getvalue(), err.getvalue()


def test_a_run_writes_the_cache_node_file(tmp_path, servers):
    urls, started = servers
    status, out, err = run(["--config", make_config(tmp_path, urls)])
    assert status == 0, err
    text = (tmp_path / "prom" / "gpulab_cache_node.prom").read_text()
    promtool.check_metrics(text)
    for service in ('{service="pypi"} 1', '{service="conda"} 1', '{registry="docker.io",service="docker"} 1'):
        assert "gpulab_cache_service_up" + service in text
    up = urls["upstream"]
    assert 'gpulab_cache_upstream_up{service="pypi",upstream="http://***@%s/simple"} 1' % up[7:] in text
    assert 'gpulab_cache_upstream_up{service="conda",upstream="%s/anaconda"} 1' % up in text
    assert 'gpulab_cache_upstream_up{registry="docker.io",service="docker",upstream="http://%s:9"} 0' % DEAD in text
    assert 'gpulab_cache_upstream_probe_duration_seconds{service="pypi"}' in text
    assert 'gpulab_cache_upstream_probe_duration_seconds{registry' not in text  # the dead upstream: no latency
    assert 'gpulab_cache_disk_used_bytes{service="pypi"} 1000\n' in text
    assert 'gpulab_cache_disk_used_bytes{service="conda"} 300\n' in text
    assert 'gpulab_cache_disk_used_bytes{registry="docker.io",service="docker"} 70\n' in text  # hard link once
    assert 'gpulab_cache_filesystem_avail_bytes{service="conda"}' in text
    assert ('gpulab_cache_requests_total{registry="docker.io",result="hit",service="docker",type="manifest"} 1\n'
            in text)
    assert ('gpulab_cache_requests_total{registry="docker.io",result="miss",service="docker",type="manifest"} 2\n'
            in text)
    assert "gpulab_cache_last_run_timestamp_seconds " in text
    assert "s3cret" not in text + out + err and "labuser" not in text + out + err
    # the node's endpoints were asked, and the registry's debug server (both /metrics and, as 2.8.2
    # has no proxy counters there, /debug/vars)
    assert {"/+api", "/gpulab-health", "/v2/", "/metrics", "/debug/vars"} <= set(started["node"].seen)
    assert "/simple/six/" in started["upstream"].seen
    # the dead upstream is named on stderr, with why
    assert "docker/docker.io: upstream http://%s:9: connection refused" % DEAD in err


def test_an_unusable_metrics_dir_is_one_line_and_exit_0(tmp_path, servers):
    urls, _started = servers
    config = make_config(tmp_path, urls, metrics_dir=str(tmp_path / "missing"))
    status, out, err = run(["--config", config])
    assert status == 0
    lines = [line for line in err.splitlines() if "gpulab_metrics_dir" in line]
    assert len(lines) == 1 and str(tmp_path / "missing") in lines[0]
    assert "pypi: up" in out
    assert not (tmp_path / "missing").exists()


def test_metrics_dir_option_overrides_and_empty_writes_nothing(tmp_path, servers):
    urls, _started = servers
    config = make_config(tmp_path, urls)
    other = tmp_path / "other"
    other.mkdir()
    status, out, _err = run(["--config", config, "--metrics-dir", str(other), "--json"])
    assert status == 0
    assert (other / "gpulab_cache_node.prom").is_file()
    assert not (tmp_path / "prom" / "gpulab_cache_node.prom").exists()
    shown = json.loads(out)
    assert shown["services"][2]["requests"] == {"manifest_hit": 1, "manifest_miss": 2}
    assert "s3cret" not in out
    status, _out, _err = run(["--config", config, "--metrics-dir", ""])
    assert status == 0 and not (tmp_path / "prom" / "gpulab_cache_node.prom").exists()


def test_a_disk_walk_over_its_budget_gives_no_series(tmp_path):
    tree = tmp_path / "big"
    for index in range(600):
        (tree / str(index % 7)).mkdir(parents=True, exist_ok=True)
        (tree / str(index % 7) / str(index)).write_bytes(b"a")
    ticks = iter(range(10 ** 6))
    size, complete = cli.disk_usage(str(tree), 5, clock=lambda: next(ticks))
    assert complete is False and size < 600
    assert cli.disk_usage(str(tree), 60) == (600, True)
    (tmp_path / "prom").mkdir()
    settings = {"metrics_dir": str(tmp_path / "prom"), "timeout_s": 1.0, "disk_budget_s": 5.0, "proxy": None,
                "ca_path": None}
    ticks = iter(range(10 ** 6))
    measured, problems = cli.measure(settings, [{"service": "conda", "data_dir": str(tree)}],
                                     clock=lambda: next(ticks), now=lambda: 5.0)
    assert measured["services"][0]["disk_bytes"] is None
    assert measured["services"][0]["avail_bytes"] > 0
    assert any("disk_budget_s" in line for line in problems)


@pytest.mark.parametrize("config, message", [
    ("[]", "JSON object"),
    ('{"services": [{"service": "apt"}]}', "services[0]"),
    ('{"services": [], "timeout_s": 0}', "timeout_s"),
    ("{not json", "not JSON"),
])
def test_an_unusable_configuration_exits_2(tmp_path, config, message):
    path = tmp_path / "metrics.json"
    path.write_text(config)
    status, _out, err = run(["--config", str(path)])
    assert status == cli.EXIT_CONFIG
    assert message in err and len(err.strip().splitlines()) == 1
