# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The watcher's configuration from the inventory: same files and options as the config roles."""

from __future__ import annotations

import pytest

from ansible_collections.gpulab.provision.plugins.module_utils.watch import WatchError
from ansible_collections.gpulab.provision.plugins.module_utils.watch_config import (
    config_errors,
    timespan_seconds,
    watch_config,
)

MIRRORS = {
    "pypi": [{"name": "tuna", "url": "https://pypi.tuna.example/simple"}],
    "conda": [{"name": "tuna", "url": "https://mirrors.tuna.example/anaconda"}],
    "docker": [{"name": "dao", "url": "https://docker.m.example"}],
    "nvidia_cuda": [{"name": "nv", "url": "https://developer.download.example/compute/cuda/repos/debian12/x86_64"}],
}
SERVICES = {"pypi": {"kind": "pypi", "project": "pip"}, "conda": {"kind": "conda", "channel": "pkgs/main"},
            "docker": {"kind": "docker"}, "nvidia_cuda": {"kind": "apt", "suite": "/"}}


def test_only_services_with_client_files_are_watched():
    got = watch_config(MIRRORS, SERVICES)
    assert got["services"] == ["conda", "docker", "pypi"]  # apt repositories are Ansible's alone
    clients = {s: [c["client"] for c in v["clients"]] for s, v in got["config"]["services"].items()}
    assert clients == {"pypi": ["pip_conf", "uv_toml"], "conda": ["condarc"], "docker": ["daemon_json", "hosts_toml"]}
    assert got["sensitive"] is False
    assert got["config"]["confirm"] == 2 and got["config"]["policy"]["timeout_s"] == 3


def test_options_follow_the_config_roles_variables():
    got = watch_config(MIRRORS, SERVICES, clients={
        "pip": {"conf_path": "/etc/xdg/pip/pip.conf", "manage_uv": False, "timeout": 5},
        "docker": {"containerd_certs_dir": "/etc/containerd/certs.d/", "unit": "docker.service"}})
    pypi = got["config"]["services"]["pypi"]["clients"]
    assert [c["path"] for c in pypi] == ["/etc/xdg/pip/pip.conf"]
    assert pypi[0]["options"]["timeout"] == 5 and pypi[0]["options"]["retries"] == 2
    docker = got["config"]["services"]["docker"]["clients"]
    assert docker[0]["options"]["mirrors_only"] is True and docker[0]["reload"] == "docker.service"
    assert docker[1]["path"] == "/etc/containerd/certs.d/docker.io/hosts.toml"


def test_an_empty_string_is_an_unset_option():
    # roles/mirror_watch/vars/main.yml passes `x | default(none)`, which ansible-core before 2.19
    # renders as "": failover.yml then wrote no file at all (every path was "").
    unset = {"pip": {k: "" for k in ("service", "conf_path", "timeout", "retries", "manage_uv", "uv_conf_path",
                                     "backup", "backup_keep", "credentials_group")},
             "conda": {k: "" for k in ("service", "condarc_path", "custom_channels", "default_channels",
                                       "show_channel_urls", "backup", "backup_keep", "credentials_group")},
             "docker": {k: "" for k in ("service", "daemon_json_path", "unit", "containerd_certs_dir",
                                        "backup", "backup_keep")}}
    got = watch_config(MIRRORS, SERVICES, clients=unset, settings={"ca_path": "", "lock_path": ""})
    assert got == watch_config(MIRRORS, SERVICES)


def test_credentials_make_it_sensitive():
    mirrors = dict(MIRRORS, pypi=[{"name": "lab", "url": "https://user:token@pypi.lab.example/simple"}])
    assert watch_config(mirrors, SERVICES)["sensitive"] is True


def test_pins_and_service_subset():
    got = watch_config(MIRRORS, SERVICES, pin={"pypi": "tuna"}, only=["pypi"])
    assert list(got["config"]["services"]) == ["pypi"]
    assert got["config"]["services"]["pypi"]["pin"] == "tuna"


def test_bad_inventory_fails_naming_the_variable():
    with pytest.raises(WatchError, match=r"gpulab_mirrors.pypi\[0\].url"):
        watch_config({"pypi": [{"name": "x", "url": "pypi.example/simple"}]}, SERVICES)
    with pytest.raises(WatchError, match="mirror_watch_services"):
        watch_config(MIRRORS, SERVICES, only=["pip"])
    with pytest.raises(WatchError, match="mirror_watch_confirm"):
        watch_config(MIRRORS, SERVICES, settings={"confirm": 0})


def test_the_probe_arguments_carry_requirements_and_freshness_limits():
    got = watch_config(MIRRORS, SERVICES, policy={"max_serial_lag": {"pypi": 500}}, require={"pypi": ["torch==2.5.1"]},
                       settings={"environment": {"https_proxy": "http://u:pw@proxy.example:3128"}})
    probe = got["config"]["services"]["pypi"]["probe"]
    assert probe["require"] == ["torch==2.5.1"] and probe["max_serial_lag"] == 500 and probe["project"] == "pip"
    assert got["sensitive"] is True  # a proxy password in the environment


@pytest.mark.parametrize("span, seconds", [
    ("2min", 120), ("30s", 30), ("1h", 3600), ("90 s", 90), ("1h 30min", 5400), ("5m10s", 310), ("120", 120),
    (120, 120), (1.5, 1.5), ("1.5h", 5400), ("500ms", 0.5),
])
def test_a_systemd_time_span_in_seconds(span, seconds):
    assert timespan_seconds(span) == seconds


@pytest.mark.parametrize("span", ["", "min", "2x", "2min x", "-5s", "0", 0, -1, True, None, [120], float("inf")])
def test_what_is_not_a_time_span(span):
    assert timespan_seconds(span) is None


def test_metrics_dir_and_interval_reach_the_configuration():
    config = watch_config(MIRRORS, SERVICES, settings={"metrics_dir": "/var/lib/prometheus/node-exporter",
                                                       "interval_s": "2min"})["config"]
    assert config["metrics_dir"] == "/var/lib/prometheus/node-exporter" and config["interval_s"] == 120
    assert config_errors(config) == []
    # the role passes gpulab_metrics_dir "" for "off": no metrics, no interval needed
    config = watch_config(MIRRORS, SERVICES, settings={"metrics_dir": "", "interval_s": ""})["config"]
    assert config["metrics_dir"] == "" and config["interval_s"] is None and config_errors(config) == []
    assert watch_config(MIRRORS, SERVICES, settings={"interval_s": 90})["config"]["interval_s"] == 90


def test_a_bad_interval_or_metrics_dir_fails_naming_the_variable():
    with pytest.raises(WatchError, match=r"^mirror_watch_interval: '2 fortnights' must be a systemd time span"):
        watch_config(MIRRORS, SERVICES, settings={"interval_s": "2 fortnights"})
    with pytest.raises(WatchError, match=r"^gpulab_metrics_dir: 'textfile' must be an absolute directory path"):
        watch_config(MIRRORS, SERVICES, settings={"metrics_dir": "textfile"})
