# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cache node filters are thin glue: right names, same answers, errors name the filter."""

from __future__ import annotations

import os

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.gpulab.provision.plugins.filter.cache import FilterModule

FILTERS = FilterModule().filters()
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
CATALOG = {"pypi": [{"name": "tuna", "url": "https://pypi.tuna.tsinghua.edu.cn/simple"}]}


def test_every_filter_is_exported_and_documented():
    assert set(FILTERS) == {"cache_catalog", "cache_node_errors", "cache_node_registries", "cache_node_endpoints",
                            "cache_node_upstream"}
    for name in FILTERS:
        assert os.path.exists(os.path.join(ROOT, "plugins", "filter", name + ".yml")), name


def test_cache_catalog_reads_the_nodes_from_hostvars():
    hostvars = {"cache1": {"ansible_host": "10.0.0.5"}, "gpu1": {}}
    out = FILTERS["cache_catalog"](CATALOG, hostvars, ["cache1"], "gpu1")
    assert [e["name"] for e in out["pypi"]] == ["cache-cache1", "tuna"]


def test_errors_name_the_filter():
    with pytest.raises(AnsibleFilterError, match="^gpulab.provision.cache_catalog: cache node cache1"):
        FILTERS["cache_catalog"](CATALOG, {"cache1": {"cache_node_pypi_port": 0}}, ["cache1"], "gpu1")


def test_node_errors_are_a_list():
    assert FILTERS["cache_node_errors"]({"cache_node_conda_port": 3141}, "c") != []


def test_endpoints_refuse_bad_settings():
    with pytest.raises(AnsibleFilterError, match="cache_node_endpoints"):
        FILTERS["cache_node_endpoints"]({"cache_node_services": ["ftp"]}, "c")


def test_registries_take_the_chosen_hub_mirror():
    regs = FILTERS["cache_node_registries"]({}, "c", {"url": "http://127.0.40.7:5000"})
    assert regs[0]["upstream"] == "http://127.0.40.7:5000"


def test_node_errors_check_the_role_settings_too():
    # the role's check covers what reaches nginx.conf (a max_size once added a server block)
    errors = FILTERS["cache_node_errors"]({"cache_node_conda_max_size": "1g; } server { listen 8080; #",
                                           "cache_node_pypi_upstream": "pypi.example/simple"}, "c")
    assert [e.split(":")[0] for e in errors] == ["cache_node_conda_max_size", "cache_node_pypi_upstream"]
    # a client reading the node's host variables for its endpoints does not check them
    out = FILTERS["cache_catalog"](CATALOG, {"cache1": {"cache_node_conda_max_size": "x y"}}, ["cache1"], "gpu1")
    assert out["pypi"][0]["name"] == "cache-cache1"


def test_cache_catalog_takes_the_hosts_preference():
    hostvars = {"bj": {"ansible_host": "10.1.0.5"}, "sh": {"ansible_host": "10.2.0.5"}}
    out = FILTERS["cache_catalog"]({"pypi": []}, hostvars, ["bj", "sh"], "gpu1", True, ["sh"])
    assert [entry["name"] for entry in out["pypi"]] == ["cache-sh", "cache-bj"]
    with pytest.raises(AnsibleFilterError, match="gpulab.provision.cache_catalog: gpulab_cache_prefer: 'gz' not in"):
        FILTERS["cache_catalog"]({"pypi": []}, hostvars, ["bj", "sh"], "gpu1", True, ["gz"])
