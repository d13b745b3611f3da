"""The example inventory loads with Ansible's own inventory code, and every host's effective
mirror variables (group order per site, host pins) pass the same validation mirror_select runs
before probing."""

from __future__ import annotations

import os

import pytest

from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.vars.manager import VariableManager

from ansible_collections.gpulab.provision.plugins.module_utils import selection
from ansible_collections.gpulab.provision.plugins.module_utils.catalog_layers import ADD_PREFIX, layer_catalog

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
EXAMPLE = os.path.join(ROOT, "inventories", "example")


@pytest.fixture(scope="module")
def host_vars():
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[EXAMPLE])
    manager = VariableManager(loader=loader, inventory=inventory)
    result = {}
    for host in inventory.get_hosts():
        hv = manager.get_vars(host=host)
        # what site.yml / failover.yml do before the probe: the layers and the order
        layers = {key: value for key, value in hv.items() if key.startswith(ADD_PREFIX)}
        hv["gpulab_mirrors"] = layer_catalog(hv["gpulab_mirrors"], layers, hv.get("gpulab_mirror_order"))
        result[host.name] = hv
    return result


def test_two_sites_and_hosts(host_vars):
    assert len(host_vars) >= 4
    groups = {name: set(v["group_names"]) for name, v in host_vars.items()}
    assert any("site_beijing" in g for g in groups.values())
    assert any("site_shanghai" in g for g in groups.values())


def test_every_host_catalog_is_valid(host_vars):
    for name, v in host_vars.items():
        errors = selection.mirror_catalog_errors(
            v["gpulab_mirrors"], v.get("gpulab_mirror_services"),
            policy=v.get("gpulab_mirror_policy"), pin=v.get("gpulab_mirror_pin"))
        assert errors == [], (name, errors)


def test_real_public_mirrors_are_https(host_vars):
    for v in host_vars.values():
        for service, entries in v["gpulab_mirrors"].items():
            for entry in entries:
                assert entry["url"].startswith("https://"), (service, entry)
                assert not entry.get("insecure"), (service, entry)


def test_sites_order_pypi_differently_and_one_host_is_pinned(host_vars):
    orders = {}
    for v in host_vars.values():
        site = [g for g in v["group_names"] if g.startswith("site_")][0]
        orders[site] = [m["name"] for m in v["gpulab_mirrors"]["pypi"]]
    assert orders["site_beijing"] != orders["site_shanghai"]
    assert orders["site_shanghai"][:2] == ["sjtu", "aliyun"]
    pinned = {n: v["gpulab_mirror_pin"] for n, v in host_vars.items() if v.get("gpulab_mirror_pin")}
    assert pinned.get("gpu-bj-02") == {"pypi": "aliyun"}
    for entry in host_vars["gpu-bj-02"]["gpulab_mirrors"]["pypi"]:
        if entry["name"] == "aliyun":
            break
    else:
        pytest.fail("gpu-bj-02 is pinned to aliyun, which its catalog lacks")
