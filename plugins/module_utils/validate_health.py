# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""validate.yml's gpu_health entry: a node assessment (module_utils/gpu_health) judged by the run's policy.

Pure: no I/O. Used by the ``gpulab.provision.validate_gpu_health`` filter.

    result    verdict                                  the host fails
    PASS      healthy, no warning                      never
    WARN      healthy, some check at severity warn     only with gpulab_fail_on_warning
    FAIL      degraded, or unknown (could not assess)  always (gpulab_validate_fail permitting)
    SKIPPED   not assessed: the host has no GPU        never
"""

from __future__ import annotations

CHECK = "gpu_health"
VERDICTS = ("healthy", "degraded", "unknown")
_COLUMNS = ("GPU", "CHECK", "SEVERITY", "ACTION", "OBSERVED", "LIMIT")


def _cell(value):
    return "-" if value is None or value == "" else " ".join(str(value).split())


def problem_table(checks):
    """Lines of a table of the checks that did not pass (header first); empty when every check passed."""
    rows = [tuple(_cell(check.get(key)) for key in ("gpu", "id", "severity", "action", "observed", "limit"))
            + (_cell(check.get("detail")),)
            for check in checks if check.get("severity") != "pass"]
    if not rows:
        return []
    rows.insert(0, _COLUMNS + ("DETAIL",))
    widths = [max(len(row[col]) for row in rows) for col in range(len(_COLUMNS))]
    return ["  ".join(cell.ljust(widths[col]) for col, cell in enumerate(row[:-1])) + "  " + row[-1]
            for row in rows]


def validate_entry(health, skip_reason="", fail_on_warning=False):
    """``{check, result, verdict, warnings, detail, fails, problems}`` for one host.

    *health* is the ``health`` the gpu_health module returned (ignored when *skip_reason* is given);
    *fails* says whether the run's policy fails the host on this entry.
    """
    if skip_reason:
        return {"check": CHECK, "result": "SKIPPED", "verdict": None, "warnings": 0,
                "detail": str(skip_reason).strip(), "fails": False, "problems": []}
    if not isinstance(health, dict) or health.get("verdict") not in VERDICTS:
        raise ValueError("needs the gpu_health module's health (a mapping with verdict %s), got %r"
                         % ("/".join(VERDICTS), health if not isinstance(health, dict) else health.get("verdict")))
    checks = [check for check in health.get("checks") or [] if isinstance(check, dict)]
    warnings = health.get("warnings")
    if not isinstance(warnings, int) or isinstance(warnings, bool):
        warnings = sum(1 for check in checks if check.get("severity") == "warn")
    verdict = health["verdict"]
    if verdict != "healthy":
        result = "FAIL"
    else:
        result = "WARN" if warnings else "PASS"
    return {"check": CHECK, "result": result, "verdict": verdict, "warnings": warnings,
            "detail": _cell(health.get("summary")) if health.get("summary") else verdict,
            "fails": result == "FAIL" or (result == "WARN" and bool(fail_on_warning)),
            "problems": problem_table(checks)}
