# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pip.conf and .condarc are the same bytes whoever writes them: the config roles (pip_mirror,
conda_mirror through module mirror_config), failover.yml (module mirror_probe_all) and
gpulab-mirror-watch, for the same selection, with a lab proxy (gpulab_proxy) set.

A proxied public mirror gets pip's ``proxy`` (conda's ``proxy_servers``), a direct one (a cache node,
an entry with ``proxy: false``) none. Before, the watcher and failover.yml built their client options
without the proxy, so they kept whatever line the file had: a host moved to its cache node went
through the proxy, and the next site.yml flipped the file back.
"""

from __future__ import annotations

import pytest

from ansible_collections.gpulab.provision.plugins.module_utils.client_files import plan_files
from ansible_collections.gpulab.provision.plugins.module_utils.proxy import proxy_environment, proxy_settings
from ansible_collections.gpulab.provision.plugins.module_utils.watch_config import DEFAULT_CLIENTS, watch_config

PUBLIC_PYPI = {"name": "tuna", "url": "https://pypi.tuna.example/simple"}
CACHE_PYPI = {"name": "cache-cache1", "url": "http://127.0.3.9:3141/root/pypi/+simple", "insecure": True, "proxy": False}
PUBLIC_CONDA = {"name": "tuna", "url": "https://mirrors.tuna.example/anaconda"}
CACHE_CONDA = {"name": "cache-cache1", "url": "http://127.0.3.9:8088", "insecure": True, "proxy": False}
MIRRORS = {"pypi": [CACHE_PYPI, PUBLIC_PYPI], "conda": [CACHE_CONDA, PUBLIC_CONDA]}
SERVICES = {"pypi": {"kind": "pypi", "project": "pip"}, "conda": {"kind": "conda", "channel": "pkgs/main"}}
GPULAB_PROXY = {"http": "http://u:pw@proxy.lab.example:3128", "https": "http://u:pw@proxy.lab.example:3128",
                "no_proxy": [".lab.example"]}
PROXY = proxy_settings(GPULAB_PROXY, MIRRORS)


def selection(entry):
    chosen = dict(entry, url_masked=entry["url"], status="ok")
    return dict(chosen, ranked=[dict(chosen)], rejected=[])


def role_clients(service):
    """The entries roles/pip_mirror and roles/conda_mirror give mirror_config (their vars/main.yml)."""
    pip, conda = DEFAULT_CLIENTS["pip"], DEFAULT_CLIENTS["conda"]
    if service == "pypi":
        return [{"client": "pip_conf", "path": pip["conf_path"],
                 "options": {"service": "pypi", "timeout": pip["timeout"], "retries": pip["retries"], "proxy": PROXY}}]
    return [{"client": "condarc", "path": conda["condarc_path"],
             "options": {"service": "conda", "custom_channels": conda["custom_channels"],
                         "default_channels": conda["default_channels"],
                         "show_channel_urls": conda["show_channel_urls"], "proxy": PROXY}}]


def watcher_clients(service):
    """The watcher's: its configuration, made by the role mirror_watch with the proxy variables."""
    config = watch_config(MIRRORS, SERVICES, settings={"environment": proxy_environment(PROXY)})["config"]
    return [c for c in config["services"][service]["clients"] if c["client"] in ("pip_conf", "condarc")]


def failover_clients(service):
    """failover.yml's: module mirror_probe_all builds them with the proxy it was given."""
    config = watch_config(MIRRORS, SERVICES, proxy=PROXY)["config"]
    return [c for c in config["services"][service]["clients"] if c["client"] in ("pip_conf", "condarc")]


def render(clients, chosen, service, current):
    [plan] = plan_files(clients, selection(chosen), MIRRORS[service], read=lambda path: current,
                        exists=lambda path: True)
    assert plan["error"] is None, plan["error"]
    return plan["result"]["content"]


@pytest.mark.parametrize("service", ["pypi", "conda"])
@pytest.mark.parametrize("before, after", [("public", "cache"), ("cache", "public")])
def test_every_writer_renders_the_same_bytes_with_a_proxy(service, before, after):
    entries = {"public": MIRRORS[service][1], "cache": MIRRORS[service][0]}
    current = render(role_clients(service), entries[before], service, None)  # what site.yml wrote
    by_role = render(role_clients(service), entries[after], service, current)
    assert render(watcher_clients(service), entries[after], service, current) == by_role
    assert render(failover_clients(service), entries[after], service, current) == by_role
    key = "proxy" if service == "pypi" else "proxy_servers"
    assert (key in by_role) == (after == "public"), by_role


def test_without_gpulab_proxy_every_writer_leaves_the_users_proxy_line():
    current = "[global]\nindex-url = https://pypi.tuna.example/simple\nproxy = http://mine.example:8080\n"
    config = watch_config(MIRRORS, SERVICES)["config"]
    clients = [c for c in config["services"]["pypi"]["clients"] if c["client"] == "pip_conf"]
    assert "proxy = http://mine.example:8080" in render(clients, CACHE_PYPI, "pypi", current)


def test_the_watchers_configuration_with_a_proxy_is_sensitive():
    built = watch_config(MIRRORS, SERVICES, settings={"environment": proxy_environment(PROXY)})
    assert built["sensitive"] is True  # the proxy's password: the file is root-only
    pip = [c for c in built["config"]["services"]["pypi"]["clients"] if c["client"] == "pip_conf"][0]
    assert pip["options"]["proxy"] == PROXY
