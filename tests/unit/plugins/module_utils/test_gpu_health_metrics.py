# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpulab_gpu_health.prom from the recorded H100 reports and kernel logs: the verdict, each check's status,
the Xid counter (every event of the boot, never down within a boot), and promtool's view of every text."""

from __future__ import annotations

import os
import re

import pytest
import yaml

import promtool
from ansible_collections.gpulab.provision.plugins.module_utils import gpu_health_metrics as gm
from ansible_collections.gpulab.provision.plugins.module_utils import metrics
from ansible_collections.gpulab.provision.plugins.module_utils.gpu_health import (
    EXIT_CODES,
    SEVERITIES,
    VERDICTS,
    assess,
    build_config,
)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "gpu-health")
NOW = 1796000000.0
UUID = "GPU-310b45f2-6f17-7b08-158e-2ec04b61f379"


def read(name):
    with open(os.path.join(FIXTURES, name), "r", encoding="utf-8") as handle:
        return handle.read()


def shipped_policy():
    with open(os.path.join(ROOT, "roles", "gpu_health", "vars", "main.yml"), "r", encoding="utf-8") as handle:
        return yaml.safe_load(handle)["_gpu_health_xid_policy"]


CONFIG = build_config({"xid_policy": shipped_policy(), "expected_count": 1, "driver_pin": "580"})


def observed(xml_name, log_name, boot_id="boot-1", log_text=None, smi_state="ok"):
    """What gpu_health_host.observe returns on the recorded host, with a recorded kernel log."""
    text = read(log_name) if log_name else log_text
    return {
        "smi": {"state": smi_state, "message": None if smi_state == "ok" else "nvidia-smi not found",
                "path": "/usr/bin/nvidia-smi", "xml": read(xml_name) if smi_state == "ok" else None},
        "nvlink": {"state": "ok", "text": ""},  # no NVLink on the recorded host: exit 0, nothing printed
        "kernel_log": {"source": "dmesg", "text": text, "whole_file": False, "tried": []},
        "dcgm": None, "uptime_s": 7200.0, "now": NOW, "boot_id": boot_id,
    }


def run(directory, xml_name, log_name, **kwargs):
    """Assess, write the concern's file, return (health, rendered text)."""
    obs = observed(xml_name, log_name, **kwargs)
    health = assess(obs, CONFIG)
    result = gm.write(str(directory), health, obs)
    assert result["path"] == str(directory / "gpulab_gpu_health.prom")
    with open(result["path"], "r", encoding="utf-8") as handle:
        return health, handle.read()


def samples(text, name):
    """``{frozenset(labels): value}`` of one metric in a rendered text."""
    found = {}
    for line in text.splitlines():
        match = re.match(r"^%s(?:\{(.*)\})? (\S+)$" % re.escape(name), line)
        if match:
            labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(1) or ""))
            found[labels] = float(match.group(2))
    return found


def xids(text):
    return {(dict(labels)["gpu"], dict(labels)["xid"]): value
            for labels, value in samples(text, "gpulab_gpu_xid_events_total").items()}


def status(text):
    return {(dict(labels)["gpu"], dict(labels)["uuid"], dict(labels)["check"]): value
            for labels, value in samples(text, "gpulab_gpu_check_status").items()}


def test_the_values_follow_gpu_health_vocabulary():
    assert sorted(gm.CHECK_STATUS) == sorted(SEVERITIES)
    assert [gm.CHECK_STATUS[s] for s in ("pass", "warn", "critical", "unknown")] == [0, 1, 2, 3]
    assert sorted(gm.VERDICT_VALUES) == sorted(VERDICTS) and gm.VERDICT_VALUES == EXIT_CODES


def test_a_healthy_h100_node(tmp_path):
    health, text = run(tmp_path, "h100-healthy.xml", "dmesg-xid13.txt")
    promtool.check_metrics(text)
    assert health["verdict"] == "healthy"
    assert samples(text, "gpulab_gpu_health_verdict") == {frozenset(): 0}
    assert samples(text, "gpulab_gpu_health_last_run_timestamp_seconds") == {frozenset(): NOW}
    checks = status(text)
    assert len(checks) == len(health["checks"]) and set(checks.values()) == {0}
    assert checks[("0", UUID, "remapped_rows_pending")] == 0
    assert checks[("", "", "nvidia_smi")] == 0 and checks[("", "", "driver_version")] == 0
    # Application Xids (ignored by the policy: the node stays healthy) are still counted.
    assert xids(text) == {("0", "13"): 1, ("0", "31"): 1}
    assert "# TYPE gpulab_gpu_xid_events_total counter" in text
    assert "# TYPE gpulab_gpu_check_status gauge" in text


