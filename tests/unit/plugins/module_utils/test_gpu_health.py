# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gpu_health: the assessment over the recorded H100 report and the fault fixtures derived from it,
the verdict contract and the configuration's validation."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from ansible_collections.gpulab.provision.plugins.module_utils.gpu_health import (
    CHECK_IDS,
    GpuHealthConfigError,
    THRESHOLDS,
    assess,
    build_config,
    config_text,
    table,
)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "gpu-health")
H100_BUS = "00000000:00:06.0"
H100_UUID = "GPU-310b45f2-6f17-7b08-158e-2ec04b61f379"


def fixture(name):
    with open(os.path.join(FIXTURES, name), "r", encoding="utf-8") as handle:
        return handle.read()


def shipped_policy():
    with open(os.path.join(ROOT, "roles", "gpu_health", "vars", "main.yml"), "r", encoding="utf-8") as handle:
        return yaml.safe_load(handle)["_gpu_health_xid_policy"]


def config(**settings):
    settings.setdefault("xid_policy", shipped_policy())
    return build_config(settings)


def observed(xml="h100-healthy.xml", log="dmesg-xid13.txt", nvlink="", uptime_s=7200.0, dcgm=None, smi=None):
    return {
        "smi": smi or {"state": "ok", "message": None, "path": "/usr/bin/nvidia-smi", "xml": fixture(xml)},
        "nvlink": {"state": "ok", "text": nvlink},
        "kernel_log": {"source": "dmesg", "text": fixture(log) if log else None, "whole_file": False,
                       "tried": ["journal: journalctl not installed"]},
        "dcgm": dcgm,
        "uptime_s": uptime_s,
        "now": 1764842400.0,
    }


def not_passed(health):
    return [(c["id"], c["gpu"], c["severity"], c["action"]) for c in health["checks"] if c["severity"] != "pass"]


# --------------------------------------------------------------------------- the healthy recording


def test_the_recorded_h100_is_healthy_with_no_false_flag():
    health = assess(observed(), config(expected_count=1, driver_pin="580"))
    assert not_passed(health) == []
    assert health["verdict"] == "healthy" and health["warnings"] == 0
    assert health["gpus"] == [{"index": 0, "uuid": H100_UUID, "bus_id": H100_BUS, "name": "NVIDIA H100 80GB HBM3"}]
    ids = {c["id"] for c in health["checks"]}
    assert ids == set(CHECK_IDS) - {"dcgm_diag"}  # dcgmi is not installed there
    assert health["summary"].startswith("healthy: 1 GPUs")


def test_every_gpu_check_names_its_gpu_by_index_and_uuid():
    health = assess(observed(), config())
    for check in health["checks"]:
        if check["gpu"] is not None:
            assert (check["gpu"], check["uuid"]) == (0, H100_UUID)
        assert set(check) == {"id", "gpu", "uuid", "observed", "limit", "severity", "action", "detail"}


@pytest.mark.parametrize("check_id, observed_value", [
    ("pcie_link_width", "x16"),                # printed as 16x
    ("pcie_replay", "1 since boot (0.01/min)"),  # replay_counter 1 is healthy
    ("pcie_link_gen", "gen5"),
    ("fabric", "N/A"),                         # no NVSwitch
    ("recovery_action", "None"),               # no <gpu_reset_status> in driver 580, only this
    ("reset_required", "n/a"),
    ("temperature", "52 C below T.Limit"),     # T.Limit temperatures, no absolute slowdown threshold
    ("nvlink", "no NVLink"),                   # nvlink -s prints nothing
])
def test_the_healthy_values_of_the_real_report_are_read_as_such(check_id, observed_value):
    health = assess(observed(), config())
    check = next(c for c in health["checks"] if c["id"] == check_id and c["gpu"] == 0)
    assert (check["severity"], check["observed"]) == ("pass", observed_value)


# --------------------------------------------------------------------------- one fault per signal

