# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter cache_registry_hosts: thin glue over plugins/module_utils/cache_registries.py.

Documented in plugins/filter/cache_registry_hosts.yml (ansible-doc -t filter gpulab.provision.cache_registry_hosts).
"""

from __future__ import annotations

from ansible_collections.gpulab.provision.plugins.module_utils.cache_registries import registry_hosts
from ansible_collections.gpulab.provision.plugins.plugin_utils.filter_errors import named_filter


def cache_registry_hosts(hostvars, nodes=None, host=None, use=True, docker_selection=None):
    nodes = list(nodes or [])
    return registry_hosts([(name, hostvars[name]) for name in nodes], host=host, use=use,
                          docker_selection=docker_selection or None)


class FilterModule:
    """gpulab.provision: the lab cache nodes' registries for containerd."""

    def filters(self):
        return {"cache_registry_hosts": named_filter("cache_registry_hosts", cache_registry_hosts)}