def test_a_degraded_h100_node(tmp_path):
    health, text = run(tmp_path, "h100-remap-pending.xml", "dmesg-xid48-remap.txt")
    promtool.check_metrics(text)
    assert health["verdict"] == "degraded"
    assert samples(text, "gpulab_gpu_health_verdict") == {frozenset(): 1}
    checks = status(text)
    assert checks[("0", UUID, "remapped_rows_pending")] == 2
    assert checks[("0", UUID, "xid")] == 2  # Xid 48: critical in the shipped policy
    assert {key: value for key, value in checks.items() if value} == {
        ("0", UUID, "remapped_rows_pending"): 2, ("0", UUID, "xid"): 2}
    assert xids(text) == {("0", "48"): 1, ("0", "63"): 1, ("0", "94"): 1}


@pytest.mark.parametrize("xml_name, check_id, value, verdict", [
    ("h100-clocks-hw-slowdown.xml", "clock_events", 1, 0),
    ("h100-ecc-unknown-error.xml", "ecc_uncorrectable", 3, 2),
    ("h100-pcie-x8.xml", "pcie_link_width", 2, 1),
])
def test_warning_critical_and_unknown_checks(tmp_path, xml_name, check_id, value, verdict):
    _health, text = run(tmp_path, xml_name, "dmesg-xid13.txt")
    promtool.check_metrics(text)
    assert status(text)[("0", UUID, check_id)] == value
    assert samples(text, "gpulab_gpu_health_verdict") == {frozenset(): verdict}


def test_repeated_xid_lines_are_each_counted(tmp_path):
    _health, text = run(tmp_path, "h100-remap-pending.xml", "dmesg-xid-repeated.txt")
    promtool.check_metrics(text)
    assert xids(text) == {("0", "48"): 1, ("0", "63"): 3, ("0", "94"): 2, ("0", "13"): 1}


def test_the_counter_never_goes_down_within_a_boot_and_restarts_after_a_reboot(tmp_path):
    full = read("dmesg-xid-repeated.txt")
    lines = full.splitlines(True)
    run(tmp_path, "h100-healthy.xml", None, log_text=full)
    # dmesg's ring buffer wrapped: only the last two lines are left. The counts stay.
    _health, text = run(tmp_path, "h100-healthy.xml", None, log_text="".join(lines[-2:]))
    promtool.check_metrics(text)
    assert xids(text) == {("0", "48"): 1, ("0", "63"): 3, ("0", "94"): 2, ("0", "13"): 1}
    # More events in the same boot: the counts grow.
    more = full + lines[2].replace("3120.556402", "4100.000001") + lines[2].replace("3120.556402", "4101.000001")
    _health, text = run(tmp_path, "h100-healthy.xml", None, log_text=more)
    assert xids(text)[("0", "63")] == 5
    # The kernel log cannot be read: this boot's counts are kept, the xid check is unknown.
    _health, text = run(tmp_path, "h100-healthy.xml", None, log_text=None)
    assert xids(text)[("0", "63")] == 5 and status(text)[("", "", "xid")] == 3
    assert samples(text, "gpulab_gpu_health_verdict") == {frozenset(): 2}
    # A reboot (a new boot id): the log's own counts, lower than before (a counter reset).
    _health, text = run(tmp_path, "h100-healthy.xml", "dmesg-xid13.txt", boot_id="boot-2")
    promtool.check_metrics(text)
    assert xids(text) == {("0", "13"): 1, ("0", "31"): 1}


def test_an_unknown_boot_id_keeps_no_counts_across_runs(tmp_path):
    run(tmp_path, "h100-healthy.xml", "dmesg-xid-repeated.txt", boot_id=None)
    _health, text = run(tmp_path, "h100-healthy.xml", "dmesg-xid13.txt", boot_id=None)
    assert xids(text) == {("0", "13"): 1, ("0", "31"): 1}


