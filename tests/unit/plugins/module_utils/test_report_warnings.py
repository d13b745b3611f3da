# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest

from ansible_collections.gpulab.provision.plugins.module_utils.report import report_data
from ansible_collections.gpulab.provision.plugins.module_utils.report_warnings import run_warnings


def test_a_quiet_run_has_no_warnings():
    data = {"gpu1": {"mirrors_selected": {"pypi": {"status": "ok", "name": "tuna"}},
                     "reports": {"pip_mirror": {"changed": False, "warnings": []}}}}
    assert run_warnings(data) == []


def test_statuses_role_warnings_and_failed_hosts_each_get_a_line():
    hostvars = {
        "gpu2": {"gpulab_mirrors_selected": {"pypi": {"status": "kept", "name": "tuna", "url": "https://u:p@t/simple"},
                                             "docker": {"status": "none", "name": None}},
                 "gpulab_report_docker_mirror": {"warnings": ["restart pending: 3 running containers"]}},
        "gpu1": {"gpulab_mirrors_selected": {"pypi": {"status": "pin_unhealthy", "name": "ustc"}},
                 "gpulab_report_pip_mirror": {"warnings": ["extra-index-url present in https://a:b@h/x"]}},
    }
    lines = run_warnings(report_data(hostvars), failed_hosts=["gpu9"])
    assert lines == [
        "gpu1: pypi: the pinned mirror is unhealthy, another was chosen (ustc)",
        "gpu1: pip_mirror: extra-index-url present in https://***@h/x",
        "gpu2: docker: no healthy mirror, nothing kept",
        "gpu2: pypi: every mirror down, the last good choice kept (tuna)",
        "gpu2: docker_mirror: restart pending: 3 running containers",
        "gpu9: failed or unreachable: see the run above",
    ]


def test_bad_input():
    with pytest.raises(ValueError, match="report data"):
        run_warnings(["x"])


def test_recorded_selection_reads_the_local_fact_and_reports_it():
    from ansible_collections.gpulab.provision.plugins.module_utils.recorded_selection import recorded_selection
    from ansible_collections.gpulab.provision.plugins.module_utils.report import report_text

    fact = {"pypi": {"name": "tuna", "status": "ok", "url_masked": "https://***@pypi.tuna.example/simple"},
            "docker": {"name": "hub", "status": "pinned", "url_masked": "https://hub.example"}}
    selected = recorded_selection(fact)
    assert selected["pypi"]["recorded"] is True and selected["pypi"]["name"] == "tuna"
    assert selected["docker"]["status"] == "pinned"
    text = report_text({"gpu1": {"gpulab_mirrors_selected": selected}})
    assert "tuna" in text and "hub" in text
    with pytest.raises(ValueError, match="local fact"):
        recorded_selection(["x"])


def test_host_names_that_are_numbers_and_forged_warnings_stay_one_line_each():
    data = {123: {"mirrors_selected": {"pypi": {"status": "none", "name": None}}, "reports": {}},
            "web": {"mirrors_selected": {"pypi": {"status": "kept", "name": 7}},
                    "reports": {"docker_mirror": {"warnings": ["restart pending\nweb: docker: all fine\x1b[0m"]}}}}
    assert run_warnings(data, failed_hosts=[10, "007"]) == [
        "123: pypi: no healthy mirror, nothing kept",
        "web: pypi: every mirror down, the last good choice kept (7)",
        "web: docker_mirror: restart pending\\nweb: docker: all fine\\x1b[0m",
        "007: failed or unreachable: see the run above",
        "10: failed or unreachable: see the run above",
    ]


def test_a_recorded_fact_with_a_number_for_a_name_is_shown_as_text():
    from ansible_collections.gpulab.provision.plugins.module_utils.recorded_selection import recorded_selection
    from ansible_collections.gpulab.provision.plugins.module_utils.report import report_text

    selected = recorded_selection({"pypi": {"name": 123, "status": "ok", "url_masked": "https://m.example/simple"}})
    assert selected["pypi"]["name"] == "123"
    assert report_text({"gpu1": {"gpulab_mirrors_selected": selected}}).splitlines()[2].split()[:3] == ["gpu1", "pypi", "123"]


def cache_client(status="ok", chosen="tuna", ranked=("tuna",), rejected=()):
    return {"status": status, "name": chosen,
            "ranked": [{"name": name} for name in ranked],
            "rejected": [{"name": name, "reason": reason, "url_masked": url} for name, reason, url in rejected]}


UNRESOLVED = ("cache-cache1", "connection failed: name does not resolve", "http://cache1:3141/root/pypi/+simple")
NODE = {"gpulab_report_cache_node": {"changed": False, "upstreams": {"pypi": "https://t/simple"}}}


def test_a_cache_node_every_client_rejected_is_a_warning_naming_the_fix():
    hostvars = {
        # the node resolves its own name: it finds itself healthy, which says nothing of its clients
        "cache1": dict(NODE, gpulab_mirrors_selected={"pypi": cache_client(chosen="cache-cache1", ranked=("cache-cache1",))}),
        "gpu1": {"gpulab_mirrors_selected": {"pypi": cache_client(rejected=[UNRESOLVED])}},
        "gpu2": {"gpulab_mirrors_selected": {"pypi": cache_client(rejected=[UNRESOLVED]),
                                             "docker": cache_client(chosen="dp", ranked=("dp",))}},
    }
    assert run_warnings(report_data(hostvars)) == [
        "cache1: cache_node: serves on itself, but every client rejected it (gpu1, gpu2: connection failed: name does"
        " not resolve); they tried http://cache1:3141/root/pypi/+simple, so they use public mirrors; set"
        " cache_node_advertise_address to a name or address the clients resolve and reach"]


def test_one_client_that_uses_the_node_or_found_it_healthy_is_no_warning():
    uses = {"gpulab_mirrors_selected": {"pypi": cache_client(chosen="cache-cache1", ranked=("cache-cache1", "tuna"))}}
    pinned_away = {"gpulab_mirrors_selected": {"pypi": cache_client(status="pinned", ranked=("tuna", "cache-cache1"))}}
    rejects = {"gpulab_mirrors_selected": {"pypi": cache_client(rejected=[UNRESOLVED])}}
    for other in (uses, pinned_away):
        assert run_warnings(report_data({"cache1": dict(NODE), "gpu1": rejects, "gpu2": other})) == []


def test_a_node_without_its_own_report_or_without_clients_is_no_warning():
    rejects = {"gpulab_mirrors_selected": {"pypi": cache_client(rejected=[UNRESOLVED])}}
    # the node did not run (or failed) in this run: its failure is reported on its own line
    assert run_warnings(report_data({"gpu1": rejects})) == []
    # no client had it in its catalog
    assert run_warnings(report_data({"cache1": dict(NODE), "gpu1": {"gpulab_mirrors_selected": {"pypi": cache_client()}}})) == []


def test_the_unused_node_warning_masks_credentials():
    secret = ("cache-cache1", "HTTP 401 from https://bob:hunter2@cache1:3141/root/pypi/+simple",
              "https://***@cache1:3141/root/pypi/+simple")
    hostvars = {"cache1": dict(NODE), "gpu1": {"gpulab_mirrors_selected": {"pypi": cache_client(rejected=[secret])}}}
    [line] = run_warnings(report_data(hostvars))
    assert "hunter2" not in line and "https://***@cache1:3141" in line
