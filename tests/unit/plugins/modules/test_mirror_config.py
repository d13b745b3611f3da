# -*- coding: utf-8 -*-
# Copyright (c) gpulab.provision contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""mirror_config through main(): one client file, written as every writer of the collection writes."""
from __future__ import annotations

import json

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
