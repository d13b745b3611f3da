# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Specification of the lab cache node catalog (plugins/module_utils/cache_catalog.py)."""

from __future__ import annotations

import os

import pytest
import yaml

from ansible_collections.gpulab.provision.plugins.module_utils.cache_catalog import (
    DEFAULTS,
    CacheNodeError,
    cache_catalog,
    node_endpoints,
    node_errors,
    node_settings,
    registry_instances,
)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
CATALOG = {
    "pypi": [{"name": "tuna", "url": "https://pypi.tuna.tsinghua.edu.cn/simple"}],
    "conda": [{"name": "tuna", "url": "https://mirrors.tuna.tsinghua.edu.cn/anaconda"}],
    "docker": [{"name": "daocloud", "url": "https://docker.m.daocloud.io"}],
}
NODE = {"ansible_host": "10.0.0.5"}


def errors_for(**overrides):
    return node_errors(node_settings({"cache_node_" + k: v for k, v in overrides.items()}, "cache1"))


def test_role_defaults_match_the_defaults_clients_assume():
    with open(os.path.join(ROOT, "roles", "cache_node", "defaults", "main.yml")) as handle:
        role = yaml.safe_load(handle)
    assert {key: role["cache_node_" + key] for key in DEFAULTS} == DEFAULTS


def test_client_gets_every_node_first_for_each_service():
    out = cache_catalog(CATALOG, [("cache1", NODE), ("cache2", {"ansible_host": "10.0.0.6"})], host="gpu1")
    assert [e["name"] for e in out["pypi"]] == ["cache-cache1", "cache-cache2", "tuna"]
    assert out["pypi"][0] == {"name": "cache-cache1", "url": "http://10.0.0.5:3141/root/pypi/+simple", "insecure": True,
                              "proxy": False}
    assert out["conda"][0]["url"] == "http://10.0.0.5:8088"
    assert out["docker"][0]["url"] == "http://10.0.0.5:5000"


def test_catalog_input_is_not_modified():
    before = yaml.safe_dump(CATALOG)
    cache_catalog(CATALOG, [("cache1", NODE)], host="gpu1")
    assert yaml.safe_dump(CATALOG) == before


def test_applying_twice_changes_nothing_more():
    once = cache_catalog(CATALOG, [("cache1", NODE)], host="gpu1")
    assert cache_catalog(once, [("cache1", NODE)], host="gpu1") == once


def test_cache_node_keeps_its_public_catalog():
    assert cache_catalog(CATALOG, [("cache1", NODE)], host="cache1") == CATALOG


def test_opt_out_keeps_the_catalog():
    assert cache_catalog(CATALOG, [("cache1", NODE)], host="gpu1", use=False) == CATALOG


def test_opt_out_must_be_a_boolean():
    with pytest.raises(CacheNodeError, match="gpulab_cache_use"):
        cache_catalog(CATALOG, [("cache1", NODE)], host="gpu1", use="no")


def test_no_cache_nodes_keeps_the_catalog():
    assert cache_catalog(CATALOG, [], host="gpu1") == CATALOG


def test_services_the_client_has_no_catalog_for_are_not_added():
    out = cache_catalog({"pypi": CATALOG["pypi"]}, [("cache1", NODE)], host="gpu1")
    assert set(out) == {"pypi"}


def test_services_the_node_does_not_serve_are_not_prepended():
    node = dict(NODE, cache_node_services=["pypi"])
    out = cache_catalog(CATALOG, [("cache1", node)], host="gpu1")
    assert out["conda"] == CATALOG["conda"] and out["docker"] == CATALOG["docker"]


def test_tls_gives_https_entries_that_are_not_insecure():
    node = dict(NODE, cache_node_tls_cert="/etc/ssl/c.pem", cache_node_tls_key="/etc/ssl/c.key")
    entry = cache_catalog(CATALOG, [("cache1", node)], host="gpu1")["pypi"][0]
    assert entry["url"].startswith("https://") and entry["insecure"] is False


def test_specific_listen_address_is_advertised():
    node = {"cache_node_listen_address": "127.0.40.10"}
    assert node_endpoints(node_settings(node, "c"))["pypi"]["url"] == "http://127.0.40.10:3141/root/pypi/+simple"


def test_advertise_address_wins_over_listen_address():
    node = {"cache_node_listen_address": "0.0.0.0", "cache_node_advertise_address": "cache.lab.example"}
    assert node_endpoints(node_settings(node, "c"))["conda"]["url"] == "http://cache.lab.example:8088"


def test_ipv6_address_is_bracketed():
    node = {"cache_node_advertise_address": "fd00::5"}
    assert node_endpoints(node_settings(node, "c"))["docker"]["url"] == "http://[fd00::5]:5000"


