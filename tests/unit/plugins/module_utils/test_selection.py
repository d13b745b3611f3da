# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Specification of the mirror selection policy (plugins/module_utils/selection.py)."""

from __future__ import annotations

import json

import pytest

from mirror_results import catalog, result

from ansible_collections.gpulab.provision.plugins.module_utils.selection import (
    SelectionError,
    mirror_catalog_errors,
    mirror_selection,
    pick_mirror,
    rank_mirrors,
)

SERVICES = {"pypi": {"kind": "pypi", "project": "pip"}, "docker": {"kind": "docker"}}


# --------------------------------------------------------------------------------------------
# pick_mirror / rank_mirrors


def test_first_healthy_skips_unhealthy_and_keeps_catalog_order():
    results = [result("a", healthy=False), result("b", latency_ms=90), result("c", latency_ms=5)]
    assert pick_mirror(results)["name"] == "b"


def test_pick_returns_the_same_dict_not_a_copy():
    results = [result("a")]
    assert pick_mirror(results) is results[0]


def test_nothing_healthy_picks_none():
    assert pick_mirror([result("a", healthy=False), result("b", healthy=False)]) is None


def test_empty_results_pick_none():
    assert pick_mirror([]) is None


def test_fastest_takes_lowest_latency():
    results = [result("a", latency_ms=90), result("b", latency_ms=5), result("c", latency_ms=40)]
    assert pick_mirror(results, strategy="fastest")["name"] == "b"


def test_fastest_ties_keep_catalog_order():
    results = [result("a", latency_ms=20), result("b", latency_ms=7), result("c", latency_ms=7)]
    assert [r["name"] for r in rank_mirrors(results, strategy="fastest")] == ["b", "c", "a"]


def test_fastest_puts_healthy_without_latency_last():
    results = [result("a", latency_ms=None), result("b", latency_ms=50)]
    assert [r["name"] for r in rank_mirrors(results, strategy="fastest")] == ["b", "a"]


def test_pin_to_healthy_mirror_wins_over_strategy():
    results = [result("a", latency_ms=5), result("b", latency_ms=500)]
    assert pick_mirror(results, strategy="fastest", pin="b")["name"] == "b"


def test_pin_to_unhealthy_mirror_is_not_obeyed():
    results = [result("a", healthy=False), result("b")]
    assert pick_mirror(results, pin="a")["name"] == "b"


def test_pin_to_unknown_mirror_is_not_obeyed():
    assert pick_mirror([result("a"), result("b")], pin="zzz")["name"] == "a"


def test_ceiling_prefers_mirrors_under_it():
    results = [result("slow", latency_ms=800), result("quick", latency_ms=30)]
    assert pick_mirror(results, max_latency_ms=200)["name"] == "quick"


def test_ceiling_keeps_slow_healthy_mirrors_after_fast_ones():
    results = [result("slow", latency_ms=800), result("quick", latency_ms=30), result("down", healthy=False)]
    assert [r["name"] for r in rank_mirrors(results, max_latency_ms=200)] == ["quick", "slow"]


def test_ceiling_with_every_mirror_over_it_still_picks_a_healthy_one():
    results = [result("a", latency_ms=800), result("b", latency_ms=900)]
    assert pick_mirror(results, max_latency_ms=100)["name"] == "a"


def test_pin_wins_over_ceiling():
    results = [result("quick", latency_ms=30), result("slow", latency_ms=800)]
    assert pick_mirror(results, pin="slow", max_latency_ms=200)["name"] == "slow"


def test_rank_leaves_out_unhealthy_mirrors():
    results = [result("a", healthy=False), result("b"), result("c", healthy=False)]
    assert [r["name"] for r in rank_mirrors(results)] == ["b"]


def test_unknown_strategy_is_an_error():
    with pytest.raises(SelectionError, match="strategy 'random' is unknown"):
        pick_mirror([result("a")], strategy="random")


def test_non_positive_ceiling_is_an_error():
    with pytest.raises(SelectionError, match="max_latency_ms"):
        rank_mirrors([result("a")], max_latency_ms=0)


def test_results_that_are_not_a_list_are_an_error():
    with pytest.raises(SelectionError, match="results must be the list"):
        rank_mirrors({"results": []})


# --------------------------------------------------------------------------------------------
# mirror_selection


