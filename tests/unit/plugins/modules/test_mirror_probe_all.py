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
    assert failed and result["msg"].startswith("No healthy mirror (gpulab_mirror_policy.on_all_down: fail)")
    assert "web  stall (%s): timed out after 1.0 s" % lab["args"]["mirrors"]["web"][0]["url"] in result["msg"].splitlines()
    assert "pypi" not in result["msg"]  # pypi has a healthy mirror
    assert not (lab["path"] / "gpulab_mirrors.fact").exists()


def test_a_bad_inventory_fails_before_probing(lab, capsys):
    args = dict(lab["args"], mirrors={"pypi": [{"name": "x", "url": "ftp://u:%s@h/simple" % SECRET}]})
    failed, result, out = run_module(capsys, args)
    assert failed and result["msg"].startswith("Mirror inventory has 1 problem(s):\ngpulab_mirrors.pypi[0].url")
    assert SECRET not in out and "probes" not in result


def test_only_names_services_of_the_catalog(lab, capsys):
    failed, result, _out = run_module(capsys, dict(lab["args"], only=["pypi", "pip"]))
    assert failed and result["msg"].startswith("only (mirror_select_services): pip not in gpulab_mirrors")


# --------------------------------------------------------------------------------------------------
# write: true - failover.yml's one call: the files switch as the config roles write them.


def _writing(lab, **extra):
    clients = {"pip": dict(lab["args"]["clients"]["pip"], backup_keep=1),
               # a unit no host has: the test never reloads a real dockerd
               "docker": dict(lab["args"]["clients"]["docker"], unit="gpulab-test-absent.service")}
    return dict(lab["args"], clients=clients, write=True, lock_path=str(lab["path"] / "lock"), **extra)


def _mode(path):
    return path.stat().st_mode & 0o777


def test_write_switches_the_files_records_the_fact_and_hides_the_credential(lab, capsys):
    failed, result, out = run_module(capsys, _writing(lab))
    assert not failed, result
    pip_conf, daemon = lab["path"] / "pip.conf", lab["path"] / "daemon.json"
    assert result["changed"] is True and sorted(result["written"]) == sorted([str(pip_conf), str(daemon)])
    assert result["pending"] == {}
    # real clients read these files in molecule; here: the bytes are the renderers' and the modes the roles'
    text = pip_conf.read_text()
    assert "index-url = http://u:%s@127.0.0.1:%d/simple" % (SECRET, lab["good"].port) in text
    assert _mode(pip_conf) == 0o640  # holds a credential
    assert json.loads(daemon.read_text())["registry-mirrors"] == [lab["good"].url]
    assert _mode(daemon) == 0o644
    assert json.loads((lab["path"] / "gpulab_mirrors.fact").read_text()) == result["fact"]
    assert any("gpulab-test-absent.service" in note for note in result["notes"])
    assert SECRET not in out
    # the same again: nothing to write, nothing changed, no backup
    failed, again, _out = run_module(capsys, _writing(lab))
    assert not failed and again["changed"] is False and again["written"] == [] and again["backups"] == []
    assert pip_conf.read_text() == text


def test_write_backs_up_what_it_replaces_and_keeps_the_newest(lab, capsys):
    pip_conf = lab["path"] / "pip.conf"
    pip_conf.write_text("[global]\nindex-url = http://127.0.0.9:1/simple\n# mine\n")
    pip_conf.chmod(0o644)
    failed, result, _out = run_module(capsys, _writing(lab))
    assert not failed, result
    assert len(result["backups"]) == 1
    backup = result["backups"][0]
    assert backup.startswith(str(pip_conf) + ".") and backup.endswith("~")
    with open(backup, encoding="utf-8") as handle:
        assert "127.0.0.9" in handle.read()
    assert "# mine" in pip_conf.read_text()  # the user's lines stay
    # a second switch (back to a hand-edited file) leaves one backup: backup_keep 1
    time.sleep(1.1)
    pip_conf.write_text("[global]\nindex-url = http://127.0.0.8:1/simple\n")
    failed, result, _out = run_module(capsys, _writing(lab))
    assert not failed
    backups = sorted(p.name for p in lab["path"].iterdir() if p.name.startswith("pip.conf.") and p.name.endswith("~"))
    assert len(backups) == 1 and backups[0] == result["backups"][0].rsplit("/", 1)[1]


def test_write_in_check_mode_writes_nothing_and_diffs_only_what_holds_no_credential(lab, capsys):
    failed, result, out = run_module(capsys, _writing(lab, _ansible_check_mode=True, _ansible_diff=True))
    assert not failed, result
    assert result["changed"] is True and len(result["written"]) == 2
    assert not (lab["path"] / "pip.conf").exists() and not (lab["path"] / "daemon.json").exists()
    assert not (lab["path"] / "gpulab_mirrors.fact").exists() and not (lab["path"] / "lock").exists()
    assert [d["after_header"] for d in result["diff"]] == [str(lab["path"] / "daemon.json")]
    assert SECRET not in out


