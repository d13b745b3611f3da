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
    ROLE_DEFAULTS,
    CacheNodeError,
    cache_catalog,
    checked_nodes,
    prefer_nodes,
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


def test_registry_name_with_a_trailing_newline_is_refused():
    # it becomes the unit's name, a file name and an nginx comment; re's '$' matched before the newline
    assert errors_for(registries=[{"name": "ghcr.io\n", "port": 5001}])[0].startswith("cache_node_registries[0].name:")


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


# Every value that reaches a service's configuration file (nginx.conf, devpi's unit, the registries'
# config.yml) is checked by type and pattern before the role writes anything.
# The hostile value that once added a server block serving / with autoindex to nginx.conf:
INJECT = "1g; } server { listen 8080; location / { autoindex on; } #"
ROLE_KEYS = sorted(ROLE_DEFAULTS)


def role_errors_for(**overrides):
    return node_errors(node_settings({"cache_node_" + k: v for k, v in overrides.items()}, "cache1", role=True))


def only_error(key, **overrides):
    errors = role_errors_for(**overrides)
    assert len(errors) == 1, errors
    assert errors[0].startswith("cache_node_%s: " % key), errors
    return errors[0]


def test_every_role_variable_is_a_checked_setting():
    with open(os.path.join(ROOT, "roles", "cache_node", "defaults", "main.yml")) as handle:
        role = yaml.safe_load(handle)
    assert set(role) == {"cache_node_" + key for key in list(DEFAULTS) + ROLE_KEYS}
    assert {key: role["cache_node_" + key] for key in ROLE_DEFAULTS} == ROLE_DEFAULTS
    with open(os.path.join(ROOT, "roles", "cache_node", "vars", "main.yml")) as handle:
        passed = yaml.safe_load(handle)["_cache_node_vars"]
    assert set(passed) == set(role) | {"ansible_host", "gpulab_metrics_dir"}
    with open(os.path.join(ROOT, "roles", "cache_node", "meta", "argument_specs.yml")) as handle:
        spec = yaml.safe_load(handle)["argument_specs"]["main"]["options"]
    assert set(spec) == set(role)


def test_role_defaults_have_no_errors():
    assert role_errors_for() == []


def test_clients_neither_fill_nor_check_the_role_only_settings():
    settings = node_settings({"cache_node_conda_max_size": INJECT}, "cache1")
    assert "conda_max_size" not in settings and node_errors(settings) == []


@pytest.mark.parametrize("key", ["pypi_fetch_max_size", "conda_max_size", "registry_blob_max_size"])
@pytest.mark.parametrize("value", [INJECT, "1g\nserver", "50 g", "50gb", "-1g", "", "1g;", "50g #", True, None.__class__])
def test_sizes_are_nginx_sizes(key, value):
    if value is None.__class__:
        value = ["50g"]
    assert "is not an nginx size" in only_error(key, **{key: value})


@pytest.mark.parametrize("value", ["50g", "1024", "512m", "8K", 1024, 0])
def test_good_sizes(value):
    assert role_errors_for(pypi_fetch_max_size=value, conda_max_size=value, registry_blob_max_size=value) == []


TIMES = ["pypi_page_valid", "conda_repodata_valid", "conda_package_valid", "conda_inactive", "registry_blob_inactive",
         "registry_blob_lock_timeout"]


@pytest.mark.parametrize("key", TIMES)
@pytest.mark.parametrize("value", [INJECT, "10m\n", "10 m", "10min", "1h30m;", "", "$ttl", False, 1.5])
def test_times_are_nginx_times(key, value):
    assert "is not an nginx time" in only_error(key, **{key: value})


@pytest.mark.parametrize("value", ["10m", "365d", "1h", "30", "2w", "1M", "1y", 600])
def test_good_times(value):
    assert role_errors_for(**{key: value for key in TIMES}) == []


PATHS = ["data_dir", "devpi_venv", "registry_ca_file", "tls_cert", "tls_key"]


@pytest.mark.parametrize("key", PATHS)
@pytest.mark.parametrize("value", [INJECT, "/var/lib/x;", "/var/lib/x\nserver {", "relative/dir", "/var/lib/a b",
                                   '/var/"x"', "/var/{x}", "/var/$x", "/var/%h", "/var/x #c", 5])
