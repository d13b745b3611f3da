# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin filter glue over module_utils/catalog_layers.py (doc: layer_catalog.yml beside this file)."""

from __future__ import annotations

from ansible_collections.gpulab.provision.plugins.module_utils.catalog_layers import layer_catalog
from ansible_collections.gpulab.provision.plugins.plugin_utils.filter_errors import named_filter


class FilterModule:
    """Add to or reorder the mirror catalog per group without copying it."""

    def filters(self):
        return {"layer_catalog": named_filter("layer_catalog", layer_catalog)}
