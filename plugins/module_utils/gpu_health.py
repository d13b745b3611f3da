# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GPU node health: the configuration, the assessment and the verdict. Pure functions, no I/O.

Standard library only: this file runs on the managed host (module ``gpulab.provision.gpu_health``
and the ``gpulab-gpu-health`` command, built from these files like the mirror watcher).

:func:`assess` turns what the host said (``gpu_health_host.observe``: one ``nvidia-smi -q -x``, one
``nvidia-smi nvlink -s``, the kernel log, ``dcgmi diag`` where installed, the uptime) and a
configuration (:func:`build_config`) into::

    {verdict: healthy|degraded|unknown, summary, warnings, gpus: [{index, uuid, bus_id, name}],
     checks: [{id, gpu, uuid, observed, limit, severity: pass|warn|critical|unknown,
               action: none|reset|reboot|drain|service, detail}]}

The verdict: ``degraded`` when any check is critical, else ``unknown`` when any check could not run
(a check that could not run is never a pass), else ``healthy``; warnings keep a node healthy and are
counted in ``warnings``.
"""

from __future__ import annotations

import json
import re

from ansible_collections.gpulab.provision.plugins.module_utils import gpu_health_checks as checks
from ansible_collections.gpulab.provision.plugins.module_utils.gpu_health_xid import (
    ACTION_RANK,
    POLICY_SEVERITIES,
    judge,
    parse_xids,
)
from ansible_collections.gpulab.provision.plugins.module_utils.gpu_health_xml import pci_key, read_document
from ansible_collections.gpulab.provision.plugins.module_utils.nvidia_smi import NvidiaSmiParseError

SEVERITIES = ("pass", "warn", "critical", "unknown")
ACTIONS = ("none", "reset", "reboot", "drain", "service")
VERDICTS = ("healthy", "degraded", "unknown")
EXIT_CODES = {"healthy": 0, "degraded": 1, "unknown": 2}
NODE_CHECKS = ("nvidia_smi", "gpu_count", "driver_version", "xid", "dcgm_diag")
GPU_CHECK_IDS = ("persistence_mode", "ecc_mode", "ecc_uncorrectable", "ecc_corrected", "sram_threshold",
                 "remapped_rows_pending", "remapped_rows_failure", "remapped_rows_uncorrectable",
                 "retired_pages_pending", "retired_pages_count", "pcie_link_width", "pcie_link_gen", "pcie_replay",
                 "clock_events", "temperature", "reset_required", "recovery_action", "fabric", "nvlink")
CHECK_IDS = NODE_CHECKS + GPU_CHECK_IDS
CLOCK_REASONS = ("gpu_idle", "applications_clocks_setting", "sw_power_cap", "hw_slowdown", "hw_thermal_slowdown",
                 "hw_power_brake_slowdown", "sync_boost", "sw_thermal_slowdown", "display_clocks_setting")

# Defaults and their sources are in roles/gpu_health/README.md. (type, default)
THRESHOLDS = {
    "ecc_uncorrectable_max": ("count", 0),
    "ecc_dram_corrected_max": ("count", 20000000),
    "ecc_sram_corrected_max": ("count", 10000),
    "ecc_mode_required": ("bool", True),
    "persistence_mode_required": ("bool", True),
    "remapped_rows_uncorrectable_max": ("count", 512),
    "retired_pages_max": ("count", 63),
    "retired_pages_dbe_max": ("count", 15),
    "pcie_replay_rate_per_min": ("number_or_null", None),
    "temperature_slowdown_margin_c": ("number", 5),
    "clock_event_reasons_warn": ("reasons", ["hw_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown"]),
    "nvlink_inactive_max": ("count", 0),
    "xid_window_s": ("number_or_null", None),
    "dcgm_diag_level": ("dcgm_level", 1),
    "dcgm_diag_timeout_s": ("number", 30),
}
KERNEL_LOG_KINDS = ("journal", "dmesg")

# Where each setting comes from in the inventory, for error messages.
VARIABLES = {
    "nvidia_smi": "gpu_health_nvidia_smi",
    "command_timeout_s": "gpu_health_command_timeout_s",
    "kernel_log_sources": "gpu_health_kernel_log_sources",
    "slurm_scontrol": "gpu_health_slurm_scontrol",
    "expected_count": "gpulab_gpu_expected_count",
    "driver_pin": "gpulab_gpu_driver_pin",
    "thresholds": "gpulab_gpu_health_thresholds",
    "xid_policy": "the shipped Xid policy table (roles/gpu_health/vars/main.yml)",
    "xid_policy_overrides": "gpulab_gpu_health_xid_policy",
    "disabled_checks": "gpulab_gpu_health_disabled_checks",
}


class GpuHealthConfigError(ValueError):
    """Bad settings; ``problems`` lists one sentence per problem, each naming its variable."""

    def __init__(self, problems):
        super().__init__("; ".join(problems))
        self.problems = problems


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return (_is_int(value) or isinstance(value, float)) and not isinstance(value, bool)


def _threshold(name, kind, value, problems):
    where = "%s.%s" % (VARIABLES["thresholds"], name)
    if kind == "count":
        if not _is_int(value) or value < 0:
            problems.append("%s must be a whole number >= 0, got %r" % (where, value))
    elif kind == "bool":
        if not isinstance(value, bool):
            problems.append("%s must be true or false, got %r" % (where, value))
    elif kind in ("number", "number_or_null"):
        if value is None and kind == "number_or_null":
            return value
        if not _is_number(value) or value < 0:
            problems.append("%s must be a number >= 0%s, got %r"
                            % (where, " or null" if kind == "number_or_null" else "", value))
    elif kind == "reasons":
        if not isinstance(value, list) or any(item not in CLOCK_REASONS for item in value):
            known = ", ".join(CLOCK_REASONS)
            problems.append("%s must be a list of clock event reasons (%s), got %r" % (where, known, value))
    elif kind == "dcgm_level":
        if not _is_int(value) or value < 0:
            problems.append("%s must be 0 (off) or 1, got %r" % (where, value))
        elif value >= 2:
            problems.append("%s is %d: dcgmi diag levels 2 and above run for minutes and never run in the health "
                            "check (run them as a separate job); use 0 or 1" % (where, value))
    return value


def _policy(table, variable, problems):
    """A policy table with string keys (``"79"``, ``"default"``), entries checked."""
    normalised = {}
    if not isinstance(table, dict):
        problems.append("%s must be a mapping of Xid code -> {severity, action}, got %r" % (variable, table))
        return normalised
    for key, entry in table.items():
        code = str(key).strip()
        if code != "default" and not code.isdigit():
            problems.append("%s: key %r is not an Xid code (a whole number) or 'default'" % (variable, key))
            continue
        if not isinstance(entry, dict):
            problems.append("%s.%s must be a mapping {severity, action}, got %r" % (variable, code, entry))
            continue
        unknown = sorted(set(entry) - {"severity", "action", "name", "source"})
        if unknown:
            problems.append("%s.%s has unknown keys %s (known: severity, action, name, source)"
                            % (variable, code, ", ".join(unknown)))
        severity = entry.get("severity")
        action = entry.get("action", "none")
        if severity not in POLICY_SEVERITIES:
            problems.append("%s.%s.severity %r is not one of %s"
                            % (variable, code, severity, ", ".join(POLICY_SEVERITIES)))
        if action not in ACTIONS:
            problems.append("%s.%s.action %r is not one of %s" % (variable, code, action, ", ".join(ACTIONS)))
        normalised[str(int(code)) if code != "default" else code] = dict(entry, severity=severity, action=action)
    return normalised


def build_config(settings):
    """The normalised configuration from *settings* (the module's options, or the JSON file).

    Raises :class:`GpuHealthConfigError` listing every problem, each naming its inventory variable.
    The result is what the role writes to ``/etc/gpulab/gpu-health.json``; building it again from
    that file gives the same dict.
    """
    problems = []
    config = {}
    smi = settings.get("nvidia_smi") or "nvidia-smi"
    if not isinstance(smi, str) or ("/" in smi and not smi.startswith("/")):
        problems.append("%s must be a command name found on PATH or an absolute path, got %r"
                        % (VARIABLES["nvidia_smi"], smi))
    config["nvidia_smi"] = smi
    timeout = settings.get("command_timeout_s", 10)
    if not _is_number(timeout) or timeout <= 0:
        problems.append("%s must be a number of seconds > 0, got %r" % (VARIABLES["command_timeout_s"], timeout))
    config["command_timeout_s"] = timeout
    sources = settings.get("kernel_log_sources")
    if sources is None:
        sources = ["journal", "/var/log/kern.log", "dmesg"]
    if not isinstance(sources, list) or any(
            not isinstance(item, str) or (item not in KERNEL_LOG_KINDS and not item.startswith("/")) for item in sources):
        problems.append("%s must be a list of 'journal', 'dmesg' or absolute file paths, got %r"
                        % (VARIABLES["kernel_log_sources"], sources))
    config["kernel_log_sources"] = sources
    config["slurm_scontrol"] = settings.get("slurm_scontrol") or "scontrol"
    expected = settings.get("expected_count")
    if isinstance(expected, str) and expected.strip().isdigit():
        expected = int(expected)  # -e gpulab_gpu_expected_count=8 arrives as text
    if expected is not None and (not _is_int(expected) or expected < 0):
        problems.append("%s must be a whole number >= 0 or null, got %r" % (VARIABLES["expected_count"], expected))
    config["expected_count"] = expected
    pin = settings.get("driver_pin")
    if _is_int(pin):
        pin = str(pin)  # gpulab_gpu_driver_pin: 580 in YAML is a number
    if pin is not None and (not isinstance(pin, str) or not re.match(r"^\d+(\.\d+)*$", pin.strip())):
        problems.append("%s must be a driver version such as '580' or '580.159.04', or null, got %r"
                        % (VARIABLES["driver_pin"], pin))
    config["driver_pin"] = pin.strip() if isinstance(pin, str) else pin
    given = settings.get("thresholds") or {}
    thresholds = {}
    if not isinstance(given, dict):
        problems.append("%s must be a mapping, got %r" % (VARIABLES["thresholds"], given))
        given = {}
    for name in sorted(set(given) - set(THRESHOLDS)):
        problems.append("%s.%s is not a known threshold (known: %s)" % (VARIABLES["thresholds"], name,
                                                                        ", ".join(sorted(THRESHOLDS))))
    for name, (kind, default) in THRESHOLDS.items():
        thresholds[name] = _threshold(name, kind, given.get(name, default), problems)
    config["thresholds"] = thresholds
    policy = _policy(settings.get("xid_policy") or {}, VARIABLES["xid_policy"], problems)
    policy.update(_policy(settings.get("xid_policy_overrides") or {}, VARIABLES["xid_policy_overrides"], problems))
    policy.setdefault("default", {"severity": "warn", "action": "none"})
    config["xid_policy"] = policy
    disabled = settings.get("disabled_checks") or []
    if not isinstance(disabled, list) or any(item not in CHECK_IDS for item in disabled):
        bad = disabled if not isinstance(disabled, list) else [item for item in disabled if item not in CHECK_IDS]
        problems.append("%s: unknown check ids %r (known: %s)"
                        % (VARIABLES["disabled_checks"], bad, ", ".join(CHECK_IDS)))
    config["disabled_checks"] = sorted(disabled) if isinstance(disabled, list) else []
    if problems:
        raise GpuHealthConfigError(problems)
    return config


def config_text(config):
    """The configuration file's text (sorted keys, so an unchanged config writes the same bytes)."""
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def _smi_check(smi):
    """The node-level nvidia_smi check from the observation of the ``-q -x`` call."""
    state, message = smi["state"], smi.get("message") or ""
    if state == "ok":
        return checks.record("nvidia_smi", None, "pass", observed="answered", detail=smi.get("path") or "")
    if state == "timed_out":
        return checks.record("nvidia_smi", None, "critical", "drain", "timed out", "answers in time",
                             message + "; a GPU or the driver may be hung (look for Xid 79 in the kernel log)")
    if state in ("version_mismatch",):
        return checks.record("nvidia_smi", None, "critical", "reboot", state, "answers",
                             "driver/library version mismatch (the user space changed under the loaded module): "
                             "reboot. " + message[:200])
    if state == "nvml_error" and re.search(r"GPU is lost|Unable to determine the device handle|fallen off",
                                           message, re.IGNORECASE):
        return checks.record("nvidia_smi", None, "critical", "reboot", "GPU lost", "answers", message[:300])
    return checks.record("nvidia_smi", None, "unknown", observed=state, limit="answers", detail=message[:300])


def _xid_checks(observed, gpus, config, disabled):
    log = observed.get("kernel_log") or {}
    found = []
    if log.get("text") is None:
        if "xid" not in disabled:
            found.append(checks.record("xid", None, "unknown", observed="no kernel log", limit="policy",
                                       detail="no kernel log could be read: %s" % "; ".join(log.get("tried") or [])))
        return found
    if "xid" in disabled:
        return found
    policy = config["xid_policy"]
    events = parse_xids(log["text"], config["thresholds"]["xid_window_s"], observed.get("uptime_s"),
                        observed.get("now"), whole_file=log.get("whole_file", False))
    by_key = {}
    for event in events:
        by_key.setdefault(event["key"], []).append(event)
    for gpu in gpus:
        own = by_key.pop(pci_key(gpu["bus_id"]), [])
        severity, action, shown, detail = judge(own, policy)
        found.append(checks.record("xid", gpu, severity, action, shown, "policy", detail))
    orphans = [event for key in sorted(by_key, key=str) for event in by_key[key]]
    severity, action, shown, detail = judge(orphans, policy)
    where = "kernel log: %s" % log.get("source")
    if orphans:
        detail = "Xid on PCI %s, which nvidia-smi does not list (fallen off the bus?): %s" % (
            ", ".join(sorted({event["pci"] for event in orphans})), detail)
    else:
        detail = "%s; %d Xid events for listed GPUs" % (where, len(events))
        shown = "none for unlisted devices"
    found.append(checks.record("xid", None, severity, action, shown, "policy", detail))
    return found


def _walk_statuses(value, found):
    if isinstance(value, dict):
        for key, item in value.items():
            if key.lower() in ("status", "result") and isinstance(item, str):
                found.append(item.lower())
            else:
                _walk_statuses(item, found)
    elif isinstance(value, list):
        for item in value:
            _walk_statuses(item, found)


def _dcgm_check(dcgm, level):
    """*dcgm*: None (dcgmi not installed: no check), or ``{state, rc, text}`` of ``dcgmi diag -r L -j``."""
    if dcgm is None:
        return None
    limit = "level %d passes" % level
    if dcgm["state"] != "ok":
        return checks.record("dcgm_diag", None, "unknown", observed=dcgm["state"], limit=limit,
                             detail=(dcgm.get("text") or "")[:300])
    statuses = []
    try:
        _walk_statuses(json.loads(dcgm.get("text") or ""), statuses)
    except ValueError:
        text = (dcgm.get("text") or "").lower()
        statuses = ["fail"] if re.search(r"\bfail", text) else (["pass"] if re.search(r"\bpass", text) else [])
    if "fail" in statuses:
        return checks.record("dcgm_diag", None, "critical", "drain", "fail", limit, "dcgmi diag -r %d failed" % level)
    if "warn" in statuses or "warning" in statuses:
        return checks.record("dcgm_diag", None, "warn", "none", "warn", limit, "dcgmi diag -r %d warned" % level)
    if "pass" in statuses and dcgm.get("rc") == 0:
        return checks.record("dcgm_diag", None, "pass", observed="pass", limit=limit)
    return checks.record("dcgm_diag", None, "unknown", observed="rc %s" % dcgm.get("rc"), limit=limit,
                         detail="no result in dcgmi's output: %s" % (dcgm.get("text") or "")[:200])


def _driver_check(version, pin):
    if version is None:
        return checks.record("driver_version", None, "unknown", limit=pin, detail="the report has no driver version")
    if version == pin or version.startswith(pin + "."):
        return checks.record("driver_version", None, "pass", observed=version, limit=pin)
    return checks.record("driver_version", None, "critical", "drain", version, pin,
                         "driver %s is not the pinned %s (gpulab_gpu_driver_pin)" % (version, pin))


def assess(observed, config):
    """The health dict (see the module docstring) from an observation and a :func:`build_config` result."""
    disabled = set(config["disabled_checks"])
    thresholds = config["thresholds"]
    found = []
    smi = observed["smi"]
    gpus, driver_version = [], None
    if smi["state"] == "ok":
        try:
            driver_version, _count, gpus = read_document(smi["xml"])
        except NvidiaSmiParseError as exc:
            smi = dict(smi, state="parse_error", message="could not read 'nvidia-smi -q -x': %s" % exc)
    if smi["state"] == "no_devices":
        smi = dict(smi, state="ok")  # nvidia-smi answered: there is no GPU (gpu_count judges that)
    found.append(_smi_check(smi))
    if smi["state"] == "ok":
        if config["expected_count"] is not None:
            count = len(gpus)
            if count == config["expected_count"]:
                found.append(checks.record("gpu_count", None, "pass", observed=count, limit=config["expected_count"]))
            else:
                found.append(checks.record("gpu_count", None, "critical", "drain", count, config["expected_count"],
                                           "nvidia-smi lists %d GPUs, %d expected (gpulab_gpu_expected_count)"
                                           % (count, config["expected_count"])))
        if config["driver_pin"] is not None:
            found.append(_driver_check(driver_version, config["driver_pin"]))
        nvlink = observed.get("nvlink")
        nvlink_links = checks.parse_nvlink_status(nvlink["text"]) if nvlink and nvlink["state"] == "ok" else None
        for gpu in gpus:
            for check in checks.GPU_CHECKS:
                found.append(check(gpu, thresholds))
            found.append(checks.check_pcie_replay(gpu, thresholds, observed.get("uptime_s")))
            found.append(checks.check_nvlink(gpu, thresholds, nvlink_links))
    found.extend(_xid_checks(observed, gpus, config, disabled))
    if thresholds["dcgm_diag_level"] >= 1:
        dcgm = _dcgm_check(observed.get("dcgm"), thresholds["dcgm_diag_level"])
        if dcgm is not None:
            found.append(dcgm)
    found = [check for check in found if check["id"] not in disabled or check["id"] == "nvidia_smi"]
    return verdict_of(found, [{"index": gpu["index"], "uuid": gpu["uuid"], "bus_id": gpu["bus_id"],
                               "name": gpu["name"]} for gpu in gpus])


def verdict_of(found, gpus):
    critical = [check for check in found if check["severity"] == "critical"]
    unknown = [check for check in found if check["severity"] == "unknown"]
    warnings = [check for check in found if check["severity"] == "warn"]
    if critical:
        verdict = "degraded"
    elif unknown:
        verdict = "unknown"
    else:
        verdict = "healthy"
    return {"verdict": verdict, "summary": summary_line(verdict, found, gpus, critical or unknown, warnings),
            "warnings": len(warnings), "gpus": gpus, "checks": found}


def _label(check):
    where = "node" if check["gpu"] is None else "GPU %s" % check["gpu"]
    action = "" if check["action"] == "none" else " -> %s" % check["action"]
    return "%s %s: %s%s" % (where, check["id"], check["observed"], action)


def summary_line(verdict, found, gpus, problems, warnings, limit=3):
    """One line: the verdict, then the worst problems (strongest action first)."""
    if verdict == "healthy":
        text = "healthy: %d GPUs, %d checks passed" % (len(gpus), sum(1 for c in found if c["severity"] == "pass"))
        if warnings:
            text += ", %d warnings (%s)" % (len(warnings), "; ".join(_label(c) for c in warnings[:limit]))
        return text
    ordered = sorted(problems, key=lambda c: -ACTION_RANK[c["action"]])
    more = len(ordered) - limit
    return "%s: %s%s" % (verdict, "; ".join(_label(c) for c in ordered[:limit]),
                         " (+%d more)" % more if more > 0 else "")


def _cell(value):
    return "-" if value is None else str(value)


def table(health, show_all=False):
    """The human table: every check that did not pass (all of them with *show_all*)."""
    rows = [("GPU", "CHECK", "SEVERITY", "ACTION", "OBSERVED", "LIMIT", "DETAIL")]
    shown = [c for c in health["checks"] if show_all or c["severity"] != "pass"]
    for check in shown:
        rows.append(("-" if check["gpu"] is None else str(check["gpu"]), check["id"], check["severity"],
                     check["action"], _cell(check["observed"]), _cell(check["limit"]), check["detail"] or ""))
    widths = [max(len(row[col]) for row in rows) for col in range(6)]
    lines = ["gpulab-gpu-health: %s" % health["summary"]]
    for gpu in health["gpus"]:
        lines.append("  GPU %s  %s  %s  %s" % (gpu["index"], gpu["bus_id"], gpu["uuid"], gpu["name"]))
    if len(rows) > 1:
        for row in rows:
            lines.append("  ".join(cell.ljust(widths[col]) for col, cell in enumerate(row[:6])) + "  " + row[6])
    passed = len(health["checks"]) - len(shown)
    if passed:
        lines.append("(%d checks passed%s)" % (passed, "" if show_all else "; --all lists them"))
    return "\n".join(line.rstrip() for line in lines) + "\n"
