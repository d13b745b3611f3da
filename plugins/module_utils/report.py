# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mirror report: every host's selection and role reports, as masked data and as a text table.

Used by the ``gpulab.provision.mirror_report`` filter (playbooks/report.yml, the demo). Pure: no
I/O. Nothing with credentials leaves here: real URLs are dropped, free text is masked.
"""

from __future__ import annotations

from ansible_collections.gpulab.provision.plugins.module_utils.printable import one_line
from ansible_collections.gpulab.provision.plugins.module_utils.selection import mask_text


class ReportError(ValueError):
    """Input the report cannot read (the filter names itself in front)."""


REPORT_PREFIX = "gpulab_report_"
CACHE_PREFIX = "cache-"  # cache_catalog.ENTRY_PREFIX: a client's catalog entry for a lab cache node
REPORT_SETTINGS = ("gpulab_report_path", "gpulab_report_hosts")
_COLUMNS = ("host", "service", "chosen", "latency", "lag", "age", "status")


def _masked_selection(entry):
    """A selection entry without real URLs (safe to print or write to a report file)."""
    if not isinstance(entry, dict):
        return entry
    masked = {key: value for key, value in entry.items() if key not in ("url", "ranked", "rejected")}
    masked["ranked"] = [{key: value for key, value in item.items() if key != "url"}
                        for item in entry.get("ranked") or [] if isinstance(item, dict)]
    masked["rejected"] = [{key: value for key, value in item.items() if key != "url"}
                          for item in entry.get("rejected") or [] if isinstance(item, dict)]
    return masked


def _scrub(value):
    """Mask credentials anywhere in a report structure (role summaries are free text)."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {str(key): _scrub(item) for key, item in value.items() if key != "url"}
    if isinstance(value, (list, tuple)):
        return [_scrub(item) for item in value]
    return value


def report_data(hostvars, hosts=None):
    """``{host: {mirrors_selected: {...masked}, reports: {role: {...}}}}`` for hosts with anything to say."""
    if not hasattr(hostvars, "keys"):
        raise ReportError("the input must be hostvars or a mapping of host -> variables")
    if hosts is not None and (isinstance(hosts, (str, bytes)) or not isinstance(hosts, (list, tuple))):
        raise ReportError("gpulab_report_hosts: %r must be a list of inventory host names" % (hosts,))
    data = {}
    # A host name is text, whatever it looks like: 123 (YAML writes it as a number unless quoted) is host "123".
    for host in (_host_name(host) for host in (hosts if hosts is not None else list(hostvars.keys()))):
        if host is None or host not in hostvars:
            continue
        host_vars = hostvars[host]
        selected = host_vars["gpulab_mirrors_selected"] if "gpulab_mirrors_selected" in host_vars else {}
        # Roles report through dict-valued gpulab_report_<role> variables; gpulab_report_path and
        # gpulab_report_hosts are settings of the report itself, not reports.
        reports = {key[len(REPORT_PREFIX):]: host_vars[key] for key in list(host_vars.keys())
                   if isinstance(key, str) and key.startswith(REPORT_PREFIX) and key not in REPORT_SETTINGS
                   and isinstance(host_vars[key], dict)}
        if not selected and not reports:
            continue
        data[host] = {
            "mirrors_selected": _scrub({service: _masked_selection(entry) for service, entry in dict(selected).items()}),
            "reports": _scrub({role: dict(value) for role, value in sorted(reports.items())}),
        }
    return data


def _host_name(value):
    """An inventory host name as text (a YAML number such as 123 is the host ``123``); None when it is none."""
    if value is None or isinstance(value, bool):
        return None
    return value if isinstance(value, str) else str(value)


def _text(value):
    """A value as printed in the table: text on one line, ``-`` when there is none."""
    return "-" if value is None or value == "" else one_line(value)


def _list(value):
    return value if isinstance(value, (list, tuple)) else []


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _latency_text(value):
    return "%d ms" % value if _is_number(value) else "-"


def _lag_text(value):
    return "%d" % value if _is_number(value) else "-"


def _age_text(value):
    return "%.1f h" % value if _is_number(value) else "-"


def report_text(hostvars, hosts=None):
    """The text table of report_data(hostvars, hosts); see format_report."""
    return format_report(report_data(hostvars, hosts))