FAULTS = [
    ("h100-persistence-off.xml", "persistence_mode", "warn", "none"),
    ("h100-ecc-off.xml", "ecc_mode", "critical", "drain"),
    ("h100-ecc-pending.xml", "ecc_mode", "warn", "reboot"),
    ("h100-ecc-uncorrectable.xml", "ecc_uncorrectable", "critical", "reset"),
    ("h100-ecc-corrected.xml", "ecc_corrected", "critical", "drain"),
    ("h100-sram-threshold.xml", "sram_threshold", "critical", "service"),
    ("h100-remap-pending.xml", "remapped_rows_pending", "critical", "reset"),
    ("h100-remap-failure.xml", "remapped_rows_failure", "critical", "service"),
    ("h100-remap-uncorrectable.xml", "remapped_rows_uncorrectable", "critical", "service"),
    ("h100-pcie-x8.xml", "pcie_link_width", "critical", "drain"),
    ("h100-pcie-gen3-busy.xml", "pcie_link_gen", "warn", "none"),
    ("h100-pcie-replay.xml", "pcie_replay", "warn", "none"),
    ("h100-clocks-hw-slowdown.xml", "clock_events", "warn", "none"),
    ("h100-hot.xml", "temperature", "critical", "drain"),
    ("h100-warm.xml", "temperature", "warn", "none"),
    ("h100-recovery-reset.xml", "recovery_action", "critical", "reset"),
    ("h100-recovery-reboot.xml", "recovery_action", "critical", "reboot"),
    ("h100-reset-required.xml", "reset_required", "critical", "reset"),
    ("h100-fabric-in-progress.xml", "fabric", "critical", "drain"),
    ("h100-ecc-unknown-error.xml", "ecc_uncorrectable", "unknown", "none"),
    ("v100-retired-pending.xml", "retired_pages_pending", "critical", "reboot"),
    ("v100-retired-many.xml", "retired_pages_count", "critical", "service"),
]


@pytest.mark.parametrize("name, check_id, severity, action", FAULTS)
def test_each_fault_fixture_flags_its_check_and_nothing_else(name, check_id, severity, action):
    health = assess(observed(xml=name), config())
    assert not_passed(health) == [(check_id, 0, severity, action)]
    verdict = {"critical": "degraded", "unknown": "unknown", "warn": "healthy"}[severity]
    assert health["verdict"] == verdict
    assert health["warnings"] == (1 if severity == "warn" else 0)


@pytest.mark.parametrize("name", ["h100-pcie-gen3-idle.xml", "h100-reset-deprecated.xml", "h100-fabric-completed.xml",
                                  "v100-retired-healthy.xml", "h100x8-healthy.xml"])
def test_healthy_variants_are_not_flagged(name):
    health = assess(observed(xml=name), config())
    assert not_passed(health) == [] and health["verdict"] == "healthy"


def test_a_pre_ampere_gpu_reads_retired_pages_and_its_absolute_slowdown_temperature():
    health = assess(observed(xml="v100-retired-healthy.xml"), config())
    checks = {c["id"]: c for c in health["checks"] if c["gpu"] == 0}
    assert checks["retired_pages_count"]["observed"] == "total 0, double-bit 0"
    assert checks["remapped_rows_pending"]["detail"] == "no row remapping on this GPU"
    assert (checks["temperature"]["observed"], checks["temperature"]["limit"]) == ("41 C", "slowdown at 87 C")


# --------------------------------------------------------------------------- node-level checks


def test_eight_gpus_are_indexed_in_report_order_and_counted():
    health = assess(observed(xml="h100x8-healthy.xml"), config(expected_count=8))
    assert [g["index"] for g in health["gpus"]] == list(range(8))
    assert [g["bus_id"] for g in health["gpus"]][:2] == ["00000000:18:00.0", "00000000:2A:00.0"]
    assert len({g["uuid"] for g in health["gpus"]}) == 8
    assert health["verdict"] == "healthy"


def test_a_missing_gpu_fails_the_count():
    health = assess(observed(xml="h100x8-one-missing.xml"), config(expected_count=8))
    assert not_passed(health) == [("gpu_count", None, "critical", "drain")]
    count = next(c for c in health["checks"] if c["id"] == "gpu_count")
    assert (count["observed"], count["limit"]) == (7, 8)


def test_no_expected_count_no_count_check():
    assert "gpu_count" not in {c["id"] for c in assess(observed(), config())["checks"]}


@pytest.mark.parametrize("pin, severity", [("580", "pass"), ("580.159.04", "pass"), ("580.159", "pass"),
                                           ("535", "critical"), ("580.15", "critical")])
def test_the_driver_pin_matches_whole_version_parts(pin, severity):
    check = next(c for c in assess(observed(), config(driver_pin=pin))["checks"] if c["id"] == "driver_version")
    assert check["severity"] == severity


def test_an_inactive_nvlink_is_critical_on_its_gpu():
    health = assess(observed(xml="h100x8-healthy.xml", nvlink=fixture("nvlink-h100x8-inactive.txt")), config())
    assert not_passed(health) == [("nvlink", 3, "critical", "drain")]
    check = next(c for c in health["checks"] if c["id"] == "nvlink" and c["gpu"] == 3)
    assert check["observed"] == "1 of 18 links inactive" and check["detail"].endswith("7")
    healthy = assess(observed(xml="h100x8-healthy.xml", nvlink=fixture("nvlink-h100x8-healthy.txt")), config())
    assert not_passed(healthy) == []


