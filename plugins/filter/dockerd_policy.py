# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin filter glue over module_utils/dockerd_policy.py (doc: dockerd_action.yml beside this file)."""

from __future__ import annotations

from ansible_collections.gpulab.provision.plugins.module_utils.dockerd_policy import dockerd_action
from ansible_collections.gpulab.provision.plugins.plugin_utils.filter_errors import named_filter


class FilterModule:
    """How a change reaches dockerd."""

    def filters(self):
        return {"dockerd_action": named_filter("dockerd_action", dockerd_action)}
