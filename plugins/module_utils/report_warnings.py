# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The warnings of a run, in one list: what a lab admin (or a cron job) must not miss.

Read from the report's data (``mirror_report(output='data')``, already masked): a service with no
healthy mirror (``none``), a kept choice (every mirror down), a pin that was not obeyed, every
``warnings`` entry of a role's report (a restart pending, an extra-index-url, ...), a lab cache node
that serves on itself but that every client rejected (clients then quietly use public mirrors), and
hosts that failed or were unreachable. Pure.
"""

from __future__ import annotations

from ansible_collections.gpulab.provision.plugins.module_utils.printable import one_line
from ansible_collections.gpulab.provision.plugins.module_utils.report import CACHE_PREFIX
from ansible_collections.gpulab.provision.plugins.module_utils.selection import mask_text

_STATUS_WORDS = {
    "none": "no healthy mirror, nothing kept",
    "kept": "every mirror down, the last good choice kept",
    "pin_unhealthy": "the pinned mirror is unhealthy, another was chosen",
}


def run_warnings(data, failed_hosts=None):
    """One line per warning, ``host: where: what``, hosts in order, then failed/unreachable hosts."""
    if not isinstance(data, dict):
        raise ValueError("run_warnings needs the report data (mirror_report(output='data')), a mapping")
    lines = []
    # Host, service and role names are text (a host 123 sorts beside web); every line stays one line.
    for host, entry in sorted(((str(host), entry) for host, entry in data.items()), key=lambda item: item[0]):
        entry = entry if isinstance(entry, dict) else {}
        selected = entry.get("mirrors_selected") if isinstance(entry.get("mirrors_selected"), dict) else {}
        for service, selection in sorted(selected.items(), key=lambda item: str(item[0])):
            selection = selection if isinstance(selection, dict) else {}
            status = selection.get("status")
            if isinstance(status, str) and status in _STATUS_WORDS:
                chosen = selection.get("name")
                suffix = " (%s)" % chosen if chosen else ""
                lines.append("%s: %s: %s%s" % (host, service, _STATUS_WORDS[status], suffix))
        reports = entry.get("reports") if isinstance(entry.get("reports"), dict) else {}
        for role, report in sorted(reports.items(), key=lambda item: str(item[0])):
            warnings = report.get("warnings") if isinstance(report, dict) else None
            if isinstance(warnings, str):
                warnings = [warnings]
            for warning in warnings if isinstance(warnings, (list, tuple)) else []:
                lines.append("%s: %s: %s" % (host, role, mask_text(str(warning))))
    lines.extend(_unused_cache_nodes(data))
    for host in sorted({str(host) for host in failed_hosts or []}):
        lines.append("%s: failed or unreachable: see the run above" % host)
    return [one_line(line) for line in lines]


def _unused_cache_nodes(data):
    """A line per cache node that served on itself in this run (its cache_node report is there: the
    role checked its services answer) but that no client found healthy while at least one rejected it:
    every client then uses a public mirror, silently. The usual cause is an advertised name the clients
    cannot resolve or reach (cache_node_advertise_address, default ansible_host, else the inventory name)."""
    lines = []
    hosts = {str(host): entry if isinstance(entry, dict) else {} for host, entry in data.items()}
    for node in sorted(hosts):
        reports = hosts[node].get("reports")
        if not (isinstance(reports, dict) and isinstance(reports.get("cache_node"), dict)):
            continue
        name = CACHE_PREFIX + node
        took, refused, reasons, urls = set(), set(), set(), set()
        for host, entry in hosts.items():
            if host == node:  # the node reaching itself (its own name in /etc/hosts) says nothing of the clients
                continue
            selected = entry.get("mirrors_selected") if isinstance(entry.get("mirrors_selected"), dict) else {}
            for selection in selected.values():
                selection = selection if isinstance(selection, dict) else {}
                ranked = [item for item in selection.get("ranked") or [] if isinstance(item, dict)]
                if selection.get("name") == name or any(item.get("name") == name for item in ranked):
                    took.add(host)
                for item in selection.get("rejected") or []:
                    if isinstance(item, dict) and item.get("name") == name:
                        refused.add(host)
                        reasons.add(mask_text(str(item.get("reason") or "unhealthy")))
                        if item.get("url_masked"):
                            urls.add(mask_text(str(item["url_masked"])))
        if refused and not took:
            lines.append(
                "%s: cache_node: serves on itself, but every client rejected it (%s: %s)%s, so they use public"
                " mirrors; set cache_node_advertise_address to a name or address the clients resolve and reach"
                % (node, ", ".join(sorted(refused)), "; ".join(sorted(reasons)),
                   "; they tried " + ", ".join(sorted(urls)) if urls else ""))
    return lines