def test_nvlink_status_that_failed_is_unknown_not_pass():
    obs = observed()
    obs["nvlink"] = {"state": "timed_out", "text": "'nvidia-smi nvlink -s' did not finish within 10 s and was killed"}
    health = assess(obs, config())
    assert not_passed(health) == [("nvlink", 0, "unknown", "none")] and health["verdict"] == "unknown"


@pytest.mark.parametrize("smi, severity, action", [
    ({"state": "timed_out", "message": "'nvidia-smi -q -x' did not finish within 10 s and was killed"}, "critical",
     "drain"),
    ({"state": "nvml_error", "message": "Unable to determine the device handle for GPU0000:1B:00.0: Unknown Error"},
     "critical", "reboot"),
    ({"state": "version_mismatch", "message": "Failed to initialize NVML: Driver/library version mismatch"},
     "critical", "reboot"),
    ({"state": "absent", "message": "nvidia-smi not found"}, "unknown", "none"),
    ({"state": "ok", "xml": "<html>captive</html>"}, "unknown", "none"),
])
def test_when_nvidia_smi_gives_no_report(smi, severity, action):
    health = assess(observed(smi=dict({"path": None, "xml": None}, **smi)), config())
    check = next(c for c in health["checks"] if c["id"] == "nvidia_smi")
    assert (check["severity"], check["action"]) == (severity, action)
    assert health["verdict"] == ("degraded" if severity == "critical" else "unknown")
    assert health["gpus"] == []


def test_no_devices_with_an_expected_count_is_degraded():
    smi = {"state": "no_devices", "message": "No devices were found", "path": "/usr/bin/nvidia-smi", "xml": None}
    health = assess(observed(smi=smi), config(expected_count=8))
    assert not_passed(health) == [("gpu_count", None, "critical", "drain")]


def test_a_hung_nvidia_smi_outranks_what_it_could_not_say():
    smi = {"state": "timed_out", "message": "timed out", "path": "/x", "xml": None}
    health = assess(observed(smi=smi, log=None), config())
    assert health["verdict"] == "degraded"  # critical beats the unknown Xid check


# --------------------------------------------------------------------------- Xid through the policy


def test_an_xid_79_on_the_gpu_drains_for_a_reboot():
    obs = observed(log=None)
    obs["kernel_log"] = {"source": "/var/log/kern.log", "text": fixture("kern-xid79.log"), "whole_file": True}
    health = assess(obs, config())
    assert not_passed(health) == [("xid", 0, "critical", "reboot")]
    check = next(c for c in health["checks"] if c["id"] == "xid" and c["gpu"] == 0)
    assert check["observed"] == "79 x1"  # the Xid 48 of the previous boot does not count
    assert "fallen off the bus" in check["detail"]


def test_application_xids_are_ignored():
    health = assess(observed(log="dmesg-xid13.txt"), config())
    assert health["verdict"] == "healthy"
    check = next(c for c in health["checks"] if c["id"] == "xid" and c["gpu"] == 0)
    assert check["observed"] == "13 x1, 31 x1" and check["severity"] == "pass"


def test_an_xid_for_a_gpu_nvidia_smi_no_longer_lists_is_a_node_finding():
    health = assess(observed(log="journal-xid-unlisted.txt"), config())
    assert not_passed(health) == [("xid", None, "critical", "reboot")]
    check = next(c for c in health["checks"] if c["id"] == "xid" and c["gpu"] is None)
    assert "0000:1b:00" in check["detail"]


def test_the_worst_xid_sets_severity_and_action():
    health = assess(observed(log="dmesg-xid48-remap.txt"), config())
    check = next(c for c in health["checks"] if c["id"] == "xid" and c["gpu"] == 0)
    assert (check["severity"], check["action"], check["observed"]) == ("critical", "reset", "48 x1, 63 x1, 94 x1")


def test_an_inventory_override_changes_one_code():
    policy = {79: {"severity": "warn", "action": "none"}, "13": {"severity": "critical", "action": "drain"}}
    health = assess(observed(log="dmesg-xid13.txt"), config(xid_policy_overrides=policy))
    assert not_passed(health) == [("xid", 0, "critical", "drain")]


def test_no_readable_kernel_log_makes_xid_unknown():
    health = assess(observed(log=None), config())
    assert not_passed(health) == [("xid", None, "unknown", "none")]
    assert health["verdict"] == "unknown"
    assert "journalctl not installed" in health["checks"][-1]["detail"]


def test_disabled_checks_are_not_reported():
    health = assess(observed(log=None, xml="h100-persistence-off.xml"),
                    config(disabled_checks=["xid", "persistence_mode"]))
    assert not_passed(health) == [] and health["verdict"] == "healthy"


# --------------------------------------------------------------------------- DCGM


