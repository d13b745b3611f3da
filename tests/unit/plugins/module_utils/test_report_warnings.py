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
