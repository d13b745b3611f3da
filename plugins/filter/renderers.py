# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin filter glue over module_utils/renderers.py (doc: render_client_config.yml beside this file)."""

from __future__ import annotations

from ansible_collections.gpulab.provision.plugins.module_utils.renderers import render_client_config
from ansible_collections.gpulab.provision.plugins.plugin_utils.filter_errors import named_filter


class FilterModule:
    """Render a client's configuration file from the mirror selection."""

    def filters(self):
        return {"render_client_config": named_filter("render_client_config", render_client_config)}
