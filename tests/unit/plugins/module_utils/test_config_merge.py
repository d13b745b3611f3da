# -*- coding: utf-8 -*-
"""Specifications for plugins/module_utils/config_merge.py (pure merges of client configs)."""
from __future__ import annotations

import configparser
import json

import pytest
import yaml

from ansible_collections.gpulab.provision.plugins.module_utils.config_merge import (
    ConfigMergeError,
    condarc_merge,
    condarc_parse,
    daemon_json_changed_keys,
    daemon_json_merge,
    daemon_json_needs_restart,
    daemon_json_parse,
    daemon_json_validate,
    pip_conf_merge,
    pip_conf_parse,
)

INDEX = "http://127.0.0.1:8080/simple"


def _ini(text):
    parser = configparser.RawConfigParser()
    parser.read_string(text)
    return parser


# ---------------------------------------------------------------- pip.conf


def test_pip_conf_missing_file_gets_a_global_section():
    out = pip_conf_merge("", {"index-url": INDEX, "timeout": 10})
    assert out == "[global]\nindex-url = %s\ntimeout = 10\n" % INDEX


def test_pip_conf_replaces_existing_index_url_in_place():
    out = pip_conf_merge("[global]\nindex-url = http://old/simple\ntimeout = 10\n", {"index-url": INDEX})
    assert out == "[global]\nindex-url = %s\ntimeout = 10\n" % INDEX


def test_pip_conf_keeps_user_keys_sections_and_comments():
    existing = "# site policy\n[global]\nno-cache-dir = true  \n\n[install]\nuser = false\n"
    out = pip_conf_merge(existing, {"index-url": INDEX})
    assert out.startswith("# site policy\n[global]\nno-cache-dir = true  \nindex-url = %s\n" % INDEX)
    assert _ini(out).get("install", "user") == "false"


def test_pip_conf_appends_global_section_when_only_others_exist():
    out = pip_conf_merge("[install]\nuser = false\n", {"index-url": INDEX})
    assert _ini(out).get("global", "index-url") == INDEX
    assert _ini(out).get("install", "user") == "false"


def test_pip_conf_unchanged_settings_return_identical_text():
    existing = "[global]\n  # comment\nindex-url=%s\nretries:2\n" % INDEX
    assert pip_conf_merge(existing, {"index-url": INDEX, "retries": 2}) is existing


def test_pip_conf_merge_is_idempotent():
    once = pip_conf_merge("[global]\ntimeout = 60\n", {"index-url": INDEX, "timeout": 10, "retries": 2})
    assert pip_conf_merge(once, {"index-url": INDEX, "timeout": 10, "retries": 2}) == once


def test_pip_conf_none_removes_the_key_and_its_continuation_lines():
    existing = "[global]\ntrusted-host =\n    a.example\n    b.example\nindex-url = %s\n" % INDEX
    out = pip_conf_merge(existing, {"trusted-host": None})
    assert out == "[global]\nindex-url = %s\n" % INDEX


def test_pip_conf_none_for_absent_key_changes_nothing():
    existing = "[global]\nindex-url = %s\n" % INDEX
    assert pip_conf_merge(existing, {"trusted-host": None, "index-url": INDEX}) is existing


def test_pip_conf_matches_keys_the_way_pip_normalises_them():
    out = pip_conf_merge("[global]\nIndex_URL = http://old/simple\n", {"index-url": INDEX})
    assert out == "[global]\nindex-url = %s\n" % INDEX


def test_pip_conf_list_values_are_written_one_per_line():
    out = pip_conf_merge("", {"trusted-host": ["a.example", "b.example:8080"]})
    assert _ini(out).get("global", "trusted-host").split() == ["a.example", "b.example:8080"]


def test_pip_conf_key_in_other_section_is_not_touched():
    existing = "[install]\nindex-url = http://keep/simple\n"
    out = pip_conf_merge(existing, {"index-url": INDEX})
    assert _ini(out).get("install", "index-url") == "http://keep/simple"
    assert _ini(out).get("global", "index-url") == INDEX


def test_pip_conf_new_key_goes_before_trailing_blank_lines_of_the_section():
    out = pip_conf_merge("[global]\ntimeout = 5\n\n[install]\nuser = false\n", {"retries": 2})
    assert out == "[global]\ntimeout = 5\nretries = 2\n\n[install]\nuser = false\n"


