# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Renderers: one pure function per client file. Real pip and uv read what they render."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib

import pytest
import yaml

from ansible_collections.gpulab.provision.plugins.module_utils.renderers import (
    CLIENT_SUMMARY,
    SUMMARY_DEFAULTS,
    RenderError,
    holds_credentials,
    render_client_config,
    summary_shape,
    toml_string,
)


def sel(name="tuna", url="https://pypi.tuna.example/simple", status="ok", insecure=False, ranked=None,
        rejected=None):
    entry = {"name": name, "url": url, "url_masked": url, "insecure": insecure, "status": status}
    entry["ranked"] = ranked if ranked is not None else (
        [dict(entry)] if status in ("ok", "pinned", "pin_unhealthy") else [])
    entry["rejected"] = rejected or []
    return entry


def mirror(name, url, insecure=False):
    return {"name": name, "url": url, "url_masked": url, "insecure": insecure}


def pip_reads(tmp_path, text):
    """What real pip reads from a config file: `pip config list` with only that file."""
    conf = tmp_path / "pip.conf"
    conf.write_text(text)
    env = dict(os.environ, PIP_CONFIG_FILE=str(conf), PIP_NO_INPUT="1")
    for key in list(env):
        if key.startswith("PIP_") and key not in ("PIP_CONFIG_FILE", "PIP_NO_INPUT"):
            del env[key]
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], env=env, capture_output=True,
                         text=True, check=True)
    values = {}
    for line in out.stdout.splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            values[key.split(".", 1)[-1]] = value.strip().strip("'")
    return values


# ------------------------------------------------------------------------------------------- pip.conf

def test_pip_conf_new_file_read_by_real_pip(tmp_path):
    result = render_client_config("", "pip_conf", sel(), {"timeout": 10, "retries": 2})
    assert result["changed"] and not result["summary"]["sensitive"]
    seen = pip_reads(tmp_path, result["content"])
    assert seen["index-url"] == "https://pypi.tuna.example/simple"
    assert seen["timeout"] == "10" and seen["retries"] == "2"
    assert "trusted-host" not in seen and "extra-index-url" not in seen


def test_pip_conf_second_render_is_byte_identical():
    first = render_client_config("", "pip_conf", sel(), {"timeout": 10})["content"]
    again = render_client_config(first, "pip_conf", sel(), {"timeout": 10})
    assert again["content"] == first and not again["changed"]


def test_pip_conf_insecure_ipv6_is_bracketed_for_pip(tmp_path):
    url = "http://[fd00::5]:8080/simple"
    result = render_client_config("", "pip_conf", sel(url=url, insecure=True))
    assert pip_reads(tmp_path, result["content"])["trusted-host"] == "[fd00::5]:8080"
    assert result["summary"]["trusted_host"] == ["[fd00::5]:8080"]


def test_pip_conf_drops_trust_of_other_catalogued_mirrors_and_keeps_the_users():
    current = "[global]\nindex-url = http://127.0.0.9:8080/simple\ntrusted-host = 127.0.0.9:8080 corp.example\n"
    selection = sel(rejected=[{"name": "lab", "url_masked": "http://127.0.0.9:8080/simple", "reason": "refused"}])
    result = render_client_config(current, "pip_conf", selection)
    assert result["summary"]["trusted_host"] == ["corp.example"]
    assert "127.0.0.9" not in result["content"]


def test_pip_conf_extra_index_url_is_kept_and_warned():
    current = "[global]\nextra-index-url = https://corp.example/simple\n"
    result = render_client_config(current, "pip_conf", sel())
    assert "extra-index-url = https://corp.example/simple" in result["content"]
    assert result["summary"]["extra_index_url"] is True
    assert any("equal peer" in w for w in result["summary"]["warnings"])


@pytest.mark.parametrize("url", [
    "https://h/simple\n[global]\nextra-index-url = https://evil.example/simple",
    "https://h/simple\nindex-url = https://evil.example/simple",
    "https://h/simple ; comment",
    'https://h/simple"',
])
def test_pip_conf_hostile_url_is_refused_and_nothing_rendered(url):
    with pytest.raises(RenderError, match="gpulab_mirrors.pypi mirror 'tuna'"):
        render_client_config("[global]\n", "pip_conf", sel(url=url))


