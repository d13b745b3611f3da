# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin filter glue over module_utils/proxy.py (docs: proxy_settings.yml, proxy_environment.yml)."""

from __future__ import annotations

from ansible_collections.gpulab.provision.plugins.module_utils.proxy import proxy_environment, proxy_settings
from ansible_collections.gpulab.provision.plugins.plugin_utils.filter_errors import named_filter


def _environment(gpulab_proxy, mirrors=None, extra_direct=()):
    return proxy_environment(proxy_settings(gpulab_proxy, mirrors, extra_direct))


class FilterModule:
    """The lab's outbound proxy for the probe and the clients."""

    def filters(self):
        return {"proxy_settings": named_filter("proxy_settings", proxy_settings),
                "proxy_environment": named_filter("proxy_environment", _environment)}