def test_paths_are_absolute_and_free_of_syntax(key, value):
    overrides = {key: value}
    if key.startswith("tls_"):  # both or neither
        overrides.update({("tls_key" if key == "tls_cert" else "tls_cert"): "/etc/ssl/lab/other.pem"})
    assert "is not an absolute path" in only_error(key, **overrides)


def test_good_paths():
    assert role_errors_for(data_dir="/srv/cache-1/gpulab_data", devpi_venv="/opt/venvs/devpi+6.2",
                           registry_ca_file="/etc/ssl/certs/lab-ca@2026.crt",
                           tls_cert="/etc/ssl/lab/cache-01.pem", tls_key="/etc/ssl/lab/cache-01.key") == []


@pytest.mark.parametrize("key", ["pypi_upstream", "conda_upstream"])
@pytest.mark.parametrize("value, message", [
    ("pypi.example/simple", "scheme must be http or https, not missing"),
    ("mirror.example", "scheme must be http or https, not missing"),
    ("ftp://mirror.example/simple", "scheme must be http or https, not 'ftp'"),
    ("file:///srv/mirror", "scheme must be http or https, not 'file'"),
    ("https://", "has no host"),
    ("https://mirror.example/simple\n", "a control character"),
    ("https://mirror.example/a b", "a space"),
    ('https://mirror.example/"x"', "the character '\"'"),
    ("https://mirror.example/x?token=1", "query string"),
    (INJECT, "a space"),
    (5, "must be"),
])
def test_upstreams_are_http_urls(key, value, message):
    assert message in only_error(key, **{key: value})


def test_conda_upstream_path_cannot_carry_nginx_syntax():
    assert "percent-encode it as %3B" in only_error("conda_upstream", conda_upstream="https://m.example/a;autoindex")
    assert "percent-encode it as %24" in only_error("conda_upstream", conda_upstream="https://m.example/$host/x")
    assert role_errors_for(conda_upstream="https://m.example/a%3Bb") == []


def test_good_upstreams_and_credentials_never_shown():
    assert role_errors_for(pypi_upstream="https://u:pw@pypi.example/simple/", conda_upstream="http://127.0.40.2:8080/x") == []
    error = only_error("pypi_upstream", pypi_upstream="ftp://u:s3cret@pypi.example/simple")
    assert "s3cret" not in error


@pytest.mark.parametrize("value", [0, 70000, -1, "abc", "3140", True, 3.5])
def test_backend_port_is_a_port(value):
    assert "is not a TCP port (1-65535)" in only_error("pypi_backend_port", pypi_backend_port=value)


@pytest.mark.parametrize("tls", [{}, {"tls_cert": "/etc/ssl/c.pem", "tls_key": "/etc/ssl/c.key"}])
def test_backend_port_collides_with_any_other_port(tls):
    # devpi always listens behind nginx, with or without TLS: its port is one of the node's
    assert role_errors_for(pypi_backend_port=5000, **tls) == [
        "port collision: cache_node_pypi_backend_port and cache_node_registries[0].port all use port 5000;"
        " give each service its own port"]
    assert "cache_node_pypi_backend_port and cache_node_registries[0].cache_port" in role_errors_for(
        pypi_backend_port=5100, **tls)[0]
    assert "cache_node_pypi_port and cache_node_pypi_backend_port" in role_errors_for(pypi_backend_port=3141, **tls)[0]
    # without pypi on the node, devpi takes no port
    assert role_errors_for(pypi_backend_port=5000, services=["docker"], **tls) == []


@pytest.mark.parametrize("key, lowest", [("pypi_cache_expiry_s", 0), ("registry_recheck_s", 1)])
@pytest.mark.parametrize("value", [-1, 2 ** 31, "abc", "60", "60; rm -rf /", True, 1.5])
def test_seconds_are_whole_numbers(key, lowest, value):
    assert "is not a whole number of seconds (%d-" % lowest in only_error(key, **{key: value})


def test_recheck_of_zero_is_refused_expiry_of_zero_is_not():
    assert "registry_recheck_s" in only_error("registry_recheck_s", registry_recheck_s=0)
    assert role_errors_for(pypi_cache_expiry_s=0) == []


