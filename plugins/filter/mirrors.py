# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mirror selection filters: thin glue over plugins/module_utils/selection.py, probe_inputs.py and report.py.

Each filter is documented in plugins/filter/<name>.yml (ansible-doc -t filter gpulab.provision.<name>).
"""

from __future__ import annotations

from ansible_collections.gpulab.provision.plugins.module_utils import probe_inputs, report, selection
from ansible_collections.gpulab.provision.plugins.plugin_utils.filter_errors import named_filter


def pick_mirror(results, strategy="first_healthy", pin=None, max_latency_ms=None):
    return selection.pick_mirror(results, strategy=strategy, pin=pin, max_latency_ms=max_latency_ms)


def rank_mirrors(results, strategy="first_healthy", pin=None, max_latency_ms=None):
    return selection.rank_mirrors(results, strategy=strategy, pin=pin, max_latency_ms=max_latency_ms)


def mirror_selection(results, catalog_entries, policy=None, pin=None, previous=None):
    return selection.mirror_selection(results, catalog_entries, policy=policy, pin=pin, previous=previous)


def mirror_catalog_errors(mirrors, services=None, policy=None, pin=None, require=None):
    return selection.mirror_catalog_errors(mirrors, services, policy=policy, pin=pin, require=require)


def selection_urls(selected, mirrors):
    return selection.selection_urls(selected, mirrors)


def mirror_probe_args(service, entries, spec, policy=None, require=None):
    return probe_inputs.probe_args(service, entries, spec, policy=policy, require=require)


def mirror_report(hostvars, hosts=None, output="text"):
    if output == "text":
        return report.report_text(hostvars, hosts)
    if output == "data":
        return report.report_data(hostvars, hosts)
    raise ValueError("output %r is unknown; use text or data" % (output,))


class FilterModule:
    """gpulab.provision mirror selection filters."""

    def filters(self):
        return {
            name: named_filter(name, function)
            for name, function in (
                ("pick_mirror", pick_mirror),
                ("rank_mirrors", rank_mirrors),
                ("mirror_selection", mirror_selection),
                ("mirror_catalog_errors", mirror_catalog_errors),
                ("mirror_probe_args", mirror_probe_args),
                ("selection_urls", selection_urls),
                ("mirror_report", mirror_report),
            )
        }