def test_pip_conf_unparsable_file_raises_naming_the_file():
    with pytest.raises(ConfigMergeError, match=r"/etc/pip\.conf is not a valid INI file.*untouched"):
        pip_conf_merge("index-url = x\n", {"index-url": INDEX}, path="/etc/pip.conf")


def test_pip_conf_duplicate_key_is_rejected_like_pip_does():
    with pytest.raises(ConfigMergeError, match="pip.conf"):
        pip_conf_parse("[global]\ntimeout = 1\ntimeout = 2\n")


def test_pip_conf_parse_normalises_keys():
    assert pip_conf_parse("[global]\nExtra_Index_URL = http://x/simple\n") == {
        "global": {"extra-index-url": "http://x/simple"}}


def test_pip_conf_settings_must_be_a_dict():
    with pytest.raises(ConfigMergeError):
        pip_conf_merge("", ["index-url"])


# ---------------------------------------------------------------- .condarc

CONDA = {
    "channel_alias": "http://m/anaconda/cloud",
    "default_channels": ["http://m/anaconda/pkgs/main", "http://m/anaconda/pkgs/r"],
    "custom_channels": {"conda-forge": "http://m/anaconda/cloud"},
    "show_channel_urls": True,
}


def test_condarc_missing_file_gets_all_settings():
    assert yaml.safe_load(condarc_merge("", CONDA)) == CONDA


def test_condarc_keeps_unrelated_user_keys():
    out = yaml.safe_load(condarc_merge("auto_activate_base: false\nchannels: [defaults]\n", CONDA))
    assert out["auto_activate_base"] is False
    assert out["channels"] == ["defaults"]


def test_condarc_custom_channels_keep_the_users_own_channels():
    out = yaml.safe_load(condarc_merge("custom_channels:\n  mylab: http://lab/conda\n", CONDA))
    assert out["custom_channels"] == {"mylab": "http://lab/conda", "conda-forge": "http://m/anaconda/cloud"}


def test_condarc_default_channels_are_replaced_not_merged():
    out = yaml.safe_load(condarc_merge("default_channels: [http://old/pkgs/main]\n", CONDA))
    assert out["default_channels"] == CONDA["default_channels"]


def test_condarc_unchanged_settings_return_identical_text():
    existing = "# mine\n" + yaml.safe_dump(CONDA)
    assert condarc_merge(existing, CONDA) is existing


def test_condarc_merge_is_idempotent():
    once = condarc_merge("ssl_verify: true\n", CONDA)
    assert condarc_merge(once, CONDA) == once


def test_condarc_none_removes_a_key():
    assert "channel_alias" not in yaml.safe_load(condarc_merge("channel_alias: x\na: 1\n", {"channel_alias": None}))


def test_condarc_invalid_yaml_raises_naming_the_file():
    with pytest.raises(ConfigMergeError, match=r"/opt/conda/\.condarc is not valid YAML"):
        condarc_merge("channels: [a\n", CONDA, path="/opt/conda/.condarc")


def test_condarc_non_mapping_raises():
    with pytest.raises(ConfigMergeError, match="must be a YAML mapping"):
        condarc_parse("- a\n- b\n")


# ---------------------------------------------------------------- daemon.json

MIRRORS = {"registry-mirrors": ["http://127.0.0.1:5000"], "live-restore": True}


def test_daemon_json_missing_file_gets_managed_keys():
    assert json.loads(daemon_json_merge("", MIRRORS)) == MIRRORS


def test_daemon_json_keeps_unmanaged_keys_in_order():
    out = daemon_json_merge('{"log-driver": "json-file", "log-opts": {"max-size": "10m"}}', MIRRORS)
    assert list(json.loads(out)) == ["log-driver", "log-opts", "registry-mirrors", "live-restore"]


def test_daemon_json_registry_mirrors_are_replaced_in_rank_order():
    out = daemon_json_merge('{"registry-mirrors": ["https://old.example"]}',
                            {"registry-mirrors": ["http://b:5000", "http://a:5000"]})
    assert json.loads(out)["registry-mirrors"] == ["http://b:5000", "http://a:5000"]


