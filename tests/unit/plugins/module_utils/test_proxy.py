# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest

from ansible_collections.gpulab.provision.plugins.module_utils.proxy import (
    ProxyError,
    bypasses,
    proxy_environment,
    proxy_for,
    proxy_settings,
)

PROXY = {"http": "http://proxy.lab.example:3128", "https": "http://proxy.lab.example:3128/",
         "no_proxy": [".lab.example", "10.0.0.0/8"]}
MIRRORS = {"pypi": [{"name": "cache", "url": "http://cache-01.internal:3141/root/pypi/+simple/", "proxy": False},
                    {"name": "tuna", "url": "https://pypi.tuna.tsinghua.edu.cn/simple"}]}


def test_settings_merge_the_users_list_loopback_and_direct_catalog_entries():
    settings = proxy_settings(PROXY, MIRRORS, extra_direct=["http://[fd00::9]:5000"])
    assert settings["https"] == "http://proxy.lab.example:3128"
    assert settings["no_proxy"] == [".lab.example", "10.0.0.0/8", "localhost", "127.0.0.1", "::1",
                                    "cache-01.internal", "fd00::9"]


@pytest.mark.parametrize("url,direct", [
    ("https://pypi.tuna.tsinghua.edu.cn/simple", False),
    ("http://cache-01.internal:3141/root/pypi/+simple/", True),
    ("https://harbor.lab.example", True),
    ("https://lab.example/x", True),
    ("https://notlab.example/x", False),
    ("http://10.1.2.3:8080/simple", True),
    ("http://127.0.3.1:8080/simple", False),
    ("http://127.0.0.1:8080/simple", True),
    ("http://[::1]:8080/simple", True),
    ("http://11.0.0.1/simple", False),
])
def test_one_rule_for_direct_or_proxied(url, direct):
    settings = proxy_settings(PROXY, MIRRORS)
    assert bypasses(url, settings["no_proxy"]) is direct
    assert proxy_for(url, settings) == (None if direct else "http://proxy.lab.example:3128")


def test_no_proxy_configured_means_none_everywhere():
    assert proxy_settings(None) is None and proxy_settings({}) is None
    assert proxy_for("https://x.example", None) is None
    assert proxy_environment(None) == {}


def test_environment_has_both_cases():
    env = proxy_environment(proxy_settings({"https": "http://u:p@proxy.example:3128"}))
    assert env["https_proxy"] == env["HTTPS_PROXY"] == "http://u:p@proxy.example:3128"
    assert "http_proxy" not in env
    assert env["NO_PROXY"] == "localhost,127.0.0.1,::1"


def test_https_only_proxy_is_used_for_http_mirrors_too():
    assert proxy_for("http://m.example/simple", proxy_settings({"https": "http://p.example:3128"})) == "http://p.example:3128"


@pytest.mark.parametrize("value,message", [
    ("http://p:3128", r"gpulab_proxy: must be a mapping"),
    ({"ftp": "x"}, r"gpulab_proxy: unknown key 'ftp'"),
    ({"no_proxy": ["x"]}, r"gpulab_proxy: set http or https"),
    ({"http": "socks5://p:1080"}, r"gpulab_proxy.http: .*scheme must be http or https"),
    ({"http": "http://p:3128/path"}, r"gpulab_proxy.http: .*without a path"),
    ({"http": "http://p:3128\nx"}, r"gpulab_proxy.http: .*control character"),
    ({"http": "http://p:3128", "no_proxy": ["a b"]}, r"gpulab_proxy.no_proxy\[0\]"),
])
def test_bad_settings_name_the_variable(value, message):
    with pytest.raises(ProxyError, match=message):
        proxy_settings(value)


def test_proxy_password_is_never_in_an_error():
    with pytest.raises(ProxyError) as err:
        proxy_settings({"http": "http://user:s3cret@p:3128/x"})
    assert "s3cret" not in str(err.value)