@pytest.mark.parametrize("value", [[], "devpi-server", ["--index-url=http://evil.example"], [""], ["devpi\nx"], [5]])
def test_devpi_packages_are_requirements(value):
    assert "cache_node_devpi_packages" in only_error("devpi_packages", devpi_packages=value)


def test_good_devpi_packages_and_wheelhouse():
    assert role_errors_for(devpi_packages=["devpi-server==6.20.3", "devpi-web >= 4"], wheelhouse="../build/wheels") == []
    assert "cache_node_wheelhouse" in only_error("wheelhouse", wheelhouse="/tmp/w\nx")
    assert "cache_node_wheelhouse" in only_error("wheelhouse", wheelhouse=["/tmp/w"])


@pytest.mark.parametrize("key", ["listen_address", "advertise_address", "registry_blob_cache_address"])
@pytest.mark.parametrize("value", [INJECT, "127.0.0.1;", "cache\n.lab", "cache.lab\n", "127.0.0.1\n", "a b", 5])
def test_addresses_are_addresses(key, value):
    assert only_error(key, **{key: value})


def test_empty_listen_address_is_refused():
    assert "use 0.0.0.0" in only_error("listen_address", listen_address="")


@pytest.mark.parametrize("key", ["pypi_port", "conda_port"])
@pytest.mark.parametrize("value", [0, 70000, "abc", True])
def test_service_ports_are_ports(key, value):
    assert "is not a TCP port (1-65535)" in only_error(key, **{key: value})


def test_every_problem_is_reported_at_once():
    errors = role_errors_for(conda_max_size=INJECT, pypi_upstream="pypi.example/simple", conda_port=0,
                             registry_blob_inactive="30d\n")
    assert [e.split(":")[0] for e in errors] == [
        "cache_node_conda_max_size", "cache_node_registry_blob_inactive", "cache_node_pypi_upstream", "cache_node_conda_port"]


@pytest.mark.parametrize("key", ["pypi_upstream", "conda_upstream"])
def test_an_unparsable_upstream_is_an_error_not_a_traceback(key):
    assert "does not parse" in only_error(key, **{key: "http://u:pw@[::1"})


# The metrics timer's interval and the registries' debug servers (gpulab-cache-metrics reads their counts).
def metrics_errors(metrics_dir="/var/lib/prometheus/node-exporter", **overrides):
    node_vars = {"cache_node_" + k: v for k, v in overrides.items()}
    node_vars["gpulab_metrics_dir"] = metrics_dir
    return node_errors(node_settings(node_vars, "cache1", role=True))


@pytest.mark.parametrize("value", ["30s", "1min", "5min", "2h", "90"])
def test_metrics_interval_takes_systemd_spans(value):
    assert metrics_errors(metrics_interval=value) == []


@pytest.mark.parametrize("value", ["1 min", "1min\nExecStart=/bin/sh", "", "5minutes", "-1s", 60, True])
def test_metrics_interval_is_checked(value):
    errors = metrics_errors(metrics_interval=value)
    assert len(errors) == 1 and errors[0].startswith("cache_node_metrics_interval: ") and "1min" in errors[0], errors


@pytest.mark.parametrize("value", [0, 65536, "5001", True, None.__class__])
def test_registry_metrics_port_is_a_port(value):
    if value is None.__class__:
        value = [5001]
    errors = metrics_errors(registry_metrics_port=value)
    assert len(errors) == 1 and errors[0].startswith("cache_node_registry_metrics_port: "), errors


def test_each_registry_takes_one_debug_port_above_the_base():
    two = [{"name": "docker.io", "port": 5000}, {"name": "ghcr.io", "port": 5201}]
    errors = metrics_errors(registries=two)  # ghcr.io's 5201 is its own debug port (5200 + 1)
    assert len(errors) == 1 and errors[0].startswith("port collision: ") and "5201" in errors[0], errors
    assert "cache_node_registry_metrics_port" in errors[0] and "cache_node_registries[1].port" in errors[0]
    assert metrics_errors(registries=two, registry_metrics_port=5400) == []
    # the last debug port must exist: 65535 + one more registry is past the range
    assert metrics_errors(registries=two, registry_metrics_port=65535)[0].startswith(
        "cache_node_registry_metrics_port: 65535 ")


