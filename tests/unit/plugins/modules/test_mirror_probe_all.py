# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""mirror_probe_all through main(): every service in one call, the choice, the files that would change."""
from __future__ import annotations

import json
import time

import pytest

from mirror_servers import StallingListener, pypi_mirror

from ansible.module_utils.testing import patch_module_args

from ansible_collections.gpulab.provision.plugins.module_utils.renderers import render_client_config
from ansible_collections.gpulab.provision.plugins.modules import mirror_probe_all

SECRET = "hunter22-s3cr3t"


def run_module(capsys, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            mirror_probe_all.main()
    out = capsys.readouterr().out
    return exit_info.value.code != 0, json.loads(out.strip().splitlines()[-1]), out


@pytest.fixture
def lab(servers, refusing, tmp_path):
    good = pypi_mirror(servers())
    good.route("/ok", 200, {"Content-Type": "text/plain"}, b"ok\n")
    stall = servers(StallingListener)
    mirrors = {
        "pypi": [{"name": "down", "url": refusing.url + "/simple", "insecure": True},
                 {"name": "good", "url": "http://u:%s@127.0.0.1:%d/simple" % (SECRET, good.port), "insecure": True}],
        "docker": [{"name": "stall", "url": stall.url, "insecure": True},
                   {"name": "dgood", "url": good.url, "insecure": True}],
        "web": [{"name": "stall", "url": stall.url, "insecure": True}],
    }
    services = {"pypi": {"kind": "pypi", "project": "pip"}, "docker": {"kind": "http", "path": "ok"},
                "web": {"kind": "http", "path": "ok"}}
    clients = {"pip": {"conf_path": str(tmp_path / "pip.conf"), "manage_uv": False},
               "docker": {"daemon_json_path": str(tmp_path / "daemon.json"),
                          "containerd_certs_dir": str(tmp_path / "nocontainerd" / "certs.d")}}
    args = {"mirrors": mirrors, "services": services, "policy": {"timeout_s": 1.5}, "clients": clients,
            "fact_path": str(tmp_path / "gpulab_mirrors.fact")}
    return {"args": args, "path": tmp_path, "good": good}


def test_every_service_in_one_call_under_one_deadline(lab, capsys):
    started = time.monotonic()
    failed, result, out = run_module(capsys, lab["args"])
    assert not failed, result
    assert time.monotonic() - started < 2.5  # two stalling services, one 1.5 s deadline
    assert {s: e["name"] for s, e in result["selected"].items()} == {"pypi": "good", "docker": "dgood", "web": None}
    assert result["selected"]["web"]["status"] == "none"
    assert SECRET not in out
    assert result["fact"] == {"pypi": {"name": "good", "status": "ok", "url_masked": "http://***@127.0.0.1:%d/simple"
                                       % lab["good"].port},
                              "docker": {"name": "dgood", "status": "ok", "url_masked": lab["good"].url}}
    assert result["fact_changed"] is True and result["fact_dir_exists"] is True
    # Missing pip.conf and daemon.json: their roles would create them; containerd is absent: no hosts.toml.
    assert sorted(result["pending"]) == ["docker_mirror", "pip_mirror"]
    assert [p["reason"] for p in result["pending"]["pip_mirror"]] == ["missing"]


def test_nothing_pending_when_the_files_already_point_there(lab, capsys):
    _failed, first, _out = run_module(capsys, lab["args"])
    (lab["path"] / "gpulab_mirrors.fact").write_text(json.dumps(first["fact"]))
    selected = first["selected"]
    # what pip_mirror and docker_mirror (mirrors_only) would have written
    selected["pypi"]["url"] = lab["args"]["mirrors"]["pypi"][1]["url"]
    (lab["path"] / "pip.conf").write_text(render_client_config("", "pip_conf", selected["pypi"],
                                                               {"timeout": 10, "retries": 2})["content"])
    (lab["path"] / "daemon.json").write_text(render_client_config("{}", "daemon_json", selected["docker"],
                                                                  {"mirrors_only": True})["content"])
    failed, result, _out = run_module(capsys, lab["args"])
    assert not failed
    assert result["pending"] == {} and result["fact_changed"] is False


def test_on_all_down_fail_fails_with_the_reasons(lab, capsys):
    args = dict(lab["args"], policy={"timeout_s": 1, "on_all_down": "fail"})
    failed, result, _out = run_module(capsys, args)
    assert failed and "web: none" in result["msg"] and "timed out after 1.0 s" in result["msg"]


def test_a_bad_inventory_fails_before_probing(lab, capsys):
    args = dict(lab["args"], mirrors={"pypi": [{"name": "x", "url": "ftp://u:%s@h/simple" % SECRET}]})
    failed, result, out = run_module(capsys, args)
    assert failed and "gpulab_mirrors.pypi[0].url" in result["msg"] and SECRET not in out


def test_only_names_services_of_the_catalog(lab, capsys):
    failed, result, _out = run_module(capsys, dict(lab["args"], only=["pypi", "pip"]))
    assert failed and result["msg"].startswith("only: pip not in gpulab_mirrors")