def test_selection_ok_uses_real_url_from_catalog_and_masks_it():
    entries = catalog("a", a="https://user:pw@a.example/simple")
    selected = mirror_selection([dict(result("a"), url="https://***@a.example/simple")], entries)
    assert selected["status"] == "ok"
    assert selected["url"] == "https://user:pw@a.example/simple"
    assert selected["url_masked"] == "https://***@a.example/simple"


def test_selection_has_exactly_the_contract_keys():
    selected = mirror_selection([result("a")], catalog("a"))
    assert set(selected) == {"status", "name", "url", "url_masked", "insecure", "latency_ms", "lag", "age_h", "ranked",
                             "rejected", "message"}
    assert set(selected["ranked"][0]) == {"name", "url", "url_masked", "insecure", "latency_ms", "lag", "age_h"}


def test_selection_rejects_unhealthy_with_their_reasons():
    results = [result("a", healthy=False, reason="timed out after 3.0 s"), result("b")]
    selected = mirror_selection(results, catalog("a", "b"))
    assert selected["name"] == "b"
    assert selected["rejected"] == [{"name": "a", "url_masked": "https://a.example/simple",
                                     "reason": "timed out after 3.0 s"}]
    assert selected["message"] == "b chosen (first healthy); a: timed out after 3.0 s"


def test_selection_ranked_lists_every_healthy_mirror_chosen_first():
    selected = mirror_selection([result("a"), result("b", latency_ms=3)], catalog("a", "b"), {"strategy": "fastest"})
    assert [item["name"] for item in selected["ranked"]] == ["b", "a"]
    assert selected["latency_ms"] == 3


def test_selection_carries_insecure_from_the_catalog():
    entries = [{"name": "lab", "url": "http://127.0.0.1:1/simple", "insecure": True}]
    assert mirror_selection([result("lab")], entries)["insecure"] is True


def test_selection_status_pinned_when_pin_is_healthy():
    selected = mirror_selection([result("a"), result("b")], catalog("a", "b"), pin="b")
    assert (selected["status"], selected["name"]) == ("pinned", "b")


def test_selection_status_pin_unhealthy_falls_back_to_strategy():
    results = [result("a", healthy=False, reason="connection refused"), result("b")]
    selected = mirror_selection(results, catalog("a", "b"), pin="a")
    assert (selected["status"], selected["name"]) == ("pin_unhealthy", "b")
    assert selected["message"].startswith("pin a not obeyed (connection refused); b chosen")


def test_selection_keeps_previous_when_all_down_and_policy_keep():
    results = [result("a", healthy=False), result("b", healthy=False)]
    selected = mirror_selection(results, catalog("a", "b"), {"on_all_down": "keep"}, previous={"name": "b"})
    assert (selected["status"], selected["name"], selected["url"]) == ("kept", "b", "https://b.example/simple")
    assert [item["name"] for item in selected["ranked"]] == ["b"]
    assert [item["name"] for item in selected["rejected"]] == ["a", "b"]


def test_selection_accepts_previous_as_a_plain_name():
    selected = mirror_selection([result("a", healthy=False)], catalog("a"), previous="a")
    assert selected["status"] == "kept"


def test_selection_none_when_all_down_and_nothing_to_keep():
    selected = mirror_selection([result("a", healthy=False)], catalog("a"))
    assert (selected["status"], selected["name"], selected["url"], selected["ranked"]) == ("none", None, None, [])


def test_selection_none_when_previous_left_the_catalog():
    selected = mirror_selection([result("a", healthy=False)], catalog("a"), previous="gone")
    assert selected["status"] == "none"
    assert "gone is no longer in the catalog" in selected["message"]


def test_selection_none_when_all_down_and_policy_fail_even_with_previous():
    selected = mirror_selection([result("a", healthy=False)], catalog("a"), {"on_all_down": "fail"}, previous="a")
    assert selected["status"] == "none"


def test_selection_names_an_unprobed_catalog_entry_as_rejected():
    selected = mirror_selection([result("a")], catalog("a", "b"))
    assert selected["rejected"] == [{"name": "b", "url_masked": "https://b.example/simple", "reason": "not probed"}]


def test_selection_result_missing_from_catalog_is_an_error():
    with pytest.raises(SelectionError, match="not in the catalog"):
        mirror_selection([result("zzz")], catalog("a"))


