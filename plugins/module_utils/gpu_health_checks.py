# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The per-GPU health checks: pure functions from one GPU's signals (``gpu_health_xml``) and the
thresholds to check records.

Standard library only: this file runs on the managed host.

Every check returns ``{id, gpu, uuid, observed, limit, severity, action, detail}``. A value the
driver could not read (``Unknown Error``, a missing number where one is due) gives ``unknown``,
never ``pass``; a field the driver says does not apply to this GPU (``N/A``: retired pages on
Ampere and later, fabric state without NVSwitch) gives ``pass`` with a detail saying so.
"""

from __future__ import annotations

import math

from ansible_collections.gpulab.provision.plugins.module_utils.gpu_health_xml import not_applicable, number, yes_no

# DCGM's PCIe replay limits, replays per minute per lane, by PCIe generation
# (NVIDIA/DCGM modules/health/DcgmHealthWatch.cpp:1556): the limit is ceil(rate x lanes).
PCIE_REPLAY_RATE_PER_LANE = {1: 0.15, 2: 0.3, 3: 0.48, 4: 0.96, 5: 1.92, 6: 3.84}


def record(check_id, gpu, severity, action="none", observed=None, limit=None, detail=""):
    return {
        "id": check_id,
        "gpu": None if gpu is None else gpu["index"],
        "uuid": None if gpu is None else gpu["uuid"],
        "observed": observed,
        "limit": limit,
        "severity": severity,
        "action": action if severity in ("warn", "critical") else "none",
        "detail": detail,
    }


def _unreadable(check_id, gpu, field, value, limit=None):
    return record(check_id, gpu, "unknown", observed=value, limit=limit,
                  detail="%s could not be read (%s)" % (field, "absent" if value is None else repr(value)))


def check_persistence_mode(gpu, thresholds):
    value = gpu["persistence_mode"]
    flag = yes_no(value)
    if not_applicable(value):
        return record("persistence_mode", gpu, "pass", observed=value, detail="not applicable to this GPU")
    if flag is None:
        return _unreadable("persistence_mode", gpu, "persistence_mode", value)
    if flag or not thresholds["persistence_mode_required"]:
        return record("persistence_mode", gpu, "pass", observed=value, limit="Enabled")
    return record("persistence_mode", gpu, "warn", "none", observed=value, limit="Enabled",
                  detail="persistence mode is off: every job pays the driver's start-up; start nvidia-persistenced")


def check_ecc_mode(gpu, thresholds):
    current, pending = gpu["ecc_current"], gpu["ecc_pending"]
    if not_applicable(current):
        return record("ecc_mode", gpu, "pass", observed=current, detail="this GPU has no ECC")
    if yes_no(current) is None:
        return _unreadable("ecc_mode", gpu, "ecc_mode/current_ecc", current)
    observed = "%s (pending %s)" % (current, pending)
    if yes_no(pending) is not None and yes_no(pending) != yes_no(current):
        return record("ecc_mode", gpu, "warn", "reboot", observed, "Enabled, pending = current",
                      "ECC mode changes to %s at the next reboot or GPU reset" % pending)
    if not yes_no(current) and thresholds["ecc_mode_required"]:
        return record("ecc_mode", gpu, "critical", "drain", observed, "Enabled",
                      "ECC is off: memory errors go undetected (set ecc_mode_required: false where intended)")
    return record("ecc_mode", gpu, "pass", observed=observed, limit="Enabled")


def _counts(gpu, fields):
    """Sum of the numeric fields that are present; (None, bad field) when one cannot be read."""
    total, seen = 0, False
    for field in fields:
        value = gpu[field]
        if value is None or not_applicable(value):
            continue
        parsed = number(value)
        if parsed is None:
            return None, field
        total += parsed
        seen = True
    return (total if seen else "n/a"), None


def check_ecc_uncorrectable(gpu, thresholds):
    if not_applicable(gpu["ecc_current"]):
        return record("ecc_uncorrectable", gpu, "pass", observed="n/a", detail="this GPU has no ECC")
    total, bad = _counts(gpu, ("dram_uncorrectable", "sram_uncorrectable_parity", "sram_uncorrectable_secded",
                               "sram_uncorrectable"))
    limit = thresholds["ecc_uncorrectable_max"]
    if total is None:
        return _unreadable("ecc_uncorrectable", gpu, "ecc_errors/volatile/" + bad, gpu[bad], limit)
    if total == "n/a":
        return record("ecc_uncorrectable", gpu, "pass", observed=total, limit=limit, detail="no ECC counters reported")
    if total > limit:
        return record("ecc_uncorrectable", gpu, "critical", "reset", total, limit,
                      "uncorrectable ECC errors since the last reset (DRAM %s, SRAM parity %s, SRAM SEC-DED %s): "
                      "drain, then reset the GPU" % (gpu["dram_uncorrectable"], gpu["sram_uncorrectable_parity"],
                                                     gpu["sram_uncorrectable_secded"]))
    return record("ecc_uncorrectable", gpu, "pass", observed=total, limit=limit)


def check_ecc_corrected(gpu, thresholds):
    if not_applicable(gpu["ecc_current"]):
        return record("ecc_corrected", gpu, "pass", observed="n/a", detail="this GPU has no ECC")
    limits = {"dram_correctable": thresholds["ecc_dram_corrected_max"],
              "sram_correctable": thresholds["ecc_sram_corrected_max"]}
    observed, over = {}, []
    for field, limit in limits.items():
        value = gpu[field]
        if value is None or not_applicable(value):
            continue
        parsed = number(value)
        if parsed is None:
            return _unreadable("ecc_corrected", gpu, "ecc_errors/volatile/" + field, value)
        memory = field.split("_", 1)[0]
        observed[memory] = parsed
        if parsed > limit:
            over.append("%s %s > %s" % (memory.upper(), parsed, limit))
    shown = ", ".join("%s %s" % (key, value) for key, value in sorted(observed.items())) or "n/a"
    limit_text = "dram %s, sram %s" % (limits["dram_correctable"], limits["sram_correctable"])
    if over:
        return record("ecc_corrected", gpu, "critical", "drain", shown, limit_text,
                      "corrected ECC errors over the limit (%s): memory wearing out" % "; ".join(over))
    return record("ecc_corrected", gpu, "pass", observed=shown, limit=limit_text)


def check_sram_threshold(gpu, thresholds):  # pylint: disable=unused-argument
    value = gpu["sram_threshold_exceeded"]
    if value is None or not_applicable(value):
        return record("sram_threshold", gpu, "pass", observed=value or "n/a", detail="not reported by this GPU")
    flag = yes_no(value)
    if flag is None:
        return _unreadable("sram_threshold", gpu, "ecc_errors/aggregate/sram_threshold_exceeded", value)
    if flag:
        return record("sram_threshold", gpu, "critical", "service", value, "No",
                      "the driver says the SRAM error threshold is exceeded: the GPU needs service")
    return record("sram_threshold", gpu, "pass", observed=value, limit="No")


def _remap_applies(gpu):
    value = gpu["remapped_row_pending"]
    return value is not None and not not_applicable(value)


def check_remapped_rows_pending(gpu, thresholds):  # pylint: disable=unused-argument
    value = gpu["remapped_row_pending"]
    if not _remap_applies(gpu):
        return record("remapped_rows_pending", gpu, "pass", observed="n/a", detail="no row remapping on this GPU")
    flag = yes_no(value)
    if flag is None:
        return _unreadable("remapped_rows_pending", gpu, "remapped_rows/remapped_row_pending", value)
    if flag:
        return record("remapped_rows_pending", gpu, "critical", "reset", value, "No",
                      "a row remapping waits for a GPU reset (after an uncorrectable error): drain, then reset")
    return record("remapped_rows_pending", gpu, "pass", observed=value, limit="No")


def check_remapped_rows_failure(gpu, thresholds):  # pylint: disable=unused-argument
    value = gpu["remapped_row_failure"]
    if not _remap_applies(gpu):
        return record("remapped_rows_failure", gpu, "pass", observed="n/a", detail="no row remapping on this GPU")
    flag = yes_no(value)
    if flag is None:
        return _unreadable("remapped_rows_failure", gpu, "remapped_rows/remapped_row_failure", value)
    if flag:
        return record("remapped_rows_failure", gpu, "critical", "service", value, "No",
                      "row remapping failed (no spare rows left in a bank): the GPU needs service")
    return record("remapped_rows_failure", gpu, "pass", observed=value, limit="No")


def check_remapped_rows_uncorrectable(gpu, thresholds):
    limit = thresholds["remapped_rows_uncorrectable_max"]
    if not _remap_applies(gpu):
        return record("remapped_rows_uncorrectable", gpu, "pass", observed="n/a", limit=limit,
                      detail="no row remapping on this GPU")
    value = number(gpu["remapped_row_unc"])
    if value is None:
        return _unreadable("remapped_rows_uncorrectable", gpu, "remapped_rows/remapped_row_unc", gpu["remapped_row_unc"],
                           limit)
    if value > limit:
        return record("remapped_rows_uncorrectable", gpu, "critical", "service", value, limit,
                      "rows remapped for uncorrectable errors over the limit: the GPU needs service")
    return record("remapped_rows_uncorrectable", gpu, "pass", observed=value, limit=limit)


def _retired_applies(gpu):
    return any(gpu[field] is not None and not not_applicable(gpu[field])
               for field in ("retired_sbe", "retired_dbe", "retired_pending_retirement", "retired_pending_blacklist"))


def check_retired_pages_pending(gpu, thresholds):  # pylint: disable=unused-argument
    if not _retired_applies(gpu):
        return record("retired_pages_pending", gpu, "pass", observed="n/a",
                      detail="no page retirement on this GPU (Ampere and later remap rows instead)")
    values = [gpu["retired_pending_retirement"], gpu["retired_pending_blacklist"]]
    flags = [yes_no(value) for value in values if value is not None and not not_applicable(value)]
    if not flags or None in flags:
        return _unreadable("retired_pages_pending", gpu, "retired_pages/pending_retirement", values[0])
    observed = values[0] if values[0] is not None else values[1]
    if any(flags):
        return record("retired_pages_pending", gpu, "critical", "reboot", "Yes", "No",
                      "retired pages wait for a reboot (or driver reload) to take effect")
    return record("retired_pages_pending", gpu, "pass", observed=observed, limit="No")


def check_retired_pages_count(gpu, thresholds):
    limits = "total %s, double-bit %s" % (thresholds["retired_pages_max"], thresholds["retired_pages_dbe_max"])
    if not _retired_applies(gpu):
        return record("retired_pages_count", gpu, "pass", observed="n/a", limit=limits,
                      detail="no page retirement on this GPU (Ampere and later remap rows instead)")
    sbe, dbe = number(gpu["retired_sbe"]), number(gpu["retired_dbe"])
    if sbe is None or dbe is None:
        bad = "retired_sbe" if sbe is None else "retired_dbe"
        return _unreadable("retired_pages_count", gpu, "retired_pages " + bad, gpu[bad], limits)
    observed = "total %d, double-bit %d" % (sbe + dbe, dbe)
    if sbe + dbe > thresholds["retired_pages_max"] or dbe > thresholds["retired_pages_dbe_max"]:
        return record("retired_pages_count", gpu, "critical", "service", observed, limits,
                      "more retired pages than the limit: the GPU's memory needs service")
    return record("retired_pages_count", gpu, "pass", observed=observed, limit=limits)


def check_pcie_link_width(gpu, thresholds):  # pylint: disable=unused-argument
    current, maximum = number(gpu["pcie_width_current"]), number(gpu["pcie_width_max"])
    if current is None or maximum is None:
        if not_applicable(gpu["pcie_width_current"]) or not_applicable(gpu["pcie_width_max"]):
            return record("pcie_link_width", gpu, "pass", observed="n/a", detail="not reported (virtual GPU?)")
        return _unreadable("pcie_link_width", gpu, "pci/link_widths", gpu["pcie_width_current"])
    if current < maximum:
        return record("pcie_link_width", gpu, "critical", "drain", "x%d" % current, "x%d" % maximum,
                      "PCIe link trained below its width (x%d of x%d): reseat or service" % (current, maximum))
    return record("pcie_link_width", gpu, "pass", observed="x%d" % current, limit="x%d" % maximum)


def _idle(gpu):
    events = gpu["clock_events"] or {}
    return yes_no(events.get("gpu_idle")) is True


def check_pcie_link_gen(gpu, thresholds):  # pylint: disable=unused-argument
    current, maximum = number(gpu["pcie_gen_current"]), number(gpu["pcie_gen_max"])
    if current is None or maximum is None:
        if not_applicable(gpu["pcie_gen_current"]) or not_applicable(gpu["pcie_gen_max"]):
            return record("pcie_link_gen", gpu, "pass", observed="n/a", detail="not reported (virtual GPU?)")
        return _unreadable("pcie_link_gen", gpu, "pci/pcie_gen", gpu["pcie_gen_current"])
    observed, limit = "gen%d" % current, "gen%d" % maximum
    if current >= maximum:
        return record("pcie_link_gen", gpu, "pass", observed=observed, limit=limit)
    if _idle(gpu):
        return record("pcie_link_gen", gpu, "pass", observed=observed, limit=limit,
                      detail="below its maximum while idle: the link lowers its speed to save power")
    return record("pcie_link_gen", gpu, "warn", "none", observed, limit,
                  "PCIe link below its maximum generation while the GPU is busy")


def check_pcie_replay(gpu, thresholds, uptime_s):
    counter = number(gpu["replay_counter"])
    if counter is None:
        if not_applicable(gpu["replay_counter"]):
            return record("pcie_replay", gpu, "pass", observed="n/a", detail="not reported")
        return _unreadable("pcie_replay", gpu, "pci/replay_counter", gpu["replay_counter"])
    rollovers = number(gpu["replay_rollover_counter"]) or 0
    limit = thresholds["pcie_replay_rate_per_min"]
    if limit is None:
        gen, width = number(gpu["pcie_gen_current"]), number(gpu["pcie_width_current"])
        if gen not in PCIE_REPLAY_RATE_PER_LANE or not width:
            gen, width = 5, 16
        limit = math.ceil(PCIE_REPLAY_RATE_PER_LANE[gen] * width)
    if uptime_s is None:
        return record("pcie_replay", gpu, "unknown", observed=counter, limit=limit,
                      detail="the uptime could not be read, so no replay rate")
    rate = counter / max(uptime_s / 60.0, 1.0)
    observed = "%d since boot (%.2f/min)" % (counter, rate)
    limit_text = "%s/min" % limit
    if rollovers:
        return record("pcie_replay", gpu, "warn", "none", observed + ", %d rollovers" % rollovers, limit_text,
                      "the PCIe replay counter rolled over: a noisy link")
    if rate > limit:
        return record("pcie_replay", gpu, "warn", "none", observed, limit_text,
                      "PCIe replays above DCGM's rate: a noisy link (reseat, check the riser)")
    return record("pcie_replay", gpu, "pass", observed=observed, limit=limit_text)


def check_clock_events(gpu, thresholds):
    events = gpu["clock_events"]
    if events is None:
        return record("clock_events", gpu, "unknown", detail="no clocks_event_reasons section in the report")
    watched = thresholds["clock_event_reasons_warn"]
    active = sorted(name for name in watched if yes_no(events.get(name)) is True)
    limit = "none of " + ", ".join(watched)
    if active:
        return record("clock_events", gpu, "warn", "none", ", ".join(active), limit,
                      "clocks slowed by hardware (%s): check cooling and power" % ", ".join(active))
    return record("clock_events", gpu, "pass", observed="none", limit=limit)


def check_temperature(gpu, thresholds):
    margin = thresholds["temperature_slowdown_margin_c"]
    tlimit, slow_tlimit = number(gpu["gpu_temp_tlimit"]), number(gpu["gpu_temp_slow_tlimit_threshold"])
    temp, slow = number(gpu["gpu_temp"]), number(gpu["gpu_temp_slow_threshold"])
    if tlimit is not None and slow_tlimit is not None:
        # Hopper and later: the temperature is the distance to T.Limit; slowdown starts at slow_tlimit.
        headroom = tlimit - slow_tlimit
        observed = "%s C below T.Limit" % tlimit
        limit = "slowdown at %s C" % slow_tlimit
    elif temp is not None and slow is not None:
        headroom = slow - temp
        observed = "%s C" % temp
        limit = "slowdown at %s C" % slow
    else:
        return record("temperature", gpu, "unknown", observed=gpu["gpu_temp"],
                      detail="neither the T.Limit temperatures nor an absolute slowdown threshold are reported")
    if headroom <= 0:
        return record("temperature", gpu, "critical", "drain", observed, limit,
                      "at or past its slowdown temperature: cooling problem")
    if headroom < margin:
        return record("temperature", gpu, "warn", "none", observed, limit,
                      "%s C from its slowdown temperature (margin %s C)" % (headroom, margin))
    return record("temperature", gpu, "pass", observed=observed, limit=limit,
                  detail="%s C from its slowdown temperature" % headroom)


def check_reset_required(gpu, thresholds):  # pylint: disable=unused-argument
    required, recommended = gpu["reset_required"], gpu["drain_and_reset_recommended"]
    if required is None and recommended is None:
        return record("reset_required", gpu, "pass", observed="n/a",
                      detail="no gpu_reset_status in this driver's report (see recovery_action)")
    flags = [yes_no(value) for value in (required, recommended) if value is not None and not not_applicable(value)]
    if None in flags:
        return _unreadable("reset_required", gpu, "gpu_reset_status", required)
    observed = "reset_required %s, drain_and_reset_recommended %s" % (required, recommended)
    if any(flags):
        return record("reset_required", gpu, "critical", "reset", observed, "No",
                      "the driver asks for a GPU reset: drain, then reset")
    return record("reset_required", gpu, "pass", observed=observed, limit="No")


def check_recovery_action(gpu, thresholds):  # pylint: disable=unused-argument
    value = gpu["recovery_action"]
    if value is None:
        return record("recovery_action", gpu, "pass", observed="n/a", detail="not reported by this driver")
    lowered = value.lower().replace("_", " ")
    if lowered in ("none", "n/a", "0"):
        return record("recovery_action", gpu, "pass", observed=value, limit="None")
    if "reboot" in lowered or lowered == "2":
        action = "reboot"
    elif ("drain" in lowered and "reset" in lowered) or lowered == "4":
        action = "reset"
    elif "drain" in lowered or lowered == "3":
        action = "drain"
    elif "reset" in lowered or lowered == "1":
        action = "reset"
    else:
        action = "drain"
    return record("recovery_action", gpu, "critical", action, value, "None",
                  "the driver's recovery action for this GPU is %s" % value)


def check_fabric(gpu, thresholds):  # pylint: disable=unused-argument
    state, status, health = gpu["fabric_state"], gpu["fabric_status"], gpu["fabric_health"]
    if state is None or not_applicable(state):
        return record("fabric", gpu, "pass", observed=state or "n/a", detail="no NVSwitch fabric on this GPU")
    observed = "state %s, status %s%s" % (state, status, "" if health in (None, "N/A") else ", health " + health)
    bad = state.lower() != "completed" or (status or "").lower() not in ("success", "n/a", "")
    bad = bad or (health is not None and health.lower() not in ("healthy", "n/a", ""))
    if bad:
        return record("fabric", gpu, "critical", "drain", observed, "state Completed, status Success",
                      "the NVSwitch fabric is not ready for this GPU (fabric manager, NVSwitch or NVLink trouble)")
    return record("fabric", gpu, "pass", observed=observed, limit="state Completed, status Success")


def parse_nvlink_status(text):
    """``nvidia-smi nvlink -s`` output -> ``{uuid or index: {"links": n, "inactive": [link numbers]}}``.

    Empty for a node without NVLink (the command prints nothing and exits 0).
    """
    found, current = {}, None
    for line in (text or "").splitlines():
        stripped = line.strip()
        if stripped.startswith("GPU ") and ":" in stripped:
            head = stripped.split(":", 1)[0]
            key = head[4:].strip()
            if "(UUID:" in stripped:
                key = stripped.rsplit("(UUID:", 1)[1].strip(" )")
            current = found.setdefault(key, {"links": 0, "inactive": []})
        elif stripped.startswith("Link ") and current is not None:
            number_text, _sep, rest = stripped[5:].partition(":")
            current["links"] += 1
            if "inactive" in rest.lower():
                current["inactive"].append(number_text.strip())
    return found


def check_nvlink(gpu, thresholds, nvlink):
    """*nvlink*: None when ``nvlink -s`` could not run (unknown), else :func:`parse_nvlink_status`'s dict."""
    if nvlink is None:
        return record("nvlink", gpu, "unknown", detail="'nvidia-smi nvlink -s' failed or timed out")
    links = nvlink.get(gpu["uuid"]) or nvlink.get(str(gpu["index"]))
    if not links or not links["links"]:
        return record("nvlink", gpu, "pass", observed="no NVLink", detail="no NVLink on this GPU")
    limit = thresholds["nvlink_inactive_max"]
    inactive = links["inactive"]
    observed = "%d of %d links inactive" % (len(inactive), links["links"])
    if len(inactive) > limit:
        return record("nvlink", gpu, "critical", "drain", observed, limit,
                      "inactive NVLink links: %s" % ", ".join(inactive))
    return record("nvlink", gpu, "pass", observed=observed, limit=limit)


# The checks run on each GPU from its XML signals, in report order.
GPU_CHECKS = (
    check_persistence_mode, check_ecc_mode, check_ecc_uncorrectable, check_ecc_corrected, check_sram_threshold,
    check_remapped_rows_pending, check_remapped_rows_failure, check_remapped_rows_uncorrectable,
    check_retired_pages_pending, check_retired_pages_count, check_pcie_link_width, check_pcie_link_gen,
    check_clock_events, check_temperature, check_reset_required, check_recovery_action, check_fabric,
)