def test_a_debug_port_meets_a_default_blob_cache_port():
    # docker.io's blob cache listens on 5000 + 100 by default
    errors = metrics_errors(registry_metrics_port=5100)
    assert len(errors) == 1 and "5100" in errors[0] and "cache_node_registries[0].cache_port" in errors[0], errors


def test_with_metrics_off_the_debug_servers_take_no_port():
    two = [{"name": "docker.io", "port": 5000}, {"name": "ghcr.io", "port": 5001}]
    assert metrics_errors("", registries=two) == []
    assert metrics_errors("", services=["pypi", "conda"], registry_metrics_port=3141) == []
    assert metrics_errors(services=["pypi", "conda"], registry_metrics_port=3141) == []  # no registry runs


def test_the_example_inventorys_registries_fit_the_default_debug_ports():
    # inventories/example: docker.io on 5000, nvcr.io on 5001 (blob caches 5100, 5101; debug 5200, 5201)
    assert metrics_errors(registries=[{"name": "docker.io", "port": 5000}, {"name": "nvcr.io", "port": 5001}]) == []


@pytest.mark.parametrize("second", [
    {"ansible_host": "10.0.0.5"},
    {"ansible_host": "10.0.0.9", "cache_node_advertise_address": "10.0.0.5"},
    {"cache_node_listen_address": "10.0.0.5", "cache_node_pypi_port": 3142},
    {"ansible_host": "CACHE.lab.example"},
])
def test_two_nodes_that_advertise_one_address_are_refused_naming_both(second):
    first = ("cache1", {"ansible_host": "10.0.0.5" if "CACHE" not in str(second) else "cache.lab.example"})
    with pytest.raises(CacheNodeError) as info:
        checked_nodes([first, ("cache2", second)])
    text = str(info.value)
    assert text.startswith("cache nodes cache1 and cache2 both advertise ") and "cache_node_advertise_address" in text


def test_two_nodes_with_their_own_addresses_are_both_used():
    nodes = [("cache1", {"ansible_host": "10.0.0.5"}), ("cache2", {"ansible_host": "10.0.0.6"})]
    assert [name for name, _settings in checked_nodes(nodes)] == ["cache1", "cache2"]
    catalog = cache_catalog({"pypi": [{"name": "tuna", "url": "https://t.example/simple"}]}, nodes, host="gpu1")
    assert [entry["name"] for entry in catalog["pypi"]] == ["cache-cache1", "cache-cache2", "tuna"]


def test_a_host_prefers_its_sites_node_and_keeps_the_other_as_the_next():
    nodes = ["cache-bj", "cache-sh"]
    assert prefer_nodes(nodes, None) == nodes and prefer_nodes(nodes, []) == nodes
    assert prefer_nodes(nodes, ["cache-sh"]) == ["cache-sh", "cache-bj"]
    assert prefer_nodes(nodes, ["cache-sh", "cache-bj", "cache-sh"]) == ["cache-sh", "cache-bj"]
    hostvars = {"cache-bj": {"ansible_host": "10.1.0.5"}, "cache-sh": {"ansible_host": "10.2.0.5"}}
    ordered = [(name, hostvars[name]) for name in prefer_nodes(nodes, ["cache-sh"])]
    catalog = cache_catalog({"pypi": [{"name": "tuna", "url": "https://t.example/simple"}]}, ordered, host="gpu-sh-01")
    assert [(e["name"], e["url"]) for e in catalog["pypi"]] == [
        ("cache-cache-sh", "http://10.2.0.5:3141/root/pypi/+simple"),
        ("cache-cache-bj", "http://10.1.0.5:3141/root/pypi/+simple"), ("tuna", "https://t.example/simple")]


@pytest.mark.parametrize("prefer, text", [
    (["cache-gz"], "gpulab_cache_prefer: 'cache-gz' not in gpulab_cache_nodes (cache-bj, cache-sh)"),
    ("cache-sh", "gpulab_cache_prefer: 'cache-sh' must be a list"),
    ([1], "gpulab_cache_prefer: [1] must be a list"),
])
def test_a_bad_preference_names_the_variable(prefer, text):
    with pytest.raises(CacheNodeError) as info:
        prefer_nodes(["cache-bj", "cache-sh"], prefer)
    assert str(info.value).startswith(text)
