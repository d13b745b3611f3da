# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mirror report (plugins/module_utils/report.py): masked data and the text table."""

from __future__ import annotations

import json

import pytest

from mirror_results import catalog, result

from ansible_collections.gpulab.provision.plugins.module_utils.report import (
    ReportError,
    format_report,
    report_data,
    report_text,
)
from ansible_collections.gpulab.provision.plugins.module_utils.selection import mirror_selection


def host_vars():
    selected = mirror_selection([result("a", healthy=False, reason="connection refused"), result("b", latency_ms=41)],
                                catalog("a", "b", b="https://user:s3cret@b.example/simple"))
    return {
        "gpu1": {"gpulab_mirrors_selected": {"pypi": selected}, "gpulab_report_pip_mirror":
                 {"changed": True, "summary": "index-url https://user:s3cret@b.example/simple"}, "other": 1,
                 "gpulab_report_path": "/tmp/report.json"},
        "gpu2": {"unrelated": True},
    }


def test_report_table_has_a_row_per_host_and_service():
    lines = report_text(host_vars()).splitlines()
    assert lines[0].split() == ["host", "service", "chosen", "latency", "lag", "age", "status"]
    assert lines[2].split() == ["gpu1", "pypi", "b", "41", "ms", "-", "-", "ok"]
    assert lines[3] == "      rejected a: connection refused"


def test_report_lists_role_entries_with_changed_state():
    assert "gpu1  pip_mirror  changed  index-url https://***@b.example/simple" in report_text(host_vars())


def test_report_never_contains_credentials():
    text = report_text(host_vars())
    data = json.dumps(report_data(host_vars()))
    assert "s3cret" not in text and "s3cret" not in data


def test_report_table_from_the_json_file_is_the_same_table():
    assert format_report(json.loads(json.dumps(report_data(host_vars())))) == report_text(host_vars())


def test_report_settings_are_not_role_reports():
    assert list(report_data(host_vars())["gpu1"]["reports"]) == ["pip_mirror"]
    assert "gpu1  path" not in report_text(host_vars())


def test_report_leaves_out_hosts_without_selection_or_reports():
    assert list(report_data(host_vars())) == ["gpu1"]


def test_report_limited_to_given_hosts():
    assert report_data(host_vars(), hosts=["gpu2", "absent"]) == {}


def test_report_without_data_says_so():
    assert report_text({}) == "no mirror selections recorded"


def test_report_shows_lag_age_and_each_rejections_evidence():
    fresh = dict(result("a", latency_ms=12), lag=3, age_h=5.25)
    stale = dict(result("b", healthy=False, reason="serial 51234 behind 51990 (lag 756 > 500)"), lag=756)
    selected = mirror_selection([fresh, stale], catalog("a", "b"))
    lines = report_text({"gpu1": {"gpulab_mirrors_selected": {"pypi": selected}}}).splitlines()
    assert lines[2].split() == ["gpu1", "pypi", "a", "12", "ms", "3", "5.2", "h", "ok"]
    assert lines[3] == "      rejected b: serial 51234 behind 51990 (lag 756 > 500)"


def test_report_says_which_hosts_use_each_cache_node_and_which_fell_back():
    on_cache = mirror_selection([result("cache-node1", latency_ms=2), result("tuna", latency_ms=40)],
                                catalog("cache-node1", "tuna"))
    fell_back = mirror_selection([result("cache-node1", healthy=False, reason="connection refused"),
                                  result("tuna", latency_ms=40)], catalog("cache-node1", "tuna"))
    hostvars = {
        "node1": {"gpulab_report_cache_node": {
            "changed": False, "summary": "cache node",
            "upstreams": {"pypi": "https://***@tuna.example/simple", "docker.io": "https://hub.example"},
            "disk_bytes": {"pypi": 3 * 1048576, "docker.io": 1048576}}},
        "gpu1": {"gpulab_mirrors_selected": {"pypi": on_cache}},
        "gpu2": {"gpulab_mirrors_selected": {"pypi": fell_back}},
        "gpu3": {"gpulab_mirrors_selected": {"pypi": mirror_selection([result("tuna", latency_ms=40)], catalog("tuna"))}},
    }
    lines = report_text(hostvars).splitlines()
    start = lines.index("cache nodes (node: upstreams, disk; who uses it):")
    assert lines[start + 1:] == [
        "node1: docker.io <- https://hub.example, pypi <- https://***@tuna.example/simple; disk 4.0 MiB",
        "  pypi: uses it: gpu1; fell back: gpu2 (on tuna)",
    ]


def test_report_names_a_cache_node_that_did_not_report():
    on_cache = mirror_selection([result("cache-node9", latency_ms=2)], catalog("cache-node9"))
    lines = report_text({"gpu1": {"gpulab_mirrors_selected": {"docker": on_cache}}}).splitlines()
    assert lines[-2:] == ["node9: no report from the node in this run", "  docker: uses it: gpu1"]


