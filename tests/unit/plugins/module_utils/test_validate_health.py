# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""validate.yml's gpu_health entry: real assessments of the recorded H100 fixtures, judged by the policy."""

from __future__ import annotations

import os

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.gpulab.provision.plugins.filter.validate_health import FilterModule
from ansible_collections.gpulab.provision.plugins.module_utils.gpu_health import assess, build_config
from ansible_collections.gpulab.provision.plugins.module_utils.validate_health import validate_entry

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "gpu-health")


def health_of(fixture, **settings):
    """The module's assessment of a recorded report (no kernel log: the xid check disabled)."""
    config = build_config(dict({"disabled_checks": ["xid"]}, **settings))
    with open(os.path.join(FIXTURES, fixture), encoding="utf-8") as handle:
        xml = handle.read()
    observed = {"smi": {"state": "ok", "message": None, "path": "/usr/bin/nvidia-smi", "xml": xml},
                "nvlink": {"state": "ok", "text": ""}, "uptime_s": 3600.0}
    return assess(observed, config)


def test_degraded_fails_and_lists_only_the_checks_that_did_not_pass():
    health = health_of("h100-remap-pending.xml")
    assert health["verdict"] == "degraded", health["summary"]
    entry = validate_entry(health)
    assert entry["result"] == "FAIL" and entry["fails"] is True and entry["verdict"] == "degraded"
    assert entry["detail"] == health["summary"] and "remapped_rows_pending" in entry["detail"]
    header, *rows = entry["problems"]
    assert header.split()[:6] == ["GPU", "CHECK", "SEVERITY", "ACTION", "OBSERVED", "LIMIT"]
    assert any(row.split()[:4] == ["0", "remapped_rows_pending", "critical", "reset"] for row in rows), rows
    assert len(rows) == sum(1 for check in health["checks"] if check["severity"] != "pass")


def test_healthy_passes_with_an_empty_table():
    entry = validate_entry(health_of("h100-healthy.xml"))
    assert (entry["result"], entry["fails"], entry["problems"]) == ("PASS", False, [])
    assert entry["detail"].startswith("healthy:")


def test_warnings_fail_the_host_only_with_fail_on_warning():
    health = health_of("h100-clocks-hw-slowdown.xml")
    assert health["verdict"] == "healthy" and health["warnings"] >= 1, health["summary"]
    relaxed, strict = validate_entry(health), validate_entry(health, fail_on_warning=True)
    assert (relaxed["result"], relaxed["fails"]) == ("WARN", False)
    assert (strict["result"], strict["fails"]) == ("WARN", True)
    assert any(" warn " in row for row in relaxed["problems"][1:]), relaxed["problems"]


def test_unknown_is_never_a_pass():
    health = health_of("h100-healthy.xml")
    health = dict(health, verdict="unknown", summary="unknown: node xid: no kernel log")
    entry = validate_entry(health)
    assert (entry["result"], entry["fails"]) == ("FAIL", True)


def test_a_skip_reason_wins_and_never_fails():
    entry = validate_entry(None, "no NVIDIA driver (nvidia-smi not found)", fail_on_warning=True)
    assert entry == {"check": "gpu_health", "result": "SKIPPED", "verdict": None, "warnings": 0,
                     "detail": "no NVIDIA driver (nvidia-smi not found)", "fails": False, "problems": []}


def test_the_filter_names_itself_and_reads_a_string_bool():
    gpu_health = FilterModule().filters()["validate_gpu_health"]
    assert gpu_health(health_of("h100-clocks-hw-slowdown.xml"), "", "true")["fails"] is True
    with pytest.raises(AnsibleFilterError, match="gpulab.provision.validate_gpu_health: .*verdict"):
        gpu_health({"summary": "no verdict"})
    with pytest.raises(AnsibleFilterError, match="gpulab.provision.validate_gpu_health"):
        gpu_health(None)


def test_the_filter_has_its_doc_file():
    import yaml  # pylint: disable=import-outside-toplevel
    assert set(FilterModule().filters()) == {"validate_gpu_health"}
    root = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..")
    with open(os.path.join(root, "plugins", "filter", "validate_gpu_health.yml"), encoding="utf-8") as handle:
        doc = yaml.safe_load(handle)
    assert doc["DOCUMENTATION"]["name"] == "validate_gpu_health"
    assert doc["EXAMPLES"] and doc["RETURN"]["_value"]
