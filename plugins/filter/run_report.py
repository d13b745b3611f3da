# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin filter glue for playbooks/report.yml: run_warnings (module_utils/report_warnings.py),
recorded_selection (module_utils/recorded_selection.py) and mirror_report_text (module_utils/report.py).
Docs: one .yml per filter beside this file."""

from __future__ import annotations

from ansible_collections.gpulab.provision.plugins.module_utils.recorded_selection import recorded_selection
from ansible_collections.gpulab.provision.plugins.module_utils.report import format_report
from ansible_collections.gpulab.provision.plugins.module_utils.report_warnings import run_warnings
from ansible_collections.gpulab.provision.plugins.plugin_utils.filter_errors import named_filter


def mirror_report_text(data):
    if not isinstance(data, dict):
        raise ValueError("mirror_report_text needs the report data (mirror_report(output='data')), a mapping")
    return format_report(data)


class FilterModule:
    """What the report adds to the run: its warnings, its table, and the recorded choice when run on its own."""

    def filters(self):
        return {"run_warnings": named_filter("run_warnings", run_warnings),
                "recorded_selection": named_filter("recorded_selection", recorded_selection),
                "mirror_report_text": named_filter("mirror_report_text", mirror_report_text)}