@pytest.mark.parametrize("dcgm, severity", [
    ({"state": "ok", "rc": 0, "text": json.dumps({"DCGM GPU Diagnostic": {"test_categories": [
        {"category": "Deployment", "tests": [{"name": "Denylist", "results": [{"status": "Pass"}]}]}]}})}, "pass"),
    ({"state": "ok", "rc": 226, "text": json.dumps({"DCGM GPU Diagnostic": {"test_categories": [
        {"category": "Hardware", "tests": [{"name": "GPU Memory", "results": [{"gpu_id": "0", "status": "Fail"}]}]}]}})},
     "critical"),
    ({"state": "timed_out", "rc": None, "text": "'dcgmi diag -r 1 -j' did not finish within 30 s"}, "unknown"),
    ({"state": "ok", "rc": 255, "text": "Error: unable to establish a connection to the specified host: localhost"},
     "unknown"),
])
def test_dcgm_diag_where_dcgmi_is_installed(dcgm, severity):
    health = assess(observed(dcgm=dcgm), config())
    check = next(c for c in health["checks"] if c["id"] == "dcgm_diag")
    assert check["severity"] == severity


# --------------------------------------------------------------------------- the configuration


def test_the_defaults_build_and_rebuild_to_the_same_config():
    built = config()
    assert build_config(json.loads(config_text(built))) == built
    assert built["thresholds"] == {name: default for name, (_kind, default) in THRESHOLDS.items()}
    assert built["xid_policy"]["79"]["action"] == "reboot" and built["xid_policy"]["13"]["severity"] == "ignore"


@pytest.mark.parametrize("settings, message", [
    ({"thresholds": {"ecc_sram_corrected_max": "lots"}},
     "gpulab_gpu_health_thresholds.ecc_sram_corrected_max must be a whole number >= 0, got 'lots'"),
    ({"thresholds": {"ecc_sram_corrected_max": "10000"}}, "gpulab_gpu_health_thresholds.ecc_sram_corrected_max"),
    ({"thresholds": {"ecc_mode_required": "no"}}, "gpulab_gpu_health_thresholds.ecc_mode_required must be true or false"),
    ({"thresholds": {"sram_max": 1}}, "gpulab_gpu_health_thresholds.sram_max is not a known threshold"),
    ({"thresholds": {"dcgm_diag_level": 3}}, "dcgmi diag levels 2 and above run for minutes"),
    ({"disabled_checks": ["xid", "ecc"]}, "gpulab_gpu_health_disabled_checks: unknown check ids ['ecc']"),
    ({"xid_policy_overrides": {79: {"severity": "critical", "action": "explode"}}},
     "gpulab_gpu_health_xid_policy.79.action 'explode' is not one of none, reset, reboot, drain, service"),
    ({"xid_policy_overrides": {79: {"severity": "fatal"}}}, "gpulab_gpu_health_xid_policy.79.severity 'fatal'"),
    ({"xid_policy_overrides": {"xid79": {"severity": "warn"}}}, "key 'xid79' is not an Xid code"),
    ({"expected_count": "eight"}, "gpulab_gpu_expected_count must be a whole number"),
    ({"driver_pin": "latest"}, "gpulab_gpu_driver_pin must be a driver version"),
    ({"nvidia_smi": "bin/nvidia-smi"}, "gpu_health_nvidia_smi must be a command name"),
    ({"kernel_log_sources": ["syslog"]}, "gpu_health_kernel_log_sources must be a list"),
    ({"command_timeout_s": 0}, "gpu_health_command_timeout_s must be a number of seconds > 0"),
])
def test_bad_settings_are_refused_naming_the_variable(settings, message):
    with pytest.raises(GpuHealthConfigError) as caught:
        config(**settings)
    assert message in str(caught.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(GpuHealthConfigError) as caught:
        config(thresholds={"retired_pages_max": -1}, disabled_checks=["nope"])
    assert len(caught.value.problems) == 2


def test_numbers_from_extra_vars_are_accepted_where_unambiguous():
    built = config(expected_count="8", driver_pin=580)
    assert (built["expected_count"], built["driver_pin"]) == (8, "580")


def test_thresholds_change_the_limits():
    health = assess(observed(xml="h100-ecc-corrected.xml"), config(thresholds={"ecc_sram_corrected_max": 20000}))
    assert not_passed(health) == []


# --------------------------------------------------------------------------- the human table


def test_the_table_lists_what_did_not_pass_and_counts_the_rest():
    health = assess(observed(xml="h100-remap-pending.xml"), config())
    text = table(health)
    assert text.splitlines()[0] == "gpulab-gpu-health: " + health["summary"]
    assert "remapped_rows_pending" in text and "critical" in text and "reset" in text
    assert "ecc_mode " not in text
    assert "checks passed; --all lists them" in text
    assert "ecc_mode " in table(health, show_all=True)
    assert health["summary"].startswith("degraded: GPU 0 remapped_rows_pending: Yes -> reset")