def test_selection_message_says_when_every_healthy_mirror_is_over_the_ceiling():
    selected = mirror_selection([result("a", latency_ms=900)], catalog("a"), {"max_latency_ms": 100})
    assert selected["message"] == "a chosen (first healthy, every healthy mirror is over 100 ms)"


def test_selection_never_shows_credentials_in_message_or_rejected():
    entries = catalog("a", "b", a="https://u:topsecret@a.example/simple")
    selected = mirror_selection([result("a", healthy=False), result("b")], entries)
    visible = json.dumps({key: value for key, value in selected.items() if key not in ("url",)})
    assert "topsecret" not in visible.replace(json.dumps(selected["ranked"]), "")
    assert "topsecret" not in json.dumps(selected["rejected"]) + selected["message"]


# --------------------------------------------------------------------------------------------
# mirror_catalog_errors


def errors_for(mirrors, services=None, **kwargs):
    return mirror_catalog_errors(mirrors, SERVICES if services is None else services, **kwargs)


def test_valid_catalog_has_no_errors():
    mirrors = {"pypi": [{"name": "tuna", "url": "https://pypi.tuna.tsinghua.edu.cn/simple"},
                        {"name": "lab", "url": "http://127.0.0.1:8080/simple", "insecure": True}],
               "docker": [{"name": "dc", "url": "https://docker.m.daocloud.io"}]}
    assert errors_for(mirrors, policy={"strategy": "fastest", "timeout_s": 2.5}, pin={"pypi": "lab"}) == []


def test_catalog_not_a_mapping():
    assert errors_for([{"name": "a"}]) == ["gpulab_mirrors: must be a mapping of service -> list of mirrors, got list"]


def test_catalog_url_without_scheme_names_path_and_fix():
    mirrors = {"pypi": [{"name": "a", "url": "https://a.example/simple"}, {"name": "b", "url": "https://b.example/s"},
                        {"name": "tuna", "url": "pypi.tuna.tsinghua.edu.cn/simple"}]}
    assert errors_for(mirrors) == ["gpulab_mirrors.pypi[2].url: 'pypi.tuna.tsinghua.edu.cn/simple': scheme must be http or "
                                   "https, not missing; use https://pypi.tuna.tsinghua.edu.cn/simple"]


def test_catalog_host_port_without_scheme_is_no_scheme():
    errors = errors_for({"pypi": [{"name": "a", "url": "localhost:8080/simple"}]})
    assert errors == ["gpulab_mirrors.pypi[0].url: 'localhost:8080/simple': scheme must be http or https, not missing; "
                      "use https://localhost:8080/simple"]


def test_catalog_unknown_service_without_kind():
    errors = errors_for({"pipx": [{"name": "a", "url": "https://a.example"}]})
    assert errors == ["gpulab_mirrors.pipx: unknown service; add gpulab_mirror_services.pipx: "
                      "{kind: pypi|conda|docker|apt|http} to say how to probe it"]


def test_catalog_service_with_bad_kind():
    errors = errors_for({"pypi": [{"name": "a", "url": "https://a.example"}]}, {"pypi": {"kind": "npm"}})
    assert errors == ["gpulab_mirror_services.pypi.kind: 'npm' is not a probe kind; use one of: pypi, conda, docker, apt, http"]


def test_catalog_service_with_option_of_another_kind():
    errors = errors_for({"pypi": [{"name": "a", "url": "https://a.example"}]}, {"pypi": {"kind": "pypi", "suite": "/"}})
    assert errors == ["gpulab_mirror_services.pypi: unknown key 'suite' for kind pypi; allowed: kind, project"]


def test_catalog_empty_list():
    assert errors_for({"pypi": []}) == ["gpulab_mirrors.pypi: empty list; list at least one mirror or remove the service"]


def test_catalog_service_value_not_a_list():
    assert errors_for({"pypi": {"name": "a"}}) == ["gpulab_mirrors.pypi: must be a list of {name, url} in preference order"]


def test_catalog_entry_missing_name_and_url():
    errors = errors_for({"pypi": [{"insecure": False}]})
    assert errors == ["gpulab_mirrors.pypi[0].name: missing; give each mirror a short unique name, e.g. tuna",
                      "gpulab_mirrors.pypi[0].url: missing; e.g. url: https://mirror.example/..."]


