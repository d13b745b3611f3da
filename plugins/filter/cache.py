# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lab cache node filters: thin glue over plugins/module_utils/cache_catalog.py.

Each filter is documented in plugins/filter/<name>.yml (ansible-doc -t filter gpulab.provision.<name>).
"""

from __future__ import annotations

from ansible_collections.gpulab.provision.plugins.module_utils import cache_catalog as cc
from ansible_collections.gpulab.provision.plugins.plugin_utils.filter_errors import named_filter


def cache_catalog(catalog, hostvars, nodes=None, host=None, use=True, prefer=None):
    nodes = cc.prefer_nodes(list(nodes or []), prefer)
    return cc.cache_catalog(catalog, [(name, hostvars[name]) for name in nodes], host=host, use=use)


def cache_node_errors(node_vars, hostname):
    # the role's own check: its settings too (sizes, times, paths, upstreams), not only the endpoints'
    return cc.node_errors(cc.node_settings(node_vars, hostname, role=True))


def cache_node_registries(node_vars, hostname, docker_selected=None):
    return cc.registry_instances(cc.node_settings(node_vars, hostname), docker_selected)


def cache_node_endpoints(node_vars, hostname):
    settings = cc.node_settings(node_vars, hostname)
    errors = cc.node_errors(settings)
    if errors:
        raise cc.CacheNodeError("; ".join(errors))
    return cc.node_endpoints(settings)


def cache_node_upstream(url, variable="cache_node_conda_upstream"):
    return cc.http_upstream(url, variable)


class FilterModule:
    """gpulab.provision lab cache node filters."""

    def filters(self):
        return {
            name: named_filter(name, function)
            for name, function in (
                ("cache_catalog", cache_catalog),
                ("cache_node_errors", cache_node_errors),
                ("cache_node_registries", cache_node_registries),
                ("cache_node_endpoints", cache_node_endpoints),
                ("cache_node_upstream", cache_node_upstream),
            )
        }