def test_daemon_json_fragments_merge_deeply_with_existing_runtimes():
    existing = '{"runtimes": {"crun": {"path": "/usr/bin/crun"}}}'
    fragments = {"nvidia": {"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}}}}
    out = json.loads(daemon_json_merge(existing, MIRRORS, fragments))
    assert set(out["runtimes"]) == {"crun", "nvidia"}


def test_daemon_json_fragments_apply_in_name_order():
    fragments = {"b": {"debug": True}, "a": {"debug": False}}
    assert json.loads(daemon_json_merge("", {}, fragments))["debug"] is True


def test_daemon_json_extra_overrides_fragments():
    out = daemon_json_merge("", {}, {"x": {"debug": True}}, {"debug": False})
    assert json.loads(out)["debug"] is False


def test_daemon_json_managed_keys_override_extra():
    out = daemon_json_merge("", {"registry-mirrors": ["http://a:5000"]}, None,
                            {"registry-mirrors": ["http://user:5000"]})
    assert json.loads(out)["registry-mirrors"] == ["http://a:5000"]


def test_daemon_json_managed_none_removes_key():
    assert "registry-mirrors" not in json.loads(daemon_json_merge('{"registry-mirrors": []}', {"registry-mirrors": None}))


def test_daemon_json_unchanged_returns_identical_text():
    existing = '{ "live-restore": true,\n  "registry-mirrors": ["http://127.0.0.1:5000"] }'
    assert daemon_json_merge(existing, MIRRORS) is existing


def test_daemon_json_merge_is_idempotent():
    once = daemon_json_merge('{"log-driver": "json-file"}', MIRRORS)
    assert daemon_json_merge(once, MIRRORS) == once


def test_daemon_json_invalid_json_raises_naming_the_file():
    with pytest.raises(ConfigMergeError, match=r"/etc/docker/daemon\.json is not valid JSON.*untouched"):
        daemon_json_merge('{"log-driver": "json-file",}', MIRRORS)


def test_daemon_json_non_object_raises():
    with pytest.raises(ConfigMergeError, match="must hold a JSON object"):
        daemon_json_parse("[1, 2]")


def test_daemon_json_blank_file_is_empty_config():
    assert daemon_json_parse("  \n") == {}


def test_daemon_json_validate_rejects_mirror_with_path():
    with pytest.raises(ConfigMergeError, match="no path"):
        daemon_json_validate({"registry-mirrors": ["https://mirror.example/v2/"]})


def test_daemon_json_validate_rejects_mirror_without_scheme():
    with pytest.raises(ConfigMergeError, match="scheme"):
        daemon_json_validate({"registry-mirrors": ["mirror.example:5000"]})


def test_daemon_json_validate_rejects_wrong_type():
    with pytest.raises(ConfigMergeError, match="live-restore must be a boolean"):
        daemon_json_validate({"live-restore": "yes"})


def test_daemon_json_validate_rejects_runtime_without_path():
    with pytest.raises(ConfigMergeError, match="runtimes.nvidia needs"):
        daemon_json_validate({"runtimes": {"nvidia": {"args": []}}})


def test_daemon_json_validate_rejects_unknown_default_runtime():
    with pytest.raises(ConfigMergeError, match="default-runtime 'nvidia' is not defined"):
        daemon_json_validate({"default-runtime": "nvidia"})


def test_daemon_json_validate_accepts_default_runtime_from_runtimes():
    data = {"default-runtime": "nvidia", "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}}}
    assert daemon_json_validate(data) is data


def test_daemon_json_merge_refuses_to_produce_an_invalid_file():
    with pytest.raises(ConfigMergeError, match="would be invalid"):
        daemon_json_merge("", {"registry-mirrors": ["https://m.example/path"]})


def test_daemon_json_changed_keys_lists_top_level_differences():
    assert daemon_json_changed_keys('{"a": 1, "b": 2}', '{"a": 1, "b": 3, "c": 4}') == ["b", "c"]


def test_daemon_json_mirror_change_needs_only_a_reload():
    assert daemon_json_needs_restart('{"registry-mirrors": ["http://a:1"]}', '{"registry-mirrors": ["http://b:1"]}') is False


def test_daemon_json_log_opts_change_needs_a_restart():
    assert daemon_json_needs_restart('{"log-opts": {}}', '{"log-opts": {"max-size": "10m"}}') is True


def test_condarc_accepts_str_subclasses_like_ansible_passes():
    class Tagged(str):
        pass

    out = condarc_merge("", {Tagged("channel_alias"): Tagged("http://m/cloud"), "custom_channels": {Tagged("nvidia"): Tagged("x")}})
    assert yaml.safe_load(out) == {"channel_alias": "http://m/cloud", "custom_channels": {"nvidia": "x"}}