def test_catalog_duplicate_names():
    errors = errors_for({"pypi": [{"name": "a", "url": "https://a.example"}, {"name": "a", "url": "https://b.example"}]})
    assert errors == ["gpulab_mirrors.pypi[1].name: 'a' duplicates gpulab_mirrors.pypi[0]; names must be unique per service"]


def test_catalog_file_scheme_is_refused():
    errors = errors_for({"pypi": [{"name": "a", "url": "file:///srv/pypi"}]})
    assert errors == ["gpulab_mirrors.pypi[0].url: 'file:///srv/pypi': scheme must be http or https, not 'file'"]


def test_catalog_plain_http_needs_insecure():
    errors = errors_for({"pypi": [{"name": "a", "url": "http://10.0.0.5/simple"}]})
    assert errors == ["gpulab_mirrors.pypi[0].url: 'http://10.0.0.5/simple' is plain http: use https, "
                      "or set insecure: true for this mirror"]


def test_catalog_docker_url_with_path_suggests_bare_host():
    errors = errors_for({"docker": [{"name": "d", "url": "https://u:pw@mirror.example:5000/v2/"}]})
    assert errors == ["gpulab_mirrors.docker[0].url: 'https://***@mirror.example:5000/v2/': Docker registry-mirrors "
                      "must be scheme://host[:port], without a path; use https://mirror.example:5000"]


def test_catalog_unknown_key_in_entry():
    errors = errors_for({"pypi": [{"name": "a", "url": "https://a.example", "insecure_tls": True}]})
    assert errors == ["gpulab_mirrors.pypi[0]: unknown key 'insecure_tls'; allowed: name, url, insecure, reference, status_url, proxy"]


def test_catalog_insecure_must_be_boolean():
    errors = errors_for({"pypi": [{"name": "a", "url": "https://a.example", "insecure": "yes"}]})
    assert errors == ["gpulab_mirrors.pypi[0].insecure: 'yes' must be true or false"]


def test_catalog_errors_mask_credentials():
    errors = errors_for({"pypi": [{"name": "a", "url": "ftp://user:hunter2@a.example/simple"}]})
    assert errors and all("hunter2" not in error for error in errors)


def test_catalog_reports_every_problem_at_once():
    mirrors = {"pypi": [{"name": "a", "url": "a.example"}, {"name": "a", "url": "file:///x"}], "conda": []}
    errors = errors_for(mirrors, dict(SERVICES, conda={"kind": "conda"}))
    assert [error.split(":")[0] for error in errors] == [
        "gpulab_mirrors.pypi[0].url", "gpulab_mirrors.pypi[1].name", "gpulab_mirrors.pypi[1].url", "gpulab_mirrors.conda"]


def test_policy_bad_values_are_errors():
    errors = errors_for({"pypi": [{"name": "a", "url": "https://a.example"}]},
                        policy={"strategy": "random", "timeout_s": 0, "on_all_down": "panic", "max_latency_ms": -1})
    assert [error.split(":")[0] for error in errors] == [
        "gpulab_mirror_policy.strategy", "gpulab_mirror_policy.timeout_s",
        "gpulab_mirror_policy.max_latency_ms", "gpulab_mirror_policy.on_all_down"]


def test_policy_unknown_key_is_an_error():
    errors = errors_for({"pypi": [{"name": "a", "url": "https://a.example"}]}, policy={"timeout": 3})
    assert errors == ["gpulab_mirror_policy: unknown key 'timeout'; allowed: strategy, timeout_s, max_latency_ms, on_all_down, "
                      "max_serial_lag, max_age_h, use_reference"]


def test_policy_boolean_timeout_is_an_error():
    errors = errors_for({"pypi": [{"name": "a", "url": "https://a.example"}]}, policy={"timeout_s": True})
    assert errors == ["gpulab_mirror_policy.timeout_s: True must be a number of seconds > 0 and at most 3600, e.g. 3"]


def test_pin_to_unknown_mirror_is_an_error():
    errors = errors_for({"pypi": [{"name": "tuna", "url": "https://a.example"}]}, pin={"pypi": "aliyn"})
    assert errors == ["gpulab_mirror_pin.pypi: 'aliyn' is not a mirror of gpulab_mirrors.pypi; use one of: tuna"]


def test_pin_to_unknown_service_is_an_error():
    errors = errors_for({"pypi": [{"name": "tuna", "url": "https://a.example"}]}, pin={"conda": "tuna"})
    assert errors == ["gpulab_mirror_pin.conda: 'conda' is not a service of gpulab_mirrors (pypi); "
                      "remove the pin or add the service"]


