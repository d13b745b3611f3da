# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin filter glue for playbooks/validate.yml: validate_gpu_health (module_utils/validate_health.py).
Docs: one .yml per filter beside this file."""

from __future__ import annotations

from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.gpulab.provision.plugins.module_utils.validate_health import validate_entry
from ansible_collections.gpulab.provision.plugins.plugin_utils.filter_errors import named_filter


def validate_gpu_health(health, skip_reason="", fail_on_warning=False):
    return validate_entry(health, skip_reason, boolean(fail_on_warning, strict=False))


class FilterModule:
    """validate.yml's gpu_health entry."""

    def filters(self):
        return {"validate_gpu_health": named_filter("validate_gpu_health", validate_gpu_health)}
