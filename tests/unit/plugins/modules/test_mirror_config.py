# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""mirror_config through main(): one client file, written as every writer of the collection writes."""
from __future__ import annotations

import grp
import json
import os

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.gpulab.provision.plugins.modules import mirror_config

SECRET = "pa55-w0rd-x"
SEL = {"status": "ok", "name": "m", "url": "https://u:%s@m.example/simple" % SECRET,
       "ranked": [{"name": "m", "url": "https://u:%s@m.example/simple" % SECRET}]}
CACHE = {"status": "ok", "name": "cache-n1", "ranked": [{"name": "cache-n1", "url": "http://127.0.40.10:5001",
                                                         "insecure": True}]}


def run(capsys, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            mirror_config.main()
    out = capsys.readouterr().out
    return exit_info.value.code != 0, json.loads(out.strip().splitlines()[-1]), out


def test_a_credentialed_pip_conf_is_0640_and_never_shown(tmp_path, capsys):
    path = tmp_path / "etc" / "pip.conf"
    failed, result, out = run(capsys, {"client": "pip_conf", "path": str(path), "selection": SEL,
                                       "_ansible_diff": True})
    assert not failed, result
    assert result["changed"] and path.stat().st_mode & 0o777 == 0o640
    assert SECRET in path.read_text() and SECRET not in out and "diff" not in result
    assert result["summary"]["holds_credentials"] is True
    failed, again, _out = run(capsys, {"client": "pip_conf", "path": str(path), "selection": SEL})
    assert not failed and again["changed"] is False


def test_a_registry_hosts_toml_with_diff_backup_and_check_mode(tmp_path, capsys):
    path = tmp_path / "certs.d" / "ghcr.io" / "hosts.toml"
    args = {"client": "hosts_toml", "path": str(path), "selection": CACHE, "options": {"registry": "ghcr.io"},
            "backup_keep": 0}
    failed, result, _out = run(capsys, dict(args, _ansible_check_mode=True, _ansible_diff=True))
    assert not failed and result["changed"] and not path.exists()
    assert '[host."http://127.0.40.10:5001"]' in result["diff"]["after"]
    failed, result, _out = run(capsys, args)
    assert not failed and path.exists() and 'server = "https://ghcr.io"' in path.read_text()
    # every cache node down: the registry alone; the old file backed up, then pruned (backup_keep 0)
    failed, result, _out = run(capsys, dict(args, selection={"status": "none", "ranked": []}))
    assert not failed and result["changed"] and "[host." not in path.read_text()
    assert result["removed_backups"] == [result["backup_file"]]
    assert sorted(p.name for p in path.parent.iterdir()) == ["hosts.toml"]


def test_a_broken_file_fails_naming_it_and_stays(tmp_path, capsys):
    path = tmp_path / "daemon.json"
    path.write_text('{"log-driver": ')
    failed, result, _out = run(capsys, {"client": "daemon_json", "path": str(path), "selection": CACHE})
    assert failed and str(path) in result["msg"]
    assert path.read_text() == '{"log-driver": '


def test_create_false_leaves_a_missing_file_missing(tmp_path, capsys):
    path = tmp_path / "uv.toml"
    failed, result, _out = run(capsys, {"client": "uv_toml", "path": str(path), "selection": SEL, "create": False})
    assert not failed and not result["changed"] and not path.exists()
    assert result["summary"]["action"] == "absent"


def test_validate_runs_on_the_new_file_and_a_failure_keeps_the_old_one(tmp_path, capsys):
    path = tmp_path / "daemon.json"
    path.write_text("{}\n")
    args = {"client": "daemon_json", "path": str(path), "selection": CACHE, "validate": "grep -q never-there %s"}
    failed, result, _out = run(capsys, args)
    assert failed and "the new file was rejected" in result["msg"] and "the old one is kept" in result["msg"]
    assert path.read_text() == "{}\n" and [p.name for p in tmp_path.iterdir()] == ["daemon.json"]
    failed, result, _out = run(capsys, dict(args, validate="grep -q registry-mirrors %s"))
    assert not failed and result["changed"] and "127.0.40.10:5001" in path.read_text()
    failed, result, _out = run(capsys, dict(args, validate="true"))
    assert failed and "must contain %s" in result["msg"]


# files: several files of one selection in one call (pip_mirror writes pip.conf and uv.toml so)

PLAIN = {"status": "ok", "name": "lab1", "url": "http://127.0.0.1:9/simple", "insecure": True,
         "ranked": [{"name": "lab1", "url": "http://127.0.0.1:9/simple", "insecure": True}]}


def pip_and_uv(tmp_path, **extra):
    return dict({"files": [{"client": "pip_conf", "path": str(tmp_path / "pip.conf"),
                            "options": {"service": "pypi", "timeout": 10, "retries": 2}},
                           {"client": "uv_toml", "path": str(tmp_path / "uv" / "uv.toml"),
                            "options": {"service": "pypi"}}]}, **extra)


def test_files_writes_pip_conf_and_uv_toml_in_one_call_then_changes_nothing(tmp_path, capsys):
    (tmp_path / "pip.conf").write_text("[global]\ndisable-pip-version-check = true\n")
    failed, result, _out = run(capsys, pip_and_uv(tmp_path, selection=PLAIN))
    assert not failed, result
    assert result["changed"] is True
    assert [(f["path"], f["client"], f["changed"]) for f in result["files"]] == [
        (str(tmp_path / "pip.conf"), "pip_conf", True), (str(tmp_path / "uv" / "uv.toml"), "uv_toml", True)]
    pip_conf = (tmp_path / "pip.conf").read_text()
    assert "index-url = http://127.0.0.1:9/simple" in pip_conf and "disable-pip-version-check = true" in pip_conf
    assert 'url = "http://127.0.0.1:9/simple"' in (tmp_path / "uv" / "uv.toml").read_text()
    # the replaced pip.conf is backed up; uv.toml was new, so it has none
    assert "backup_file" in result["files"][0] and "backup_file" not in result["files"][1]
    assert result["summary"]["action"] == "files" and result["summary"]["changed_paths"] == result["summary"]["paths"]
    assert all(f["summary"]["action"] == "render" for f in result["files"])
    assert (tmp_path / "pip.conf").stat().st_mode & 0o777 == 0o644
    failed, again, _out = run(capsys, pip_and_uv(tmp_path, selection=PLAIN))
    assert not failed and again["changed"] is False
    assert [f["changed"] for f in again["files"]] == [False, False] and again["summary"]["changed_paths"] == []


def test_files_one_broken_file_fails_naming_it_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "uv").mkdir()
    (tmp_path / "uv" / "uv.toml").write_text("index = [\n")
    (tmp_path / "pip.conf").write_text("[global]\nindex-url = https://old.example/simple\n")
    failed, result, _out = run(capsys, pip_and_uv(tmp_path, selection=PLAIN))
    assert failed
    assert str(tmp_path / "uv" / "uv.toml") in result["msg"] and "not valid TOML" in result["msg"]
    assert "left untouched. Nothing was written (" in result["msg"] and result["paths"] == [str(tmp_path / "uv" / "uv.toml")]
    # pip.conf came first and rendered fine, and is still not touched
    assert (tmp_path / "pip.conf").read_text() == "[global]\nindex-url = https://old.example/simple\n"
    assert (tmp_path / "uv" / "uv.toml").read_text() == "index = [\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pip.conf", "uv"]