def test_pin_null_value_means_no_pin():
    assert errors_for({"pypi": [{"name": "tuna", "url": "https://a.example"}]}, pin={"pypi": None}) == []


# ------------------------------------------------------------------ regressions


def _catalog(url, kind="pypi", **extra):
    entry = dict({"name": "m", "url": url}, **extra)
    return {kind: [entry]}, {kind: {"kind": kind}}


@pytest.mark.parametrize("url", [
    "https://h/simple\n[global]\nextra-index-url = https://evil/simple",
    'https://h/simple"\nx = "y',
    "https://h/sim ple",
    "https://h/simple\\",
])
def test_catalog_refuses_urls_that_could_change_a_config_file(url):
    mirrors, services = _catalog(url)
    errors = mirror_catalog_errors(mirrors, services)
    assert len(errors) == 1 and errors[0].startswith("gpulab_mirrors.pypi[0].url: ")
    assert "percent-encode" in errors[0]


def test_catalog_password_with_slash_is_never_shown():
    mirrors, services = _catalog("https://alice:s3/cr#et@h/simple")
    errors = mirror_catalog_errors(mirrors, services)
    assert errors and "s3/cr" not in errors[0] and "alice" not in errors[0]


def test_catalog_refuses_query_tokens():
    mirrors, services = _catalog("https://h/simple?token=abc")
    errors = mirror_catalog_errors(mirrors, services)
    assert errors and "query string" in errors[0] and "abc" not in errors[0]


def test_catalog_refuses_docker_credentials():
    mirrors, services = _catalog("https://u:p@hub.example", kind="docker")
    errors = mirror_catalog_errors(mirrors, services)
    assert errors and "docker login" in errors[0] and ":p@" not in errors[0]


def test_policy_timeout_beyond_the_probe_bound_names_the_variable():
    assert mirror_catalog_errors(*_catalog("https://h/simple"), policy={"timeout_s": 7200}) == [
        "gpulab_mirror_policy.timeout_s: 7200 must be a number of seconds > 0 and at most 3600, e.g. 3"]


def test_conda_entry_may_describe_its_own_layout():
    mirrors, services = _catalog("https://conda.example/anaconda", kind="conda",
                                 channel_alias="https://conda.example/cloud",
                                 default_channels=["https://conda.example/pkgs/main"],
                                 custom_channels={"conda-forge": "https://conda.example/cloud"})
    assert mirror_catalog_errors(mirrors, services) == []
    mirrors["conda"][0]["channel_alias"] = "https://conda.example/cloud\nssl_verify: false"
    errors = mirror_catalog_errors(mirrors, services)
    assert len(errors) == 1 and errors[0].startswith("gpulab_mirrors.conda[0].channel_alias: ")


def test_layout_keys_are_conda_only():
    mirrors, services = _catalog("https://h/simple", channel_alias="https://h/cloud")
    assert mirror_catalog_errors(mirrors, services) == [
        "gpulab_mirrors.pypi[0]: unknown key 'channel_alias'; allowed: name, url, insecure, reference, status_url, proxy"]


# --------------------------------------------------------------------------------------------
# freshness and requirements: reference entries, and the new inventory keys


def test_reference_entry_is_probed_but_not_chosen():
    entries = catalog("pypi", "tuna")
    entries[0]["reference"] = True
    results = [result("pypi", latency_ms=5), result("tuna", latency_ms=50)]
    selected = mirror_selection(results, entries, {"strategy": "fastest"})
    assert selected["name"] == "tuna"
    assert [item["name"] for item in selected["ranked"]] == ["tuna"]
    assert selected["rejected"] == [{"name": "pypi", "url_masked": "https://pypi.example/simple",
                                     "reason": "reference entry, not chosen (gpulab_mirror_policy.use_reference: false)"}]


def test_reference_entry_is_chosen_where_the_policy_allows():
    entries = catalog("tuna", "pypi")
    entries[1]["reference"] = True
    results = [result("tuna", healthy=False, reason="serial 1 behind 900 (lag 899 > 500)"), result("pypi")]
    assert mirror_selection(results, entries, {"use_reference": True})["name"] == "pypi"
    assert mirror_selection(results, entries, {"use_reference": False}, previous="tuna")["status"] == "kept"