def test_write_leaves_a_broken_file_to_its_role(lab, capsys):
    daemon = lab["path"] / "daemon.json"
    daemon.write_text('{"registry-mirrors": [')
    failed, result, _out = run_module(capsys, _writing(lab))
    assert not failed, result
    assert daemon.read_text() == '{"registry-mirrors": ['
    assert [p["path"] for p in result["pending"]["docker_mirror"]] == [str(daemon)]
    assert str(lab["path"] / "pip.conf") in result["written"]


def test_write_waits_for_the_watchers_lock_and_then_writes_nothing(lab, capsys):
    import fcntl

    lock = lab["path"] / "lock"
    with open(lock, "a", encoding="utf-8") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        failed, result, _out = run_module(capsys, _writing(lab, lock_wait_s=1))
    # deferred, not failed: the report says why (failover.yml's gpulab_report_mirror_select.warnings)
    assert not failed and result["changed"] is False and result["written"] == []
    assert result["deferred"].startswith("%s is held by another writer" % lock)
    assert "switch deferred: %s" % result["deferred"] in result["notes"]
    assert not (lab["path"] / "pip.conf").exists() and not (lab["path"] / "gpulab_mirrors.fact").exists()


# --------------------------------------------------------------------------------------------------
# record: true - mirror_select's one call: probe, choose and record the local fact, no client file.


def _recording(lab, **extra):
    return dict(lab["args"], record=True, lock_path=str(lab["path"] / "lock"), **extra)


def test_record_writes_the_fact_only_and_a_second_run_changes_nothing(lab, capsys):
    fact = lab["path"] / "gpulab_mirrors.fact"
    failed, result, out = run_module(capsys, _recording(lab))
    assert not failed, result
    assert result["changed"] is True and result["fact_changed"] is True and result["pending"] == {}
    assert json.loads(fact.read_text()) == result["fact"] and _mode(fact) == 0o644
    assert result["fact"]["pypi"]["url_masked"].startswith("http://***@") and SECRET not in fact.read_text()
    assert not (lab["path"] / "pip.conf").exists() and not (lab["path"] / "daemon.json").exists()
    assert SECRET not in out
    text = fact.read_text()
    failed, again, _out = run_module(capsys, _recording(lab))
    assert not failed and again["changed"] is False and again["fact_changed"] is False
    assert fact.read_text() == text


def test_record_in_check_mode_writes_nothing_and_diffs_the_masked_fact(lab, capsys):
    failed, result, out = run_module(capsys, _recording(lab, _ansible_check_mode=True, _ansible_diff=True))
    assert not failed, result
    assert result["changed"] is True
    assert not (lab["path"] / "gpulab_mirrors.fact").exists() and not (lab["path"] / "lock").exists()
    assert result["diff"]["before"] == "" and json.loads(result["diff"]["after"]) == result["fact"]
    assert SECRET not in out


def test_record_keeps_the_fact_byte_identical_when_every_mirror_is_down(lab, capsys):
    fact = lab["path"] / "gpulab_mirrors.fact"
    failed, first, _out = run_module(capsys, _recording(lab))
    assert not failed
    text = fact.read_text()
    dead = {"pypi": [lab["args"]["mirrors"]["pypi"][0], dict(lab["args"]["mirrors"]["pypi"][1], url="http://127.0.0.1:9/simple")],
            "docker": [lab["args"]["mirrors"]["docker"][0], dict(lab["args"]["mirrors"]["docker"][1], url="http://127.0.0.1:9")],
            "web": lab["args"]["mirrors"]["web"]}
    failed, result, _out = run_module(capsys, _recording(lab, mirrors=dead))
    assert not failed, result
    assert {s: e["status"] for s, e in result["selected"].items()} == {"pypi": "kept", "docker": "kept", "web": "none"}
    assert result["changed"] is False and fact.read_text() == text


def test_record_waits_for_the_watchers_lock_and_then_records_nothing(lab, capsys):
    import fcntl

    with open(lab["path"] / "lock", "a", encoding="utf-8") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        failed, result, _out = run_module(capsys, _recording(lab, lock_wait_s=1))
    assert not failed and result["changed"] is False and "is held by another writer" in result["deferred"]
    assert not (lab["path"] / "gpulab_mirrors.fact").exists()


def test_the_selection_out_of_the_module_has_masked_urls_and_selection_urls_restores_them(lab, capsys):
    from ansible_collections.gpulab.provision.plugins.module_utils.selection import selection_urls

    failed, result, _out = run_module(capsys, _recording(lab))
    assert not failed
    real = lab["args"]["mirrors"]["pypi"][1]["url"]
    # Ansible replaces the no_log secret in the module's output: a role must not render this URL
    assert result["selected"]["pypi"]["url"] != real and "********" in result["selected"]["pypi"]["url"]
    fixed = selection_urls(result["selected"], lab["args"]["mirrors"])
    assert fixed["pypi"]["url"] == real and [r["url"] for r in fixed["pypi"]["ranked"]] == [real]
    assert fixed["docker"]["url"] == lab["good"].url and fixed["web"]["url"] is None
    assert fixed["pypi"]["url_masked"] == result["selected"]["pypi"]["url_masked"]
