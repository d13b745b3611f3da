# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registries other than docker.io that the lab cache nodes proxy, as each client's containerd sees them.

docker.io reaches the clients through the catalog (``cache_catalog``: the node's docker.io proxy is
the first ``docker`` mirror, probed by mirror_select like any other). A node also proxies ghcr.io,
nvcr.io, quay.io... (``cache_node_registries``); dockerd cannot mirror those (its
``registry-mirrors`` apply to docker.io only), containerd can: ``certs.d/<registry>/hosts.toml``
lists the nodes, then the registry itself. :func:`registry_hosts` gives, per such registry, a
selection-shaped mapping for the ``hosts_toml`` renderer (``module_utils/renderers.py``).

Health: a node whose docker.io proxy this host's probe rejected (in its ``docker`` selection) is
down for every registry it proxies and is left out (containerd would wait on it for every layer,
containerd #4861); without a docker selection every node is listed (containerd falls back to the
registry when one does not answer).
"""

from __future__ import annotations

from ansible_collections.gpulab.provision.plugins.module_utils.cache_catalog import (
    ENTRY_PREFIX,
    CacheNodeError,
    checked_nodes,
    node_endpoints,
)


def registry_hosts(nodes, host=None, use=True, docker_selection=None):
    """``{registry: {status, name, ranked: [{name, url, insecure}], left_out: [names]}}``.

    ``nodes``: ``[(hostname, node_vars), ...]`` in group order. ``host``: this host's inventory name
    (a cache node gets nothing: it pulls from the registries itself). ``use``: ``gpulab_cache_use``.
    ``docker_selection``: this host's ``gpulab_mirrors_selected.docker`` (or None).
    """
    if not isinstance(use, bool):
        raise CacheNodeError("gpulab_cache_use: %r must be true or false" % (use,))
    names = [hostname for hostname, _vars in nodes]
    if not use or host in names:
        return {}
    rejected = {item.get("name") for item in ((docker_selection or {}).get("rejected") or []) if isinstance(item, dict)}
    out = {}
    for hostname, settings in checked_nodes(nodes):
        entry_name = ENTRY_PREFIX + str(hostname)
        insecure = not bool(settings["tls_cert"])
        for registry, url in sorted((node_endpoints(settings).get("registries") or {}).items()):
            if registry == "docker.io":
                continue
            selection = out.setdefault(registry, {"status": "none", "name": None, "ranked": [], "left_out": []})
            if entry_name in rejected:
                selection["left_out"].append(entry_name)
                continue
            selection["ranked"].append({"name": entry_name, "url": url, "insecure": insecure})
            if selection["name"] is None:
                selection.update(status="ok", name=entry_name)
    return out
