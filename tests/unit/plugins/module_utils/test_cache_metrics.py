# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""cache_metrics: the cache_node families from a run's measurements, and a registry's hit and miss
counts from what Debian's docker-registry 2.8.2 really served (tests/fixtures/cache-metrics)."""

from __future__ import annotations

import os

import promtool
from ansible_collections.gpulab.provision.plugins.module_utils import cache_metrics as cm
from ansible_collections.gpulab.provision.plugins.module_utils.metrics import render

FIXTURES = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "cache-metrics"))


def fixture(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return handle.read()


def full_run():
    return {
        "timestamp": 1767225600.5,
        "services": [
            {"service": "pypi", "up": True, "upstream": "https://pypi.example/simple", "upstream_up": True,
             "upstream_duration_s": 0.125, "disk_bytes": 1048576, "avail_bytes": 5 * 2 ** 30, "requests": None},
            {"service": "conda", "up": False, "upstream": "https://conda.example/anaconda", "upstream_up": False,
             "upstream_duration_s": None, "disk_bytes": 2048, "avail_bytes": 5 * 2 ** 30, "requests": None},
            {"service": "docker", "registry": "docker.io", "up": True, "upstream": "https://hub.example",
             "upstream_up": True, "upstream_duration_s": 0.25, "disk_bytes": 4096, "avail_bytes": 5 * 2 ** 30,
             "requests": {("manifest", "hit"): 7, ("manifest", "miss"): 2}},
            {"service": "docker", "registry": cm.BLOB_CACHE, "disk_bytes": 512, "avail_bytes": 5 * 2 ** 30},
        ],
    }


def samples(fams, name):
    for fam in fams:
        if fam["name"] == name:
            return {tuple(sorted(labels.items())): value for labels, value in fam["samples"]}
    raise AssertionError("no family %s" % name)


def test_real_registry_metrics_text_has_no_proxy_counters():
    text = fixture("registry-2.8.2-metrics.txt")
    assert "registry_http_requests_total" in text or "registry_http_request_duration_seconds" in text
    assert cm.requests_from_prometheus(text) is None


def test_real_registry_debug_vars_give_manifest_hits_and_misses_only():
    counts = cm.requests_from_debug_vars(fixture("registry-2.8.2-debug-vars.json"))
    # Requests 3, Misses 2 in the capture: one manifest came from the cache; blobs are not trusted (Misses 0)
    assert counts == {("manifest", "hit"): 1, ("manifest", "miss"): 2}


def test_registry_requests_falls_back_from_metrics_to_debug_vars():
    counts = cm.registry_requests(fixture("registry-2.8.2-metrics.txt"), fixture("registry-2.8.2-debug-vars.json"))
    assert counts == {("manifest", "hit"): 1, ("manifest", "miss"): 2}


def test_prometheus_proxy_counters_are_preferred_and_summed_by_type():
    text = (
        "# HELP registry_proxy_hits_total The number of total proxy request hits\n"
        "# TYPE registry_proxy_hits_total counter\n"
        'registry_proxy_hits_total{type="blob"} 10\n'
        'registry_proxy_hits_total{type="manifest"} 4\n'
        "# TYPE registry_proxy_misses_total counter\n"
        'registry_proxy_misses_total{type="blob"} 3\n'
        'registry_proxy_misses_total{type="manifest"} 1\n'
        'registry_proxy_misses_total{type="weird"} 99\n'
    )
    assert cm.registry_requests(text, fixture("registry-2.8.2-debug-vars.json")) == {
        ("blob", "hit"): 10, ("manifest", "hit"): 4, ("blob", "miss"): 3, ("manifest", "miss"): 1}


def test_debug_vars_without_proxy_counts_are_none():
    assert cm.requests_from_debug_vars('{"registry": {"cache": {}}}') is None
    assert cm.requests_from_debug_vars("not json") is None
    assert cm.requests_from_debug_vars({"registry": {"proxy": {"manifests": {"Requests": -1, "Misses": 0}}}}) is None
    assert cm.registry_requests(None, None) is None


def test_families_of_a_full_run():
    fams = cm.families(full_run())
    up = samples(fams, "gpulab_cache_service_up")
    assert up == {(("service", "pypi"),): 1, (("service", "conda"),): 0,
                  (("registry", "docker.io"), ("service", "docker")): 1}
    upstream = samples(fams, "gpulab_cache_upstream_up")
    assert upstream[(("service", "conda"), ("upstream", "https://conda.example/anaconda"))] == 0
    assert upstream[(("registry", "docker.io"), ("service", "docker"), ("upstream", "https://hub.example"))] == 1
    # latency only for a healthy upstream
    assert samples(fams, "gpulab_cache_upstream_probe_duration_seconds") == {
        (("service", "pypi"),): 0.125, (("registry", "docker.io"), ("service", "docker")): 0.25}
    disk = samples(fams, "gpulab_cache_disk_used_bytes")
    assert disk[(("registry", cm.BLOB_CACHE), ("service", "docker"))] == 512
    assert disk[(("service", "pypi"),)] == 1048576
    assert samples(fams, "gpulab_cache_requests_total") == {
        (("registry", "docker.io"), ("result", "hit"), ("service", "docker"), ("type", "manifest")): 7,
        (("registry", "docker.io"), ("result", "miss"), ("service", "docker"), ("type", "manifest")): 2}
    assert samples(fams, "gpulab_cache_last_run_timestamp_seconds") == {(): 1767225600.5}
    text = render(fams)
    promtool.check_metrics(text)
    assert "instance=" not in text and "host=" not in text


def test_unknown_values_leave_their_series_out():
    run = {"timestamp": 1.0, "services": [
        {"service": "pypi", "up": None, "upstream": "https://p.example/simple", "upstream_up": None,
         "disk_bytes": None, "avail_bytes": float("nan"), "requests": None}]}
    fams = cm.families(run)
    for name in ("gpulab_cache_service_up", "gpulab_cache_upstream_up", "gpulab_cache_disk_used_bytes",
                 "gpulab_cache_filesystem_avail_bytes", "gpulab_cache_requests_total",
                 "gpulab_cache_upstream_probe_duration_seconds"):
        assert samples(fams, name) == {}, name
    text = render(fams)
    assert text.count("# TYPE") == 1 and "gpulab_cache_last_run_timestamp_seconds 1\n" in text
    promtool.check_metrics(text)


def test_a_credential_in_an_upstream_url_is_masked():
    run = full_run()
    run["services"][0]["upstream"] = "https://labuser:s3cret-token@pypi.example/simple"
    run["services"][1]["upstream"] = "https://conda.example/anaconda?token=s3cret-token"
    text = render(cm.families(run))
    assert "s3cret-token" not in text and "labuser" not in text
    assert 'upstream="https://***@pypi.example/simple"' in text
    promtool.check_metrics(text)


def test_the_rendering_is_stable():
    assert render(cm.families(full_run())) == render(cm.families(full_run()))