def test_pip_conf_credentials_mark_the_result_sensitive_and_never_reach_the_summary():
    url = "https://lab:s3cr%2Ft@pypi.lab.example/simple"
    result = render_client_config("", "pip_conf", sel(url=url))
    assert result["summary"]["sensitive"] is True and result["summary"]["holds_credentials"] is True
    assert "s3cr" not in json.dumps(result["summary"])
    assert url in result["content"]  # pip needs it in the file


def test_an_existing_token_in_the_file_marks_the_result_sensitive():
    current = "[global]\nindex-url = https://u:tok@old.example/simple\n"
    result = render_client_config(current, "pip_conf", sel())
    assert result["summary"]["sensitive"] is True
    assert result["summary"]["holds_credentials"] is False  # the new file no longer does


@pytest.mark.parametrize("status", ["kept", "none"])
def test_pip_conf_kept_or_none_is_byte_identical(status):
    current = "# mine\n[global]\nindex-url=https://old.example/simple\n\n\n"
    result = render_client_config(current, "pip_conf", sel(status=status))
    assert result["content"] == current and not result["changed"]
    assert result["summary"]["action"] == "untouched"


def test_pip_conf_broken_file_is_an_error_naming_it():
    with pytest.raises(RenderError, match="/etc/pip.conf is not a valid INI file"):
        render_client_config("index-url = x\n", "pip_conf", sel())


def test_pip_conf_bad_timeout_names_the_variable():
    with pytest.raises(RenderError, match="pip_mirror_timeout: 'x'"):
        render_client_config("", "pip_conf", sel(), {"timeout": "x"})


# ------------------------------------------------------------------------------------------- uv.toml

def test_uv_toml_block_appended_after_users_keys_and_parsed():
    current = 'native-tls = true\n\n[pip]\nindex-strategy = "first-index"\n'
    result = render_client_config(current, "uv_toml", sel())
    data = tomllib.loads(result["content"])
    assert data["native-tls"] is True and data["pip"]["index-strategy"] == "first-index"
    assert data["index"] == [{"url": "https://pypi.tuna.example/simple", "default": True}]
    again = render_client_config(result["content"], "uv_toml", sel())
    assert not again["changed"]


def test_uv_toml_block_replaced_in_place():
    first = render_client_config("", "uv_toml", sel())["content"]
    second = render_client_config(first, "uv_toml", sel(name="ustc", url="https://ustc.example/simple"))
    data = tomllib.loads(second["content"])
    assert data["index"] == [{"url": "https://ustc.example/simple", "default": True}]


def test_uv_reads_the_rendered_file(tmp_path):
    uv = shutil.which("uv") or os.path.join(os.path.dirname(sys.executable), "uv")
    if not os.path.exists(uv):
        pytest.skip("uv is not installed in this environment")
    conf = tmp_path / "uv.toml"
    conf.write_text(render_client_config("", "uv_toml", sel())["content"])
    # uv validates the file when it loads it; a broken table fails this command
    out = subprocess.run([uv, "--config-file", str(conf), "pip", "list", "--python", sys.executable],
                         capture_output=True, text=True, check=False, env=dict(os.environ, UV_OFFLINE="1"))
    assert out.returncode == 0, out.stderr


def test_toml_string_escapes():
    assert tomllib.loads("x = %s" % toml_string('a"b\\c\nd'))["x"] == 'a"b\\c\nd'


def test_uv_toml_broken_file_is_an_error():
    with pytest.raises(RenderError, match="is not valid TOML"):
        render_client_config("[[index]\n", "uv_toml", sel())


# ------------------------------------------------------------------------------------------- .condarc

CONDA = "https://mirrors.tuna.example/anaconda"


def test_condarc_tuna_layout():
    result = render_client_config("", "condarc", sel(url=CONDA), {
        "custom_channels": ["conda-forge", "pytorch"], "default_channels": ["main", "r"],
        "show_channel_urls": True})
    data = yaml.safe_load(result["content"])
    assert data == {
        "channel_alias": CONDA + "/cloud",
        "default_channels": [CONDA + "/pkgs/main", CONDA + "/pkgs/r"],
        "custom_channels": {"conda-forge": CONDA + "/cloud", "pytorch": CONDA + "/cloud"},
        "channels": ["defaults"],  # a file with no channels: conda >= 25.9 implies none
        "show_channel_urls": True,
    }