def test_pin_to_a_reference_is_not_obeyed_without_use_reference():
    entries = catalog("tuna", "pypi")
    entries[1]["reference"] = True
    selected = mirror_selection([result("tuna"), result("pypi")], entries, pin="pypi")
    assert selected["status"] == "pin_unhealthy" and selected["name"] == "tuna"
    assert "pin pypi not obeyed (reference entry, not chosen" in selected["message"]


def test_stale_mirror_reason_is_the_evidence_and_lag_is_kept():
    fresh = dict(result("a"), lag=0, age_h=1.5)
    stale = dict(result("b", healthy=False, reason="serial 51234 behind 51990 (lag 756 > 500)"), lag=756)
    selected = mirror_selection([stale, fresh], catalog("b", "a"))
    assert (selected["name"], selected["lag"], selected["age_h"]) == ("a", 0, 1.5)
    assert selected["rejected"][0]["reason"] == "serial 51234 behind 51990 (lag 756 > 500)"


DOCKER_AND_PYPI = {"pypi": [{"name": "tuna", "url": "https://p.example/simple"}],
                   "conda": [{"name": "tuna", "url": "https://c.example/anaconda"}],
                   "docker": [{"name": "dc", "url": "https://d.example"}],
                   "apt": [{"name": "deb", "url": "https://deb.example/debian"}]}
KINDS_OF = {"pypi": {"kind": "pypi"}, "conda": {"kind": "conda"}, "docker": {"kind": "docker"},
            "apt": {"kind": "apt"}}


def test_valid_freshness_and_requirement_inputs_have_no_errors():
    mirrors = {service: [dict(entry) for entry in entries] for service, entries in DOCKER_AND_PYPI.items()}
    mirrors["pypi"].append({"name": "pypi", "url": "https://pypi.org/simple", "reference": True,
                            "status_url": "https://p.example/static/tunasync.json#pypi"})
    services = dict(KINDS_OF, docker={"kind": "docker", "docker_probe_image": "library/python:3.11-slim"})
    errors = mirror_catalog_errors(
        mirrors, services, policy={"max_serial_lag": 500, "max_age_h": {"conda": 48, "apt": 24}, "use_reference": False},
        require={"pypi": ["torch==2.5.1", "numpy==2.1.3"], "conda": ["pytorch=2.5.1"],
                 "docker": ["pytorch/pytorch:2.5.1-cuda12.1-cudnn9-runtime"]})
    assert errors == []


def test_bad_requirements_are_named_with_the_fix():
    errors = mirror_catalog_errors(DOCKER_AND_PYPI, KINDS_OF, require={
        "pypi": ["torch==2.5.1", "torch>=2.5"], "conda": ["pytorch"], "docker": ["pytorch/pytorch:latest"],
        "apt": ["x"], "npm": ["left-pad==1.3.0"]})
    assert errors == [
        "gpulab_mirror_require.pypi[1]: 'torch>=2.5' is not a pinned PyPI requirement; write name==version, "
        "e.g. torch==2.5.1",
        "gpulab_mirror_require.conda[0]: 'pytorch' is not a pinned conda requirement; write name=version, "
        "e.g. pytorch=2.5.1",
        "gpulab_mirror_require.docker[0]: 'pytorch/pytorch:latest' is not pinned; name a tag (e.g. "
        "pytorch/pytorch:2.5.1-cuda12.1-cudnn9-runtime) or a digest, never latest",
        "gpulab_mirror_require.apt: kind apt has no requirements; only pypi, conda and docker services take them",
        "gpulab_mirror_require.npm: 'npm' is not a service of gpulab_mirrors (apt, conda, docker, pypi); "
        "remove it or add the service",
    ]
    assert mirror_catalog_errors(DOCKER_AND_PYPI, KINDS_OF, require=["torch==2.5.1"]) == [
        "gpulab_mirror_require: must be a mapping of service -> list of pinned items, e.g. {pypi: ['torch==2.5.1']}"]
    assert mirror_catalog_errors(DOCKER_AND_PYPI, KINDS_OF, require={"pypi": "torch==2.5.1"}) == [
        "gpulab_mirror_require.pypi: must be a list of pinned items, e.g. ['torch==2.5.1']"]


