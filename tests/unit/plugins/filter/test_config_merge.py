# -*- coding: utf-8 -*-
"""The config_merge filters are thin glue: right names, errors become AnsibleFilterError."""
from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.gpulab.provision.plugins.filter.config_merge import FilterModule

FILTERS = FilterModule().filters()


def test_every_filter_is_exported():
    assert set(FILTERS) == {"pip_conf_merge", "pip_conf_parse", "condarc_merge", "daemon_json_merge",
                            "daemon_json_changed_keys", "daemon_json_needs_restart"}


def test_pip_conf_merge_filter_sets_index_url():
    assert FILTERS["pip_conf_merge"]("", {"index-url": "http://m/simple"}) == "[global]\nindex-url = http://m/simple\n"


def test_pip_conf_merge_filter_error_names_filter_and_file():
    with pytest.raises(AnsibleFilterError, match=r"gpulab\.provision\.pip_conf_merge: /etc/pip\.conf is not a valid INI"):
        FILTERS["pip_conf_merge"]("garbage\n", {"index-url": "x"}, path="/etc/pip.conf")


def test_pip_conf_parse_filter_returns_sections():
    assert FILTERS["pip_conf_parse"]("[global]\ntimeout=1\n") == {"global": {"timeout": "1"}}


def test_condarc_merge_filter_error_is_a_filter_error():
    with pytest.raises(AnsibleFilterError, match="condarc_merge: .condarc is not valid YAML"):
        FILTERS["condarc_merge"]("a: [\n", {})


def test_daemon_json_merge_filter_accepts_positional_layers():
    out = FILTERS["daemon_json_merge"]("{}", {"live-restore": True}, {"f": {"debug": True}}, {"log-driver": "local"})
    assert json.loads(out) == {"debug": True, "log-driver": "local", "live-restore": True}


def test_daemon_json_merge_filter_invalid_result_is_a_filter_error():
    with pytest.raises(AnsibleFilterError, match="daemon_json_merge: .*would be invalid"):
        FILTERS["daemon_json_merge"]("", {"registry-mirrors": ["nohost"]})


def test_daemon_json_changed_keys_filter():
    assert FILTERS["daemon_json_changed_keys"]("{}", '{"a": 1}') == ["a"]


def test_daemon_json_needs_restart_filter():
    assert FILTERS["daemon_json_needs_restart"]("{}", '{"registry-mirrors": []}') is False