def test_condarc_entry_layout_wins_and_users_channels_survive():
    current = "custom_channels:\n  mine: https://mine.example/conda\nchannels: [defaults]\n"
    catalog = [{"name": "tuna", "url": CONDA, "channel_alias": "https://alias.example/c",
                "default_channels": ["https://alias.example/main"]}]
    result = render_client_config(current, "condarc", sel(url=CONDA), {"catalog": catalog,
                                                                       "custom_channels": ["conda-forge"]})
    data = yaml.safe_load(result["content"])
    assert data["channel_alias"] == "https://alias.example/c"
    assert data["default_channels"] == ["https://alias.example/main"]
    assert data["custom_channels"] == {"mine": "https://mine.example/conda", "conda-forge": "https://alias.example/c"}
    assert data["channels"] == ["defaults"]


def test_condarc_hostile_alias_refused():
    catalog = [{"name": "tuna", "url": CONDA, "channel_alias": "https://a.example/c\nssl_verify: false"}]
    with pytest.raises(RenderError, match="channel_alias"):
        render_client_config("", "condarc", sel(url=CONDA), {"catalog": catalog})


def test_condarc_kept_is_byte_identical():
    current = "# my comment\nchannel_alias: https://old.example/cloud\n"
    assert render_client_config(current, "condarc", sel(status="kept", url=CONDA))["content"] == current


# ------------------------------------------------------------------------------------------- daemon.json

def docker_sel(*mirrors_, status="ok"):
    ranked = list(mirrors_) if status in ("ok", "pinned", "pin_unhealthy") else []
    first = mirrors_[0]
    entry = dict(first, status=status, ranked=ranked, rejected=[])
    return entry


