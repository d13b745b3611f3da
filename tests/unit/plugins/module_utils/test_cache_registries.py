# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""cache_registries: the registries besides docker.io that cache nodes proxy, for containerd."""
from __future__ import annotations

import pytest

from ansible_collections.gpulab.provision.plugins.module_utils.cache_catalog import CacheNodeError
from ansible_collections.gpulab.provision.plugins.module_utils.cache_registries import registry_hosts
from ansible_collections.gpulab.provision.plugins.module_utils.renderers import render_client_config

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None

REGS = [{"name": "docker.io", "port": 5000}, {"name": "ghcr.io", "port": 5001}, {"name": "nvcr.io", "port": 5002}]
NODES = [("node1", {"cache_node_registries": REGS, "ansible_host": "127.0.40.10"}),
         ("node2", {"cache_node_registries": REGS[:2], "ansible_host": "127.0.40.11",
                    "cache_node_tls_cert": "/etc/ssl/c.pem", "cache_node_tls_key": "/etc/ssl/c.key"})]


def test_each_registry_lists_its_nodes_in_group_order_without_docker_io():
    out = registry_hosts(NODES, host="gpu1")
    assert sorted(out) == ["ghcr.io", "nvcr.io"]
    assert out["ghcr.io"]["ranked"] == [
        {"name": "cache-node1", "url": "http://127.0.40.10:5001", "insecure": True},
        {"name": "cache-node2", "url": "https://127.0.40.11:5001", "insecure": False}]
    assert out["nvcr.io"]["status"] == "ok" and out["nvcr.io"]["name"] == "cache-node1"


def test_a_node_the_docker_probe_rejected_is_left_out_everywhere():
    docker = {"status": "ok", "name": "cache-node2", "rejected": [{"name": "cache-node1", "reason": "refused"}]}
    out = registry_hosts(NODES, host="gpu1", docker_selection=docker)
    assert [e["name"] for e in out["ghcr.io"]["ranked"]] == ["cache-node2"]
    assert out["nvcr.io"] == {"status": "none", "name": None, "ranked": [], "left_out": ["cache-node1"]}


def test_cache_nodes_and_opted_out_hosts_get_nothing():
    assert registry_hosts(NODES, host="node1") == {}
    assert registry_hosts(NODES, host="gpu1", use=False) == {}
    with pytest.raises(CacheNodeError, match="gpulab_cache_use"):
        registry_hosts(NODES, host="gpu1", use="no")


def test_a_bad_node_is_named():
    with pytest.raises(CacheNodeError, match="cache node bad: cache_node_registries"):
        registry_hosts([("bad", {"cache_node_registries": [{"name": "not a host", "port": 5001}]})], host="gpu1")


def test_the_renderer_writes_the_nodes_then_the_registry_and_the_server_alone_when_none_is_left():
    out = registry_hosts(NODES, host="gpu1")
    text = render_client_config("", "hosts_toml", out["ghcr.io"], {"registry": "ghcr.io"})["content"]
    assert 'server = "https://ghcr.io"' in text
    if tomllib:
        data = tomllib.loads(text)
        assert list(data["host"]) == ["http://127.0.40.10:5001", "https://127.0.40.11:5001"]
        assert data["host"]["http://127.0.40.10:5001"]["skip_verify"] is True
    empty = render_client_config(text, "hosts_toml", {"status": "none", "ranked": []}, {"registry": "ghcr.io"})
    assert empty["changed"] and "[host." not in empty["content"] and 'server = "https://ghcr.io"' in empty["content"]


def test_the_renderer_refuses_a_registry_that_is_not_a_host_name():
    with pytest.raises(Exception, match="is not a registry host name"):
        render_client_config("", "hosts_toml", {"status": "ok", "ranked": []}, {"registry": "../etc"})