def test_bad_freshness_policy_is_named_with_the_fix():
    errors = mirror_catalog_errors(DOCKER_AND_PYPI, KINDS_OF, policy={
        "max_serial_lag": -1, "max_age_h": {"conda": "2d", "nope": 3}, "use_reference": "yes"})
    assert errors == [
        "gpulab_mirror_policy.max_serial_lag: -1 must be a whole number of serials >= 0 (e.g. 500), a mapping of "
        "service -> limit, or null",
        "gpulab_mirror_policy.max_age_h.conda: '2d' must be a number of hours > 0 (e.g. 24) or null",
        "gpulab_mirror_policy.max_age_h.nope: 'nope' is not a service of gpulab_mirrors (apt, conda, docker, pypi); "
        "remove it",
        "gpulab_mirror_policy.use_reference: 'yes' must be true or false",
    ]


def test_bad_reference_status_url_and_probe_image_are_named_with_the_fix():
    mirrors = {"pypi": [{"name": "a", "url": "https://a.example/simple", "reference": "yes",
                         "status_url": "https://a.example/static/tunasync.json"}],
               "docker": [{"name": "d", "url": "https://d.example",
                           "status_url": "http://d.example/api/v1/metas#docker"}]}
    services = {"pypi": {"kind": "pypi"}, "docker": {"kind": "docker", "docker_probe_image": "python"}}
    errors = mirror_catalog_errors(mirrors, services)
    assert errors[0].startswith("gpulab_mirrors.pypi[0].reference: 'yes' must be true or false")
    assert errors[1] == ("gpulab_mirrors.pypi[0].status_url: https://a.example/static/tunasync.json needs #<name>, "
                         "the mirror's entry in the feed, e.g. https://mirrors.example/static/tunasync.json#pypi")
    assert errors[2] == ("gpulab_mirror_services.docker.docker_probe_image: 'python' is not pinned; name a tag (e.g. "
                         "pytorch/pytorch:2.5.1-cuda12.1-cudnn9-runtime) or a digest, never latest")
    assert errors[3].startswith("gpulab_mirrors.docker[0].status_url: ") and "insecure" in errors[3]
    assert len(errors) == 4


def test_entry_proxy_false_is_the_only_value():
    mirrors, services = _catalog("https://h/simple", proxy=False)
    assert mirror_catalog_errors(mirrors, services) == []
    mirrors["pypi"][0]["proxy"] = "yes"
    assert mirror_catalog_errors(mirrors, services) == [
        "gpulab_mirrors.pypi[0].proxy: 'yes'; the only value is false (reach this mirror directly, not through "
        "gpulab_proxy); remove the key otherwise"]


def test_selection_urls_takes_each_url_back_from_the_catalog_by_name():
    from ansible_collections.gpulab.provision.plugins.module_utils.selection import selection_urls

    mirrors = {"pypi": [{"name": "a", "url": "https://u:pw@a.example/simple"}, {"name": "b", "url": "https://b.example/simple"}]}
    masked = {"pypi": {"name": "a", "url": "https://u:********@a.example/simple", "status": "ok",
                       "ranked": [{"name": "a", "url": "https://u:********@a.example/simple"},
                                  {"name": "b", "url": "https://b.example/simple"}]},
              "docker": {"name": None, "url": None, "status": "none", "ranked": []}}
    fixed = selection_urls(masked, mirrors)
    assert fixed["pypi"]["url"] == "https://u:pw@a.example/simple"
    assert [r["url"] for r in fixed["pypi"]["ranked"]] == ["https://u:pw@a.example/simple", "https://b.example/simple"]
    assert fixed["docker"] == masked["docker"] and masked["pypi"]["url"].count("********") == 1  # input untouched


# --------------------------------------------------------------------------------------------
# names that reach printed lines; bounded requirements


@pytest.mark.parametrize("name, why", [
    ("tuna\nWed Dec  2 gpulab-mirror-watch: pypi: failover tuna -> evil", "is not a mirror name"),
    ("tuna\x1b[2J", "is not a mirror name"),
    ("tuna\n", "is not a mirror name"),  # '$' in a regex matches before a final newline: the rule uses \Z
    ("my mirror", "is not a mirror name"),
    ("-lab", "is not a mirror name"),
    ("a" * 129, "is not a mirror name"),
    (123, "123 is a number in YAML; quote it (name: '123') so it stays text"),
    (["tuna"], "must be a mirror name"),
])
def test_a_mirror_name_outside_the_one_pattern_is_refused_naming_the_entry_and_the_fix(name, why):
    errors = errors_for({"pypi": [{"name": "ok", "url": "https://a.example/simple"},
                                  {"name": name, "url": "https://b.example/simple"}]})
    assert len(errors) == 1 and errors[0].startswith("gpulab_mirrors.pypi[1].name: "), errors
    assert why in errors[0]
    assert "\n" not in errors[0] and "\x1b" not in errors[0]  # the error itself is printable (repr)
    if isinstance(name, str) and not name.isprintable():
        assert "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 128 characters" in errors[0]


