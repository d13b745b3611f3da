# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every service of a host probed at once under one deadline (real loopback servers)."""

from __future__ import annotations

import time

import pytest

from ansible_collections.gpulab.provision.plugins.module_utils.watch_probe import probe_request, probe_services
from ansible_collections.gpulab.provision.plugins.module_utils.probe_inputs import probe_args
from mirror_servers import StallingListener, healthy_pypi_server


def req(spec, mirrors, names=None):
    return probe_request(dict(spec, mirrors=mirrors), names)


@pytest.fixture
def servers():
    healthy = healthy_pypi_server()
    healthy.route("/ok", 200, {"Content-Type": "text/plain"}, b"ok\n")
    stall_a, stall_b = StallingListener().start(), StallingListener().start()
    yield healthy, stall_a, stall_b
    for server in (healthy, stall_a, stall_b):
        server.stop()


def test_three_services_with_stalling_mirrors_cost_one_deadline(servers):
    healthy, stall_a, stall_b = servers
    requests = {
        "pypi": req({"kind": "pypi", "project": "pip"}, [
            {"name": "stall", "url": stall_a.url + "/simple", "insecure": True},
            {"name": "ok", "url": healthy.url + "/simple", "insecure": True}]),
        "web": req({"kind": "http", "path": "ok"}, [
            {"name": "stall", "url": stall_b.url, "insecure": True},
            {"name": "ok", "url": healthy.url, "insecure": True}]),
        "web2": req({"kind": "http", "path": "ok"}, [{"name": "stall", "url": stall_b.url, "insecure": True}]),
    }
    started = time.monotonic()
    got = probe_services(requests, deadline=1.0)
    elapsed = time.monotonic() - started
    assert elapsed < 1.8, elapsed  # one deadline for all three, not three
    for service in ("pypi", "web"):
        health = {r["name"]: r["healthy"] for r in got["services"][service]["results"]}
        assert health == {"stall": False, "ok": True}
    assert got["services"]["web2"]["results"][0]["reason"] == "timed out after 1.0 s"


def test_probe_request_keeps_only_the_named_mirrors_in_catalog_order():
    mirrors = [{"name": n, "url": "https://%s.example/simple" % n} for n in "abc"]
    got = req({"kind": "pypi", "project": "six", "timeout": 3}, mirrors, names=["c", "a"])
    assert [m["name"] for m in got["mirrors"]] == ["a", "c"]
    assert got["options"] == {"project": "six"} and got["kind"] == "pypi"


def test_a_bad_service_does_not_hide_the_others(servers):
    healthy = servers[0]
    got = probe_services({
        "bad": {"kind": "pypi", "mirrors": [{"name": "x", "url": "http://u:hunter2@127.0.0.1:1/simple", "insecure": True}],
                "options": {"nonsense": 1}},
        "pypi": req({"kind": "pypi"}, [{"name": "ok", "url": healthy.url + "/simple", "insecure": True}]),
    }, deadline=2)
    assert "nonsense" in got["services"]["bad"]["error"] and "hunter2" not in got["services"]["bad"]["error"]
    assert got["services"]["pypi"]["results"][0]["healthy"] is True


def test_requirements_reach_the_probe_as_mirror_select_passes_them(servers):
    healthy = servers[0]
    args = probe_args("pypi", [{"name": "ok", "url": healthy.url + "/simple", "insecure": True, "channel_alias": "x"}],
                      {"kind": "pypi", "project": "pip"}, {"timeout_s": 2}, {"pypi": ["pip==99.0"]})
    got = probe_services({"pypi": probe_request(args)}, deadline=2)
    result = got["services"]["pypi"]["results"][0]
    assert result["healthy"] is False and "pip==99.0" in result["reason"]