def test_files_check_mode_writes_nothing_and_diffs_each_file(tmp_path, capsys):
    failed, result, _out = run(capsys, pip_and_uv(tmp_path, selection=PLAIN, _ansible_check_mode=True,
                                                  _ansible_diff=True))
    assert not failed and result["changed"] is True
    assert [f["changed"] for f in result["files"]] == [True, True]
    assert not (tmp_path / "pip.conf").exists() and not (tmp_path / "uv").exists()
    assert [d["after_header"] for d in result["diff"]] == [str(tmp_path / "pip.conf"), str(tmp_path / "uv" / "uv.toml")]
    assert "index-url = http://127.0.0.1:9/simple" in result["diff"][0]["after"]


def test_files_with_a_credential_are_0640_with_the_group_and_never_shown(tmp_path, capsys):
    group = "daemon" if os.geteuid() == 0 else "root"
    args = pip_and_uv(tmp_path, selection=SEL, credentials_group=group, _ansible_diff=True)
    failed, result, out = run(capsys, args)
    assert not failed, result
    assert result["changed"] and "diff" not in result and SECRET not in out
    assert result["summary"]["holds_credentials"] is True and result["summary"]["sensitive"] is True
    for path in (tmp_path / "pip.conf", tmp_path / "uv" / "uv.toml"):
        assert path.stat().st_mode & 0o777 == 0o640 and SECRET in path.read_text()
        if os.geteuid() == 0:
            assert grp.getgrgid(path.stat().st_gid).gr_name == "daemon"
    failed, again, out = run(capsys, dict(args, _ansible_check_mode=True))
    assert not failed and again["changed"] is False and SECRET not in out