def test_every_mirror_name_the_collection_ships_fits_the_pattern():
    """The README's, the example inventory's, Molecule's and the demo's names (and a long cache node)."""
    names = ["tuna", "ustc", "sjtu", "bfsu", "aliyun", "daocloud", "dockerproxy", "anaconda", "lab1", "rack3-devpi",
             "pypi", "docker.io", "nvidia_cuda", "cache-10.0.0.5", "cache-" + "node01.gpu-cluster.example.org" * 3]
    mirrors = {"pypi": [{"name": name, "url": "https://m%d.example/simple" % index} for index, name in enumerate(names)]}
    assert errors_for(mirrors) == []


def test_a_cache_node_entry_with_an_odd_host_name_says_where_the_name_comes_from():
    errors = errors_for({"pypi": [{"name": "cache-fd00::5", "url": "http://[fd00::5]:3141/root/pypi/+simple",
                                   "insecure": True}]})
    assert len(errors) == 1 and "cache-fd00::5 is the entry of the lab cache node fd00::5 (its inventory name)" in errors[0]


def test_a_service_name_outside_the_pattern_is_refused():
    errors = errors_for({"py\npi": [{"name": "a", "url": "https://a.example/simple"}]}, {"py\npi": {"kind": "pypi"}})
    assert errors == ["gpulab_mirrors: service 'py\\npi' is not a service name: use letters, digits, '.', '_' and '-', "
                      "starting with a letter or digit, at most 128 characters"]


def test_a_pin_that_is_a_number_says_to_quote_it():
    errors = errors_for({"pypi": [{"name": "123", "url": "https://a.example/simple"}]}, pin={"pypi": 123})
    assert errors == ["gpulab_mirror_pin.pypi: 123 is a number in YAML; quote it (name: '123') so it stays text"]


def test_more_mirrors_than_a_probe_takes_are_refused():
    errors = errors_for({"pypi": [{"name": "m%d" % i, "url": "https://m%d.example/simple" % i} for i in range(65)]})
    assert errors == ["gpulab_mirrors.pypi: 65 mirrors; a service takes at most 64 (all are probed at once)"]


@pytest.mark.parametrize("items, message", [
    (["torch==" + "1" * 5000], "gpulab_mirror_require.pypi[0]: 'torch==" + "1" * 33 + "'... is 5007 "
                               "characters long; a pinned item has at most 512"),
    (["torch==2.5.1", "torch==1." + "0" * 70], "gpulab_mirror_require.pypi[1]: the version of 'torch==1." + "0" * 31 + "'... is 72 "
                                               "characters long; a pinned version "
                                               "has at most 64"),
    (["p%d==1.0" % i for i in range(65)], "gpulab_mirror_require.pypi: 65 pinned items; a service takes at most 64 "
                                          "(pin what the lab's jobs cannot run without)"),
])
def test_an_absurd_requirement_is_an_error_naming_gpulab_mirror_require_and_the_item(items, message):
    """5000 digits used to end in Python's 'Exceeds the limit (4300 digits)' ValueError, naming nothing."""
    assert errors_for({"pypi": [{"name": "a", "url": "https://a.example/simple"}]}, require={"pypi": items}) == [message]


def test_the_longest_allowed_version_and_item_count_pass():
    require = {"pypi": ["p%d==%s" % (i, "1." * 31 + "9") for i in range(64)]}
    assert errors_for({"pypi": [{"name": "a", "url": "https://a.example/simple"}]}, require=require) == []


def test_a_previous_choice_recorded_as_a_number_is_that_mirror():
    """The local fact edited by hand ({"name": 123}): the mirror "123" is kept, not a SelectionError."""
    entry = mirror_selection([result("123", healthy=False), result("b", healthy=False)], catalog("123", "b"),
                             previous={"name": 123})
    assert entry["status"] == "kept" and entry["name"] == "123"