def test_inventory_name_is_used_without_ansible_host():
    assert node_endpoints(node_settings({}, "cache1.lab"))["docker"]["url"] == "http://cache1.lab:5000"


def test_every_registry_is_listed_but_only_docker_io_is_the_docker_entry():
    node = {"cache_node_registries": [{"name": "ghcr.io", "port": 5001}, {"name": "docker.io", "port": 5000}]}
    endpoints = node_endpoints(node_settings(node, "c"))
    assert endpoints["registries"] == {"ghcr.io": "http://c:5001", "docker.io": "http://c:5000"}
    assert endpoints["docker"]["url"] == "http://c:5000"


def test_bad_node_fails_the_client_naming_node_and_variable():
    with pytest.raises(CacheNodeError, match="cache node cache1: .*cache_node_pypi_port"):
        cache_catalog(CATALOG, [("cache1", {"cache_node_pypi_port": 5000})], host="gpu1")


def test_defaults_have_no_errors():
    assert errors_for() == []


def test_port_collision_names_both_variables():
    errors = errors_for(conda_port=5000)
    assert errors == ["port collision: cache_node_conda_port and cache_node_registries[0].port all use port 5000;"
                      " give each service its own port"]


def test_port_of_a_service_not_served_does_not_collide():
    assert errors_for(services=["pypi", "docker"], conda_port=5000) == []


def test_registry_name_must_be_a_host_name():
    errors = errors_for(registries=[{"name": "my registry", "port": 5001}])
    assert errors == ["cache_node_registries[0].name: 'my registry' is not a registry host name"
                      " (e.g. docker.io, ghcr.io, nvcr.io)"]


def test_registry_name_with_a_scheme_is_refused():
    assert "cache_node_registries[0].name" in errors_for(registries=[{"name": "https://ghcr.io", "port": 5001}])[0]


def test_registry_listed_twice_is_refused():
    regs = [{"name": "ghcr.io", "port": 5001}, {"name": "ghcr.io", "port": 5002}]
    assert errors_for(registries=regs) == ["cache_node_registries[1].name: 'ghcr.io' is listed twice"]


def test_docker_io_upstream_with_a_path_is_refused():
    errors = errors_for(registries=[{"name": "docker.io", "port": 5000, "upstream": "https://mirror.example/v2/hub"}])
    assert len(errors) == 1
    assert errors[0].startswith("cache_node_registries[name=docker.io].upstream:")
    assert "no path" in errors[0]


def test_unknown_service_is_refused():
    assert errors_for(services=["pypi", "apt"])[0].startswith("cache_node_services:")


def test_port_out_of_range_is_refused():
    assert errors_for(pypi_port=70000) == ["cache_node_pypi_port: 70000 is not a TCP port (1-65535)"]


def test_tls_cert_without_key_is_refused():
    assert errors_for(tls_cert="/etc/c.pem")[0].startswith("cache_node_tls_cert and cache_node_tls_key")


def test_bad_listen_address_is_refused():
    assert errors_for(listen_address="not an address")[0].startswith("cache_node_listen_address:")


def test_docker_io_upstream_is_the_nodes_chosen_hub_mirror():
    regs = registry_instances(node_settings({}, "c"), {"url": "https://docker.m.daocloud.io/", "status": "ok"})
    assert regs == [{"name": "docker.io", "slug": "docker-io", "port": 5000, "upstream": "https://docker.m.daocloud.io",
                     "username": None, "password": None, "unit": "gpulab-cache-registry-docker-io.service",
                     "origin": "https://docker.m.daocloud.io", "host_header": "docker.m.daocloud.io",
                     "tls_name": "docker.m.daocloud.io",
                     "cache_port": 5100, "cache_listen": "127.0.0.1:5100", "remote": "http://127.0.0.1:5100"}]


def test_docker_io_upstream_is_docker_hub_when_nothing_was_chosen():
    regs = registry_instances(node_settings({}, "c"), {"status": "none", "url": None})
    assert regs[0]["upstream"] == "https://registry-1.docker.io"


def test_explicit_upstream_wins_and_credentials_are_split_off():
    node = {"cache_node_registries": [{"name": "nvcr.io", "port": 5003, "upstream": "https://u:p%40ss@nvcr.io"}]}
    reg = registry_instances(node_settings(node, "c"))[0]
    assert (reg["upstream"], reg["username"], reg["password"]) == ("https://nvcr.io", "u", "p@ss")


def test_other_registries_default_to_their_own_host():
    node = {"cache_node_registries": [{"name": "quay.io", "port": 5004}]}
    assert registry_instances(node_settings(node, "c"))[0]["upstream"] == "https://quay.io"