def test_report_tells_a_pinned_host_from_one_the_cache_failed():
    pinned = mirror_selection([result("cache-node1", latency_ms=2), result("tuna", latency_ms=40)],
                              catalog("cache-node1", "tuna"), pin="tuna")
    lines = report_text({"node1": {"gpulab_report_cache_node": {"upstreams": {}, "disk_bytes": {}, "changed": False}},
                         "gpu3": {"gpulab_mirrors_selected": {"pypi": pinned}}}).splitlines()
    assert lines[-1] == "  pypi: uses it: none; chose another: gpu3 (on tuna)"


def test_the_report_text_filter_formats_the_data_as_the_text_report_does():
    from ansible_collections.gpulab.provision.plugins.filter.run_report import FilterModule

    text_of = FilterModule().filters()["mirror_report_text"]
    data = json.loads(json.dumps(report_data(host_vars())))  # what the report play keeps (serialisable)
    assert text_of(data) == report_text(host_vars())
    assert "s3cret" not in text_of(data)


# ------------------------------------------------------------ host names that are numbers, forged lines


def numeric_hosts():
    entry = {"name": "tuna", "status": "ok", "latency_ms": 12, "ranked": [], "rejected": []}
    return {"123": {"gpulab_mirrors_selected": {"pypi": dict(entry)}},
            "007": {"gpulab_mirrors_selected": {"pypi": dict(entry, name=7, status="none")}},
            "web": {"gpulab_mirrors_selected": {"pypi": dict(entry)}}}


def test_host_names_that_are_numbers_are_text_everywhere_in_the_report():
    """A host called 123 (YAML makes it a number unless quoted) broke the whole report: sorted() of int and str."""
    data = {123: {"mirrors_selected": {"pypi": {"name": 42, "status": "ok"}}, "reports": {}},
            "web": {"mirrors_selected": {"pypi": {"name": "tuna", "status": "ok"}},
                    "reports": {"pip_mirror": {"changed": False, "summary": 5}}}}
    lines = format_report(data).splitlines()
    assert [line.split()[:3] for line in lines[2:4]] == [["123", "pypi", "42"], ["web", "pypi", "tuna"]]
    assert lines[-1].split() == ["web", "pip_mirror", "ok", "5"]


def test_gpulab_report_hosts_given_as_numbers_name_those_hosts():
    data = report_data(numeric_hosts(), [123, "007"])
    assert sorted(data) == ["007", "123"]
    assert report_data(numeric_hosts(), ["123"]) == report_data(numeric_hosts(), [123])
    lines = format_report(data).splitlines()
    assert [line.split()[0] for line in lines[2:]] == ["007", "123"]
    assert lines[2].split()[2] == "7"  # a mirror name that is a number is shown, not a crash


def test_gpulab_report_hosts_that_is_not_a_list_names_the_variable():
    with pytest.raises(ReportError, match="^gpulab_report_hosts: 'web' must be a list of inventory host names$"):
        report_data(numeric_hosts(), "web")


def test_a_value_with_a_newline_or_escape_cannot_forge_a_report_line():
    data = {"gpu1": {"mirrors_selected": {"pypi": {
        "name": "tuna", "status": "ok",
        "rejected": [{"name": "evil\ngpu9  pypi  good  1 ms  -  -  ok", "reason": "refused\x1b[2J\r"}]}},
        "reports": {"pip_mirror": {"changed": True, "summary": "wrote\n/etc/pip.conf\u2028x"}}}}
    lines = format_report(data).splitlines()
    assert not any(line.startswith("gpu9") for line in lines)
    assert "rejected evil\\ngpu9  pypi  good  1 ms  -  -  ok: refused\\x1b[2J\\r" in lines[3]
    assert lines[-1] == "gpu1  pip_mirror  changed  wrote\\n/etc/pip.conf\\u2028x"
    assert all(line.isprintable() for line in lines)


def test_the_report_filters_take_host_names_that_are_numbers():
    from ansible_collections.gpulab.provision.plugins.filter.mirrors import FilterModule as Mirrors
    from ansible_collections.gpulab.provision.plugins.filter.run_report import FilterModule as RunReport

    filters = dict(Mirrors().filters(), **RunReport().filters())
    data = filters["mirror_report"](numeric_hosts(), [123, "007", "web"], output="data")
    data[7] = {"mirrors_selected": {"pypi": {"name": "tuna", "status": "none"}}, "reports": {}}  # a number as a key
    rows = [line.split()[:2] for line in filters["mirror_report_text"](data).splitlines()[2:]]
    assert rows == [["007", "pypi"], ["123", "pypi"], ["7", "pypi"], ["web", "pypi"]]
    assert filters["run_warnings"](data, [123]) == [
        "007: pypi: no healthy mirror, nothing kept (7)",
        "7: pypi: no healthy mirror, nothing kept (tuna)",
        "123: failed or unreachable: see the run above",
    ]