def test_an_xid_of_an_unlisted_device_is_labelled_by_its_pci_address(tmp_path):
    health, text = run(tmp_path, "h100-healthy.xml", "journal-xid-unlisted.txt")
    promtool.check_metrics(text)
    assert health["verdict"] == "degraded"
    assert xids(text) == {("0000:1b:00", "79"): 1}
    assert status(text)[("", "", "xid")] == 2


def test_a_gpu_keeps_its_index_label_for_the_boot_when_nvidia_smi_loses_it(tmp_path):
    run(tmp_path, "h100-healthy.xml", "dmesg-xid48-remap.txt")
    _health, text = run(tmp_path, "h100-healthy.xml", "dmesg-xid48-remap.txt", smi_state="absent")
    promtool.check_metrics(text)
    assert xids(text) == {("0", "48"): 1, ("0", "63"): 1, ("0", "94"): 1}
    assert status(text)[("", "", "nvidia_smi")] == 3
    assert not [key for key in status(text) if key[0] == "0"]  # no GPU listed: no per-GPU check series


def test_an_unchanged_run_writes_the_same_bytes_and_check_mode_writes_nothing(tmp_path):
    obs = observed("h100-healthy.xml", "dmesg-xid13.txt")
    health = assess(obs, CONFIG)
    assert gm.write(str(tmp_path), health, obs, check=True) == {
        "path": str(tmp_path / "gpulab_gpu_health.prom"), "changed": True}
    assert os.listdir(str(tmp_path)) in ([], [".gpulab-gpu_health.lock"])
    assert gm.write(str(tmp_path), health, obs)["changed"] is True
    assert gm.write(str(tmp_path), health, obs)["changed"] is False
    assert sorted(os.listdir(str(tmp_path))) == [".gpulab-gpu_health.json", ".gpulab-gpu_health.lock",
                                                 "gpulab_gpu_health.prom"]


def test_a_metrics_problem_is_one_warning_naming_the_variable(tmp_path):
    obs = observed("h100-healthy.xml", "dmesg-xid13.txt")
    health = assess(obs, CONFIG)
    assert gm.write_or_warn("", health, obs) == (None, None)
    result, warning = gm.write_or_warn(str(tmp_path / "missing"), health, obs)
    assert result is None and "gpulab_metrics_dir" in warning and "\n" not in warning
    assert "missing" in warning
    (tmp_path / ".gpulab-gpu_health.json").mkdir()  # the state cannot be replaced (even by root)
    result, warning = gm.write_or_warn(str(tmp_path), health, obs)
    assert result is None and warning.startswith("GPU health metrics not written: gpulab_metrics_dir: cannot write")
    assert not (tmp_path / "gpulab_gpu_health.prom").exists()
    assert health["verdict"] == "healthy"


def test_every_family_renders_and_passes_promtool_for_every_fixture(tmp_path):
    """Every recorded report: the text is sound (promtool) and has a status per check the assessment ran."""
    for name in sorted(os.listdir(FIXTURES)):
        if not name.endswith(".xml"):
            continue
        directory = tmp_path / name
        directory.mkdir()
        health, text = run(directory, name, "dmesg-xid-repeated.txt")
        promtool.check_metrics(text)
        assert len(status(text)) == len({(c["gpu"], c["id"]) for c in health["checks"]}), name
        assert samples(text, "gpulab_gpu_health_verdict") == {frozenset(): gm.VERDICT_VALUES[health["verdict"]]}


def test_the_state_is_keyed_by_boot_and_series():
    state = gm.merge_state({}, "b", {("0000:00:06", "63"): 2}, {"0000:00:06": "0"})
    assert state == {"boot_id": "b", "gpu_index": {"0000:00:06": "0"},
                     "xid": {metrics.series_key({"pci": "0000:00:06", "xid": "63"}): 2}}
    again = gm.merge_state(state, "b", {("0000:00:06", "63"): 1, ("0000:00:06", "48"): 1}, {})
    assert sorted(again["xid"].values()) == [1, 2] and again["gpu_index"] == {"0000:00:06": "0"}
    assert gm.merge_state(state, "other", None, {})["xid"] == {}