def test_chosen_hub_mirror_with_a_path_fails_naming_the_fact():
    with pytest.raises(CacheNodeError, match="gpulab_mirrors_selected.docker.url"):
        registry_instances(node_settings({}, "c"), {"url": "https://mirror.example/hub"})


def test_no_registries_without_the_docker_service():
    assert registry_instances(node_settings({"cache_node_services": ["pypi"]}, "c")) == []


def test_http_upstream_splits_origin_and_base_path():
    from ansible_collections.gpulab.provision.plugins.module_utils.cache_catalog import http_upstream
    assert http_upstream("https://mirrors.tuna.tsinghua.edu.cn/anaconda/") == {
        "origin": "https://mirrors.tuna.tsinghua.edu.cn", "path": "/anaconda",
        "host_header": "mirrors.tuna.tsinghua.edu.cn", "authorization": None}


def test_http_upstream_keeps_a_non_default_port_and_makes_basic_auth():
    from ansible_collections.gpulab.provision.plugins.module_utils.cache_catalog import http_upstream
    out = http_upstream("http://u:pw@127.0.40.3:8080/anaconda")
    assert out["origin"] == "http://127.0.40.3:8080" and out["host_header"] == "127.0.40.3:8080"
    assert out["authorization"] == "Basic dTpwdw=="


def test_http_upstream_error_names_the_variable():
    from ansible_collections.gpulab.provision.plugins.module_utils.cache_catalog import http_upstream
    with pytest.raises(CacheNodeError, match="^cache_node_conda_upstream: "):
        http_upstream("ftp://mirror.example/conda")


# The blob cache: nginx between each registry proxy and its upstream (distribution 2.8's proxy
# fetches a blob it lacks twice; nginx's proxy_cache_lock makes that one upstream fetch).
def test_registry_proxy_is_given_its_blob_cache_as_remote():
    node = {"cache_node_registries": [{"name": "nvcr.io", "port": 5003, "upstream": "https://u:pw@nvcr.io:8443"}],
            "cache_node_registry_blob_cache_address": "127.0.40.10"}
    reg = registry_instances(node_settings(node, "c"))[0]
    assert (reg["remote"], reg["cache_port"], reg["cache_listen"]) == ("http://127.0.40.10:5103", 5103, "127.0.40.10:5103")
    assert (reg["origin"], reg["host_header"], reg["tls_name"]) == ("https://nvcr.io:8443", "nvcr.io:8443", "nvcr.io")
    assert "pw" not in reg["origin"] + reg["remote"] + reg["host_header"]


def test_blob_cache_off_gives_the_upstream_itself():
    node = {"cache_node_registry_blob_cache": False}
    reg = registry_instances(node_settings(node, "c"))[0]
    assert (reg["remote"], reg["cache_port"], reg["cache_listen"]) == ("https://registry-1.docker.io", None, None)
    assert errors_for(registry_blob_cache=False, registries=[{"name": "docker.io", "port": 5000, "cache_port": 3141}]) == []


def test_explicit_cache_port_and_ipv6_address():
    node = {"cache_node_registries": [{"name": "ghcr.io", "port": 5001, "cache_port": 6001}],
            "cache_node_registry_blob_cache_address": "::1"}
    reg = registry_instances(node_settings(node, "c"))[0]
    assert (reg["remote"], reg["cache_listen"]) == ("http://[::1]:6001", "[::1]:6001")


def test_blob_cache_port_collides_with_another_service():
    errors = errors_for(registries=[{"name": "docker.io", "port": 8000}], conda_port=8100)
    assert errors == ["port collision: cache_node_conda_port and cache_node_registries[0].cache_port all use port 8100;"
                      " give each service its own port"]


def test_blob_cache_port_out_of_range():
    assert errors_for(registries=[{"name": "docker.io", "port": 65500}]) == [
        "cache_node_registries[0].cache_port: 65600 is not a TCP port (1-65535)"]
    assert errors_for(registries=[{"name": "docker.io", "port": 5000, "cache_port": "x"}]) == [
        "cache_node_registries[0].cache_port: 'x' is not a TCP port (1-65535)"]


def test_bad_port_is_reported_once_not_again_for_its_cache_port():
    assert errors_for(registries=[{"name": "docker.io", "port": "5000"}]) == [
        "cache_node_registries[0].port: '5000' is not a TCP port (1-65535)"]


def test_blob_cache_address_must_be_one_ip_address():
    for bad in ("0.0.0.0", "localhost", "", 5):
        errors = errors_for(registry_blob_cache_address=bad)
        assert len(errors) == 1 and errors[0].startswith("cache_node_registry_blob_cache_address: "), bad
    assert errors_for(registry_blob_cache_address="localhost", services=["pypi"]) == []
    assert errors_for(registry_blob_cache="yes")[0].startswith("cache_node_registry_blob_cache: 'yes' must be true or false")
