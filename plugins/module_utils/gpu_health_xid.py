# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Xid events from the kernel log, and their classification by the Xid policy table: pure functions.

Standard library only: this file runs on the managed host.

The driver logs ``NVRM: Xid (PCI:0000:1b:00): 79, pid=..., GPU has fallen off the bus.``; the PCI
address is domain:bus:device without the function, matched to nvidia-smi's ``00000000:1B:00.0`` by
``gpu_health_xml.pci_key``. An Xid for an address nvidia-smi does not list (a GPU fallen off the
bus is often gone from its list) is kept apart, as a node-level event.

Only the current boot counts (the journal's ``-b 0`` and dmesg are the current boot; a kern.log
spans boots, so only what follows its last ``Linux version`` banner is read), and, with a window,
only events younger than it (monotonic ``[  123.456]`` stamps against the uptime, or the syslog
wall-clock stamp against the clock).
"""

from __future__ import annotations

import calendar
import re
import time

from ansible_collections.gpulab.provision.plugins.module_utils.gpu_health_xml import pci_key

_XID = re.compile(r"NVRM: Xid \((?:PCI:)?(?P<pci>[0-9A-Fa-f]{1,8}:[0-9A-Fa-f]{1,2}:[0-9A-Fa-f]{1,2})(?:\.[0-9A-Fa-f])?\)"
                  r": (?P<code>\d+),\s*(?P<rest>.*)$")
_MONOTONIC = re.compile(r"\[\s*(\d+\.\d+)\]")
_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})?")
_BSD = re.compile(r"^([A-Z][a-z]{2})\s+(\d{1,2}) (\d{2}):(\d{2}):(\d{2})\b")
_MONTHS = {name: number for number, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_BOOT_BANNER = "Linux version "

SEVERITY_RANK = {"pass": 0, "unknown": 1, "warn": 2, "critical": 3}
ACTION_RANK = {"none": 0, "reset": 1, "reboot": 2, "drain": 3, "service": 4}
POLICY_SEVERITIES = ("ignore", "warn", "critical")


def current_boot(lines):
    """``(lines after the last kernel boot banner, True)``, or ``(all lines, False)`` when there is none."""
    for position in range(len(lines) - 1, -1, -1):
        if _BOOT_BANNER in lines[position] and "kernel" in lines[position]:
            return lines[position + 1:], True
    return lines, False


def _wall_clock(line, now):
    """Seconds since the epoch of a syslog line's own stamp, or None."""
    match = _ISO.match(line)
    if match:
        zone = match.group(3)
        stamp = "%s %s" % (match.group(1), match.group(2))
        try:
            parsed = time.strptime(stamp, "%Y-%m-%d %H:%M:%S")
        except ValueError:
            return None
        if zone in (None, ""):
            return time.mktime(parsed)
        offset = 0
        if zone != "Z":
            sign = -1 if zone[0] == "-" else 1
            digits = zone[1:].replace(":", "")
            offset = sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
        return calendar.timegm(parsed) - offset
    match = _BSD.match(line)
    if match and match.group(1) in _MONTHS:
        year = time.localtime(now).tm_year
        try:
            stamp = time.mktime((year, _MONTHS[match.group(1)], int(match.group(2)), int(match.group(3)),
                                 int(match.group(4)), int(match.group(5)), 0, 0, -1))
        except (OverflowError, ValueError):
            return None
        if stamp > now + 86400:  # December's line read in January
            stamp = time.mktime((year - 1, _MONTHS[match.group(1)], int(match.group(2)), int(match.group(3)),
                                 int(match.group(4)), int(match.group(5)), 0, 0, -1))
        return stamp
    return None


def parse_xids(text, window_s=None, uptime_s=None, now=None, whole_file=False):
    """Xid events in *text* (a kernel log): a list of ``{pci, key, code, message, age_s}``.

    *whole_file*: the text may span boots (kern.log): only what follows the last boot banner counts.
    *window_s*: only events at most that old (None: the whole boot); an event whose age cannot be
    told is kept (cautious). *uptime_s*, *now*: the clocks the ages are measured against.
    """
    if "NVRM: Xid" not in (text or ""):
        return []
    now = time.time() if now is None else now
    lines = text.splitlines()
    banner = False
    if whole_file:
        lines, banner = current_boot(lines)
    # Without a boot banner (rotated away), a file's line older than this boot is from an earlier one.
    boot_time = now - uptime_s if uptime_s is not None and whole_file and not banner else None
    events = []
    for line in lines:
        if "NVRM: Xid" not in line:
            continue
        match = _XID.search(line)
        if not match:
            continue
        age = None
        mono = _MONOTONIC.search(line[:match.start()])
        if mono and uptime_s is not None:
            age = max(0.0, uptime_s - float(mono.group(1)))
        else:
            stamp = _wall_clock(line, now)
            if stamp is not None:
                if boot_time is not None and stamp < boot_time - 60:
                    continue  # an earlier boot (a kern.log without a boot banner)
                age = max(0.0, now - stamp)
        if window_s is not None and age is not None and age > window_s:
            continue
        events.append({
            "pci": match.group("pci").lower(),
            "key": pci_key(match.group("pci")),
            "code": int(match.group("code")),
            "message": match.group("rest").strip(),
            "age_s": None if age is None else round(age, 1),
        })
    return events


def classify(code, policy):
    """``{severity, action}`` of Xid *code* in *policy* (code as a string -> entry; ``default`` for the rest)."""
    entry = policy.get(str(code)) or policy.get("default") or {"severity": "warn", "action": "none"}
    return entry


def judge(events, policy):
    """``(severity, action, observed, detail)`` for a list of Xid events of one GPU (or of the node).

    The check's severity is the worst of its events' (``ignore`` is pass); its action that of the
    worst event (the stronger one among equals).
    """
    if not events:
        return "pass", "none", "none", "no Xid"
    counts = {}
    for event in events:
        counts[event["code"]] = counts.get(event["code"], 0) + 1
    severity, action = "pass", "none"
    parts = []
    for code in sorted(counts):
        entry = classify(code, policy)
        code_severity = "pass" if entry["severity"] == "ignore" else entry["severity"]
        code_action = entry["action"] if code_severity != "pass" else "none"
        if (SEVERITY_RANK[code_severity], ACTION_RANK[code_action]) > (SEVERITY_RANK[severity], ACTION_RANK[action]):
            severity, action = code_severity, code_action
        parts.append("%d x%d (%s%s)" % (code, counts[code], entry["severity"],
                                        "" if entry["action"] == "none" else ", " + entry["action"]))
    last = events[-1]
    observed = ", ".join("%d x%d" % (code, counts[code]) for code in sorted(counts))
    detail = "Xid %s; last: Xid %d, %s" % ("; ".join(parts), last["code"], last["message"][:120])
    return severity, action, observed, detail