def test_daemon_json_ranked_mirrors_insecure_and_users_keys():
    current = json.dumps({"log-driver": "journald", "insecure-registries": ["corp.example:5000"]})
    selection = docker_sel(mirror("a", "https://hub-a.example/"), mirror("lab", "http://127.0.0.5:5000", True))
    result = render_client_config(current, "daemon_json", selection, {
        "live_restore": True, "fragments": {"nvidia": {"runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}}})
    data = json.loads(result["content"])
    assert data["registry-mirrors"] == ["https://hub-a.example", "http://127.0.0.5:5000"]
    assert data["insecure-registries"] == ["corp.example:5000", "127.0.0.5:5000"]
    assert data["log-driver"] == "journald" and data["live-restore"] is True
    assert data["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"
    assert result["summary"]["needs"] == "reload"


@pytest.mark.parametrize("status", ["kept", "none"])
def test_daemon_json_kept_keeps_every_mirror(status):
    """Regression: during an outage with a kept choice, registry-mirrors shrank to the kept one."""
    current = json.dumps({"registry-mirrors": ["https://a.example", "https://b.example"], "live-restore": True},
                         indent=2) + "\n"
    selection = docker_sel(mirror("a", "https://a.example"), status=status)
    selection["ranked"] = [mirror("a", "https://a.example")] if status == "kept" else []
    result = render_client_config(current, "daemon_json", selection, {"live_restore": True})
    assert result["content"] == current and not result["changed"]
    assert result["summary"]["needs"] == "none"


def test_daemon_json_docker_credentials_refused():
    selection = docker_sel(mirror("a", "https://u:p@hub-a.example"))
    with pytest.raises(RenderError) as err:
        render_client_config("", "daemon_json", selection)
    assert "docker login" in str(err.value) and ":p@" not in str(err.value)


def test_daemon_json_restart_needed_for_non_reloadable_key():
    current = json.dumps({"registry-mirrors": ["https://a.example"]})
    result = render_client_config(current, "daemon_json", docker_sel(mirror("a", "https://a.example")),
                                  {"extra": {"log-driver": "journald"}})
    assert result["summary"]["changed_keys"] == ["log-driver"]
    assert result["summary"]["needs"] == "restart"


def test_daemon_json_mirrors_only_ignores_fragments_and_live_restore():
    current = json.dumps({"registry-mirrors": ["https://a.example"], "runtimes": {"nvidia": {"path": "x"}}})
    result = render_client_config(current, "daemon_json", docker_sel(mirror("b", "https://b.example")),
                                  {"mirrors_only": True, "live_restore": False, "fragments": {"z": {"debug": True}}})
    data = json.loads(result["content"])
    assert data == {"registry-mirrors": ["https://b.example"], "runtimes": {"nvidia": {"path": "x"}}}


def test_daemon_json_extra_may_not_set_mirror_keys():
    with pytest.raises(RenderError, match="docker_mirror_extra_config"):
        render_client_config("", "daemon_json", docker_sel(mirror("a", "https://a.example")),
                             {"extra": {"registry-mirrors": ["https://x.example"]}})


# ------------------------------------------------------------------------------------------- hosts.toml

def test_hosts_toml_in_rank_order_and_parsed():
    selection = docker_sel(mirror("a", "https://hub-a.example"), mirror("lab", "http://[fd00::7]:5000", True))
    result = render_client_config("", "hosts_toml", selection)
    data = tomllib.loads(result["content"])
    assert data["server"] == "https://registry-1.docker.io"
    assert list(data["host"]) == ["https://hub-a.example", "http://[fd00::7]:5000"]
    assert data["host"]["http://[fd00::7]:5000"]["skip_verify"] is True
    assert "skip_verify" not in data["host"]["https://hub-a.example"]


def test_hosts_toml_kept_is_byte_identical():
    current = 'server = "https://registry-1.docker.io"\n\n[host."https://a.example"]\n\n[host."https://b.example"]\n'
    selection = docker_sel(mirror("a", "https://a.example"), status="kept")
    selection["ranked"] = [mirror("a", "https://a.example")]
    assert render_client_config(current, "hosts_toml", selection)["content"] == current


# ------------------------------------------------------------------------------------------- misc

def test_unknown_client():
    with pytest.raises(RenderError, match="client 'npmrc' is unknown"):
        render_client_config("", "npmrc", sel())


@pytest.mark.parametrize("text,expected", [
    ("index-url = https://u:p@h/simple", True),
    ("index-url = https://h/simple?token=abc", True),
    ("index-url = https://h/simple", False),
    ('{"registry-mirrors": ["https://h"]}', False),
])
def test_holds_credentials(text, expected):
    assert holds_credentials(text) is expected


# ------------------------------------------------------------------------------------------- proxy

from ansible_collections.gpulab.provision.plugins.module_utils.proxy import proxy_settings  # noqa: E402

PROXY = proxy_settings({"http": "http://u:pw@proxy.lab.example:3128", "https": "http://u:pw@proxy.lab.example:3128",
                        "no_proxy": [".lab.example"]},
                       {"pypi": [{"name": "lab", "url": "http://127.0.3.9:8080/simple", "proxy": False}]})


def test_pip_conf_proxy_for_a_public_mirror_read_by_real_pip(tmp_path):
    result = render_client_config("", "pip_conf", sel(), {"proxy": PROXY})
    assert pip_reads(tmp_path, result["content"])["proxy"] == "http://u:pw@proxy.lab.example:3128"
    assert result["summary"]["sensitive"] is True  # the proxy's password is in the file
    assert "pw" not in json.dumps(result["summary"]).replace("pwd", "")


def test_pip_conf_proxy_removed_when_the_chosen_mirror_is_direct():
    current = render_client_config("", "pip_conf", sel(), {"proxy": PROXY})["content"]
    result = render_client_config(current, "pip_conf", sel(name="lab", url="http://127.0.3.9:8080/simple",
                                                           insecure=True), {"proxy": PROXY})
    assert "proxy" not in result["content"]


def test_pip_conf_users_proxy_left_alone_without_gpulab_proxy():
    current = "[global]\nproxy = http://mine.example:8080\n"
    assert "proxy = http://mine.example:8080" in render_client_config(current, "pip_conf", sel())["content"]


def test_condarc_proxy_servers():
    data = yaml.safe_load(render_client_config("", "condarc", sel(url=CONDA), {"proxy": PROXY})["content"])
    assert data["proxy_servers"] == {"http": "http://u:pw@proxy.lab.example:3128",
                                     "https": "http://u:pw@proxy.lab.example:3128"}
    inside = sel(url="https://conda.lab.example/anaconda")
    assert "proxy_servers" not in yaml.safe_load(render_client_config("", "condarc", inside, {"proxy": PROXY})["content"])


def test_docker_proxy_drop_in_is_read_by_systemd_rules():
    result = render_client_config("", "docker_proxy", None, {"proxy": PROXY})
    lines = result["content"].splitlines()
    assert lines[1] == "[Service]"
    assert 'Environment="HTTPS_PROXY=http://u:pw@proxy.lab.example:3128"' in lines
    assert 'Environment="NO_PROXY=.lab.example,localhost,127.0.0.1,::1,127.0.3.9"' in lines
    assert result["summary"]["needs"] == "restart" and result["summary"]["sensitive"] is True
    again = render_client_config(result["content"], "docker_proxy", None, {"proxy": PROXY})
    assert not again["changed"] and again["summary"]["needs"] == "none"
    gone = render_client_config(result["content"], "docker_proxy", None, {"proxy": None})
    assert gone["content"] == "" and gone["summary"]["action"] == "remove"


def test_systemd_quoting_of_percent_and_quotes():
    from ansible_collections.gpulab.provision.plugins.module_utils.renderers import _systemd_quote
    assert _systemd_quote('A=b%c"d\\e') == '"A=b%%c\\"d\\\\e"'


@pytest.mark.parametrize("option,variable", [("default_channels", "conda_mirror_default_channels"),
                                             ("custom_channels", "conda_mirror_custom_channels")])
def test_condarc_channel_names_are_checked(option, variable):
    with pytest.raises(RenderError, match="%s: 'a/b' is not a channel name" % variable):
        render_client_config("", "condarc", sel(url=CONDA), {option: ["main", "a/b"]})


# ------------------------------------------------------- one summary shape

EXISTING = {
    "pip_conf": "[global]\nindex-url = https://old.example/simple\n",
    "uv_toml": "native-tls = true\n",
    "condarc": "channel_alias: https://old.example/cloud\n",
    "daemon_json": '{\n  "registry-mirrors": ["https://old.example"]\n}\n',
    "hosts_toml": 'server = "https://registry-1.docker.io"\n',
    "docker_proxy": "",
}
SELECTIONS = {
    "ok-pypi": sel(), "ok-conda": sel(url="https://conda.example/anaconda"),
    "ok-docker": sel(url="https://hub.example"),
    "kept": sel(status="kept", ranked=[mirror("tuna", "https://hub.example")]), "none": sel(status="none"),
    "no entry": None,
}
CLIENT_SELECTION = {"pip_conf": "ok-pypi", "uv_toml": "ok-pypi", "condarc": "ok-conda", "daemon_json": "ok-docker",
                    "hosts_toml": "ok-docker", "docker_proxy": "ok-docker"}


@pytest.mark.parametrize("present", [True, False], ids=["file present", "file absent"])
@pytest.mark.parametrize("status", ["ok", "kept", "none", "no entry"])
@pytest.mark.parametrize("client", sorted(EXISTING))
def test_every_renderer_returns_every_summary_key_for_every_status(client, status, present):
    selection = SELECTIONS[CLIENT_SELECTION[client] if status == "ok" else status]
    current = EXISTING[client] if present else None
    result = render_client_config(current, client, selection, {})
    summary = result["summary"]
    expected = set(SUMMARY_DEFAULTS) | set(CLIENT_SUMMARY[client])
    assert expected <= set(summary), expected - set(summary)
    assert summary["client"] == client and summary["present"] is present
    assert summary["status"] == (selection or {}).get("status", "none") and summary["needs"] in ("none", "reload", "restart")
    assert isinstance(summary["warnings"], list) and isinstance(summary["changed_keys"], list)
    if status in ("kept", "none", "no entry"):
        # nothing healthy: the file is left byte for byte, a missing one missing (no option adds keys here)
        assert result["content"] == (current or "") and result["changed"] is False and summary["needs"] == "none"


def test_summary_shape_fills_every_key_and_keeps_the_given():
    summary = summary_shape("daemon_json", {"path": "/x", "needs": "reload", "warnings": None})
    assert summary["path"] == "/x" and summary["needs"] == "reload" and summary["warnings"] == []
    assert summary["registry_mirrors"] == [] and summary["changed_keys"] == [] and summary["client"] == "daemon_json"
    summary["registry_mirrors"].append("x")
    assert summary_shape("daemon_json")["registry_mirrors"] == []


@pytest.mark.parametrize("status", ["kept", "none", "no entry"])
def test_daemon_json_with_nothing_healthy_still_merges_fragments_into_a_missing_file(status):
    selection = SELECTIONS[status]
    options = {"live_restore": True, "fragments": {"nvidia": {"runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}}}
    result = render_client_config(None, "daemon_json", selection, options)
    assert json.loads(result["content"]) == {"live-restore": True, "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}
    assert result["changed"] and result["summary"]["action"] == "mirrors untouched"
    assert result["summary"]["changed_keys"] == ["live-restore", "runtimes"] and result["summary"]["needs"] == "reload"
    # failover's mirrors_only: nothing to merge, the missing file stays missing (not "{}")
    result = render_client_config(None, "daemon_json", selection, dict(options, mirrors_only=True))
    assert result["content"] == "" and not result["changed"]