def test_files_warn_returns_the_extra_index_url_warning(tmp_path, capsys, monkeypatch):
    # AnsibleModule.warn returns the warning with the result, or displays it where the controller's code
    # is loaded (as in this test process): record what the module asks it to warn about
    seen = []
    monkeypatch.setattr(mirror_config.AnsibleModule, "warn", lambda _self, warning, **_kw: seen.append(warning))
    (tmp_path / "pip.conf").write_text("[global]\nextra-index-url = https://corp.example/simple\n")
    warning = "extra-index-url present in %s" % (tmp_path / "pip.conf")
    failed, quiet, _out = run(capsys, pip_and_uv(tmp_path, selection=PLAIN, _ansible_check_mode=True))
    assert not failed and warning in quiet["summary"]["warnings"][0] and seen == []
    failed, result, _out = run(capsys, pip_and_uv(tmp_path, selection=PLAIN, warn=True))
    assert not failed and result["summary"]["warnings"] == result["files"][0]["summary"]["warnings"]
    assert len(seen) == 1 and warning in seen[0]


def test_files_create_per_entry_leaves_a_missing_file_missing(tmp_path, capsys):
    args = pip_and_uv(tmp_path, selection=PLAIN)
    args["files"][1]["create"] = False
    failed, result, _out = run(capsys, args)
    assert not failed and [f["changed"] for f in result["files"]] == [True, False]
    assert result["files"][1]["summary"]["action"] == "absent" and not (tmp_path / "uv").exists()


def test_files_a_rejected_write_stops_there_and_says_what_was_written(tmp_path, capsys):
    args = pip_and_uv(tmp_path, selection=PLAIN)
    args["files"][1]["validate"] = "grep -q never-there %s"
    failed, result, _out = run(capsys, args)
    assert failed and result["changed"] is True
    assert "the new file was rejected" in result["msg"] and "Written before it: %s" % (tmp_path / "pip.conf") in result["msg"]
    assert (tmp_path / "pip.conf").exists() and not (tmp_path / "uv" / "uv.toml").exists()
    assert [f["path"] for f in result["files"]] == [str(tmp_path / "pip.conf")]


@pytest.mark.parametrize("args, message", [
    ({"client": "pip_conf", "files": []}, "mutually exclusive"),
    ({}, "one of the following is required: client, files"),
    ({"client": "pip_conf"}, "parameters are required together: client, path"),
    ({"files": [{"client": "pip_conf", "path": "/x/pip.conf"}, {"client": "uv_toml", "path": "/x/pip.conf"}]},
     "files[1].path: /x/pip.conf is given twice"),
    ({"files": [], "options": {"service": "pypi"}}, "give each file its own (files[].options)"),
    ({"files": [{"client": "uv_toml", "path": "/x/uv.toml", "validate": "true"}]}, "files[0].validate: 'true' must contain %s"),
])
def test_files_bad_arguments_are_named(args, message, capsys):
    failed, result, _out = run(capsys, dict(args, selection=PLAIN))
    assert failed and message in result["msg"], result["msg"]


def test_files_empty_changes_nothing(capsys):
    failed, result, _out = run(capsys, {"files": [], "selection": PLAIN})
    assert not failed and result["changed"] is False and result["files"] == []