def format_report(data):
    """The text table of report_data's output (also as read back from the report's JSON file): one
    row per host and service (the chosen mirror, its latency, PyPI serial lag and hours since its
    last sync, ``-`` where unknown), each rejected mirror with its evidence on its own line below
    the row (short lines: the output callback wraps long ones), then each host's role reports."""
    data = _as_text(data)
    rows = []
    for host in sorted(data):
        selected = data[host]["mirrors_selected"]
        for service in sorted(selected):
            entry = selected[service]
            rows.append(((_text(host), _text(service), _text(entry.get("name")),
                          _latency_text(entry.get("latency_ms")), _lag_text(entry.get("lag")),
                          _age_text(entry.get("age_h")), _text(entry.get("status", "-"))),
                         [item for item in _list(entry.get("rejected")) if isinstance(item, dict)]))
    lines = []
    if rows:
        widths = [max(len(column), *(len(row[index]) for row, _rejected in rows))
                  for index, column in enumerate(_COLUMNS)]
        fmt = "  ".join("%%-%ds" % width for width in widths)
        lines.append(fmt % _COLUMNS)
        lines.append("  ".join("-" * width for width in widths))
        indent = " " * (widths[0] + 2)
        for row, rejected in rows:
            lines.append(fmt % row)
            for item in rejected:
                lines.append("%srejected %s: %s" % (indent, _text(item.get("name")), _text(item.get("reason"))))
    else:
        lines.append("no mirror selections recorded")
    role_lines = []
    for host in sorted(data):
        for role, report in data[host]["reports"].items():
            state = "changed" if report.get("changed") else "ok"
            role_lines.append("%s  %s  %s  %s" % (host, role, state, report.get("summary", "")))
    if role_lines:
        lines.append("")
        lines.append("roles (host  role  changed/ok  summary):")
        lines.extend(role_lines)
    lines.extend(_cache_lines(data))
    # whatever a value held, each line stays one line (no forged row, no terminal escape)
    return "\n".join(one_line(line).rstrip() for line in lines)


def _as_text(data):
    """report_data's output with every host, service and role name as text (a host ``123`` read back
    from YAML or passed as a number sorts beside ``web``) and every entry a mapping."""
    out = {}
    for host, entry in data.items():
        entry = entry if isinstance(entry, dict) else {}
        selected = entry.get("mirrors_selected") if isinstance(entry.get("mirrors_selected"), dict) else {}
        reports = entry.get("reports") if isinstance(entry.get("reports"), dict) else {}
        out[str(host)] = {
            "mirrors_selected": {str(service): value if isinstance(value, dict) else {}
                                 for service, value in selected.items()},
            "reports": {str(role): value if isinstance(value, dict) else {} for role, value in reports.items()},
        }
    return out


def _cache_lines(data):
    """Per lab cache node: its upstreams and disk, then per service the hosts that use it, those it
    failed (fell back to another mirror) and those that found it healthy but chose another (a pin)."""
    nodes = {host: data[host]["reports"]["cache_node"] for host in sorted(data)
             if isinstance(data[host]["reports"].get("cache_node"), dict)}
    users = {}
    for host in sorted(data):
        for service, entry in sorted(data[host]["mirrors_selected"].items()):
            entry = entry if isinstance(entry, dict) else {}
            chosen = _text(entry.get("name")) if entry.get("name") else ""
            healthy = [_text(item.get("name")) for item in _list(entry.get("ranked")) if isinstance(item, dict)]
            failed = [_text(item.get("name")) for item in _list(entry.get("rejected")) if isinstance(item, dict)]
            for name in set(healthy + failed + [chosen]):
                if not (isinstance(name, str) and name.startswith(CACHE_PREFIX)):
                    continue
                node = name[len(CACHE_PREFIX):]
                nodes.setdefault(node, {})
                # fell back: the node failed this host's probe; chose another: it was healthy, and a pin
                # or the policy preferred another mirror
                how = "uses" if name == chosen else ("fell back" if name in failed else "chose another")
                users.setdefault(node, {}).setdefault(service, {}).setdefault(how, []).append(
                    host if how == "uses" else "%s (on %s)" % (host, chosen or "none"))
    if not nodes:
        return []
    lines = ["", "cache nodes (node: upstreams, disk; who uses it):"]
    for node in sorted(nodes):
        report = nodes[node]
        upstreams = report.get("upstreams") if isinstance(report.get("upstreams"), dict) else {}
        upstreams = ", ".join("%s <- %s" % (key, value) for key, value in sorted(upstreams.items(), key=lambda kv: str(kv[0]))
                              if value)
        disk = report.get("disk_bytes") if isinstance(report.get("disk_bytes"), dict) else {}
        size = sum(value for value in disk.values() if _is_number(value))
        lines.append("%s: %s; disk %.1f MiB" % (node, upstreams or "no report from the node in this run",
                                                size / 1048576.0) if report else
                     "%s: no report from the node in this run" % node)
        for service, how in sorted(users.get(node, {}).items()):
            text = "  %s: uses it: %s" % (service, ", ".join(how.get("uses", [])) or "none")
            for label in ("fell back", "chose another"):
                if how.get(label):
                    text += "; %s: %s" % (label, ", ".join(how[label]))
            lines.append(text)
        if not users.get(node):
            lines.append("  no host in this report has it in its catalog")
    return lines
